"""The roles' macOS path, planned with --check on this (Linux) machine.

There is no macOS host in the testbed, so this is command-level evidence: site.yml runs in check
mode against two local inventory hosts whose nix_info result says macOS (the documented test hook
<role>_nix_info_override), and the JSON callback shows what the roles would do there: root's key
under /var/root/.ssh, a hidden system user made by the user module's Darwin options, the forced
command with the absolute Nix path, no systemd drop-in, and the daemon restarted through launchd.
Check mode writes nothing. The restart handler fails here, on Linux, because no launchd plist
exists; its result shows it took the launchd branch of nix_daemon, whose exact launchctl commands
tests/unit/plugins/modules/test_nix_daemon.py checks with run_command mocked.
"""

from __future__ import annotations

import base64
import os
import sys

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import capabilities
from plan_run import failures, never_ran, ran, run_plan, task

PROFILE_BIN = "/nix/var/nix/profiles/default/bin"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
KEY = "/var/root/.ssh/nix_remote_builders_ed25519"


def darwin_nix(conf_dir: str) -> dict:
    """nix_info's result on a Mac with the upstream multi-user installer (Apple silicon)."""
    return {
        "installed": True, "multi_user": True, "version": "2.24.10", "layout": "upstream",
        "service_manager": "launchd", "launchd_label": "org.nixos.nix-daemon",
        "is_nixos": False, "is_darwin": True,
        "conf_dir": conf_dir, "conf_path": f"{conf_dir}/nix.conf", "conf_edit_path": f"{conf_dir}/nix.conf",
        "paths": dict({name: f"{PROFILE_BIN}/{binary}" for name, binary in (
            ("nix", "nix"), ("nix_store", "nix-store"), ("nix_daemon", "nix-daemon"),
            ("nix_build", "nix-build"), ("nix_instantiate", "nix-instantiate"))},
            ssh="/usr/bin/ssh", ssh_keygen="/usr/bin/ssh-keygen"),  # macOS ships OpenSSH
        "system": "aarch64-darwin", "extra_platforms": ["x86_64-darwin"], "systems": ["aarch64-darwin", "x86_64-darwin"],
        "system_features": ["apple-virt", "benchmark", "big-parallel", "nixos-test"], "kvm": False,
        "cores": 8, "memory_bytes": 17179869184, "daemon_socket_group": None,
        "ssh_host_keys": [{"type": "ssh-ed25519", "path": "/etc/ssh/ssh_host_ed25519_key.pub", "public_key": HOST_KEY,
                           "base64": base64.b64encode(HOST_KEY.encode()).decode()}],
        "build_users_group": "nixbld", "build_users": 32,
        "build_users_group_members": [f"_nixbld{i}" for i in range(1, 33)],
        "implementation": "nix", "capabilities": capabilities("2.24.10", "nix"),
    }


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> dict:
    """Run site.yml --check once; return host -> list of (task name, result) in the order they ran."""
    work = tmp_path_factory.mktemp("darwin-plan")
    conf_dir = str(work / "etc-nix")  # never created: check mode must not need it
    nix = darwin_nix(conf_dir)
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix},
        # mac-withdrawn plans the macOS withdrawal, and keeps the builder play going after
        # mac-builder's launchd restart fails here (a play whose hosts all failed ends the run).
        "children": {"nix_builders": {"hosts": {"mac-builder": {"ansible_host": "192.0.2.10"},
                                                "mac-withdrawn": {"nix_remote_state": "absent"}}},
                     "nix_clients": {"hosts": {"mac-client": {}}}}}}
    results, run = run_plan(work, inventory)
    # Nothing but the launchd restart may fail (it cannot find a plist on Linux).
    failed = failures(results)
    assert all("Restart nix-daemon" in n for _h, n, _m in failed), (failed, run.stderr[-2000:])
    assert not os.path.exists(conf_dir), "check mode created the nix.conf directory"
    return results


def test_client_key_lives_under_var_root(plan):
    client = plan["mac-client"]
    keypair = task(client, "Create root's key and read its public half")
    assert keypair["invocation"]["module_args"]["path"] == KEY
    assert keypair["invocation"]["module_args"]["group"] == "0"
    assert keypair["invocation"]["module_args"]["ssh_keygen"] == "/usr/bin/ssh-keygen"
    # Check mode on a fresh Mac: the key (and /var/root/.ssh) would be created; nothing is written.
    assert keypair["changed"] and keypair["created"] and keypair["public_key"] == ""
    assert not os.path.exists("/var/root")
    assert not ran(task(client, "Install the SSH client")), "macOS ships OpenSSH; no package manager is used"
    control = task(client, "Create the root-only directory for the multiplexing sockets")
    assert control["invocation"]["module_args"]["path"] == "/var/root/.ssh/nix-remote-builders"


def test_client_machines_entry_uses_var_root_key_and_absolute_nix_path(plan):
    machines = task(plan["mac-client"], "Write the builders to the machines file")
    assert ran(machines) and machines["changed"]
    (entry,) = machines["invocation"]["module_args"]["builders"]
    assert entry["ssh_key"] == KEY
    # macOS sshd gives no Nix on the PATH: the URI names the daemon by its absolute path (P1).
    assert entry["uri"] == f"ssh-ng://remotebuild@192.0.2.10?remote-program={PROFILE_BIN}/nix-daemon"
    assert entry["systems"] == ["aarch64-darwin", "x86_64-darwin"]


def test_builder_user_is_made_the_macos_way(plan):
    builder = plan["mac-builder"]
    user = task(builder, "Create the build user (macOS, hidden, ID below 500)")
    args = user["invocation"]["module_args"]
    assert (args["name"], args["system"], args["hidden"], args["shell"], args["create_home"]) == (
        "remotebuild", True, True, "/bin/sh", False)
    assert args["password_lock"] is None  # not a macOS option
    assert never_ran(builder, "Create the build user"), "the Linux user task must not run on macOS"
    assert task(builder, "Create the build user's group (macOS)")["invocation"]["module_args"]["system"] is True


def test_builder_forced_command_and_settings(plan):
    builder = plan["mac-builder"]
    # The key list is empty in check mode (the client's key does not exist yet); the command is what counts.
    facts = task(builder, "Derive max-jobs, cores and speed factor from the machine")["ansible_facts"]
    assert facts["__remote_builder_forced_command"] == f"{PROFILE_BIN}/nix-daemon --stdio"
    conf = task(builder, "Write the builder's nix.conf settings")["invocation"]["module_args"]
    assert conf["path"].endswith("/etc-nix/nix.conf")
    assert conf["list_items"]["extra-trusted-users"]["present"] == ["remotebuild"]
    assert conf["managed_marker"] == "nix_remote.builders"


def test_builder_has_no_systemd_parts(plan):
    builder = plan["mac-builder"]
    for name in ("Write the nix-daemon drop-in", "Add build users up to max-jobs"):
        assert never_ran(builder, name), name
    assert not [n for n, r in builder if "Reload systemd units" in n and ran(r)]


@pytest.mark.parametrize("host, handler", [("mac-builder", "Restart nix-daemon on the builder"),
                                           ("mac-client", "Restart nix-daemon on the client")])
def test_daemon_is_restarted_through_launchd(plan, host, handler):
    result = task(plan[host], handler)
    assert result["invocation"]["module_args"]["service_manager"] == "launchd"
    assert result["service_manager"] == "launchd"
    # On this Linux machine the launchd branch finds no plist: proof it took that branch.
    assert "launchd plist" in result["msg"] and "/Library/LaunchDaemons" in result["msg"]


def test_withdrawn_mac_builder_removes_its_user_and_exports_absent(plan):
    withdrawn = plan["mac-withdrawn"]
    assert task(withdrawn, "Remove the build user")["invocation"]["module_args"]["state"] == "absent"
    assert task(withdrawn, "Export that this host is no longer a builder")["ansible_facts"]["remote_builder_export"] == {"version": 1, "state": "absent"}
    # The client only uses the builder that is present.
    (entry,) = task(plan["mac-client"], "Write the builders to the machines file")["invocation"]["module_args"]["builders"]
    assert "192.0.2.10" in entry["uri"]
