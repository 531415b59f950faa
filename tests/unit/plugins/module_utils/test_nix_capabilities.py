# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The capability table: the ssh reuse policy per release, and the booleans the roles test."""

from __future__ import annotations

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import (
    capabilities,
    ssh_reuse_policy,
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
