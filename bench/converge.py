# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Convergence cost of playbooks/site.yml: one builder and N clients on the testbed.

For each N (default 1, 4, 8) a fresh testbed (one builder, N clients, all of --release) gets
site.yml twice: the first run configures everything, the second must report no change.  For
each run: wall time and, from the JSON callback's recap, the tasks per host (ok, changed,
skipped).  The table ends with the cost per added client (the slope of wall time over N).

    .venv/bin/python bench/converge.py                     # N = 1, 4, 8 on trixie (Nix 2.26)
    .venv/bin/python bench/converge.py --clients 1,2 --release sid
    .venv/bin/python bench/converge.py --smoke             # N = 1; .build/bench-smoke/converge.json

Needs root (testbed.py).  Forks: one per host (--forks hosts, the default: no client waits for a
fork), a number, or `config` for ansible.cfg's (Ansible's default, 5); recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from offload import (  # noqa: E402  (the testbed helpers live beside, in offload.py)
    LOGS, RELEASES, REPO, RESULTS, SMOKE_RESULTS, Interrupted, Testbed, install_signal_handlers,
    ansible_env, drop_snapshot, log, snapshot_collection, testbed_name, tool,
)


def forks():
    """The forks ansible-playbook uses here (ansible.cfg, ANSIBLE_FORKS or the default)."""
    out = subprocess.run([tool("ansible-config"), "dump"], env=ansible_env(), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False).stdout
    for line in out.splitlines():
        if line.startswith("DEFAULT_FORKS"):
            return int(line.rsplit("=", 1)[1].strip())
    return None


def recap(output):
    """Per-host stats and the tasks that reported a change, from the json callback."""
    document = json.loads(output[output.index("{"):])
    changed_tasks = []
    for play in document.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                if result.get("changed"):
                    changed_tasks.append(f"{host}: {task['task']['name']}")
    return document["stats"], changed_tasks


def summarize(stats, builders, clients):
    def group(hosts):
        # ok counts every task that ran without failing, changed ones included.
        return {key: [stats[h].get(key, 0) for h in hosts] for key in ("ok", "changed", "skipped", "failures")}
    return {"builder": group(builders), "clients": group(clients)}


def bench_n(release, count):
    builder = "builder"
    clients = [f"client{i}" for i in range(1, count + 1)]
    hosts = {builder: release, **{c: release for c in clients}}
    name = testbed_name(f"bench-conv-{count}")
    with Testbed(name, hosts, {"nix_builders": [builder], "nix_clients": clients}) as bed:
        nix_version = bed.vars[builder].get("testbed_nix_version", "")
        record = {"release": release, "nix_version": nix_version, "clients": count, "builders": 1}
        for run in ("first", "second"):
            seconds, output = bed.playbook("playbooks/site.yml", json_output=True,
                                           log_path=os.path.join(LOGS, f"converge-{count}-{run}.json"))
            stats, changed_tasks = recap(output)
            tasks = summarize(stats, [builder], clients)
            record[f"{run}_wall_s"] = round(seconds, 2)
            record[f"{run}_tasks"] = tasks
            record[f"{run}_changed_total"] = sum(s.get("changed", 0) for s in stats.values())
            if run == "second":
                record["second_changed_tasks"] = changed_tasks
            log(f"N={count} {run} run: {seconds:.1f} s, changed {record[f'{run}_changed_total']}")
    return record


def add_costs(records):
    previous = None
    for record in records:
        for run in ("first", "second"):
            key = f"{run}_cost_per_added_client_s"
            record[key] = None
            if previous is not None and record["clients"] > previous["clients"]:
                step = record["clients"] - previous["clients"]
                record[key] = round((record[f"{run}_wall_s"] - previous[f"{run}_wall_s"]) / step, 2)
        previous = record


def table(records):
    header = (f"{'N':>3} {'1st s':>7} {'2nd s':>7} {'2nd changed':>11} {'tasks/client 1st (ok/chg)':>26} "
              f"{'tasks builder 1st':>17} {'+client 1st s':>13} {'+client 2nd s':>13}")
    rows = [header, "-" * len(header)]
    for r in records:
        first = r["first_tasks"]
        client_ok, client_changed = max(first["clients"]["ok"]), max(first["clients"]["changed"])
        b_ok, b_changed = first["builder"]["ok"][0], first["builder"]["changed"][0]

        def cost(key, r=r):
            return f"{r[key]:.2f}" if r[key] is not None else "-"
        rows.append(f"{r['clients']:>3} {r['first_wall_s']:>7.1f} {r['second_wall_s']:>7.1f} "
                    f"{r['second_changed_total']:>11} {f'{client_ok}/{client_changed}':>26} "
                    f"{f'{b_ok}/{b_changed}':>17} {cost('first_cost_per_added_client_s'):>13} "
                    f"{cost('second_cost_per_added_client_s'):>13}")
    return "\n".join(rows)


def markdown(records):
    """The table of docs/benchmarks.md, from the JSON records."""
    rows = ["| clients | Nix | 1st run s | 2nd run s | changed on 2nd run | tasks per client, 1st (ok/changed/skipped) "
            "| tasks on the builder, 1st (ok/changed/skipped) | s per added client, 1st | s per added client, 2nd |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        first = r["first_tasks"]

        def triple(group):
            return "/".join(str(max(group[k])) for k in ("ok", "changed", "skipped"))

        def cost(key, r=r):
            return f"{r[key]:.2f}" if r[key] is not None else "-"
        rows.append(f"| {r['clients']} | {r['nix_version']} | {r['first_wall_s']:.1f} | {r['second_wall_s']:.1f} "
                    f"| {r['second_changed_total']} | {triple(first['clients'])} | {triple(first['builder'])} "
                    f"| {cost('first_cost_per_added_client_s')} | {cost('second_cost_per_added_client_s')} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--clients", default="1,4,8", help="comma-separated client counts (default 1,4,8)")
    parser.add_argument("--release", default="trixie", choices=RELEASES, help="release of every host")
    parser.add_argument("--smoke", action="store_true", help="N = 1 only; result under .build/bench-smoke/")
    parser.add_argument("--output-dir", help="where converge.json goes (default bench/results/)")
    parser.add_argument("--forks", default="hosts",
                        help="'hosts' (one fork per host, the default), a number, or 'config' (ansible.cfg's)")
    parser.add_argument("--markdown", metavar="JSON", help="print this converge.json as a Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown, encoding="utf-8") as handle:
            print(markdown(json.load(handle)))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (the testbed starts systemd-nspawn containers)")
    try:
        counts = sorted({int(n) for n in args.clients.split(",") if n})
    except ValueError:
        parser.error(f"--clients: expected numbers such as 1,4,8, got {args.clients!r}")
    if args.smoke:
        counts = [1]
    if not counts or min(counts) < 1:
        parser.error("--clients: every count must be at least 1")
    if args.forks not in ("hosts", "config") and not args.forks.isdigit():
        parser.error(f"--forks: expected hosts, config or a number, got {args.forks!r}")
    out_dir = args.output_dir or (SMOKE_RESULTS if args.smoke else RESULTS)
    os.makedirs(out_dir, exist_ok=True)

    install_signal_handlers()
    records = []
    try:
        source = snapshot_collection()
        for count in counts:
            if args.forks == "config":
                os.environ.pop("ANSIBLE_FORKS", None)
            else:
                os.environ["ANSIBLE_FORKS"] = str(count + 1 if args.forks == "hosts" else int(args.forks))
            fork_count = forks()
            records.append(bench_n(args.release, count))
            records[-1].update(forks=fork_count, collection=source)
    except Interrupted as exc:
        log(f"interrupted ({exc}); testbed torn down")
        return 130
    finally:
        drop_snapshot()
    add_costs(records)
    path = os.path.join(out_dir, "converge.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(records, handle, indent=2)
        handle.write("\n")
    log(f"wrote {path}")
    print(table(records))
    if any(r["second_changed_total"] for r in records):
        log("second run reported changes: " + "; ".join(t for r in records for t in r["second_changed_tasks"]))
        return 1
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    log(f"done in {time.monotonic() - started:.0f} s")
    sys.exit(code)
