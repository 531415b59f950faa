# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the machines parser, renderer and editor.

The upstream cases are Nix's own unit tests (src/libstore-tests/machines.cc, facts 1.6), one
parametrized case each; the DERIVED cases come from reading machines.cc (facts 1.6 too).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.nix_remote.builders.plugins.module_utils import machines as machines_module
from ansible_collections.nix_remote.builders.plugins.module_utils.machines import (
    Machine,
    MachinesDocument,
    MachinesFormatError,
    legacy_parse_differences,
    normalize_store_uri,
    parse_machines,
    parse_nix_version,
    render_machine,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "machines"
VALID = str(FIXTURES / "valid")
BAD_FORMAT = str(FIXTURES / "bad_format")
DEFAULT_SYSTEMS = ("TEST_ARCH-TEST_OS",)
POOCHIE_KEY = (FIXTURES / "valid").read_text().splitlines()[2].split()[-1]

SCRATCHY = "ssh://nix@scratchy.labs.cs.uu.nl"
ITCHY = "ssh://nix@itchy.labs.cs.uu.nl"
SCABBY = "ssh://nix@scabby.labs.cs.uu.nl"
URI_ONLY = Machine(SCRATCHY, systems=DEFAULT_SYSTEMS)
COMPLETE = Machine(
    SCRATCHY, systems=("i686-linux",), ssh_key="/home/nix/.ssh/id_scratchy_auto", max_jobs=8, speed_factor=3,
    supported_features=("kvm",), mandatory_features=("benchmark",), public_host_key="SSH+HOST+PUBLIC+KEY+BASE64+ENCODED==",
)
VALID_MACHINES = [
    Machine(SCRATCHY, ("i686-linux",), "/home/nix/.ssh/id_scratchy_auto", 8, 1, ("kvm",)),
    Machine(ITCHY, ("i686-linux",), "/home/nix/.ssh/id_scratchy_auto", 8, 2),
    Machine("ssh://nix@poochie.labs.cs.uu.nl", ("i686-linux",), "/home/nix/.ssh/id_scratchy_auto", 1, 2,
            ("kvm",), ("benchmark",), POOCHIE_KEY),
]


def _uris(machines):
    return [machine.store_uri for machine in machines]


# --- upstream conformance suite (facts 1.6): (id, input, defaultSystems, expected machines) --------

UPSTREAM_OK = [
    ("01-getMachinesWithEmptyBuilders", "", (), []),
    ("02-getMachinesUriOnly", "nix@scratchy.labs.cs.uu.nl", DEFAULT_SYSTEMS, [URI_ONLY]),
    ("03-getMachinesUriWithPort", "nix@scratchy.labs.cs.uu.nl:2222", DEFAULT_SYSTEMS,
     [dataclasses.replace(URI_ONLY, store_uri=SCRATCHY + ":2222")]),
    ("04-getMachinesDefaults", "nix@scratchy.labs.cs.uu.nl - - - - - - -", DEFAULT_SYSTEMS, [URI_ONLY]),
    ("05-getMachinesWithNewLineSeparator", "nix@scratchy.labs.cs.uu.nl\nnix@itchy.labs.cs.uu.nl", (),
     [Machine(SCRATCHY), Machine(ITCHY)]),
    ("06-getMachinesWithSemicolonSeparator", "nix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl", (),
     [Machine(SCRATCHY), Machine(ITCHY)]),
    ("07-getMachinesWithCommentsAndSemicolonSeparator",
     "# This is a comment ; this is still that comment\nnix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl\n"
     "# This is also a comment ; this also is still that comment\nnix@scabby.labs.cs.uu.nl\n", (),
     [Machine(SCRATCHY), Machine(ITCHY), Machine(SCABBY)]),
    ("08-getMachinesWithFunnyWhitespace",
     "        # comment ; comment\n   nix@scratchy.labs.cs.uu.nl ; nix@itchy.labs.cs.uu.nl   \n\n    \n\n ;;; \n\n ; ; \n"
     "nix@scabby.labs.cs.uu.nl\n\n", (),
     [Machine(SCRATCHY), Machine(ITCHY), Machine(SCABBY)]),
    ("09-getMachinesWithCorrectCompleteSingleBuilder",
     "nix@scratchy.labs.cs.uu.nl     i686-linux      /home/nix/.ssh/id_scratchy_auto        8 3 kvm benchmark "
     "SSH+HOST+PUBLIC+KEY+BASE64+ENCODED==", (), [COMPLETE]),
    ("10-getMachinesWithCorrectCompleteSingleBuilderWithTabColumnDelimiter",
     "nix@scratchy.labs.cs.uu.nl\ti686-linux\t/home/nix/.ssh/id_scratchy_auto\t8\t3\tkvm\tbenchmark\t"
     "SSH+HOST+PUBLIC+KEY+BASE64+ENCODED==", (), [COMPLETE]),
    ("11-getMachinesWithMultiOptions",
     "nix@scratchy.labs.cs.uu.nl Arch1,Arch2 - - - SupportedFeature1,SupportedFeature2 MandatoryFeature1,MandatoryFeature2", (),
     [Machine(SCRATCHY, ("Arch1", "Arch2"), supported_features=("SupportedFeature1", "SupportedFeature2"),
              mandatory_features=("MandatoryFeature1", "MandatoryFeature2"))]),
    ("13-getMachinesWithCorrectFileReference", "@" + VALID, (), VALID_MACHINES),
    ("15-getMachinesWithIncorrectFileReference", "@/not/a/file", (), []),
]

# (id, input, line, column, offending token)
UPSTREAM_ERRORS = [
    ("12a-getMachinesWithIncorrectFormat-eight", "nix@scratchy.labs.cs.uu.nl - - eight", 1, 4, "eight"),
    ("12b-getMachinesWithIncorrectFormat-negative-max-jobs", "nix@scratchy.labs.cs.uu.nl - - -1", 1, 4, "-1"),
    ("12c-getMachinesWithIncorrectFormat-three", "nix@scratchy.labs.cs.uu.nl - - 8 three", 1, 5, "three"),
    ("12d-getMachinesWithIncorrectFormat-negative-speed", "nix@scratchy.labs.cs.uu.nl - - 8 -3", 1, 5, "-3"),
    ("12e-getMachinesWithIncorrectFormat-bad-base64", "nix@scratchy.labs.cs.uu.nl - - 8 3 - - BAD_BASE64", 1, 8, "BAD_BASE64"),
]


@pytest.mark.parametrize("text, default_systems, expected", [case[1:] for case in UPSTREAM_OK], ids=[case[0] for case in UPSTREAM_OK])
def test_upstream_parse(text, default_systems, expected):
    assert parse_machines(text, default_systems) == expected


@pytest.mark.parametrize("text, line, column, token", [case[1:] for case in UPSTREAM_ERRORS], ids=[case[0] for case in UPSTREAM_ERRORS])
def test_upstream_format_errors(text, line, column, token):
    with pytest.raises(MachinesFormatError) as info:
        parse_machines(text)
    error = info.value
    assert (error.source, error.line, error.column, error.token) == ("<builders>", line, column, token)
    assert str(error).startswith("<builders>: line %d, column %d (" % (line, column))
    assert repr(token) in str(error)


def test_upstream_14_file_reference_to_empty_file(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert parse_machines("@" + str(empty)) == []


def test_upstream_16_file_reference_to_incorrect_file():
    with pytest.raises(MachinesFormatError) as info:
        parse_machines("@" + BAD_FORMAT)
    error = info.value
    # The error names the referenced file and the line inside it, not the builders value.
    assert (error.source, error.line, error.column) == (BAD_FORMAT, 1, 4)
    assert str(error) == "%s: line 1, column 4 (max jobs): 'eight' is not an unsigned integer" % BAD_FORMAT


def test_error_message_format_names_file_line_column_and_token():
    text = "# builders\nnix@a\n\nnix@b x86_64-linux - eight\n"
    with pytest.raises(MachinesFormatError) as info:
        parse_machines(text, source="/etc/nix/machines")
    assert str(info.value) == "/etc/nix/machines: line 4, column 4 (max jobs): 'eight' is not an unsigned integer"
    assert isinstance(info.value, ValueError)


# --- DERIVED cases (facts 1.6), one case each -------------------------------------------------------

DERIVED_OK = [
    ("system-as-only-token-is-a-uri", "x86_64-linux", [Machine("ssh://x86_64-linux")]),
    ("ssh-ng-uri-with-query-unchanged",
     "ssh-ng://builder?remote-program=/nix/var/nix/profiles/default/bin/nix-daemon x86_64-linux - 4 1 - - -",
     [Machine("ssh-ng://builder?remote-program=/nix/var/nix/profiles/default/bin/nix-daemon", ("x86_64-linux",), max_jobs=4)]),
    ("local-store-path-unchanged", "/tmp/store", [Machine("/tmp/store")]),
    ("auto-unchanged", "auto", [Machine("auto")]),
    ("local-with-query-unchanged", "local?root=/x", [Machine("local?root=/x")]),
    ("speed-factor-zero-is-one", "nix@h - - 1 0", [Machine("ssh://nix@h", speed_factor=1.0)]),
    ("speed-factor-float", "nix@h - - 1 1.5", [Machine("ssh://nix@h", speed_factor=1.5)]),
    ("max-jobs-zero-parses", "nix@h - - 0", [Machine("ssh://nix@h", max_jobs=0)]),
    ("ninth-and-later-tokens-ignored", "nix@h x86_64-linux - 2 1 - - QUJD ninth tenth",
     [Machine("ssh://nix@h", ("x86_64-linux",), max_jobs=2, public_host_key="QUJD")]),
    ("duplicate-feature-deduplicated", "nix@h - - 1 1 kvm,kvm,big-parallel", [Machine("ssh://nix@h", supported_features=("big-parallel", "kvm"))]),
    ("file-reference-with-space-after-at", "@ " + VALID, VALID_MACHINES),
    ("file-reference-plus-entry", "@%s ; ssh://extra x86_64-linux" % VALID,
     VALID_MACHINES + [Machine("ssh://extra", ("x86_64-linux",))]),
    ("base64-without-padding", "nix@h - - 1 1 - - QUJD", [Machine("ssh://nix@h", public_host_key="QUJD")]),
    ("base64-with-padding-decoding-stops-at-equals", "nix@h - - 1 1 - - QUJD=", [Machine("ssh://nix@h", public_host_key="QUJD=")]),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in DERIVED_OK], ids=[case[0] for case in DERIVED_OK])
def test_derived_parse(text, expected):
    assert parse_machines(text) == expected


def test_derived_base64_url_safe_is_invalid():
    with pytest.raises(MachinesFormatError) as info:
        parse_machines("nix@h - - 1 1 - - QU-D")
    assert (info.value.column, info.value.token) == (8, "QU-D")
    assert "invalid character '-'" in str(info.value)


def test_derived_unreadable_file_eacces_raises(tmp_path, monkeypatch):
    target = tmp_path / "machines"
    target.write_text("nix@a\n")
    if os.geteuid() == 0:
        # root reads a file whatever its mode, so make the read fail exactly as open() does for a user.
        real_read = machines_module._read_text

        def deny(path):
            if path == str(target):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            return real_read(path)

        monkeypatch.setattr(machines_module, "_read_text", deny)
    else:
        target.chmod(0)
    with pytest.raises(MachinesFormatError) as info:
        parse_machines("nix@first\n@" + str(target), source="/etc/nix/nix.conf")
    assert (info.value.source, info.value.line, info.value.column) == ("/etc/nix/nix.conf", 2, 1)
    assert os.strerror(errno.EACCES) in str(info.value)
    assert str(target) in str(info.value)


def test_derived_unreadable_directory_reference_raises(tmp_path):
    # Really unreadable even for root: reading a directory fails with EISDIR, which is not ENOENT.
    with pytest.raises(MachinesFormatError) as info:
        parse_machines("@" + str(tmp_path))
    assert "cannot read machines file" in str(info.value)
    assert os.strerror(errno.EISDIR) in str(info.value)


def test_not_a_directory_is_an_error_not_a_missing_file(tmp_path):
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(MachinesFormatError, match=os.strerror(errno.ENOTDIR)):
        parse_machines("@%s/machines" % regular)


# --- more parsing rules -------------------------------------------------------------------------------

def test_nested_file_references_and_error_location(tmp_path):
    inner = tmp_path / "inner"
    outer = tmp_path / "outer"
    inner.write_text("nix@inner x86_64-linux\n")
    outer.write_text("# outer\n  @%s  \nnix@outer\n" % inner)
    assert _uris(parse_machines("@" + str(outer))) == ["ssh://nix@inner", "ssh://nix@outer"]
    inner.write_text("\n\nnix@inner - - 1 fast\n")
    with pytest.raises(MachinesFormatError) as info:
        parse_machines("@" + str(outer))
    assert (info.value.source, info.value.line, info.value.column) == (str(inner), 3, 5)


def test_self_referencing_file_is_an_error(tmp_path):
    loop = tmp_path / "loop"
    loop.write_text("nix@a\n@%s\n" % loop)
    with pytest.raises(MachinesFormatError, match="includes itself"):
        parse_machines("@" + str(loop))


def test_default_systems_fill_unset_column_only():
    machines = parse_machines("nix@a\nnix@b - \nnix@c aarch64-linux", ["x86_64-linux", "i686-linux"])
    assert [machine.systems for machine in machines] == [("i686-linux", "x86_64-linux")] * 2 + [("aarch64-linux",)]


def test_crlf_and_trailing_comment_are_ignored():
    machines = parse_machines("nix@a x86_64-linux # main builder ; not an entry\r\n\r\nnix@b\r\n")
    assert machines == [Machine("ssh://nix@a", ("x86_64-linux",)), Machine("ssh://nix@b")]


def test_only_space_tab_cr_lf_separate_columns():
    # Nix tokenizes on " \t\n\r" only: a vertical tab or no-break space is part of the token.
    # (In the URI column they would also make Nix >= 2.26 refuse the store: see below.)
    machine = parse_machines("nix@a x86_64\x0blinux,y\xa0x kvm\x0cb")[0]
    assert machine.systems == ("x86_64\x0blinux", "y\xa0x")
    assert machine.ssh_key == "kvm\x0cb"


def test_dash_store_uri_is_missing():
    with pytest.raises(MachinesFormatError, match="store URI was not found") as info:
        parse_machines("- x86_64-linux")
    assert info.value.column == 1


def test_max_jobs_beyond_unsigned_int_is_an_error():
    with pytest.raises(MachinesFormatError, match="not an unsigned integer"):
        parse_machines("nix@h - - 4294967296")
    assert parse_machines("nix@h - - 4294967295")[0].max_jobs == 4294967295


@pytest.mark.parametrize("uri, expected", [
    ("nix@host", "ssh://nix@host"),
    ("ssh://nix@host", "ssh://nix@host"),
    ("SSH://nix@host", "ssh://nix@host"),
    ("Ssh-Ng://Nix@Host", "ssh-ng://Nix@Host"),
    ("host:2222", "ssh://host:2222"),
    ("daemon", "daemon"),
    ("daemon?root=/x", "daemon?root=/x"),
    ("auto?x=1", "auto?x=1"),
    ("?root=/x", "?root=/x"),
    ("localhost", "ssh://localhost"),
    ("  nix@host\t", "ssh://nix@host"),
])
def test_normalize_store_uri(uri, expected):
    assert normalize_store_uri(uri) == expected


# --- Machine construction ------------------------------------------------------------------------------

def test_machine_normalizes_like_the_parser():
    machine = Machine("nix@h", systems="x86_64-linux,aarch64-linux,x86_64-linux", ssh_key="", max_jobs=2,
                      speed_factor=0, supported_features=["kvm", "kvm"], mandatory_features=None, public_host_key=None)
    assert machine == Machine("ssh://nix@h", ("aarch64-linux", "x86_64-linux"), None, 2, 1.0, ("kvm",), (), "")
    assert machine == parse_machines("nix@h aarch64-linux,x86_64-linux - 2 - kvm")[0]
    assert machine.as_dict()["systems"] == ["aarch64-linux", "x86_64-linux"]


@pytest.mark.parametrize("kwargs, message", [
    ({"store_uri": ""}, "store_uri"),
    ({"store_uri": "h", "max_jobs": -1}, "max_jobs"),
    ({"store_uri": "h", "max_jobs": True}, "max_jobs"),
    ({"store_uri": "h", "speed_factor": -0.5}, "speed_factor"),
    ({"store_uri": "h", "speed_factor": float("nan")}, "speed_factor"),
    ({"store_uri": "h", "public_host_key": "QU_D"}, "public_host_key"),
    ({"store_uri": "h", "systems": [1]}, "systems"),
])
def test_machine_rejects_what_nix_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Machine(**kwargs)


# --- rendering -------------------------------------------------------------------------------------------

FULL = Machine("nix@b", ("aarch64-linux", "x86_64-linux"), "/root/.ssh/id_ed25519", 8, 2.0, ("big-parallel", "kvm"), ("benchmark",), "QUJD")

RENDER_CASES = [
    ("all-columns", FULL, "2.31.0", "ssh://nix@b aarch64-linux,x86_64-linux /root/.ssh/id_ed25519 8 2 big-parallel,kvm benchmark QUJD"),
    ("unset-columns-are-dashes", Machine("nix@b"), "2.4", "ssh://nix@b - - 1 1 - - -"),
    ("float-speed-from-2.20", dataclasses.replace(FULL, speed_factor=1.5), "2.20.0",
     "ssh://nix@b aarch64-linux,x86_64-linux /root/.ssh/id_ed25519 8 1.5 big-parallel,kvm benchmark QUJD"),
    ("whole-speed-as-integer-before-2.20", FULL, "2.19.7",
     "ssh://nix@b aarch64-linux,x86_64-linux /root/.ssh/id_ed25519 8 2 big-parallel,kvm benchmark QUJD"),
    ("no-column-8-before-2.4", FULL, "2.3.18", "ssh://nix@b aarch64-linux,x86_64-linux /root/.ssh/id_ed25519 8 2 big-parallel,kvm benchmark"),
    ("prerelease-version", Machine("nix@b", speed_factor=0.25), "2.31.0pre2025", "ssh://nix@b - - 1 0.25 - - -"),
    ("local-store", Machine("/tmp/store", max_jobs=0), "2.26.3", "/tmp/store - - 0 1 - - -"),
    ("port-in-uri", Machine("nix@b:2222"), "2.31.2", "ssh://nix@b:2222 - - 1 1 - - -"),
]


@pytest.mark.parametrize("machine, version, expected", [case[1:] for case in RENDER_CASES], ids=[case[0] for case in RENDER_CASES])
def test_render_machine(machine, version, expected):
    line = render_machine(machine, version)
    assert line == expected
    assert parse_machines(line) == [dataclasses.replace(machine, public_host_key=machine.public_host_key if len(line.split()) == 8 else "")]


def test_render_default_version_is_2_4():
    assert render_machine(FULL) == render_machine(FULL, "2.4.0")
    assert render_machine(FULL, None) == render_machine(FULL, "2.4")


@pytest.mark.parametrize("version", ["2.8.0", "2.19", "2.5.1", "nix (Nix) 2.18.1"])
def test_render_compares_versions_numerically(version):
    # "2.8" sorts after "2.20" as a string; numerically it is older, so 1.5 cannot be written.
    with pytest.raises(ValueError, match="before 2.20 it must be a whole number"):
        render_machine(dataclasses.replace(FULL, speed_factor=1.5), version)
    assert render_machine(FULL, version).endswith(" QUJD")


@pytest.mark.parametrize("version, expected", [
    ("2.26.3", (2, 26, 3)), ("2.31.0pre2025", (2, 31, 0)), ("2.8.0", (2, 8, 0)), ("2.4", (2, 4, 0)),
    ("nix (Nix) 2.18.1", (2, 18, 1)), ("nix (Determinate Nix 3.8.2) 2.30.1", (3, 8, 2)), ((2, 20), (2, 20, 0)),
])
def test_parse_nix_version(version, expected):
    assert parse_nix_version(version) == expected


def test_parse_nix_version_rejects_garbage():
    with pytest.raises(ValueError, match="nix_version"):
        parse_nix_version("latest")


@pytest.mark.parametrize("machine, message", [
    (Machine("nix@b", ssh_key="id_ed25519"), "absolute path"),
    (Machine("nix@b", ssh_key="/root/my key"), "ssh_key"),
    (Machine("nix@b", systems=("x86_64 linux",)), "systems"),
    (Machine("nix@b", supported_features=("a#b",)), "supported_features"),
    (Machine("nix@b", mandatory_features=("-",)), "mandatory_features"),
    (Machine("nix@b;x"), "store_uri"),
    (Machine("@/etc/nix/machines"), "file reference"),
])
def test_render_refuses_values_nix_would_read_differently(machine, message):
    with pytest.raises(ValueError, match=message):
        render_machine(machine, "2.31")


# --- editor --------------------------------------------------------------------------------------------

FILE = (
    "# Builders managed by hand and by Ansible\n"
    "\n"
    "nix@a x86_64-linux - 4 1 kvm   # the fast one\n"
    "   @/etc/nix/machines.d/extra\n"
    "nix@b ; nix@c\taarch64-linux\n"
    "\t\n"
)


@pytest.mark.parametrize("text", [
    FILE, FILE.rstrip("\n"), FILE.replace("\n", "\r\n"), "", "\n", "# only a comment", "nix@a",
], ids=["file", "no-final-newline", "crlf", "empty", "newline-only", "comment-only", "single-entry"])
def test_document_untouched_renders_byte_identical(text):
    assert MachinesDocument.parse(text).render() == text


def test_document_lists_direct_entries_and_references_without_reading_them():
    document = MachinesDocument.parse(FILE, source="/etc/nix/machines")
    assert _uris(document.machines()) == ["ssh://nix@a", "ssh://nix@b", "ssh://nix@c"]
    assert document.file_references() == ["/etc/nix/machines.d/extra"]


def test_document_parse_error_names_source_line_and_column():
    with pytest.raises(MachinesFormatError) as info:
        MachinesDocument.parse("nix@a\n# x\nnix@b - - 1 1 - - QU_D\n", source="/etc/nix/machines")
    assert str(info.value) == ("/etc/nix/machines: line 3, column 8 (public host key): 'QU_D' is not valid base64 "
                               "(invalid character '_' in base64 string)")


def test_upsert_identical_entry_is_unchanged_even_when_not_portable():
    document = MachinesDocument.parse(FILE)
    # "nix@a x86_64-linux - 4 1 kvm" already means this machine: keep the user's spelling.
    assert document.upsert(Machine("nix@a", ("x86_64-linux",), max_jobs=4, supported_features=("kvm",)), "2.31") is False
    assert document.render() == FILE


def test_upsert_replaces_in_place_and_keeps_everything_else():
    document = MachinesDocument.parse(FILE)
    assert document.upsert(Machine("ssh://nix@a", ("x86_64-linux",), max_jobs=8), "2.31") is True
    assert document.render() == FILE.replace("nix@a x86_64-linux - 4 1 kvm   #", "ssh://nix@a x86_64-linux - 8 1 - - -   #")
    document = MachinesDocument.parse(FILE)
    assert document.upsert(Machine("nix@c", ("aarch64-linux",), max_jobs=2), "2.31") is True
    assert document.render() == FILE.replace("nix@c\taarch64-linux", "ssh://nix@c aarch64-linux - 2 1 - - -")


@pytest.mark.parametrize("text, expected", [
    (FILE, FILE + "ssh://nix@new - - 1 1 - - -\n"),
    (FILE.rstrip("\n"), FILE.rstrip("\n") + "\nssh://nix@new - - 1 1 - - -"),
    (FILE.replace("\n", "\r\n"), FILE.replace("\n", "\r\n") + "ssh://nix@new - - 1 1 - - -\r\n"),
    ("", "ssh://nix@new - - 1 1 - - -\n"),
    ("\n", "\nssh://nix@new - - 1 1 - - -\n"),
], ids=["file", "no-final-newline", "crlf", "empty", "newline-only"])
def test_upsert_appends_a_portable_line(text, expected):
    document = MachinesDocument.parse(text)
    assert document.upsert(Machine("nix@new")) is True
    assert document.render() == expected
    assert document.remove("nix@new") is True
    assert document.render() == text


def test_upsert_collapses_duplicates_to_the_first_entry():
    text = "nix@a - - 1\n# keep\nssh://nix@a - - 2 ; nix@b\nssh://nix@a - - 4\n"
    document = MachinesDocument.parse(text)
    assert document.upsert(Machine("nix@a", max_jobs=3)) is True
    assert document.render() == "ssh://nix@a - - 3 1 - - -\n# keep\nnix@b\n"
    assert _uris(document.machines()) == ["ssh://nix@a", "ssh://nix@b"]


def test_upsert_identical_first_entry_still_removes_duplicates():
    document = MachinesDocument.parse("nix@a\nnix@a\n")
    assert document.upsert(Machine("nix@a")) is True
    assert document.render() == "nix@a\n"


def test_upsert_for_nix_2_3_drops_host_key_and_compares_what_nix_reads():
    document = MachinesDocument.parse("ssh://nix@a - - 1 1 - - -\n")
    assert document.upsert(Machine("nix@a", public_host_key="QUJD"), "2.3") is False
    assert document.upsert(Machine("nix@a", public_host_key="QUJD"), "2.4") is True
    assert document.render() == "ssh://nix@a - - 1 1 - - QUJD\n"


def test_upsert_unrenderable_machine_leaves_document_unchanged():
    document = MachinesDocument.parse(FILE)
    with pytest.raises(ValueError, match="whole number"):
        document.upsert(Machine("nix@a", speed_factor=1.5), "2.19")
    assert document.render() == FILE


@pytest.mark.parametrize("uri, expected", [
    ("nix@a", FILE.replace("nix@a x86_64-linux - 4 1 kvm   # the fast one\n", "")),
    ("ssh://nix@b", FILE.replace("nix@b ; nix@c", "nix@c")),
    ("nix@c", FILE.replace("nix@b ; nix@c\taarch64-linux", "nix@b")),
])
def test_remove(uri, expected):
    document = MachinesDocument.parse(FILE)
    assert document.remove(uri) is True
    assert document.render() == expected
    assert document.remove(uri) is False
    assert document.render() == expected


def test_remove_middle_entry_of_a_line():
    document = MachinesDocument.parse("nix@a ; nix@b ; nix@c # three\n")
    assert document.remove("nix@b") is True
    assert document.render() == "nix@a ; nix@c # three\n"


def test_remove_only_line_without_newline_gives_empty_text():
    document = MachinesDocument.parse("nix@a")
    assert document.remove("nix@a") is True
    assert document.render() == ""
    assert document.upsert(Machine("nix@b")) is True
    assert document.render() == "ssh://nix@b - - 1 1 - - -\n"


def test_inline_builders_value_keeps_file_references():
    value = "@/etc/nix/machines ; nix@a x86_64-linux"
    document = MachinesDocument.parse(value, source="/etc/nix/nix.conf", inline=True)
    assert document.file_references() == ["/etc/nix/machines"]
    assert document.upsert(Machine("nix@b", ("aarch64-linux",)), "2.31") is True
    assert document.render() == value + " ; ssh://nix@b aarch64-linux - 1 1 - - -"
    assert document.upsert(Machine("nix@a", ("x86_64-linux",), max_jobs=2), "2.31") is True
    assert document.render() == "@/etc/nix/machines ; ssh://nix@a x86_64-linux - 2 1 - - - ; ssh://nix@b aarch64-linux - 1 1 - - -"
    assert document.remove("nix@a") is True
    assert document.render() == "@/etc/nix/machines ; ssh://nix@b aarch64-linux - 1 1 - - -"
    assert document.file_references() == ["/etc/nix/machines"]


@pytest.mark.parametrize("value", ["", "@/etc/nix/machines", "nix@a;nix@b", "  nix@a ;", "nix@a;"])
def test_inline_append_then_remove_restores_value(value):
    document = MachinesDocument.parse(value, inline=True)
    assert document.upsert(Machine("nix@new")) is True
    assert "\n" not in document.render()
    assert _uris(parse_machines(document.render().replace("@/etc/nix/machines", "")))[-1] == "ssh://nix@new"
    assert document.remove("nix@new") is True
    assert document.render() == value


def test_inline_remove_last_entry_leaves_empty_value():
    document = MachinesDocument.parse("nix@a", inline=True)
    assert document.remove("nix@a") is True
    assert document.render() == ""


# --- legacy (Nix < 2.29, Lix) differences ---------------------------------------------------------------

def test_legacy_differences_comment_with_semicolon():
    text = UPSTREAM_OK[6][1]
    assert legacy_parse_differences(text, source="/etc/nix/machines") == [
        "/etc/nix/machines: line 1: Nix < 2.29 and Lix read 'this is still that comment' after ';' in a comment as a builder",
        "/etc/nix/machines: line 3: Nix < 2.29 and Lix read 'this also is still that comment' after ';' in a comment as a builder",
    ]


def test_legacy_differences_whitespace_and_indented_reference():
    warnings = legacy_parse_differences("  # indented comment\n  @/etc/nix/machines\n \n;;\r\n\nnix@a\n")
    assert [warning.split(":")[1] for warning in warnings] == [" line 1", " line 2", " line 3", " line 4"]
    assert "blank entry" in warnings[0] and "indented file reference '@/etc/nix/machines'" in warnings[1]


def test_legacy_differences_none_for_portable_output():
    text = "\n".join(render_machine(machine) for machine in VALID_MACHINES) + "\n\n# plain comment\n@/etc/nix/machines\n"
    assert legacy_parse_differences(text) == []


# --- property tests ---------------------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True)
SPACE = st.sampled_from([" ", "  ", "\t", " \t "])
OPTIONAL_SPACE = st.sampled_from(["", " ", "\t"])
COMMENT_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12)


@st.composite
def machines(draw, host=NAMES):
    name = draw(host)
    uri = draw(st.sampled_from(["nix@%s", "ssh://%s", "ssh-ng://root@%s:2222", "%s.example.org", "ssh-ng://%s?remote-program=/bin/nix-daemon"])) % name
    return Machine(
        uri,
        systems=draw(st.lists(st.sampled_from(["x86_64-linux", "aarch64-linux", "i686-linux", "aarch64-darwin"]), max_size=3)),
        ssh_key=draw(st.sampled_from([None, "/root/.ssh/id_ed25519", "/etc/nix/id_%s" % name])),
        max_jobs=draw(st.integers(0, 64)),
        speed_factor=draw(st.sampled_from([1.0, 2.0, 0.5, 1.25, 10.0])),
        supported_features=draw(st.lists(st.sampled_from(["kvm", "big-parallel", "nixos-test", "benchmark"]), max_size=3)),
        mandatory_features=draw(st.lists(st.sampled_from(["benchmark", "gpu"]), max_size=1)),
        public_host_key=draw(st.sampled_from(["", "QUJD", "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUxyZEFG"])),
    )


@st.composite
def entry_texts(draw, machine):
    """Any spelling of ``machine`` that Nix reads back as ``machine``."""
    canonical = render_machine(machine, "2.31")
    if draw(st.booleans()):
        return canonical
    return draw(SPACE).join(canonical.split(" "))


@st.composite
def documents(draw, canonical=False):
    """(text, machines in it). Entries have unique URIs; the lines mix comments, blanks and references."""
    listed = draw(st.lists(machines(), max_size=6, unique_by=lambda machine: normalize_store_uri(machine.store_uri)))
    pending = list(listed)
    lines = []
    while pending or (not lines and draw(st.booleans())):
        kind = draw(st.sampled_from(["entry", "entry", "entries", "comment", "blank", "reference"]))
        if kind in ("entry", "entries") and pending:
            count = 1 if kind == "entry" else draw(st.integers(1, len(pending)))
            chunk, pending = pending[:count], pending[count:]
            texts = [render_machine(machine, "2.31") if canonical else draw(entry_texts(machine)) for machine in chunk]
            line = draw(OPTIONAL_SPACE) + draw(st.sampled_from([";", " ;", " ; ", ";  "])).join(texts) + draw(OPTIONAL_SPACE)
            if draw(st.booleans()):
                line += "#" + draw(COMMENT_TEXT)
            lines.append(line)
        elif kind == "comment":
            lines.append(draw(OPTIONAL_SPACE) + "#" + draw(COMMENT_TEXT))
        elif kind == "blank":
            lines.append(draw(st.sampled_from(["", " ", "\t", " ; ", ";;"])))
        elif kind == "reference":
            lines.append(draw(OPTIONAL_SPACE) + "@" + draw(OPTIONAL_SPACE) + "/nonexistent/machines-" + draw(NAMES))
        elif not pending:
            lines.append("")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return text, listed


@st.composite
def inline_values(draw, canonical=False):
    """(value, machines): a nix.conf `builders` value, one line of `;`-separated entries."""
    listed = draw(st.lists(machines(), max_size=5, unique_by=lambda machine: normalize_store_uri(machine.store_uri)))
    parts = [render_machine(machine, "2.31") if canonical else draw(entry_texts(machine)) for machine in listed]
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), "@/etc/nix/machines")
    return draw(st.sampled_from([";", " ; ", "; "])).join(parts), listed


# database=None: no .hypothesis directory is written into the checkout.
PROPERTY = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(documents())
def test_property_untouched_document_is_byte_identical(document):
    text, listed = document
    parsed = MachinesDocument.parse(text)
    assert parsed.render() == text
    assert parsed.machines() == listed
    assert parse_machines(text) == listed  # the @ references point at missing files, which Nix skips


@PROPERTY
@given(inline_values())
def test_property_untouched_inline_value_is_byte_identical(value):
    text, listed = value
    parsed = MachinesDocument.parse(text, inline=True)
    assert parsed.render() == text
    assert parsed.machines() == listed


@PROPERTY
@given(st.data(), st.booleans())
def test_property_add_then_remove_restores_bytes(data, inline):
    text, _listed = data.draw(inline_values() if inline else documents())
    new = data.draw(machines(host=NAMES.map(lambda name: "new-" + name)))
    document = MachinesDocument.parse(text, inline=inline)
    assert document.upsert(new, "2.31") is True
    assert document.machines()[-1] == new
    assert MachinesDocument.parse(document.render(), inline=inline).machines() == document.machines()
    assert document.remove(new.store_uri) is True
    assert document.render() == text


@PROPERTY
@given(st.data(), st.booleans())
def test_property_replace_then_reupsert_original_restores_bytes(data, inline):
    text, listed = data.draw(inline_values(canonical=True) if inline else documents(canonical=True))
    if not listed:
        listed = [data.draw(machines())]
        document = MachinesDocument.parse(text, inline=inline)
        assert document.upsert(listed[0], "2.31") is True
        text = document.render()
    original = data.draw(st.sampled_from(listed))
    changed = dataclasses.replace(original, max_jobs=original.max_jobs + 1)
    document = MachinesDocument.parse(text, inline=inline)
    assert document.upsert(original, "2.31") is False
    assert document.upsert(changed, "2.31") is True
    assert changed in document.machines() and original not in document.machines()
    assert document.upsert(original, "2.31") is True
    assert document.render() == text


@PROPERTY
@given(machines(), st.sampled_from(["2.20.0", "2.26.3", "2.31.0pre2025"]))
def test_property_render_then_parse_gives_the_machine(machine, version):
    assert parse_machines(render_machine(machine, version)) == [machine]
