"""The builder's scheduled garbage collection (issue 14 item 5), planned with site.yml --check --diff.

Debian gets a systemd service and timer with a random delay, NixOS nix.gc in the generated module,
Determinate Nix nothing (determinate-nixd collects), and a schedule systemd cannot read is refused
before anything is written. The testbed half (the timer enabled, the service run for real) is in
molecule/default/tests/test_remote_builds.py.
"""

from __future__ import annotations

import sys

import pytest

from plan_run import failures, never_ran, run_plan, task
from test_linux_plan import linux_nix


def _plan(tmp_path_factory, platform: str, **extra):
    work = tmp_path_factory.mktemp(f"{platform}-gc")
    nixos_dir = work / "etc-nixos"
    nixos_dir.mkdir()
    (nixos_dir / "configuration.nix").write_text("{ ... }:\n{\n  imports = [ ];\n}\n")
    nix = linux_nix("nixos" if platform == "nixos" else "debian", str(work / "etc-nix"))
    if platform == "determinate":
        nix.update(implementation="determinate", version="3.8.0")
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix,
                 "remote_builder_nixos_config_dir": str(nixos_dir), "local_client_nixos_config_dir": str(nixos_dir),
                 **extra},
        "children": {"nix_builders": {"hosts": {"builder": {"ansible_host": "192.0.2.10"}}},
                     "nix_clients": {"hosts": {"client": {}}}}}}
    return run_plan(work, inventory, ("--check", "--diff", "--limit", "builder"))


@pytest.fixture(scope="module", params=["debian", "nixos", "determinate"])
def planned(request, tmp_path_factory):
    results, run = _plan(tmp_path_factory, request.param, remote_builder_gc_options="--delete-older-than 14d")
    assert not failures(results), (failures(results), run.stderr[-2000:])
    return request.param, results["builder"]


def _item(result: dict, unit: str) -> dict:
    return next(r for r in result["results"] if r["item"] == unit)


def test_gc_is_scheduled_with_a_random_delay_per_platform(planned):
    platform, builder = planned
    if platform == "determinate":
        assert never_ran(builder, "Write the garbage collection service and timer")
        return
    if platform == "nixos":
        module = task(builder, "Write the builder's NixOS module and import it from configuration.nix")
        gc = module["invocation"]["module_args"]["content"]["nix"]["gc"]
        assert gc == {"automatic": True, "dates": "weekly", "randomizedDelaySec": "1h", "persistent": True,
                      "options": "--delete-older-than 14d"}
        assert never_ran(builder, "Write the garbage collection service and timer")
        return
    units = task(builder, "Write the garbage collection service and timer")
    service = _item(units, "service")["invocation"]["module_args"]["content"]
    timer = _item(units, "timer")["invocation"]["module_args"]["content"]
    assert "\nExecStart=/usr/bin/nix-collect-garbage --delete-older-than 14d\n" in service
    assert "\nType=oneshot\n" in service and "\nNice=19\n" in service
    assert "\nOnCalendar=weekly\n" in timer and "\nRandomizedDelaySec=1h\n" in timer and "\nPersistent=true\n" in timer
    assert "\nWantedBy=timers.target\n" in timer


@pytest.mark.parametrize("var, value, what", [
    ("remote_builder_gc_schedule", "every other tuesday", "calendar event"),
    ("remote_builder_gc_randomized_delay", "a while", "time span"),
])
def test_a_schedule_systemd_cannot_read_is_refused(tmp_path_factory, var, value, what):
    results, run = _plan(tmp_path_factory, "debian", **{var: value})
    failed = failures(results)
    assert [n for _h, n, _m in failed] == ["nix_remote.builders.remote_builder : Refuse a schedule or delay systemd cannot read"], failed
    message = failed[0][2]
    assert f'{var} is "{value}", which systemd does not read as a' in " ".join(message.split()) and what in message, message
    assert never_ran(results["builder"], "Write the garbage collection service and timer")
