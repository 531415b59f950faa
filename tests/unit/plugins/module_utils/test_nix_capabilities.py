# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capability table: the ssh reuse policy per release, and the booleans the roles test."""

from __future__ import annotations

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import (
    CAPABILITIES_DOC,
    SINCE,
    capabilities,
    guess_implementation,
    nix_version_tuple,
    ssh_reuse_policy,
    supports,
)


@pytest.mark.parametrize(("version", "safe"), [
    ("2.3.16", True),       # no `started` wait at all before 2.15
    ("2.8.0", True),        # Debian bookworm
    ("2.14.1", True),
    ("2.15.0", False),      # PR #8018: waits for `started` on every connection
    ("2.15.3", False),
    ("2.16.0", False),      # PR #8349: `ssh -O check` without the connection's options
    ("2.16.2", False),
    ("2.17.0", True),       # PR #8506: the check gets the same options
    ("2.18.9", True),
    ("2.26.3", True),       # Debian trixie
    ("2.34.8", True),       # Debian sid
    ("2.26.0pre20241010_abc", True),
    ("3.0.0", True),
])
def test_reuse_policy_per_release(version, safe):
    policy = ssh_reuse_policy(version, "nix")
    assert policy["safe"] is safe
    assert version in policy["reason"]


def test_unsafe_reason_names_the_hang_and_the_upstream_issue():
    reason = ssh_reuse_policy("2.16.1")["reason"]
    assert "hang" in reason and "#8329" in reason


@pytest.mark.parametrize("version", [None, "", "unknown"])
def test_unknown_version_gets_no_reuse(version):
    assert ssh_reuse_policy(version) == {"safe": False, "reason": "the client's Nix version is unknown"}


def test_lix_counts_as_its_nix_2_18_base():
    assert ssh_reuse_policy("2.93.3", "lix")["safe"] is True
    caps = capabilities("2.93.3", "lix")
    assert caps["port_in_uri"] is False and caps["host_key_column"] is True and caps["config_show"] is False


def test_determinate_is_read_by_its_nix_version():
    assert capabilities("2.16.0", "determinate")["ssh_reuse"] is False
    assert capabilities("2.30.2", "determinate")["ssh_reuse"] is True


@pytest.mark.parametrize(("version", "expected"), [
    ("2.3.16", dict(host_key_column=False, port_in_uri=False, config_show=False, signing_remote_builds=False)),
    ("2.4", dict(host_key_column=True, port_in_uri=False, config_show=False, signing_remote_builds=False)),
    ("2.16.0", dict(host_key_column=True, port_in_uri=False, config_show=False, signing_remote_builds=True)),
    ("2.20.1", dict(host_key_column=True, port_in_uri=False, config_show=True, signing_remote_builds=True)),
    ("2.31.0", dict(host_key_column=True, port_in_uri=True, config_show=True, signing_remote_builds=True)),
    (None, dict(host_key_column=False, port_in_uri=False, config_show=False, signing_remote_builds=False)),
])
def test_version_thresholds(version, expected):
    caps = capabilities(version)
    assert {key: caps[key] for key in expected} == expected
    assert caps["ssh_reuse"] is ssh_reuse_policy(version)["safe"]


# Each version-decided capability: the last release without it and the first with it, as read in
# NixOS/nix's source at those tags (see the comments in nix_capabilities.py).
@pytest.mark.parametrize(("capability", "before", "since"), [
    ("host_key_column", "2.3.18", "2.4"),          # 2.4 passes column 8 as base64-ssh-public-host-key
    ("extra_settings", "2.3.18", "2.4"),           # ff4dea63c9 "Generalize extra-* settings"
    ("experimental_features", "2.3.18", "2.4"),    # experimental-features setting
    ("signing_remote_builds", "2.15.3", "2.16.0"),
    ("store_info", "2.18.9", "2.19.0"),            # b4b1a07f97: src/nix/store-info.cc
    ("config_show", "2.19.7", "2.20.0"),           # src/nix/config.cc
    ("float_speed_factor", "2.19.7", "2.20.0"),    # machines.hh: const float speedFactor
    ("machines_comments_first", "2.28.1", "2.28.2"),  # b74b0f4e1c backported
    ("machines_comments_first", "2.24.14", "2.24.15"),
    ("port_in_uri", "2.30.5", "2.31.0"),           # 49ba06175e "Add user@address:port support"
])
def test_each_capability_starts_at_its_release(capability, before, since):
    assert supports(capability, before) is False
    assert supports(capability, since) is True
    assert capabilities(before)[capability] is False
    assert capabilities(since)[capability] is True


@pytest.mark.parametrize(("version", "expected"), [
    ("2.24.15", True), ("2.25.5", False), ("2.26.4", False), ("2.27.1", False), ("2.28.0", False),
    ("2.28.7", True), ("2.29.0", True), ("2.35.2", True), ("3.8.5", True),
])
def test_machines_parser_backports(version, expected):
    # The newline-first split of b74b0f4e1c is in 2.24.15 and 2.28.2+, not in 2.25 to 2.28.1.
    assert supports("machines_comments_first", version) is expected


def test_the_table_covers_every_documented_capability():
    assert set(capabilities("2.26.3")) == set(CAPABILITIES_DOC) | {"ssh_reuse_reason"}
    assert set(SINCE) == set(CAPABILITIES_DOC) - {"ssh_reuse"}


@pytest.mark.parametrize("version", [None, "", "unknown", ()])
def test_unknown_versions_have_no_capability(version):
    assert not any(value for key, value in capabilities(version).items() if key != "ssh_reuse_reason")


def test_lix_has_its_2_18_base_but_not_the_parsers_it_does_its_own_way():
    caps = capabilities("2.93.3", "lix")
    assert caps["extra_settings"] and caps["experimental_features"] and caps["signing_remote_builds"]
    # Kept as the roles read Lix's number before the table (2.9x >= 2.19 and 2.20).
    assert caps["store_info"] and caps["float_speed_factor"]
    assert not caps["machines_comments_first"] and not caps["port_in_uri"] and not caps["config_show"]
    # A Nix numbered 2.9x by nix_info's reading but not named Lix is read by its number.
    assert capabilities("2.93.3", "nix")["port_in_uri"] is True


@pytest.mark.parametrize(("version", "implementation"), [
    ("2.26.3", "nix"), ("2.93.3", "lix"), ("2.90.0", "lix"), ("3.8.5", "nix"), (None, "nix"), ("2.4", "nix"),
])
def test_guess_implementation_from_a_bare_number(version, implementation):
    assert guess_implementation(version) == implementation


@pytest.mark.parametrize(("version", "expected"), [
    ("2.26.3", (2, 26, 3)), ("2.4pre20210601", (2, 4)), ("2.26.0pre2024", (2, 26, 0)),
    ("nix (Nix) 2.18.1", (2, 18, 1)), ((2, 20), (2, 20)), ([2, 4, 1], (2, 4, 1)), (None, ()), ("x", ()), ("", ()),
])
def test_one_version_parser(version, expected):
    assert nix_version_tuple(version) == expected


def test_the_other_parsers_are_the_same_function():
    from ansible_collections.nix_remote.builders.plugins.module_utils import machines, nix_detect

    assert nix_detect.nix_version_tuple is nix_version_tuple
    assert machines.nix_version_tuple is nix_version_tuple
    assert machines.parse_nix_version("2.31.0pre2025") == (2, 31, 0)
    assert machines.parse_nix_version(None) == (2, 4, 0)


@pytest.mark.parametrize("version, implementation, expected", [
    ("2.31.3", "nix", False),
    ("2.32.0", "nix", True),
    ("2.34.8", "nix", True),
    ("2.30.2", "determinate", True),   # Determinate 3.8.5 reports its Nix base
    ("2.29.1", "determinate", False),
    ("2.93.0", "lix", False),
    (None, "nix", False),
])
def test_external_builders(version, implementation, expected):
    assert capabilities(version, implementation)["external_builders"] is expected
