# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The cost of emulation (issue 15): the same workloads built for aarch64-linux through qemu and for
x86_64-linux natively, on the same builder in the same run.

One builder and one client (sid, Nix 2.34), configured by site.yml with the defaults as shipped
plus `remote_builder_emulated_systems: [aarch64-linux]` (the feature is opt-in). The testbed
registers qemu-aarch64 in this machine's kernel (`testbed.py up --emulate`, F flag). Each
derivation's builder is a static busybox: Debian's busybox-static of the test hosts (x86_64) or of
arm64 (aarch64, run by qemu), with the same script:

- trivial16: 16 derivations that write their output (`echo`): start-up cost per build.
- sleep16x1s: 16 x `sleep 1`, as in bench/offload.py: waiting, not computing.
- cpu4x1s: 4 x a shell loop that takes about 1 s natively (calibrated on the builder at the
  start): computing, where an emulator pays most.

Rounds alternate native and emulated. `nix-build --max-jobs 0` on the client, timed there.

    .venv/bin/python bench/emulation.py              # 3 rounds; bench/results/emulation.json
    .venv/bin/python bench/emulation.py --smoke      # 1 round; .build/bench-smoke/emulation.json
    .venv/bin/python bench/emulation.py --markdown bench/results/emulation.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "testbed"))
from offload import (  # noqa: E402  (the testbed helpers live beside, in offload.py)
    CLIENT_DIR, LOGS, RESULTS, SMOKE_RESULTS, TIMER, Interrupted, Testbed, drop_snapshot, install_signal_handlers, log,
    snapshot_collection, testbed_name, wait_for_user_manager,
)
import binfmt_host  # noqa: E402
import testbed as testbed_module  # noqa: E402

BUILDER, CLIENT = "builder", "client"
SYSTEMS = {"native": "x86_64-linux", "emulated": "aarch64-linux"}
WORKLOADS = (("trivial16", 16), ("sleep16x1s", 16), ("cpu4x1s", 4))


def script(workload, loops):
    if workload == "trivial16":
        return "echo $nonce > $out"
    if workload == "sleep16x1s":
        return "$bb/busybox sleep 1; echo $nonce > $out"
    return f"i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done; echo $nonce > $out"


def expression(workload, jobs, system, nonce, loops):
    bb = f"{CLIENT_DIR}/bb-{system}"
    return (f'let bb = builtins.path {{ path = {bb}; name = "bb-{system}"; }}; in '
            f'builtins.genList (i: derivation {{ name = "emu-{workload}-${{toString i}}"; system = "{system}"; '
            f'builder = "${{bb}}/busybox"; args = [ "sh" "-c" {json.dumps(script(workload, loops))} ]; '
            f'inherit bb; nonce = "{nonce}-${{toString i}}"; }}) {jobs}')


def run_build(bed, workload, jobs, system, loops, timeout_s):
    nonce = uuid.uuid4().hex[:12]
    work = f"{CLIENT_DIR}/{nonce}"
    bed.sh(CLIENT, f"mkdir -p {work} && cat > {work}/w.nix",
           input_bytes=expression(workload, jobs, system, nonce, loops).encode())
    command = (f"cd {work} && NIX_REMOTE=daemon python3 -c {shlex.quote(TIMER)} timeout -k 10 {int(timeout_s)} "
               f"nix-build --max-jobs 0 --no-out-link {work}/w.nix > {work}/out 2> {work}/err; rc=$?; "
               f"cat {work}/out; [ $rc = 0 ] || tail -c 2000 {work}/err; exit $rc")
    output = bed.sh(CLIENT, command)
    bed.sh(CLIENT, f"rm -rf {work}", check=False)
    lines = output.strip().splitlines()
    if len([line for line in lines if line.startswith("/nix/store/")]) != jobs:
        raise RuntimeError(f"expected {jobs} outputs:\n{output}")
    return float(lines[-1])


def calibrate(bed):
    """Loop iterations that take about 1 s in the native busybox shell on the builder."""
    probe = 200000
    text = bed.sh(BUILDER, f"python3 -c {shlex.quote(TIMER)} /bin/busybox sh -c "
                           f"{shlex.quote(f'i=0; while [ $i -lt {probe} ]; do i=$((i+1)); done')}")
    seconds = float(text.strip().splitlines()[-1])
    return max(1000, int(probe / seconds)), seconds


def bench(rounds, timeout_s):
    name = testbed_name("bench-emulation")
    with Testbed(name, {BUILDER: "sid", CLIENT: "sid"}, {"nix_builders": [BUILDER], "nix_clients": [CLIENT]},
                 emulate={BUILDER: ["aarch64-linux"]}) as bed:
        nix_version = bed.vars[CLIENT].get("testbed_nix_version", "")
        arm = binfmt_host.foreign_busybox("aarch64-linux", testbed_module.CACHE, testbed_module.MIRROR)
        bed.sh(CLIENT, f"mkdir -p {CLIENT_DIR}/bb-x86_64-linux {CLIENT_DIR}/bb-aarch64-linux"
                       f" && cp /bin/busybox {CLIENT_DIR}/bb-x86_64-linux/busybox")
        bed.sh(CLIENT, f"cat > {CLIENT_DIR}/bb-aarch64-linux/busybox && chmod 755 {CLIENT_DIR}/bb-aarch64-linux/busybox",
               input_bytes=(arm / "busybox").read_bytes())
        seconds, _out = bed.playbook("playbooks/site.yml", extra_vars={"remote_builder_emulated_systems": ["aarch64-linux"]},
                                     log_path=os.path.join(LOGS, "emulation-site.log"))
        bed.sh(BUILDER, "loginctl enable-linger remotebuild")
        wait_for_user_manager(bed, [BUILDER])
        loops, probe_s = calibrate(bed)
        log(f"site.yml took {seconds:.0f} s; Nix {nix_version}; {loops} loop iterations ~ 1 s natively "
            f"(200000 took {probe_s:.2f} s)")
        for system in SYSTEMS.values():  # not recorded: first logins, inputs copied
            run_build(bed, "trivial16", 1, system, loops, timeout_s)
        results = []
        for index in range(rounds):
            for workload, jobs in WORKLOADS:
                order = list(SYSTEMS) if index % 2 == 0 else list(SYSTEMS)[::-1]
                for config in order:
                    wall = run_build(bed, workload, jobs, SYSTEMS[config], loops, timeout_s)
                    results.append({"workload": workload, "config": config, "round": index + 1, "wall_s": round(wall, 2)})
                    log(f"{workload:11} {config:8} round {index + 1}: {wall:.2f} s")
        slots = bed.sh(CLIENT, "grep -v '^#' /etc/nix/machines").split()[3]
    records = []
    for workload, jobs in WORKLOADS:
        native = None
        for config, system in SYSTEMS.items():
            walls = [r["wall_s"] for r in results if r["workload"] == workload and r["config"] == config]
            median = round(statistics.median(walls), 2)
            native = median if config == "native" else native
            records.append({"release": "sid", "nix_version": nix_version, "workload": workload, "jobs": jobs,
                            "config": config, "system": system, "slots": int(slots), "loops_per_second": loops,
                            "wall_s_median": median, "wall_s_runs": walls,
                            "x_native": round(median / native, 2) if native else None})
    return records


def markdown(records):
    rows = ["| workload | jobs | system | builder slots | wall s median | runs s | x native |", "|---|---|---|---|---|---|---|"]
    for r in records:
        runs = ", ".join(f"{w:.2f}" for w in r["wall_s_runs"])
        rows.append(f"| {r['workload']} | {r['jobs']} | {r['system']} ({r['config']}) | {r['slots']} "
                    f"| {r['wall_s_median']:.2f} | {runs} | {r['x_native']:.2f} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every workload and system (default 3)")
    parser.add_argument("--build-timeout", type=float, default=900, help="seconds a nix-build may take")
    parser.add_argument("--smoke", action="store_true", help="1 round; result under .build/bench-smoke/")
    parser.add_argument("--output-dir", help="where emulation.json goes (default bench/results/)")
    parser.add_argument("--markdown", metavar="JSON", help="print this emulation.json as a Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown, encoding="utf-8") as handle:
            print(markdown(json.load(handle)))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (the testbed starts systemd-nspawn containers)")
    out_dir = args.output_dir or (SMOKE_RESULTS if args.smoke else RESULTS)
    os.makedirs(out_dir, exist_ok=True)
    install_signal_handlers()
    try:
        source = snapshot_collection()
        records = bench(1 if args.smoke else args.rounds, args.build_timeout)
    except Interrupted as exc:
        log(f"interrupted ({exc}); testbed torn down")
        return 130
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired, binfmt_host.EmulationError) as exc:
        log(f"FAILED, no result written: {exc}")
        return 1
    finally:
        drop_snapshot()
    for record in records:
        record["collection"] = source
    path = os.path.join(out_dir, "emulation.json")
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
