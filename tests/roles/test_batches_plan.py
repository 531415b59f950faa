"""site.yml's order under Ansible's scaling keywords (issue 17 item 4): the clients read their builders'
exports from hostvars, set by the builders' play, which has ended before the clients' play starts, so
`serial` batches and `strategy: free` in any play change nothing a client plans. The plays here are
site.yml's (imported), with serial 1 and the free strategy forced on every play; planned with --check
on local hosts: 2 builders, 3 clients, each client must plan both builders.
"""

from __future__ import annotations

import sys

import yaml

from plan_run import REPO, failures, run_plan, task
from test_linux_plan import linux_nix

WORK_OUT = "Work out the builders from the inventory and local_client_unmanaged_builders"


def test_serial_batches_and_the_free_strategy_plan_every_builder_for_every_client(tmp_path):
    with open(f"{REPO}/playbooks/site.yml", encoding="utf-8") as handle:
        site = yaml.safe_load(handle)
    for play in site:
        play.update(serial=1, strategy="free")
    playbook = tmp_path / "site-batched.yml"
    playbook.write_text(yaml.safe_dump(site))
    nix = linux_nix("debian", str(tmp_path / "etc-nix"))
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix},
        "children": {"nix_builders": {"hosts": {"b1": {"ansible_host": "192.0.2.10"}, "b2": {"ansible_host": "192.0.2.11"}}},
                     "nix_clients": {"hosts": {"c1": {}, "c2": {}, "c3": {}}}}}}
    results, run = run_plan(tmp_path, inventory, ("--check",), playbook=str(playbook))
    assert not failures(results), (failures(results), run.stderr[-2000:])
    for client in ("c1", "c2", "c3"):
        records = task(results[client], WORK_OUT)["ansible_facts"]["__local_client_records"]
        assert sorted(r["name"] for r in records) == ["b1", "b2"], (client, records)
