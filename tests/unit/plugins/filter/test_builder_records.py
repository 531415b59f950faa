# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The builder_records, unconfigured_builders and stale_entries filters.

The port/alias/column-8 matrix of roles/local_client/tasks/builders.yml (facts 1.4 and P7):
port 22, a port through an ssh alias (Nix < 2.31 or port_style alias), a port in the URI
(Nix >= 2.31 or port_style uri), IPv6 addresses, no column 8 before Nix 2.4; then
remote_program, overrides, withdrawn and unconfigured builders, and external builders.
"""

from __future__ import annotations

import base64

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.filter.builder_records import (
    FilterModule as RecordsFilters,
    builder_records,
)
from ansible_collections.nix_remote.builders.plugins.filter.kept_exports import kept_exports
from ansible_collections.nix_remote.builders.plugins.filter.stale_entries import (
    FilterModule as StaleFilters,
    stale_entries,
)
from ansible_collections.nix_remote.builders.plugins.filter.unconfigured_builders import (
    FilterModule as UnconfiguredFilters,
    unconfigured_builders,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import capabilities

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
HOST_KEY_B64 = base64.b64encode(HOST_KEY.encode()).decode()
KEY_PATH = "/root/.ssh/nix_remote_builders_ed25519"


def export(**changes):
    """remote_builder_export as roles/remote_builder/tasks/export.yml sets it."""
    value = {
        "version": 1, "state": "present", "address": "192.0.2.10", "port": 22, "user": "remotebuild",
        "protocol": "ssh-ng", "host_key": HOST_KEY, "host_key_base64": HOST_KEY_B64, "systems": ["x86_64-linux"],
        "supported_features": ["big-parallel", "kvm"], "mandatory_features": [], "max_jobs": 2, "speed_factor": 4,
        "trust": "trusted", "remote_program": "",
    }
    value.update(changes)
    return value


def records(hostvars, nix="2.26.3", **options):
    options.setdefault("client", "client")
    options.setdefault("key_path", KEY_PATH)
    return builder_records(sorted(hostvars), hostvars, nix_version=nix, **options)


def one(nix="2.26.3", host_vars=None, **options):
    [record] = records({"b1": host_vars if host_vars is not None else {"remote_builder_export": export()}}, nix, **options)
    return record


def test_the_filters_are_registered_under_their_names():
    assert RecordsFilters().filters() == {"builder_records": builder_records}
    assert UnconfiguredFilters().filters() == {"unconfigured_builders": unconfigured_builders}
    assert StaleFilters().filters() == {"stale_entries": stale_entries}


# --- the port/alias/column-8 matrix -------------------------------------------------------

def test_port_22_is_the_plain_host_with_column_8():
    assert one() == {
        "name": "b1", "source": "inventory", "trust": "trusted",
        "uri": "ssh-ng://remotebuild@192.0.2.10",
        "alias": {},
        "match_hosts": ["192.0.2.10"],
        "known_hosts": ["192.0.2.10 " + HOST_KEY],
        "machine": {"uri": "ssh-ng://remotebuild@192.0.2.10", "systems": ["x86_64-linux"], "ssh_key": KEY_PATH,
                    "max_jobs": 2, "speed_factor": 4, "supported_features": ["big-parallel", "kvm"],
                    "mandatory_features": [], "public_host_key": HOST_KEY_B64,
                    "comment": 'nix_remote.builders {"alias":{},"known_hosts":["192.0.2.10 ' + HOST_KEY + '"],'
                               '"match_hosts":["192.0.2.10"],"name":"b1","source":"inventory","trust":"trusted",'
                               '"uri":"ssh-ng://remotebuild@192.0.2.10"}'},
    }


def test_marker_none_leaves_the_comment_out():
    assert "comment" not in one(marker=None)["machine"]


@pytest.mark.parametrize("nix, style", [("2.26.3", "auto"), ("2.30.2", "auto"), ("2.34.1", "alias"), ("2.3.16", "auto")])
def test_another_port_before_2_31_goes_through_an_ssh_alias_pinned_by_column_8(nix, style):
    record = one(nix, {"remote_builder_export": export(port=2222)}, port_style=style)
    assert record["uri"] == record["machine"]["uri"] == "ssh-ng://remotebuild@nix-builder-b1"
    assert record["alias"] == {"name": "nix-builder-b1", "hostname": "192.0.2.10", "port": 2222, "user": "remotebuild"}
    assert record["known_hosts"] == ["nix-builder-b1 " + HOST_KEY, "[192.0.2.10]:2222 " + HOST_KEY]
    assert record["match_hosts"] == ["nix-builder-b1", "192.0.2.10"]
    # Nix < 2.4 reads no column 8.
    assert record["machine"]["public_host_key"] == ("" if nix == "2.3.16" else HOST_KEY_B64)


@pytest.mark.parametrize("nix, style", [("2.31.0", "auto"), ("2.31.0pre20250806", "auto"), ("2.34.1", "auto"),
                                        ("2.26.3", "uri")])
def test_another_port_from_2_31_goes_in_the_uri_without_column_8(nix, style):
    record = one(nix, {"remote_builder_export": export(port="2222")}, port_style=style)
    assert record["uri"] == "ssh-ng://remotebuild@192.0.2.10:2222"
    assert record["alias"] == {}
    assert record["known_hosts"] == ["[192.0.2.10]:2222 " + HOST_KEY]
    assert record["match_hosts"] == ["192.0.2.10"]
    # Nix would pin a plain "192.0.2.10" line, which ssh never looks up for port 2222.
    assert record["machine"]["public_host_key"] == ""


@pytest.mark.parametrize("nix", ["2.26.3", "2.34.1"])
def test_port_22_keeps_column_8_on_every_version_from_2_4(nix):
    assert one(nix)["machine"]["public_host_key"] == HOST_KEY_B64


def test_nix_infos_capabilities_decide_over_the_version():
    # A Lix client (numbered 2.9x) has no user@host:port: its nix_info capabilities say so, and a
    # port goes through an alias. Reading the bare number as Nix >= 2.31 put it in the URI (bug).
    lix = capabilities("2.93.3", "lix")
    [record] = builder_records(["b1"], {"b1": {"remote_builder_export": export(port=2222)}}, client="c",
                               key_path=KEY_PATH, capabilities=lix)
    assert record["uri"] == "ssh-ng://remotebuild@nix-builder-b1"
    assert record["machine"]["public_host_key"] == HOST_KEY_B64
    [record] = builder_records(["b1"], {"b1": {"remote_builder_export": export(port=2222)}}, client="c",
                               key_path=KEY_PATH, nix_version="2.3.16", capabilities=capabilities("2.31.0"))
    assert record["uri"] == "ssh-ng://remotebuild@192.0.2.10:2222"


def test_key_path_is_required():
    with pytest.raises(AnsibleFilterError, match="key_path is required"):
        builder_records([], {}, client="c", nix_version="2.26.3")


@pytest.mark.parametrize("nix", ["2.3.16", "2.3"])
def test_no_column_8_before_nix_2_4(nix):
    record = one(nix)
    assert record["machine"]["public_host_key"] == ""
    assert record["known_hosts"] == ["192.0.2.10 " + HOST_KEY]


def test_ipv6_on_port_22_is_bracketed_in_the_uri():
    record = one(host_vars={"remote_builder_export": export(address="2001:db8::10")})
    assert record["uri"] == "ssh-ng://remotebuild@[2001:db8::10]"
    assert record["match_hosts"] == ["2001:db8::10"]
    # The known_hosts name keeps the brackets, as the role wrote it before the filter existed;
    # column 8 pins the key for Nix itself.
    assert record["known_hosts"] == ["[2001:db8::10] " + HOST_KEY]
    assert record["machine"]["public_host_key"] == HOST_KEY_B64


def test_ipv6_with_a_port_in_the_uri():
    record = one("2.31.3", {"remote_builder_export": export(address="2001:db8::10", port=2222)})
    assert record["uri"] == "ssh-ng://remotebuild@[2001:db8::10]:2222"
    assert record["known_hosts"] == ["[2001:db8::10]:2222 " + HOST_KEY]
    assert record["machine"]["public_host_key"] == ""


def test_ipv6_with_a_port_through_an_alias():
    record = one("2.26.3", {"remote_builder_export": export(address="2001:db8::10", port=2222)})
    assert record["uri"] == "ssh-ng://remotebuild@nix-builder-b1"
    assert record["alias"]["hostname"] == "2001:db8::10"
    assert record["known_hosts"] == ["nix-builder-b1 " + HOST_KEY, "[2001:db8::10]:2222 " + HOST_KEY]
    assert record["match_hosts"] == ["nix-builder-b1", "2001:db8::10"]


def test_the_alias_name_replaces_characters_ssh_config_cannot_take():
    [record] = records({"rack 1/b_2": {"remote_builder_export": export(port=2222)}})
    assert record["alias"]["name"] == "nix-builder-rack-1-b-2"
    assert record["name"] == "rack 1/b_2"


def test_remote_program_is_a_uri_parameter():
    program = "/nix/var/nix/profiles/default/bin/nix-daemon"
    record = one(host_vars={"remote_builder_export": export(remote_program=program)})
    assert record["uri"] == record["machine"]["uri"] == "ssh-ng://remotebuild@192.0.2.10?remote-program=" + program


def test_remote_program_follows_the_port():
    record = one("2.34.1", {"remote_builder_export": export(port=2222, protocol="ssh", remote_program="/opt/nix-store")})
    assert record["uri"] == "ssh://remotebuild@192.0.2.10:2222?remote-program=/opt/nix-store"


def test_overrides_replace_exported_fields():
    host_vars = {"remote_builder_export": export(),
                 "local_client_builder_overrides": {"address": "builder.example.net", "port": 2200, "max_jobs": "8",
                                                    "speed_factor": 2, "user": "nixremote", "systems": ["aarch64-linux"]}}
    record = one("2.34.1", host_vars)
    assert record["uri"] == "ssh-ng://nixremote@builder.example.net:2200"
    assert record["known_hosts"] == ["[builder.example.net]:2200 " + HOST_KEY]
    assert record["machine"]["max_jobs"] == 8
    assert record["machine"]["speed_factor"] == 2
    assert record["machine"]["systems"] == ["aarch64-linux"]


# --- slot policy (issue 14 item 1) ---------------------------------------------------------

def slots(capacity, clients, **options):
    return one(host_vars={"remote_builder_export": export(max_jobs=capacity, clients=clients)}, **options)["machine"]["max_jobs"]


@pytest.mark.parametrize(("capacity", "clients", "overcommit", "expected"), [
    (8, 3, 1.0, 2),     # 3 x 2 = 6 <= 8: rounded down, never above the capacity
    (8, 2, 1.0, 4),
    (8, 1, 1.0, 8),
    (8, 3, 1.5, 4),     # 12 / 3
    (2, 5, 1.0, 1),     # more clients than slots: each still gets one
    (8, 0, 1.0, 8),     # no client counted (an export before 0.2.0 has no count): as it is
    (3, 3, 1.0, 1),
    (10, 3, 0.3, 1),
])
def test_shared_slots_divide_the_capacity_among_the_clients(capacity, clients, overcommit, expected):
    assert slots(capacity, clients, slot_policy="shared", overcommit=overcommit) == expected


def test_full_slots_are_the_capacity_whatever_the_clients():
    assert slots(8, 3) == 8
    assert slots(8, 3, slot_policy="full", overcommit=0.5) == 8


def test_shared_slots_sum_to_at_most_the_capacity_times_overcommit():
    for capacity in range(1, 33):
        for clients in range(1, capacity + 1):
            for overcommit in (1.0, 1.25, 2.0):
                share = slots(capacity, clients, slot_policy="shared", overcommit=overcommit)
                assert share >= 1 and share * clients <= capacity * overcommit, (capacity, clients, overcommit)


def test_an_override_of_max_jobs_wins_over_the_policy():
    host_vars = {"remote_builder_export": export(max_jobs=8, clients=4), "local_client_builder_overrides": {"max_jobs": 6}}
    assert one(host_vars=host_vars, slot_policy="shared")["machine"]["max_jobs"] == 6


def test_an_export_without_a_client_count_is_read_as_before():
    e = export(max_jobs=8)
    e.pop("clients", None)
    assert one(host_vars={"remote_builder_export": e}, slot_policy="shared")["machine"]["max_jobs"] == 8


@pytest.mark.parametrize(("options", "message"), [
    ({"slot_policy": "fair"}, "local_client_slot_policy is 'fair'"),
    ({"slot_policy": "shared", "overcommit": 0}, "local_client_slot_overcommit is 0"),
    ({"slot_policy": "shared", "overcommit": "lots"}, "local_client_slot_overcommit is 'lots', not a number"),
])
def test_bad_slot_options_are_refused(options, message):
    with pytest.raises(AnsibleFilterError, match=message):
        slots(8, 2, **options)


def test_the_trust_mode_is_carried_and_defaults_to_trusted():
    assert one(host_vars={"remote_builder_export": export(trust="signing")})["trust"] == "signing"
    bare = export()
    del bare["trust"]
    assert one(host_vars={"remote_builder_export": bare})["trust"] == "trusted"


# --- which builders get a record ------------------------------------------------------------

def test_builders_are_sorted_and_the_client_is_never_its_own_builder():
    hostvars = {name: {"remote_builder_export": export(address=name)} for name in ("zeta", "alpha", "client")}
    assert [r["name"] for r in records(hostvars)] == ["alpha", "zeta"]


@pytest.mark.parametrize("host_vars", [
    {"nix_remote_state": "absent", "remote_builder_export": export()},
    {"remote_builder_export": {"state": "absent"}},
    {"nix_remote_state": "absent"},
], ids=["withdrawn-in-inventory", "export-says-absent", "withdrawn-and-not-run"])
def test_withdrawn_builders_get_no_record_and_are_not_unconfigured(host_vars):
    assert records({"b1": host_vars}) == []
    assert unconfigured_builders(["b1"], {"b1": host_vars}, client="client") == []


def test_a_withdrawn_client_has_no_records_at_all():
    hostvars = {"b1": {"remote_builder_export": export()}}
    external = [{"name": "x", "uri": "ssh-ng://eu.example.net", "systems": ["x86_64-linux"]}]
    assert records(hostvars, present=False, external_builders=external) == []
    assert unconfigured_builders(["b1", "b2"], {"b1": {}, "b2": {}}, client="client", present=False) == []


def test_a_builder_not_configured_in_this_run_keeps_its_previous_record():
    hostvars = {"b1": {"remote_builder_export": export()}, "b2": {}, "b3": {"nix_remote_state": "absent"}}
    previous = [{"name": "b2", "uri": "ssh-ng://remotebuild@192.0.2.12", "known_hosts": []},
                {"name": "b3", "uri": "ssh-ng://remotebuild@192.0.2.13", "known_hosts": []},
                {"name": "external:gone", "uri": "ssh-ng://gone.example.net", "known_hosts": []}]
    assert unconfigured_builders(sorted(hostvars), hostvars, client="client") == ["b2"]
    result = records(hostvars, previous=previous)
    assert [r["name"] for r in result] == ["b1", "b2"]
    assert result[1] is previous[0]


def test_an_export_read_from_the_builders_file_stands_in_for_a_missing_host_variable():
    """A builder outside --limit without a fact cache: the export file it kept (exports=) gives its
    record; this run's host variable wins over the file; a withdrawn builder's file is not used."""
    kept = export(address="192.0.2.12")
    hostvars = {"b1": {"remote_builder_export": export()}, "b2": {}, "b3": {"nix_remote_state": "absent"}}
    exports = {"b2": kept, "b1": export(address="198.51.100.1"), "b3": export(address="192.0.2.13")}
    assert unconfigured_builders(sorted(hostvars), hostvars, client="client", exports=exports) == []
    result = records(hostvars, exports=exports,
                     previous=[{"name": "b2", "uri": "ssh-ng://remotebuild@192.0.2.99", "known_hosts": []}])
    assert [(r["name"], r["uri"]) for r in result] == [("b1", "ssh-ng://remotebuild@192.0.2.10"),
                                                       ("b2", "ssh-ng://remotebuild@192.0.2.12")]


def test_an_export_file_that_is_not_a_mapping_is_refused_by_name():
    with pytest.raises(AnsibleFilterError, match=r"builder b2: remote_builder_export is a list, not a mapping"):
        unconfigured_builders(["b2"], {"b2": {}}, client="client", exports={"b2": ["not", "an", "export"]})


def read_result(builder, text, path="/etc/ansible/facts.d/nix_remote_builders.fact"):
    """One item of the delegated slurp's results, as Ansible registers it."""
    return {"__local_client_builder": builder, "source": path, "encoding": "base64",
            "content": base64.b64encode(text.encode()).decode()}


def test_kept_exports_parses_each_file_read_and_skips_the_unread():
    unread = [{"__local_client_builder": "b3", "unreachable": True}, {"__local_client_builder": "b4", "failed": True, "msg": "timeout"}]
    results = [read_result("b1", '{"version": 1, "address": "192.0.2.11"}'), *unread]
    assert kept_exports(results) == {"b1": {"version": 1, "address": "192.0.2.11"}}
    assert kept_exports([]) == {} and kept_exports(None) == {}


@pytest.mark.parametrize("text, message", [
    ('{"version": 1,\n "address": }', r"kept_exports: builder b2: /etc/ansible/facts.d/nix_remote_builders.fact: line 2, column 13: "
                                      r"not valid JSON \(Expecting value\); remove the file on the builder"),
    ("", r"builder b2: /etc/ansible/facts.d/nix_remote_builders.fact: line 1, column 1: not valid JSON"),
    ('["a list"]', r"builder b2: /etc/ansible/facts.d/nix_remote_builders.fact: line 1: holds a JSON list, not the export object"),
])
def test_kept_exports_refuses_a_hand_edited_file_naming_builder_file_and_line(text, message):
    with pytest.raises(AnsibleFilterError, match=message):
        kept_exports([read_result("b1", "{}"), read_result("b2", text)])


def test_kept_exports_refuses_bytes_that_are_not_utf8():
    bad = {"__local_client_builder": "b2", "source": "/k.fact", "content": base64.b64encode(b"\xff{}").decode()}
    with pytest.raises(AnsibleFilterError, match=r"builder b2: /k.fact: not UTF-8 text"):
        kept_exports([bad])


def test_no_builders_group_means_no_records():
    assert builder_records(None, {}, client="c", nix_version="2.26.3", key_path=KEY_PATH) == []
    assert unconfigured_builders(None, {}, client="c") == []


@pytest.mark.parametrize("changes, message", [
    ({"port": "ssh"}, "port is 'ssh', not a whole number"),
    ({"port": 22.5}, "port is 22.5, not a whole number"),
    ({"max_jobs": "many"}, "max_jobs is 'many'"),
    ({"address": ""}, "address is empty"),
])
def test_bad_exports_and_overrides_fail_with_the_builder_named(changes, message):
    with pytest.raises(AnsibleFilterError, match="builder b1: " + message):
        one(host_vars={"remote_builder_export": export(**changes)})


def test_an_export_without_its_fields_is_named():
    with pytest.raises(AnsibleFilterError, match="remote_builder_export has no address, port"):
        one(host_vars={"remote_builder_export": {"state": "present", "user": "remotebuild"}})


def test_an_unknown_port_style_is_refused():
    with pytest.raises(AnsibleFilterError, match="local_client_port_style is 'ssh'"):
        one(port_style="ssh")


def test_a_nix_version_that_is_not_one_is_refused():
    with pytest.raises(AnsibleFilterError, match="not a Nix version"):
        one("unknown")


# --- external builders -------------------------------------------------------------------

def external(**fields):
    entry = {"name": "nixbuild", "uri": "ssh-ng://eu.nixbuild.net", "systems": ["x86_64-linux", "aarch64-linux"]}
    entry.update(fields)
    [record] = builder_records([], {}, client="client", nix_version="2.26.3", key_path=KEY_PATH,
                               external_builders=[entry])
    return record


def test_an_external_builder_with_defaults():
    record = external()
    assert record["machine"].pop("comment") == (
        'nix_remote.builders {"alias":{},"known_hosts":[],"match_hosts":["eu.nixbuild.net"],'
        '"name":"external:nixbuild","source":"external","uri":"ssh-ng://eu.nixbuild.net"}')
    assert record == {
        "name": "external:nixbuild", "source": "external", "uri": "ssh-ng://eu.nixbuild.net", "alias": {},
        "match_hosts": ["eu.nixbuild.net"], "known_hosts": [],
        "machine": {"uri": "ssh-ng://eu.nixbuild.net", "systems": ["x86_64-linux", "aarch64-linux"],
                    "ssh_key": KEY_PATH, "max_jobs": 1, "speed_factor": 1, "supported_features": [],
                    "mandatory_features": [], "public_host_key": ""},
    }


def test_an_external_builder_with_every_field():
    record = external(ssh_key="/root/.ssh/nixbuild", max_jobs="100", speed_factor=3, supported_features=["kvm"],
                      mandatory_features=["benchmark"], public_host_key=HOST_KEY_B64,
                      known_hosts=["eu.nixbuild.net " + HOST_KEY])
    assert record["machine"].pop("comment").startswith("nix_remote.builders {")
    assert record["machine"] == {
        "uri": "ssh-ng://eu.nixbuild.net", "systems": ["x86_64-linux", "aarch64-linux"],
        "ssh_key": "/root/.ssh/nixbuild", "max_jobs": 100, "speed_factor": 3, "supported_features": ["kvm"],
        "mandatory_features": ["benchmark"], "public_host_key": HOST_KEY_B64}
    assert record["known_hosts"] == ["eu.nixbuild.net " + HOST_KEY]


def test_an_external_builder_with_nulls_from_argument_specs_gets_the_defaults():
    record = external(ssh_key=None, max_jobs=None, speed_factor=None, supported_features=None,
                      mandatory_features=None, public_host_key=None, known_hosts=None)
    assert record["machine"]["ssh_key"] == KEY_PATH
    assert record["machine"]["max_jobs"] == 1
    assert record["machine"]["public_host_key"] == ""
    assert record["known_hosts"] == []


@pytest.mark.parametrize("uri, host", [
    ("ssh-ng://eu.nixbuild.net", "eu.nixbuild.net"),
    ("ssh://nix@builder.example.net:2222", "builder.example.net"),
    ("ssh-ng://root@[2001:db8::1]:22?remote-program=/bin/nix-daemon", "2001:db8::1"),
    ("ssh-ng://[2001:db8::1]", "2001:db8::1"),
    ("ssh-ng://builder?ssh-key=/k", "builder"),
    ("ssh-ng://nix@builder/path", "builder"),
    ("nix@builder.example.net", None),   # no scheme: Nix adds ssh://, the Match block does not list it
    ("ssh-ng://", None),
    ("ssh-ng://nix@", None),
    ("/var/lib/store", None),
])
def test_the_match_host_of_an_external_uri(uri, host):
    assert external(uri=uri)["match_hosts"] == ([host] if host else [])


@pytest.mark.parametrize("entry, message", [
    ({"uri": "ssh-ng://x", "systems": ["x86_64-linux"]}, "an entry has no name"),
    ({"name": "x", "systems": ["x86_64-linux"]}, "an entry has no uri"),
    ({"name": "x", "uri": "ssh-ng://x"}, "an entry has no systems"),
    ({"name": "x", "uri": "ssh-ng://x", "systems": []}, "an entry has no systems"),
    ({"name": "x", "uri": ["ssh-ng://x"], "systems": ["x86_64-linux"]}, "is not a string"),
    ({"name": "x", "uri": "ssh-ng://x", "systems": ["x86_64-linux"], "max_jobs": "two"}, "max_jobs is 'two'"),
    ("ssh-ng://x", "is not a dict"),
])
def test_bad_external_builders_are_refused(entry, message):
    with pytest.raises(AnsibleFilterError, match=message):
        builder_records([], {}, client="c", nix_version="2.26.3", key_path=KEY_PATH, external_builders=[entry])


def test_inventory_builders_come_before_external_ones_and_previous_ones_last():
    hostvars = {"b1": {"remote_builder_export": export()}, "b2": {}}
    result = records(hostvars, external_builders=[{"name": "x", "uri": "ssh-ng://x", "systems": ["i686-linux"]}],
                     previous=[{"name": "b2", "uri": "ssh-ng://remotebuild@b2", "known_hosts": []}])
    assert [r["name"] for r in result] == ["b1", "external:x", "b2"]


# --- stale entries --------------------------------------------------------------------------

def test_stale_entries_are_what_the_last_run_had_and_this_one_has_not():
    previous = [
        {"uri": "ssh-ng://remotebuild@nix-builder-b1", "known_hosts": ["nix-builder-b1 k1", "[192.0.2.10]:2222 k1"]},
        {"uri": "ssh-ng://remotebuild@192.0.2.11", "known_hosts": ["192.0.2.11 k2"]},
        {"uri": "ssh-ng://remotebuild@192.0.2.11", "known_hosts": ["192.0.2.11 k2"]},
    ]
    current = [{"uri": "ssh-ng://remotebuild@192.0.2.10:2222", "known_hosts": ["[192.0.2.10]:2222 k1"]}]
    assert stale_entries(previous, current) == {
        "uris": ["ssh-ng://remotebuild@nix-builder-b1", "ssh-ng://remotebuild@192.0.2.11"],
        "known_hosts": ["nix-builder-b1", "192.0.2.11"],
        "machines": [{"uri": "ssh-ng://remotebuild@nix-builder-b1", "state": "absent"},
                     {"uri": "ssh-ng://remotebuild@192.0.2.11", "state": "absent"}],
    }


def test_stale_machines_carry_the_marker_comment_of_the_previous_record():
    previous = [{"uri": "ssh-ng://a", "known_hosts": [], "machine": {"uri": "ssh-ng://a", "comment": "nix_remote.builders {}"}},
                {"uri": "ssh-ng://b", "known_hosts": [], "machine": {"uri": "ssh-ng://b"}}]
    assert stale_entries(previous, [])["machines"] == [
        {"uri": "ssh-ng://a", "state": "absent", "comment": "nix_remote.builders {}"},
        {"uri": "ssh-ng://b", "state": "absent"}]


def test_nothing_is_stale_on_a_first_run_or_an_unchanged_one():
    current = [{"uri": "ssh-ng://remotebuild@192.0.2.10", "known_hosts": ["192.0.2.10 k"]}]
    assert stale_entries([], current) == {"uris": [], "known_hosts": [], "machines": []}
    assert stale_entries(current, current) == {"uris": [], "known_hosts": [], "machines": []}


def test_everything_is_stale_when_no_builder_is_left():
    previous = [{"uri": "ssh-ng://x", "known_hosts": ["x k"]}]
    assert stale_entries(previous, []) == {"uris": ["ssh-ng://x"], "known_hosts": ["x"],
                                           "machines": [{"uri": "ssh-ng://x", "state": "absent"}]}


def test_a_previous_record_without_a_uri_is_named():
    with pytest.raises(AnsibleFilterError, match="stale_entries"):
        stale_entries([{"known_hosts": []}], [])


@pytest.mark.parametrize("changes", [{"systems": []}, {"max_jobs": -1}])
def test_a_builder_without_systems_or_with_negative_jobs_is_refused(changes):
    with pytest.raises(AnsibleFilterError, match="builder b1 has no systems or a negative max_jobs"):
        one(host_vars={"remote_builder_export": export(**changes)})


def test_an_external_builder_with_negative_jobs_is_refused():
    external = [{"name": "x", "uri": "ssh-ng://eu.example.net", "systems": ["x86_64-linux"], "max_jobs": -2}]
    with pytest.raises(AnsibleFilterError, match="builder external:x has no systems or a negative max_jobs"):
        builder_records([], {}, client="c", nix_version="2.26.3", key_path=KEY_PATH, external_builders=external)


def test_known_hosts_entries_one_per_name_then_the_stale_names():
    from ansible_collections.nix_remote.builders.plugins.filter.known_hosts_entries import known_hosts_entries

    records = [
        {"name": "b1", "known_hosts": ["192.0.2.10 " + HOST_KEY]},
        {"name": "b2", "known_hosts": ["nix-builder-b2 " + HOST_KEY, "[192.0.2.11]:2222 " + HOST_KEY]},
        {"name": "external:x", "known_hosts": ["a.example,b.example ssh-rsa AAAAB3", "a.example " + HOST_KEY]},
    ]
    assert known_hosts_entries(records, stale=["192.0.2.10", "old.example,gone.example", "b.example"]) == [
        {"name": "192.0.2.10", "keys": [HOST_KEY]},
        {"name": "nix-builder-b2", "keys": [HOST_KEY]},
        {"name": "[192.0.2.11]:2222", "keys": [HOST_KEY]},
        {"name": "a.example", "keys": ["ssh-rsa AAAAB3", HOST_KEY]},
        {"name": "b.example", "keys": ["ssh-rsa AAAAB3"]},
        {"name": "old.example", "state": "absent"},
        {"name": "gone.example", "state": "absent"},
    ]
    assert known_hosts_entries([]) == []
    with pytest.raises(AnsibleFilterError, match="builder b9: known_hosts line 'lonely' has no key"):
        known_hosts_entries([{"name": "b9", "known_hosts": ["lonely"]}])


@pytest.mark.parametrize("version", [2, "1", True])
def test_an_export_of_another_schema_version_is_refused(version):
    with pytest.raises(AnsibleFilterError, match="builder b1: remote_builder_export version .* is newer than this collection reads"):
        one(host_vars={"remote_builder_export": dict(export(), version=version)})


def test_an_export_of_0_1_0_without_a_version_is_read_as_version_1():
    legacy = {k: v for k, v in export().items() if k != "version"}
    legacy.update(nix_version="2.26.3", daemon_path="/usr/bin/nix-daemon", store_path="/usr/bin/nix-store")
    assert one(host_vars={"remote_builder_export": legacy})["uri"] == "ssh-ng://remotebuild@192.0.2.10"
