# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Builder health (issue 14 item 2): a dead builder's cost per build, without and with the service.

Nix retries an unreachable builder for every derivation (NixOS/nix#13513).  When the builder's
packets are dropped, each try waits for ssh's connect timeout; when its sshd is stopped the
connection is refused at once.  local_client_builder_health keeps a live machines file without
the builders that do not answer.

Two builders and one client, all --release (trixie, Nix 2.26), configured by site.yml with the
defaults as shipped plus `local_client_builder_health: true`.  The two configurations differ in
nothing but the machines file Nix reads (nix.conf's builders line): without the service it is
/etc/nix/machines (the default), with it the live file.  Each run passes that line as
`--builders`, which for root (a trusted user) is exactly nix.conf's value, so both run on the
same hosts in the same round.

Faults (on builder `dead`; builder `live` is always up): `none`; `blackholed`, every packet to the
builder dropped (nftables, tests/testbed/testbed.py blackhole); `refused`, its sshd stopped.  For
each fault the service's detection time is recorded (fault set until the live file drops the
builder; fault cleared until it is back), then the rounds alternate without/with.

Workload: sleep16x1s (16 derivations of 1 s each, as in bench/offload.py), --max-jobs 0.

    .venv/bin/python bench/health.py                 # 3 rounds per fault and configuration
    .venv/bin/python bench/health.py --smoke         # 1 round; .build/bench-smoke/health.json
    .venv/bin/python bench/health.py --markdown bench/results/health.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from offload import (  # noqa: E402  (the testbed helpers live beside, in offload.py)
    CLIENT_DIR, LOGS, RELEASES, RESULTS, SMOKE_RESULTS, TESTBED, TIMER, Interrupted, Testbed, Workload,
    drop_snapshot, expression, install_signal_handlers, log, prepare_client, snapshot_collection,
    testbed_name, wait_for_user_manager,
)

LIVE, DEAD, CLIENT = "live", "dead", "client"
MACHINES = "/etc/nix/machines"
LIVE_MACHINES = "/var/lib/nix-remote-builders/machines"  # roles/local_client/vars/main.yml
FAULTS = ("none", "blackholed", "refused")
CONFIGS = ("without", "with")
WORKLOAD = Workload("sleep16x1s", 16, "sleep", sleep_s=1)


def inside(bed, host, command):
    """Run a command in a test host's namespaces from outside (its sshd may be stopped)."""
    beds = json.loads(subprocess.check_output([sys.executable, TESTBED, "status", "--json"]))
    nspawn = next(h["pid"] for b in beds if b["name"] == bed.name for h in b["hosts"] if h["name"] == host)
    init = subprocess.check_output(["pgrep", "-P", str(nspawn)]).split()[0].decode()
    subprocess.run(["nsenter", "-t", init, "-a", "sh", "-c", command], check=True, capture_output=True, timeout=60)


def set_fault(bed, fault, on):
    if fault == "blackholed":
        subprocess.run([sys.executable, TESTBED, "blackhole", "--name", bed.name, DEAD, "on" if on else "off"],
                       check=True, capture_output=True)
    elif fault == "refused":
        # The socket too: with socket activation a stopped ssh.service would start again.
        inside(bed, DEAD, "systemctl stop ssh.socket ssh.service 2>/dev/null; true" if on else "systemctl start ssh.service")


def dead_listed(bed, address):
    """Whether the live file lists the dead builder (its entry not commented out)."""
    text = bed.sh(CLIENT, f"cat {LIVE_MACHINES}")
    return any(line.split()[0].endswith("@" + address) for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith("#"))


def wait_listed(bed, address, wanted, limit_s=120):
    """Seconds until the live file lists the dead builder (wanted True) or not."""
    start = time.monotonic()
    while dead_listed(bed, address) != wanted:
        if time.monotonic() - start > limit_s:
            raise RuntimeError(f"the live file still {'lacks' if wanted else 'lists'} {DEAD} after {limit_s} s")
        time.sleep(0.2)
    return round(time.monotonic() - start, 1)


def run_build(bed, builders, addresses, timeout_s):
    """One nix-build of the workload with this builders value; (seconds, builds per builder)."""
    nonce = uuid.uuid4().hex[:12]
    work = f"{CLIENT_DIR}/{nonce}"
    bed.sh(CLIENT, f"mkdir -p {work} && cat > {work}/workload.nix", input_bytes=expression(WORKLOAD, nonce, []).encode())
    command = (f"cd {work} && NIX_REMOTE=daemon python3 -c {shlex.quote(TIMER)} "
               f"timeout -k 10 {int(timeout_s)} nix-build --max-jobs 0 --no-out-link --builders {shlex.quote(builders)}"
               f" {work}/workload.nix > {work}/out 2> {work}/err; rc=$?; cat {work}/out; exit $rc")
    try:
        output = bed.sh(CLIENT, command)
    except RuntimeError:
        err = bed.sh(CLIENT, f"tail -c 3000 {work}/err", check=False)
        raise RuntimeError(f"nix-build with builders {builders} failed:\n{err}") from None
    err = bed.sh(CLIENT, f"cat {work}/err")
    bed.sh(CLIENT, f"rm -rf {work}", check=False)
    lines = output.strip().splitlines()
    if len([line for line in lines if line.startswith("/nix/store/")]) != WORKLOAD.jobs:
        raise RuntimeError(f"expected {WORKLOAD.jobs} outputs:\n{output}")
    placed = {name: len(re.findall(r"building '[^']+' on '[^']*@%s'" % re.escape(address), err))
              for name, address in addresses.items()}
    failed_tries = len(re.findall(r"cannot build on ", err))
    return float(lines[-1]), placed, failed_tries


def bench(release, rounds, timeout_s):
    name = testbed_name("bench-health")
    with Testbed(name, {LIVE: release, DEAD: release, CLIENT: release},
                 {"nix_builders": [LIVE, DEAD], "nix_clients": [CLIENT]}) as bed:
        nix_version = bed.vars[CLIENT].get("testbed_nix_version", "")
        prepare_client(bed, CLIENT)
        seconds, _out = bed.playbook("playbooks/site.yml", extra_vars={"local_client_builder_health": True},
                                     log_path=os.path.join(LOGS, "health-site.log"))
        for builder in (LIVE, DEAD):
            bed.sh(builder, "loginctl enable-linger remotebuild")
        wait_for_user_manager(bed, [LIVE, DEAD])
        conf = bed.sh(CLIENT, "nix --extra-experimental-features nix-command config show builders").strip()
        if conf != "@" + LIVE_MACHINES:
            raise RuntimeError(f"with local_client_builder_health the client's builders setting is {conf!r}")
        interval = bed.sh(CLIENT, "systemctl show -p ExecStart nix-remote-builders-health.service")
        log(f"site.yml took {seconds:.0f} s; Nix {nix_version}; service: {interval.strip()[:200]}")
        values = {"without": "@" + MACHINES, "with": "@" + LIVE_MACHINES}
        addresses = {LIVE: bed.address(LIVE), DEAD: bed.address(DEAD)}
        run_build(bed, values["without"], addresses, timeout_s)  # not recorded: first logins
        results, detection = [], []
        for fault in FAULTS:
            if fault != "none":
                set_fault(bed, fault, True)
                down_s = wait_listed(bed, addresses[DEAD], False)
            for index in range(rounds):
                order = CONFIGS if index % 2 == 0 else CONFIGS[::-1]
                for config in order:
                    wall, placed, tries = run_build(bed, values[config], addresses, timeout_s)
                    results.append({"fault": fault, "config": config, "round": index + 1, "wall_s": round(wall, 2),
                                    "builds_on": placed, "failed_tries": tries})
                    log(f"{fault:10} {config:7} round {index + 1}: {wall:.2f} s, builds {placed}, "
                        f"'cannot build on' {tries}")
            if fault != "none":
                set_fault(bed, fault, False)
                up_s = wait_listed(bed, addresses[DEAD], True)
                detection.append({"fault": fault, "removed_after_s": down_s, "back_after_s": up_s})
                log(f"{fault}: the live file dropped {DEAD} {down_s} s after the fault, listed it again "
                    f"{up_s} s after it was cleared")
        journal = bed.sh(CLIENT, "journalctl -u nix-remote-builders-health.service -o cat | tail -20", check=False)
    records = []
    for fault in FAULTS:
        for config in CONFIGS:
            mine = [r for r in results if r["fault"] == fault and r["config"] == config]
            walls = [r["wall_s"] for r in mine]
            records.append({
                "release": release, "nix_version": nix_version, "workload": WORKLOAD.name, "fault": fault,
                "config": config, "builders": values[config], "wall_s_median": round(statistics.median(walls), 2),
                "wall_s_runs": walls, "failed_tries": [r["failed_tries"] for r in mine],
                "builds_on": [r["builds_on"] for r in mine],
                "detection": next((d for d in detection if d["fault"] == fault), None),
            })
    log("service journal (last lines):\n" + journal)
    return records


def markdown(records):
    rows = ["| fault on builder `dead` | health service | wall s median | runs s | 'cannot build on' per run "
            "| builds on live/dead | dropped from the live file after s | back after s |",
            "|---|---|---|---|---|---|---|---|"]
    for r in records:
        runs = ", ".join(f"{w:.2f}" for w in r["wall_s_runs"])
        tries = ", ".join(str(t) for t in r["failed_tries"])
        placed = ", ".join(f"{b[LIVE]}/{b[DEAD]}" for b in r["builds_on"])
        d = r["detection"] or {}
        rows.append(f"| {r['fault']} | {r['config']} | {r['wall_s_median']:.2f} | {runs} | {tries} | {placed} "
                    f"| {d.get('removed_after_s', '-')} | {d.get('back_after_s', '-')} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per fault and configuration (default 3)")
    parser.add_argument("--release", default="trixie", choices=RELEASES, help="release of every host (default trixie)")
    parser.add_argument("--build-timeout", type=float, default=900, help="seconds a nix-build may take")
    parser.add_argument("--smoke", action="store_true", help="1 round; result under .build/bench-smoke/")
    parser.add_argument("--output-dir", help="where health.json goes (default bench/results/)")
    parser.add_argument("--markdown", metavar="JSON", help="print this health.json as a Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown, encoding="utf-8") as handle:
            print(markdown(json.load(handle)))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (the testbed starts systemd-nspawn containers)")
    rounds = 1 if args.smoke else args.rounds
    out_dir = args.output_dir or (SMOKE_RESULTS if args.smoke else RESULTS)
    os.makedirs(out_dir, exist_ok=True)
    install_signal_handlers()
    try:
        source = snapshot_collection()
        records = bench(args.release, rounds, args.build_timeout)
    except Interrupted as exc:
        log(f"interrupted ({exc}); testbed torn down")
        return 130
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log(f"FAILED, no result written: {exc}")
        return 1
    finally:
        drop_snapshot()
    for record in records:
        record["collection"] = source
    path = os.path.join(out_dir, "health.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(records, handle, indent=2)
        handle.write("\n")
    log(f"wrote {path}")
    print(markdown(records))
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    log(f"done in {time.monotonic() - started:.0f} s")
    sys.exit(code)
