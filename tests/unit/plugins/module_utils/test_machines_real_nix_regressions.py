# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Regressions found by the differential run against real Nix (tests/differential, issue 13).

Each case is one that Nix 2.26 and 2.34 refuse, failing the whole builders list, while the
parser used to accept it (and render_machine used to write it).
"""

from __future__ import annotations

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.machines import (
    Machine,
    MachinesFormatError,
    parse_machines,
    render_machine,
)


@pytest.mark.parametrize("uri", [
    "nix@hóst",                      # non-ASCII host: "Cannot parse Nix store 'ssh://nix@hóst'"
    "ü@builder",                     # non-ASCII user
    "builder\\",                     # a trailing backslash (no line continuation)
    "ssh://b^d",
    "nix@a\x0bb",                    # a vertical tab is data to Nix, and not a URL character
    "nix@h-2?remote-store=/tmp/x",   # '/' only in the query: no ssh:// added, and no path either
    # An upper-case letter in the scheme: 2.26 refuses it (2.8 and 2.34 read it). No ssh:// is
    # added when there is a '/' (here in the query), so "BUILDER:" is the scheme.
    "BUILDER:2222?remote-store=/tmp/x",
    "b1.Example.com:22?x=/y",
    "SSH://nix@host",
    "ssh-Ng://nix@host",
    # A port that is not a number: 2.34 refuses it, 2.26 hands "host:x" to ssh as a host name.
    "A1:x",
    "ssh-ng://nix@builder:ssh",
    "ssh://[::1]:x",
])
def test_store_uri_nix_cannot_parse_is_an_error(uri):
    with pytest.raises(MachinesFormatError, match="store Nix >= 2.26 can parse") as info:
        parse_machines("ok@b ; %s x86_64-linux" % uri)
    assert info.value.column == 1 and info.value.line == 1


@pytest.mark.parametrize("uri", ["nix@hóst", "nix@h-2?remote-store=/tmp/x"])
def test_store_uri_nix_cannot_parse_is_not_written(uri):
    with pytest.raises(ValueError, match="cannot be parsed by Nix >= 2.26"):
        render_machine(Machine(uri), "2.26.3")


@pytest.mark.parametrize("uri, expected", [
    ("ssh://[::1]:22", "ssh://[::1]:22"),
    ("ssh://[::1]", "ssh://[::1]"),
    ("nix@b1:2222", "ssh://nix@b1:2222"),
    ("ssh-ng://u@b1:22?remote-store=/x:y", "ssh-ng://u@b1:22?remote-store=/x:y"),
    ("builder:2222?remote-program=/x", "builder:2222?remote-program=/x"),  # Nix reads "builder:" as a scheme
    ("/tmp/store?x=1", "/tmp/store?x=1"),
    ("local?root=/tmp/r", "local?root=/tmp/r"),
    ("auto?x=1", "auto?x=1"),
    ("?x=1", "?x=1"),
    ("daemon", "daemon"),
])
def test_store_uris_nix_parses_are_kept(uri, expected):
    assert parse_machines(uri)[0].store_uri == expected


@pytest.mark.parametrize("speed", ["1e50", "4e38"])
def test_speed_factor_beyond_a_float_is_an_error(speed):
    # Nix >= 2.20: "failed to convert column #4 ... to 'float'".
    with pytest.raises(MachinesFormatError, match="out of range for a float") as info:
        parse_machines("nix@b - - 1 %s" % speed)
    assert info.value.column == 5


def test_speed_factor_at_the_float_limit_is_accepted():
    assert parse_machines("nix@b - - 1 3.40282347e+38")[0].speed_factor == pytest.approx(3.40282347e38)


def test_machine_refuses_a_speed_factor_beyond_a_float():
    with pytest.raises(ValueError, match="speed_factor"):
        Machine("nix@b", speed_factor=1e50)
