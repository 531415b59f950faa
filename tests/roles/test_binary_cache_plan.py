"""The fleet binary cache planned with site.yml --check --diff (issue 16), in one run.

A NixOS cache host with its binary_cache_export set by hand in the inventory (the documented way for
such a host) is left to its own configuration, and that export is what every other host uses: Debian builders
and clients get the cache in extra-substituters and its key in extra-trusted-public-keys (list
items, so their own substituters stay), with fallback and connect-timeout; a Debian builder gets
the post-build hook and the uploader; NixOS hosts get the same settings in their generated module
and no uploader.  The real cache, uploads and substitution run on the testbed (molecule/fleet).
"""

from __future__ import annotations

import sys

import pytest

from plan_run import failures, never_ran, ran, run_plan, task
from test_linux_plan import HOST_KEY, linux_nix

PUBLIC = "cache-1:" + "A" * 43 + "="
EXPORT = {"name": "cache", "state": "present", "url": "http://192.0.2.5:5000", "public_key": PUBLIC, "priority": 30,
          "ssh_host": "192.0.2.5", "ssh_port": 22, "user": "nix-cache", "host_key": HOST_KEY,
          "known_hosts_line": "192.0.2.5 " + HOST_KEY}
CACHE_ITEMS = {"extra-substituters": {"present": ["http://192.0.2.5:5000"]}, "extra-trusted-public-keys": {"present": [PUBLIC]}}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    work = tmp_path_factory.mktemp("cache")
    nixos_dir = work / "etc-nixos"
    nixos_dir.mkdir()
    (nixos_dir / "configuration.nix").write_text("{ ... }:\n{\n  imports = [ ];\n}\n")

    def host(platform, **extra):
        nix = linux_nix(platform, str(tmp_path_factory.mktemp("etc") / "nix"))
        return {"remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix,
                "binary_cache_nix_info_override": nix, **extra}

    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nixos_config_dir": str(nixos_dir), "local_client_nixos_config_dir": str(nixos_dir)},
        "children": {
            "nix_caches": {"hosts": {"cache": host("nixos", binary_cache_export=EXPORT)}},
            "nix_builders": {"hosts": {"b-debian": host("debian", ansible_host="192.0.2.10"),
                                       "b-nixos": host("nixos", ansible_host="192.0.2.11")}},
            "nix_clients": {"hosts": {"c-debian": host("debian"), "c-nixos": host("nixos")}}}}}
    results, run = run_plan(work, inventory, ("--check", "--diff"))
    return results, run


def test_a_nixos_cache_host_with_its_export_by_hand_is_left_alone(plan):
    results, _run = plan
    assert not [f for f in failures(results) if f[0] == "cache"]
    assert never_ran(results["cache"], "Install nginx")
    assert never_ran(results["cache"], "Generate the cache's signing key")


@pytest.mark.parametrize("name, conf_task", [("b-debian", "Write the builder's nix.conf settings"),
                                             ("c-debian", "Point nix.conf at the machines file")])
def test_debian_hosts_add_the_cache_to_what_they_substitute_from(plan, name, conf_task):
    results, run = plan
    assert not [f for f in failures(results) if f[0] == name and "Restart" not in f[1]], run.stderr[-2000:]
    args = task(results[name], conf_task)["invocation"]["module_args"]
    for key, items in CACHE_ITEMS.items():
        assert args["list_items"][key]["present"] == items["present"]
    assert args["settings"]["fallback"] is True and args["settings"]["connect-timeout"] == 5


def test_a_debian_builder_queues_in_a_hook_and_runs_the_uploader(plan):
    results, _run = plan
    builder = results["b-debian"]
    settings = task(builder, "Write the builder's nix.conf settings")["invocation"]["module_args"]["settings"]
    assert settings["post-build-hook"] == "/usr/local/libexec/nix-fleet-cache-hook"
    unit = task(builder, "Install the uploader's unit")
    assert ran(unit) and unit["changed"]
    assert "--to nix-cache@192.0.2.5:22 " in unit["diff"][0]["after"]
    known = task(builder, "Pin the caches' host keys for the uploader")["invocation"]["module_args"]["content"]
    assert known == "192.0.2.5 " + HOST_KEY + "\n"
    # The client has nothing to upload.
    assert never_ran(results["c-debian"], "Install the uploader's unit")


@pytest.mark.parametrize("name, module_task", [
    ("b-nixos", "Write the builder's NixOS module and import it from configuration.nix"),
    ("c-nixos", "Write the client's NixOS module and import it from configuration.nix")])
def test_nixos_hosts_get_the_cache_in_their_module_and_no_uploader(plan, name, module_task):
    results, _run = plan
    settings = task(results[name], module_task)["invocation"]["module_args"]["content"]["nix"]["settings"]
    assert settings["extra-substituters"] == ["http://192.0.2.5:5000"]
    assert PUBLIC in settings["extra-trusted-public-keys"]
    assert settings["fallback"] is True and settings["connect-timeout"] == 5
    assert "post-build-hook" not in settings
    assert never_ran(results[name], "Install the uploader's unit")
