"""Runs that leave the builders out (issue 17 item 4). With the jsonfile fact cache that AWX-style
runs use, a run limited to the clients (`--limit nix_clients`) finds the builders' exports from an
earlier run and plans their entries; a withdrawn builder's cached export is the withdrawal. Without
a cache, the client reads the export file each builder keeps (remote_builder_export_file), delegated
to the builder; only a builder with no such file keeps its old entries, with a warning. Planned with
site.yml --check on local hosts.
"""

from __future__ import annotations

import json
import sys

from plan_run import failures, never_ran, run_plan, task
from test_linux_plan import linux_nix, machines

WARN = "Warn about builders that were not configured in this run"
WORK_OUT = "Work out the builders from the inventory and local_client_unmanaged_builders"


def _inventory(nix, builder_vars=None):
    return {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix},
        "children": {"nix_builders": {"hosts": {"builder": {"ansible_host": "192.0.2.10", **(builder_vars or {})}}},
                     "nix_clients": {"hosts": {"client": {}}}}}}


def _cache_env(work):
    return {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(work / "facts"),
            "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "86400"}


def test_a_client_only_run_uses_the_cached_exports_and_a_withdrawal_replaces_them(tmp_path):
    """One cache through a fleet's life: written by a full run, read by a client-only run, then the
    builder withdrawn in a run limited to it, whose cached export the next client-only run reads."""
    nix = linux_nix("debian", str(tmp_path / "etc-nix"))
    first, run = run_plan(tmp_path, _inventory(nix), ("--check",), env=_cache_env(tmp_path))
    assert not failures(first), (failures(first), run.stderr[-2000:])
    cached = [p.name for p in (tmp_path / "facts").iterdir()]
    assert [n for n in cached if n.endswith("builder")], f"the export was not cached: {cached}"

    limited, run = run_plan(tmp_path, _inventory(nix), ("--check", "--limit", "nix_clients"), env=_cache_env(tmp_path))
    assert not failures(limited), (failures(limited), run.stderr[-2000:])
    assert "builder" not in limited
    assert never_ran(limited["client"], WARN)
    assert "192.0.2.10" in machines(limited)
    assert [r["name"] for r in task(limited["client"], WORK_OUT)["ansible_facts"]["__local_client_records"]] == ["builder"]

    withdrawn, run = run_plan(tmp_path, _inventory(nix, {"nix_remote_state": "absent"}), ("--check", "--limit", "builder"),
                              env=_cache_env(tmp_path))
    assert not [f for f in failures(withdrawn) if "Restart" not in f[1]], (failures(withdrawn), run.stderr[-2000:])
    limited, run = run_plan(tmp_path, _inventory(nix), ("--check", "--limit", "nix_clients"), env=_cache_env(tmp_path))
    assert not failures(limited), (failures(limited), run.stderr[-2000:])
    # Withdrawn, not unconfigured: no entry planned and no warning.
    assert task(limited["client"], WORK_OUT)["ansible_facts"]["__local_client_records"] == []
    assert never_ran(limited["client"], WARN)


EXPORT = "Export the builder's connection details and capacity"


def test_without_a_cache_the_limited_run_reads_the_export_the_builder_kept(tmp_path):
    """The file the builder's run wrote (the run is --check here, so the test writes what it would)."""
    nix = linux_nix("debian", str(tmp_path / "etc-nix"))
    kept = tmp_path / "nix_remote_builders.fact"
    inventory = _inventory(nix, {"remote_builder_export_file": str(kept)})
    first, run = run_plan(tmp_path, inventory, ("--check",))
    assert not failures(first), (failures(first), run.stderr[-2000:])
    export = task(first["builder"], EXPORT)["ansible_facts"]["remote_builder_export"]
    written = task(first["builder"], "Keep the export on the builder for runs that leave it out")
    assert written["changed"] and written["invocation"]["module_args"]["path"] == str(kept)
    kept.write_text(json.dumps(export, indent=4, sort_keys=True) + "\n")

    limited, run = run_plan(tmp_path, inventory, ("--check", "--limit", "nix_clients"))
    assert not failures(limited), (failures(limited), run.stderr[-2000:])
    assert "builder" not in limited
    assert never_ran(limited["client"], WARN)
    assert "192.0.2.10" in machines(limited)
    assert [r["name"] for r in task(limited["client"], WORK_OUT)["ansible_facts"]["__local_client_records"]] == ["builder"]

    # Edited by hand into bad JSON: the client's run stops, naming the builder, the file and the line.
    kept.write_text('{\n  "address": 192.0.2.10\n}\n')
    broken, run = run_plan(tmp_path, inventory, ("--check", "--limit", "nix_clients"))
    ((host, name, message),) = failures(broken)
    assert (host, name.split(" : ")[-1]) == ("client", WORK_OUT), run.stderr[-2000:]
    assert f"kept_exports: builder builder: {kept}: line 2, column 19: not valid JSON (Expecting ',' delimiter)" in message
    assert never_ran(broken["client"], "Write the builders to the machines file")


def test_without_a_cache_or_a_kept_export_the_limited_run_keeps_old_entries_and_warns(tmp_path):
    nix = linux_nix("debian", str(tmp_path / "etc-nix"))
    inventory = _inventory(nix, {"remote_builder_export_file": str(tmp_path / "none.fact")})
    limited, run = run_plan(tmp_path, inventory, ("--check", "--limit", "nix_clients"))
    assert not failures(limited), (failures(limited), run.stderr[-2000:])
    assert "builder" in task(limited["client"], WARN)["msg"]
