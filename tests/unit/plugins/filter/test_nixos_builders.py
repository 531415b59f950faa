# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The nixos_build_machines and nixos_known_hosts filters (roles/local_client/tasks/platform_nixos.yml)."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.filter.builder_records import builder_records
from ansible_collections.nix_remote.builders.plugins.filter.nixos_build_machines import (
    FilterModule as MachinesFilters,
    nixos_build_machines,
)
from ansible_collections.nix_remote.builders.plugins.filter.nixos_known_hosts import (
    FilterModule as KnownHostsFilters,
    nixos_known_hosts,
)

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
HOST_KEY_B64 = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSVBJUUNaYzU0cG9KOHZxYXdkOFRyYU5yeVFlSm52SDFlTHBJRGdiaXF5bU0="
KEY_PATH = "/root/.ssh/nix_remote_builders_ed25519"
EXPORT = {
    "state": "present", "address": "192.0.2.10", "port": 2222, "user": "remotebuild", "protocol": "ssh-ng",
    "host_key": HOST_KEY, "host_key_base64": HOST_KEY_B64, "systems": ["x86_64-linux"], "supported_features": [],
    "mandatory_features": [], "max_jobs": 2, "speed_factor": 4, "trust": "trusted", "remote_program": "",
}


def machine(uri="ssh-ng://remotebuild@192.0.2.10", **changes):
    value = {"uri": uri, "systems": ["x86_64-linux"], "ssh_key": KEY_PATH, "max_jobs": 2, "speed_factor": 4,
             "supported_features": ["kvm", "benchmark", "big-parallel"], "mandatory_features": ["benchmark"],
             "public_host_key": HOST_KEY_B64}
    value.update(changes)
    return value


def item(**changes):
    [result] = nixos_build_machines([{"name": "b1", "machine": machine(**changes)}])
    return result


def test_the_filters_are_registered_under_their_names():
    assert MachinesFilters().filters() == {"nixos_build_machines": nixos_build_machines}
    assert KnownHostsFilters().filters() == {"nixos_known_hosts": nixos_known_hosts}


def test_a_builder_becomes_a_build_machines_item():
    assert item() == {
        "protocol": "ssh-ng", "sshUser": "remotebuild", "hostName": "192.0.2.10", "systems": ["x86_64-linux"],
        "sshKey": KEY_PATH, "maxJobs": 2, "speedFactor": 4, "supportedFeatures": ["big-parallel", "kvm"],
        "mandatoryFeatures": ["benchmark"], "publicHostKey": HOST_KEY_B64,
    }


def test_no_host_key_means_no_public_host_key_attribute():
    assert "publicHostKey" not in item(public_host_key="")


@pytest.mark.parametrize("uri, protocol, user, host", [
    ("ssh://nix@builder:2222", "ssh", "nix", "builder:2222"),
    ("ssh-ng://builder", "ssh-ng", None, "builder"),
    ("ssh-ng://remotebuild@192.0.2.10?remote-program=/run/current-system/sw/bin/nix-daemon", "ssh-ng", "remotebuild",
     "192.0.2.10?remote-program=/run/current-system/sw/bin/nix-daemon"),
    ("ssh-ng://remotebuild@[2001:db8::1]:2222", "ssh-ng", "remotebuild", "[2001:db8::1]:2222"),
    ("ssh-ng://remotebuild@nix-builder-b1", "ssh-ng", "remotebuild", "nix-builder-b1"),
])
def test_the_uri_is_taken_apart(uri, protocol, user, host):
    result = item(uri=uri)
    assert (result["protocol"], result["sshUser"], result["hostName"]) == (protocol, user, host)


@pytest.mark.parametrize("uri", ["https://cache.example.net", "/var/lib/store", "nix@builder", "daemon"])
def test_a_uri_nix_build_machines_cannot_express_has_no_protocol(uri):
    result = item(uri=uri)
    assert result["protocol"] is None and result["sshUser"] is None and result["hostName"] == uri


@pytest.mark.parametrize("speed, expected", [(4, 4), ("4", 4), (2.0, 2), ("2.5", 2.5), (1.5, 1.5)])
def test_a_whole_speed_factor_is_an_integer(speed, expected):
    result = item(speed_factor=speed)["speedFactor"]
    assert result == expected and type(result) is type(expected)


def test_bad_numbers_are_named():
    with pytest.raises(AnsibleFilterError, match="speed_factor of ssh-ng://remotebuild@192.0.2.10 is 'fast'"):
        item(speed_factor="fast")
    with pytest.raises(AnsibleFilterError, match="max_jobs"):
        item(max_jobs="many")


def test_a_record_without_machine_is_named():
    with pytest.raises(AnsibleFilterError, match="nixos_build_machines"):
        nixos_build_machines([{"name": "b1"}])


def test_the_known_hosts_of_an_alias_builder_are_one_entry():
    [record] = builder_records(["b1"], {"b1": {"remote_builder_export": EXPORT}}, client="c",
                               nix_version="2.28.4", key_path=KEY_PATH)
    assert nixos_known_hosts([record]) == {
        "b1": {"hostNames": ["nix-builder-b1", "[192.0.2.10]:2222"], "publicKey": HOST_KEY}}


def test_lines_with_different_keys_get_numbered_entries_in_key_order():
    record = {"name": "external:x", "known_hosts": ["x ssh-rsa BBBB comment", "x ssh-ed25519 AAAA", "y ssh-rsa BBBB"]}
    assert nixos_known_hosts([record, {"name": "none", "known_hosts": []}]) == {
        "external:x-1": {"hostNames": ["x"], "publicKey": "ssh-ed25519 AAAA"},
        "external:x-2": {"hostNames": ["x", "y"], "publicKey": "ssh-rsa BBBB"},
    }


def test_a_known_hosts_line_without_a_key_is_named():
    with pytest.raises(AnsibleFilterError, match="known_hosts line 'x ssh-rsa' is not 'host keytype key'"):
        nixos_known_hosts([{"name": "external:x", "known_hosts": ["x ssh-rsa"]}])
