"""The client's switches (issue 14 item 4), planned with site.yml --check --diff on Debian and NixOS.

local_client_builders_enabled: false gives Nix no builders while the machines file (or NixOS's
nix.buildMachines), the pinned host keys and the SSH settings stay; local_client_max_jobs sets
the client's own max-jobs. The testbed half is molecule/default/tests/test_remote_builds.py.
"""

from __future__ import annotations

import sys

import pytest

from plan_run import failures, never_ran, run_plan, task
from test_linux_plan import linux_nix


@pytest.fixture(scope="module", params=["debian", "nixos"])
def disabled(request, tmp_path_factory):
    platform = request.param
    work = tmp_path_factory.mktemp(f"{platform}-switches")
    nixos_dir = work / "etc-nixos"
    nixos_dir.mkdir()
    (nixos_dir / "configuration.nix").write_text("{ ... }:\n{\n  imports = [ ];\n}\n")
    nix = linux_nix(platform, str(work / "etc-nix"))
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix,
                 "remote_builder_nixos_config_dir": str(nixos_dir), "local_client_nixos_config_dir": str(nixos_dir),
                 "local_client_builders_enabled": False, "local_client_max_jobs": 0},
        "children": {"nix_builders": {"hosts": {"builder": {"ansible_host": "192.0.2.10"}}},
                     "nix_clients": {"hosts": {"client": {}}}}}}
    results, run = run_plan(work, inventory, ("--check", "--diff"))
    assert not failures(results), (failures(results), run.stderr[-2000:])
    return platform, results["client"]


def test_disabled_builders_keep_their_configuration(disabled):
    platform, client = disabled
    if platform == "nixos":
        content = task(client, "Write the client's NixOS module and import it from configuration.nix")
        nix = content["invocation"]["module_args"]["content"]["nix"]
        assert nix["distributedBuilds"] is False
        assert [m["hostName"].split("?")[0] for m in nix["buildMachines"]] == ["192.0.2.10"]
        assert nix["settings"]["max-jobs"] == 0
        return
    machines = task(client, "Write the builders to the machines file")
    assert [b["uri"] for b in machines["invocation"]["module_args"]["builders"]] == ["ssh-ng://remotebuild@192.0.2.10"]
    assert not never_ran(client, "Pin the builders' host keys")
    conf = task(client, "Point nix.conf at the machines file")
    assert conf["settings"]["builders"] == "" and conf["settings"]["max-jobs"] == "0", conf["settings"]
    after = conf["diff"]["after"] if isinstance(conf["diff"], dict) else conf["diff"][0]["after"]
    assert "\nbuilders =\n" in "\n" + after or "\nbuilders = \n" in "\n" + after, after
