"""site.yml --check --diff planned for fresh Debian-package, upstream-installer and NixOS hosts.

Like test_darwin_plan.py, through the roles' nix_info test hook on local inventory hosts.  On
Linux with systemd everything, the restart handlers included, must plan without a failure
(issue 12: check mode failed on fresh hosts), nothing may be created, and the plan must show
each layout's own choices: the Debian socket group, the ssh alias for a port on Nix < 2.31,
the port in the URI and no column 8 from 2.31, the absolute daemon path of an upstream
install, and generated NixOS modules instead of /etc/nix edits.
"""

from __future__ import annotations

import base64
import sys

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import capabilities
from plan_run import failures, never_ran, ran, run_plan, task

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
HOST_KEY_B64 = base64.b64encode(HOST_KEY.encode()).decode()
UPSTREAM_BIN = "/nix/var/nix/profiles/default/bin"


def linux_nix(platform: str, conf_dir: str) -> dict:
    """nix_info's result on a fresh x86_64 host of PLATFORM (debian, upstream, nixos)."""
    bindir, version, layout = {
        "debian": ("/usr/bin", "2.26.3", "debian"),
        "upstream": (UPSTREAM_BIN, "2.34.1", "upstream"),
        "nixos": ("/run/current-system/sw/bin", "2.28.4", "nixos"),
    }[platform]
    # The OpenSSH client: the distribution's package, or NixOS's system profile.
    ssh_bindir = "/run/current-system/sw/bin" if platform == "nixos" else "/usr/bin"
    return {
        "installed": True, "multi_user": True, "version": version, "layout": layout,
        "service_manager": "nixos" if platform == "nixos" else "systemd", "launchd_label": None,
        "is_nixos": platform == "nixos", "is_darwin": False,
        "conf_dir": conf_dir, "conf_path": f"{conf_dir}/nix.conf", "conf_edit_path": f"{conf_dir}/nix.conf",
        "paths": dict({name: f"{bindir}/{binary}" for name, binary in (
            ("nix", "nix"), ("nix_store", "nix-store"), ("nix_daemon", "nix-daemon"),
            ("nix_build", "nix-build"), ("nix_instantiate", "nix-instantiate"))},
            ssh=f"{ssh_bindir}/ssh", ssh_keygen=f"{ssh_bindir}/ssh-keygen"),
        "system": "x86_64-linux", "extra_platforms": [], "systems": ["x86_64-linux"],
        "system_features": ["benchmark", "big-parallel", "kvm", "nixos-test"], "kvm": True,
        "cores": 4, "memory_bytes": 8 * 1024 ** 3,
        "daemon_socket_group": "nix-users" if platform == "debian" else None,
        "ssh_host_keys": [{"type": "ssh-ed25519", "path": "/etc/ssh/ssh_host_ed25519_key.pub",
                           "public_key": HOST_KEY, "base64": HOST_KEY_B64}],
        "build_users_group": "nixbld", "build_users": 32,
        "build_users_group_members": [f"nixbld{i}" for i in range(1, 33)],
        "implementation": "nix", "capabilities": capabilities(version, "nix"),
    }


@pytest.fixture(scope="module", params=["debian", "upstream", "nixos"])
def plan(request, tmp_path_factory):
    """Plan site.yml --check --diff for one platform: (platform, results, NixOS config dir)."""
    platform = request.param
    work = tmp_path_factory.mktemp(f"{platform}-plan")
    conf_dir = str(work / "etc-nix")  # never created: check mode must not need it
    nixos_dir = work / "etc-nixos"
    nixos_dir.mkdir()
    (nixos_dir / "configuration.nix").write_text("{ ... }:\n{\n  imports = [ ./hardware-configuration.nix ];\n}\n")
    nix = linux_nix(platform, conf_dir)
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix,
                 "remote_builder_nixos_config_dir": str(nixos_dir), "local_client_nixos_config_dir": str(nixos_dir)},
        "children": {"nix_builders": {"hosts": {"builder": {"ansible_host": "192.0.2.10"},
                                                "builder-2222": {"ansible_host": "192.0.2.11", "remote_builder_port": 2222}}},
                     "nix_clients": {"hosts": {"client": {}}}}}}
    results, run = run_plan(work, inventory, ("--check", "--diff"))
    assert not failures(results), (failures(results), run.stderr[-2000:])
    assert run.returncode == 0, run.stderr[-2000:]
    assert not (work / "etc-nix").exists(), "check mode created the nix.conf directory"
    assert sorted(p.name for p in nixos_dir.iterdir()) == ["configuration.nix"], "check mode wrote a NixOS module"
    assert "hardware-configuration.nix ];\n}\n" in (nixos_dir / "configuration.nix").read_text()
    return platform, results


def machines(results: dict) -> dict:
    """The client's planned machines entries (or NixOS buildMachines), by host."""
    client = results["client"]
    if not never_ran(client, "Write the builders to the machines file"):
        write = task(client, "Write the builders to the machines file")
        return {e["uri"].split("@")[1].split("?")[0]: e for e in write["invocation"]["module_args"]["builders"]}
    content = task(client, "Write the client's NixOS module and import it from configuration.nix")
    build_machines = content["invocation"]["module_args"]["content"]["nix"]["buildMachines"]
    assert build_machines, content["invocation"]["module_args"]["content"]
    # hostName carries the URI query (?remote-program=...) through to the rendered line.
    return {m["hostName"].split("?")[0]: m for m in build_machines}


def test_restart_handlers_plan_without_failing(plan):
    platform, results = plan
    names = [n for n, r in results["builder"] if ran(r)]
    if platform == "nixos":
        assert not [n for n in names if "Restart nix-daemon" in n], "NixOS restarts through nixos-rebuild"
    else:
        restart = task(results["builder"], "Restart nix-daemon on the builder")
        assert ran(restart) and restart["changed"] and not restart.get("failed")
        assert task(results["client"], "Restart nix-daemon on the client")["changed"]


def test_port_22_builder_is_pinned_by_column_8(plan):
    platform, results = plan
    entries = machines(results)
    if platform == "nixos":
        entry = entries["192.0.2.10"]
        assert entry["publicHostKey"] == HOST_KEY_B64 and entry["sshUser"] == "remotebuild"
    else:
        entry = entries["192.0.2.10"]
        assert entry["public_host_key"] == HOST_KEY_B64
        program = "" if platform == "debian" else f"?remote-program={UPSTREAM_BIN}/nix-daemon"
        assert entry["uri"] == "ssh-ng://remotebuild@192.0.2.10" + program


def test_port_2222_builder_alias_before_2_31_uri_port_after(plan):
    platform, results = plan
    entries = machines(results)
    if platform == "upstream":  # Nix 2.34: host:port in the URI, and Nix's column 8 would not match [host]:port
        entry = entries["192.0.2.11:2222"]
        assert entry["public_host_key"] == ""
        hosts = task(results["client"], "Pin the builders' host keys")["invocation"]["module_args"]["hosts"]
        assert {"name": "[192.0.2.11]:2222", "keys": [HOST_KEY], "state": "present"} in hosts
    else:  # Nix 2.26 / 2.28: an ssh alias carries the port, column 8 pins the alias
        key = "nix-builder-builder-2222"
        entry = entries[key]
        assert (entry.get("public_host_key") or entry.get("publicHostKey")) == HOST_KEY_B64


def test_layout_specific_builder_choices(plan):
    platform, results = plan
    builder = results["builder"]
    facts = task(builder, "Derive max-jobs, cores and speed factor from the machine")["ansible_facts"]
    bindir = {"debian": "/usr/bin", "upstream": UPSTREAM_BIN, "nixos": "/run/current-system/sw/bin"}[platform]
    assert facts["__remote_builder_forced_command"] == f"{bindir}/nix-daemon --stdio"
    # 4 CPUs, 8 GiB, 2 GiB a job (builder_capacity); the export clients read (builder_export).
    assert (facts["__remote_builder_max_jobs"], facts["__remote_builder_cores"], facts["__remote_builder_speed_factor"]) \
        == (4, 1, 4)
    export = task(builder, "Export the builder's connection details and capacity")["ansible_facts"]["remote_builder_export"]
    assert export == {
        "version": 1, "state": "present", "address": "192.0.2.10", "port": 22, "user": "remotebuild", "protocol": "ssh-ng",
        "host_key": HOST_KEY, "host_key_base64": HOST_KEY_B64, "systems": ["x86_64-linux"],
        "supported_features": ["benchmark", "big-parallel", "kvm", "nixos-test"], "mandatory_features": [],
        "max_jobs": 4, "speed_factor": 4, "trust": "trusted", "clients": 1,
        "remote_program": "" if platform == "debian" else f"{bindir}/nix-daemon",
    }
    other = task(results["builder-2222"], "Export the builder's connection details and capacity")["ansible_facts"]
    assert (other["remote_builder_export"]["address"], other["remote_builder_export"]["port"]) == ("192.0.2.11", 2222)
    if platform == "nixos":
        module = task(builder, "Write the builder's NixOS module and import it from configuration.nix")
        assert module["changed"] and ran(module)
        assert module["invocation"]["module_args"]["content"]["nix"]["settings"]["trusted-users"] == ["remotebuild"]
        assert never_ran(builder, "Write the builder's nix.conf settings")
        return
    user = task(builder, "Create the build user")["invocation"]["module_args"]
    assert user["groups"] == (["nix-users"] if platform == "debian" else None)
    conf = task(builder, "Write the builder's nix.conf settings")
    args = conf["invocation"]["module_args"]
    assert conf["changed"] and args["list_items"]["extra-trusted-users"]["present"] == ["remotebuild"]
    assert args["managed_marker"] == "nix_remote.builders" and "extra-trusted-users" not in args["settings"]
    assert ran(task(builder, "Write the nix-daemon drop-in"))
