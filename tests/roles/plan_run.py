"""Plan a site.yml run with --check on this machine, for platforms described by nix_info results.

The roles' documented test hook (<role>_nix_info_override) replaces nix_info's result, so a
run on local inventory hosts shows, through the JSON callback, what the roles would do on
that platform.  Shared by the plan tests of tests/roles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)


def playbook_env(work, **extra: str) -> dict:
    """The environment for an ansible-playbook run in WORK: this checkout's collection, JSON output."""
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(work / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOCAL_TEMP=str(work / "local-tmp"),
        ANSIBLE_REMOTE_TMP=str(work / "remote-tmp"),
        **extra,
    )


def run_plan(work, inventory: dict, extra_args: tuple = ("--check",), env: dict | None = None,
             playbook: str | None = None) -> tuple[dict, subprocess.CompletedProcess]:
    """Run site.yml in WORK on INVENTORY (with ENV added to the environment); return host -> [(task name,
    result)] in run order, and the process."""
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (work / "ansible.cfg").write_text("[defaults]\n")
    environ = playbook_env(work, **(env or {}))
    run = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "inventory.yml", *extra_args,
         playbook or os.path.join(REPO, "playbooks", "site.yml")],
        cwd=work, env=environ, capture_output=True, text=True, timeout=300, check=False,
    )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON report (exit %d):\n%s\n%s"
                             % (run.returncode, run.stdout[-2000:], run.stderr[-3000:])) from None
    results: dict = {}
    for play in report["plays"]:
        for task_ in play["tasks"]:
            for host, result in task_["hosts"].items():
                results.setdefault(host, []).append((task_["task"]["name"], result))
    return results, run


def failures(results: dict) -> list:
    """(host, task, message) of every failed task."""
    return [(h, n, r.get("msg")) for h, rs in results.items() for n, r in rs if r.get("failed")]


def task(results: list, suffix: str) -> dict:
    """The first result of the task named SUFFIX (with or without its role prefix)."""
    found = [r for n, r in results if n.endswith(" : " + suffix) or n == suffix]
    assert found, f"no task {suffix!r} in {[n for n, _result in results]}"
    return found[0]


def never_ran(results: list, suffix: str) -> bool:
    """True when no task named SUFFIX ran: skipped, or not even included (a platform's file)."""
    return not [r for n, r in results if (n.endswith(" : " + suffix) or n == suffix) and not r.get("skipped")]


def ran(result: dict) -> bool:
    return not result.get("skipped")


def plan_one_pair(work, nix, extra_args: tuple = ("--check", "--diff"), **extra) -> tuple[dict, subprocess.CompletedProcess]:
    """Plan site.yml for one local builder (192.0.2.10) and one client, both on the platform NIX describes,
    with EXTRA as inventory variables and a NixOS configuration directory in WORK."""
    nixos_dir = work / "etc-nixos"
    nixos_dir.mkdir()
    (nixos_dir / "configuration.nix").write_text("{ ... }:\n{\n  imports = [ ];\n}\n")
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix,
                 "remote_builder_nixos_config_dir": str(nixos_dir), "local_client_nixos_config_dir": str(nixos_dir),
                 **extra},
        "children": {"nix_builders": {"hosts": {"builder": {"ansible_host": "192.0.2.10"}}},
                     "nix_clients": {"hosts": {"client": {}}}}}}
    return run_plan(work, inventory, extra_args)
