# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The remote_builder filters: capacity, export, authorized_keys, signing trust, and the
daemon handler's rollback list (both roles)."""

from __future__ import annotations

import fnmatch

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.filter import (
    authorized_key_sources as aks_plugin,
    authorized_keys_file as akf_plugin,
    builder_capacity as capacity_plugin,
    builder_export as export_plugin,
    keyless_clients as keyless_plugin,
    rollback_list as rollback_plugin,
    signing_keys as signing_keys_plugin,
    trust_list_items as trust_plugin,
)
from ansible_collections.nix_remote.builders.plugins.filter.authorized_key_sources import authorized_key_sources
from ansible_collections.nix_remote.builders.plugins.filter.authorized_keys_file import authorized_keys_file
from ansible_collections.nix_remote.builders.plugins.filter.builder_capacity import builder_capacity
from ansible_collections.nix_remote.builders.plugins.filter.builder_export import builder_export
from ansible_collections.nix_remote.builders.plugins.filter.keyless_clients import keyless_clients
from ansible_collections.nix_remote.builders.plugins.filter.rollback_list import rollback_list
from ansible_collections.nix_remote.builders.plugins.filter.signing_keys import signing_keys
from ansible_collections.nix_remote.builders.plugins.filter.trust_list_items import trust_list_items
from ansible_collections.nix_remote.builders.plugins.module_utils import builder_export as export_utils
from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import builder_records

GIB = 1024 ** 3
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"


def nix(**changes):
    """nix_info's result on a Debian builder."""
    value = {
        "version": "2.26.3", "cores": 4, "memory_bytes": 8 * GIB, "systems": ["x86_64-linux"],
        "system_features": ["nixos-test", "benchmark", "big-parallel", "kvm"],
        "paths": {"nix_daemon": "/usr/bin/nix-daemon", "nix_store": "/usr/bin/nix-store"},
        "ssh_host_keys": [{"public_key": HOST_KEY, "base64": "QUJD"}],
    }
    value.update(changes)
    return value


@pytest.mark.parametrize(("plugin", "name"), [
    (capacity_plugin, "builder_capacity"), (export_plugin, "builder_export"), (aks_plugin, "authorized_key_sources"),
    (keyless_plugin, "keyless_clients"), (akf_plugin, "authorized_keys_file"), (signing_keys_plugin, "signing_keys"),
    (trust_plugin, "trust_list_items"), (rollback_plugin, "rollback_list"),
])
def test_each_filter_is_registered_under_its_file_name_and_documented(plugin, name):
    assert list(plugin.FilterModule().filters()) == [name]
    assert "name: %s\n" % name in plugin.DOCUMENTATION and plugin.EXAMPLES and plugin.RETURN


# --- capacity ------------------------------------------------------------------------------

@pytest.mark.parametrize(("cores", "memory", "expected"), [
    (4, 8 * GIB, {"max_jobs": 4, "cores": 1, "speed_factor": 4}),     # CPU-bound
    (16, 8 * GIB, {"max_jobs": 4, "cores": 4, "speed_factor": 16}),   # memory-bound: 8 GiB / 2 GiB
    (16, 1 * GIB, {"max_jobs": 1, "cores": 16, "speed_factor": 16}),  # less than one job's memory
    (0, 8 * GIB, {"max_jobs": 1, "cores": 1, "speed_factor": 1}),     # at least one CPU
    (None, None, {"max_jobs": 1, "cores": 1, "speed_factor": 1}),     # nothing known
    (6, 8 * GIB, {"max_jobs": 4, "cores": 1, "speed_factor": 6}),     # 6 // 4
])
def test_capacity_is_derived_from_cpus_and_memory(cores, memory, expected):
    assert builder_capacity(nix(cores=cores, memory_bytes=memory), 2 * GIB) == expected


def test_given_options_are_kept():
    assert builder_capacity(nix(cores=16), 2 * GIB, max_jobs=2, cores=0, speed_factor=3) == \
        {"max_jobs": 2, "cores": 0, "speed_factor": 3}
    # cores is derived from the given max-jobs.
    assert builder_capacity(nix(cores=16), 2 * GIB, max_jobs=2)["cores"] == 8


def test_capacity_refuses_what_is_not_a_number():
    with pytest.raises(AnsibleFilterError, match="remote_builder_memory_per_job_bytes is 0"):
        builder_capacity(nix(), 0)
    with pytest.raises(AnsibleFilterError, match="remote_builder_max_jobs is 'many'"):
        builder_capacity(nix(), 2 * GIB, max_jobs="many")


@pytest.mark.parametrize(("options", "message"), [
    ({"max_jobs": 0}, "remote_builder_max_jobs is 0; it must be at least 1"),
    ({"cores": -1}, "remote_builder_cores is -1; it must be at least 0"),
    ({"speed_factor": 0}, "remote_builder_speed_factor is 0; it must be at least 1"),
])
def test_capacity_refuses_values_nix_cannot_use(options, message):
    with pytest.raises(AnsibleFilterError, match=message):
        builder_capacity(nix(cores=4), 2 * GIB, **options)


# --- export --------------------------------------------------------------------------------

def export(nix_result=None, **options):
    args = dict(host="192.0.2.10", user="remotebuild", protocol="ssh-ng", trust="trusted", max_jobs=4, speed_factor=4)
    args.update(options)
    return builder_export(nix_result or nix(), **args)


def test_the_export_of_a_debian_builder():
    assert export(extra_system_features=["ccache"], mandatory_features=["kvm", "kvm"]) == {
        "version": 1, "state": "present", "address": "192.0.2.10", "port": 22, "user": "remotebuild",
        "protocol": "ssh-ng", "host_key": HOST_KEY, "host_key_base64": "QUJD", "systems": ["x86_64-linux"],
        "supported_features": ["benchmark", "big-parallel", "ccache", "kvm", "nixos-test"],
        "mandatory_features": ["kvm"], "max_jobs": 4, "speed_factor": 4, "trust": "trusted",
        "remote_program": "", "clients": 0,
    }


def test_the_exported_systems_do_not_depend_on_the_order_of_extra_platforms():
    """The builder's system first, the rest sorted: a run that has just written extra-platforms
    (the emulation plan's systems) and the next one, which reads them back from nix.conf in another
    order, export the same list (the export file on the builder stays unchanged: idempotence)."""
    first = export(nix(systems=["x86_64-linux", "i686-linux"]), emulated_systems=["aarch64-linux"])
    second = export(nix(systems=["x86_64-linux", "aarch64-linux", "i686-linux"]), emulated_systems=["aarch64-linux"])
    assert first["systems"] == second["systems"] == ["x86_64-linux", "aarch64-linux", "i686-linux"]


def test_the_export_counts_the_present_clients_that_use_the_builder():
    hostvars = {"c1": {}, "c2": {"nix_remote_state": "absent"}, "c3": {"nix_remote_state": "present"}}
    assert export(clients=["c3", "c1", "c2", "c1"], hostvars=hostvars)["clients"] == 2


def test_every_exported_field_is_read_by_the_client_records():
    """The contract has nothing nobody reads (issue 12 item 2)."""
    from ansible_collections.nix_remote.builders.plugins.module_utils import builder_records

    read = set(builder_records._EXPORT_FIELDS) | {"version", "state", "trust", "remote_program", "clients"}
    assert set(export()) == read


def test_address_and_port_options_win_over_the_inventory():
    e = export(address="builder.example", port="2222", host_port=2200)
    assert (e["address"], e["port"]) == ("builder.example", 2222)
    e = export(host_port="2200")
    assert (e["address"], e["port"]) == ("192.0.2.10", 2200)


@pytest.mark.parametrize(("paths", "protocol", "program"), [
    ({"nix_daemon": "/usr/bin/nix-daemon", "nix_store": "/usr/bin/nix-store"}, "ssh-ng", ""),
    ({"nix_daemon": "/usr/local/bin/nix-daemon", "nix_store": "/bin/nix-store"}, "ssh", ""),
    ({"nix_daemon": "/nix/var/nix/profiles/default/bin/nix-daemon", "nix_store": "/usr/bin/nix-store"}, "ssh-ng",
     "/nix/var/nix/profiles/default/bin/nix-daemon"),
    ({"nix_daemon": "/usr/bin/nix-daemon", "nix_store": "/run/current-system/sw/bin/nix-store"}, "ssh",
     "/run/current-system/sw/bin/nix-store"),
])
def test_remote_program_only_off_the_non_interactive_path(paths, protocol, program):
    assert export(nix(paths=paths), protocol=protocol)["remote_program"] == program


def test_an_export_without_a_host_key_is_refused():
    with pytest.raises(AnsibleFilterError, match="no SSH host key"):
        export(nix(ssh_host_keys=[]))


def test_the_export_is_what_builder_records_reads():
    hostvars = {"b1": {"remote_builder_export": export(port=2222)}}
    [record] = builder_records(hostvars, ["b1"], "c", nix_version="2.26.3", key_path="/root/.ssh/k")
    assert record["uri"] == "ssh-ng://remotebuild@nix-builder-b1"
    assert record["machine"]["max_jobs"] == 4 and record["machine"]["public_host_key"] == "QUJD"


def test_forced_command_per_protocol():
    assert export_utils.forced_command(nix(), "ssh-ng") == "/usr/bin/nix-daemon --stdio"
    assert export_utils.forced_command(nix(), "ssh") == "/usr/bin/nix-store --serve --write"


# --- authorized_keys -----------------------------------------------------------------------

KEY1 = "ssh-ed25519 AAAA1 nix-remote-builds@c1"
KEY2 = "ssh-ed25519 AAAA2 nix-remote-builds@c2"
CMD = "/usr/bin/nix-daemon --stdio"
HOSTVARS = {
    "c1": {"local_client_public_key": KEY1 + "\n"},
    "c2": {"local_client_public_key": KEY2, "nix_remote_state": "absent"},
    "c3": {},                                   # key play did not run
    "c4": {"local_client_public_key": ""},      # key play ran, no key
    "c5": {"nix_remote_state": "absent"},        # withdrawn, no key: not keyless
}


def test_key_sources_are_the_present_clients_with_a_key_then_the_extra_keys():
    assert authorized_key_sources(["c5", "c4", "c3", "c2", "c1"], HOSTVARS, extra_keys=[" ssh-rsa BBB x "]) == [
        {"source": "c1", "key": KEY1},
        {"source": "remote_builder_extra_authorized_keys[0]", "key": "ssh-rsa BBB x"},
    ]
    assert authorized_key_sources(None, {}) == []


@pytest.mark.parametrize("key", [
    'command="/bin/sh" ssh-ed25519 AAAA x',   # options
    "ssh-ed25519",                              # no key
    "ssh-ed25519 AAAA x\nssh-rsa BBB y",         # two lines
    "-----BEGIN OPENSSH PRIVATE KEY-----",      # a private key
])
def test_a_key_that_is_not_one_public_key_line_is_refused_naming_its_source(key):
    with pytest.raises(AnsibleFilterError, match=r"the key from remote_builder_extra_authorized_keys\[0\] is not an OpenSSH") as error:
        authorized_key_sources([], {}, extra_keys=[key])
    assert "AAAA x" not in str(error.value) and "BEGIN" not in str(error.value) and "/bin/sh" not in str(error.value)


def test_keyless_clients_are_the_present_ones_without_the_fact():
    assert keyless_clients(["c5", "c4", "c3", "c2", "c1"], HOSTVARS) == ["c3"]


PREVIOUS = (export_utils.HEADER + "\n# source: c3\nrestrict,command=\"/old\" ssh-ed25519 CCC c3\n"
            "# source: gone\nrestrict ssh-ed25519 DDD\n# source: dangling")


def test_the_file_locks_every_key_and_keeps_a_keyless_clients_line():
    keys = [{"source": "c1", "key": KEY1}, {"source": "remote_builder_extra_authorized_keys[0]", "key": "ssh-rsa BBB x"}]
    assert authorized_keys_file(keys, CMD, keyless=["c3", "c9"], previous=PREVIOUS) == (
        "# Managed by nix_remote.builders (remote_builder role); rewritten on every run.\n"
        "# source: c1\n"
        'restrict,command="/usr/bin/nix-daemon --stdio" ssh-ed25519 AAAA1 nix-remote-builds@c1\n'
        "# source: remote_builder_extra_authorized_keys[0]\n"
        'restrict,command="/usr/bin/nix-daemon --stdio" ssh-rsa BBB x\n'
        "# source: c3\n"
        'restrict,command="/old" ssh-ed25519 CCC c3\n'
    )


def test_an_empty_file_is_the_header_only():
    assert authorized_keys_file([], CMD) == export_utils.HEADER + "\n"
    assert authorized_keys_file([], CMD, keyless=["c3"], previous="") == export_utils.HEADER + "\n"


def test_previous_lines_by_source():
    assert export_utils.previous_lines(PREVIOUS) == {
        "c3": 'restrict,command="/old" ssh-ed25519 CCC c3', "gone": "restrict ssh-ed25519 DDD"}
    assert export_utils.previous_lines(None) == {}


def test_a_key_without_source_is_named():
    with pytest.raises(AnsibleFilterError, match="authorized_keys_file"):
        authorized_keys_file([{"key": KEY1}], CMD)


# --- signing trust -------------------------------------------------------------------------

def test_signing_keys_are_the_clients_and_builders_keys_unique_and_sorted():
    hostvars = {
        "c1": {"local_client_signing_public_key": "c1-1:BBB"}, "c2": {"local_client_signing_public_key": ""},
        "c3": {}, "b1": {"remote_builder_signing_public_key": "b1-1:AAA"},
        "b2": {"remote_builder_signing_public_key": "c1-1:BBB"}, "b3": {},
    }
    assert signing_keys(["c3", "c2", "c1"], ["b3", "b2", "b1"], hostvars) == ["b1-1:AAA", "c1-1:BBB"]


def test_trusted_mode_adds_the_build_user_and_lists_no_key_of_its_own():
    assert trust_list_items("trusted", user="remotebuild") == {
        "extra-trusted-users": {"present": ["remotebuild"]},
        # Empty present lists: what an earlier signing run recorded is removed by nix_conf's marker.
        "extra-trusted-public-keys": {"present": []},
        "extra-secret-key-files": {"present": []},
    }


def test_trusted_mode_on_nix_without_extra_settings_keeps_root():
    assert trust_list_items("trusted", user="remotebuild", modern=False) == {
        "trusted-users": {"present": ["root", "remotebuild"]}}


def test_signing_mode_trusts_the_keys_sorted_and_takes_the_user_out():
    items = trust_list_items("signing", user="remotebuild", keys=["c1-1:B", "b1-1:A", "c1-1:B", ""],
                             secret_key_file="/etc/nix/k.sec")
    assert items == {
        "extra-trusted-public-keys": {"present": ["b1-1:A", "c1-1:B"]},
        "extra-secret-key-files": {"present": ["/etc/nix/k.sec"]},
        "extra-trusted-users": {"absent": ["remotebuild"]},
    }


def test_keys_of_the_old_state_file_are_removed_or_adopted():
    items = trust_list_items("signing", user="remotebuild", keys=["b1-1:A", "c1-1:B"],
                             retired_keys=["old-1:Y", "c1-1:B"], secret_key_file="/k.sec")
    assert items["extra-trusted-public-keys"] == {"present": ["b1-1:A", "c1-1:B"], "absent": ["old-1:Y"],
                                                  "adopt": ["c1-1:B"]}


@pytest.mark.parametrize("trust", ["trusted", "signing"])
def test_a_withdrawn_builder_drops_the_user_and_everything_the_role_recorded(trust):
    assert trust_list_items(trust, user="remotebuild", state="absent") == {
        "extra-trusted-users": {"absent": ["remotebuild"]},
        "extra-trusted-public-keys": {"present": []},
        "extra-secret-key-files": {"present": []},
    }
    assert trust_list_items(trust, user="remotebuild", state="absent", modern=False) == {
        "trusted-users": {"absent": ["remotebuild"]}}


def test_a_withdrawn_builder_drops_the_old_record_s_keys_and_its_secret_key_unless_shared():
    items = trust_list_items("signing", user="remotebuild", state="absent", retired_keys=["c1-1:B", "b1-1:A"],
                             secret_key_file="/k.sec")
    assert items["extra-trusted-public-keys"] == {"present": [], "absent": ["b1-1:A", "c1-1:B"]}
    assert items["extra-secret-key-files"] == {"present": [], "absent": ["/k.sec"]}
    shared = trust_list_items("signing", user="remotebuild", state="absent", secret_key_file="/k.sec", keep_secret_key=True)
    assert "extra-secret-key-files" not in shared


def test_a_partial_run_keeps_the_recorded_keys_of_the_hosts_it_does_not_know():
    """--limit: the clients and builders left out keep their recorded keys (nix_conf keep patterns)."""
    items = trust_list_items("signing", user="remotebuild", keys=["b1-1:A"], secret_key_file="/k.sec",
                             keep_hosts=["c2", "c1", "web[1]*?"])
    assert items["extra-trusted-public-keys"] == {"present": ["b1-1:A"],
                                                  "keep": ["c1-1:*", "c2-1:*", "web[[]1][*][?]-1:*"]}
    # fnmatch reads the escaped name back as the name itself, nothing more.
    assert fnmatch.fnmatchcase("web[1]*?-1:KEY", items["extra-trusted-public-keys"]["keep"][2])
    assert not fnmatch.fnmatchcase("web1xy-1:KEY", items["extra-trusted-public-keys"]["keep"][2])
    # Trusted mode and withdrawal trust no key of the role's, so nothing is kept.
    assert "keep" not in trust_list_items("trusted", user="remotebuild", keep_hosts=["c1"])["extra-trusted-public-keys"]
    assert "keep" not in trust_list_items("signing", user="remotebuild", state="absent",
                                          keep_hosts=["c1"])["extra-trusted-public-keys"]


def test_a_builder_signing_under_0_1_0_switched_to_trusted_drops_the_old_keys_and_its_secret_key():
    items = trust_list_items("trusted", user="remotebuild", retired_keys=["c1-1:B"], secret_key_file="/k.sec")
    assert items["extra-trusted-public-keys"] == {"present": [], "absent": ["c1-1:B"]}
    assert items["extra-secret-key-files"] == {"present": [], "absent": ["/k.sec"]}
    # The same host signing as a client keeps the key in every mode.
    shared = trust_list_items("trusted", user="remotebuild", retired_keys=["c1-1:B"], secret_key_file="/k.sec",
                              keep_secret_key=True)
    assert shared["extra-secret-key-files"] == {"present": ["/k.sec"]}


def test_the_administrators_values_of_the_trust_settings_join_the_role_s():
    """remote_builder_nix_settings may name these settings (0.1.0 merged them); nix_conf may not get them twice."""
    settings = {"extra-trusted-public-keys": "cache-1:X cache-2:Y", "extra-trusted-users": ["alice"], "max-jobs": 4}
    items = trust_list_items("trusted", user="remotebuild", settings=settings)
    assert items["extra-trusted-public-keys"] == {"present": ["cache-1:X", "cache-2:Y"]}
    assert items["extra-trusted-users"] == {"present": ["remotebuild", "alice"]}
    signing = trust_list_items("signing", user="remotebuild", keys=["b1-1:A"], secret_key_file="/k.sec",
                               settings={"extra-trusted-public-keys": ["cache-1:X"], "extra-secret-key-files": "/other.sec"})
    assert signing["extra-trusted-public-keys"] == {"present": ["b1-1:A", "cache-1:X"]}
    assert signing["extra-secret-key-files"] == {"present": ["/k.sec", "/other.sec"]}
    with pytest.raises(AnsibleFilterError, match="holds remotebuild, which remote_builder_trust: signing takes out"):
        trust_list_items("signing", user="remotebuild", secret_key_file="/k.sec", settings={"extra-trusted-users": "remotebuild"})
    with pytest.raises(AnsibleFilterError, match="must be a list of strings or a string"):
        trust_list_items("trusted", user="remotebuild", settings={"extra-trusted-users": 3})


@pytest.mark.parametrize("args, message", [
    (("bogus",), "trust must be 'trusted' or 'signing'"),
    (("signing",), "the build user is required"),
])
def test_trust_list_items_refuses_bad_arguments(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        trust_list_items(*args)


def test_signing_mode_needs_the_key_file_and_extra_settings():
    with pytest.raises(AnsibleFilterError, match="secret key file"):
        trust_list_items("signing", user="remotebuild", keys=["b1-1:A"])
    with pytest.raises(AnsibleFilterError, match="Nix 2.4 and later"):
        trust_list_items("signing", user="remotebuild", modern=False, secret_key_file="/k.sec")


# --- rollback list -------------------------------------------------------------------------

def test_rollback_lists_the_changed_files_with_their_backups():
    conf = {"changed": True, "path": "/etc/nix/nix.conf", "backup_file": "/etc/nix/nix.conf.1.bak"}
    dropin = {"changed": True, "dest": "/etc/systemd/system/nix-daemon.service.d/x.conf"}
    machines = {"changed": False, "path": "/etc/nix/machines"}
    assert rollback_list([conf, dropin, machines, {}]) == [
        {"path": "/etc/nix/nix.conf", "backup": "/etc/nix/nix.conf.1.bak"},
        {"path": "/etc/systemd/system/nix-daemon.service.d/x.conf", "backup": None},
    ]


def test_rollback_in_check_mode_on_a_new_file():
    # issue 12: template returns no dest in check mode for a new file.
    assert rollback_list([{"changed": True}]) == [{"path": "", "backup": None}]


def test_rollback_reads_changed_like_ansibles_test():
    looped = {"results": [{"changed": False}, {"changed": True}], "path": "/p"}
    assert rollback_list([looped, {"skipped": True, "changed": False}, None]) == [{"path": "/p", "backup": None}]
