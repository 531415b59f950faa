# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Slot policy (issue 14 item 1): several clients on one builder, `full` against `shared`.

Nix's max-jobs on a builder does not bound the builds other machines send it: each client takes
slot locks per machines-file entry on its own side, so N clients that each have the builder's
max-jobs can run N x max-jobs builds on it at once.  This script measures that, and what the
collection's `local_client_slot_policy: shared` changes.

One builder and three clients, all --release (trixie, Nix 2.26), on the testbed.  site.yml runs
with the defaults as shipped (policy `full`), then again with `-e local_client_slot_policy=shared`;
after each run every client's /etc/nix/machines is kept, and the rounds switch configurations by
putting that file back (the policy changes nothing else on a client: checked, and recorded).

A round: the three clients start at the same moment (a shared deadline on the kernel's boot
clock, which the containers share with this host) one `nix-build --max-jobs 0` each of 8 fresh
derivations, so each client's own scheduler decides how many run at once.  Each derivation holds
--hold-mib MiB (a busybox dd blocked on a pipe) while a shell loop calibrated to about 1 s of one
idle core runs, and writes its start and end (/proc/uptime, the builder's view of the same clock).
Per round: wall time (the shared start until the last client is done), peak concurrent builds on
the builder (from those intervals; cross-checked by a sampler that counts the build users with
processes every 100 ms) and peak memory on the builder: the sum of VmRSS of all processes in the
builder container, sampled every 100 ms (the containers have no memory controller: this host runs
cgroup v1, so neither nix-daemon.service's memory.current nor a container cgroup exists).
Rounds alternate full, shared, full, ... so the noise of a shared machine hits both alike.  Then
the same rounds with client1 building alone: what `shared` costs a client when the others are idle.

    .venv/bin/python bench/slots.py                  # 3 rounds per configuration
    .venv/bin/python bench/slots.py --rounds 5
    .venv/bin/python bench/slots.py --smoke          # 1 round each; .build/bench-smoke/slots.json
    .venv/bin/python bench/slots.py --markdown bench/results/slots.json
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
from offload import (  # noqa: E402  (the testbed helpers live beside, in offload.py)
    LOGS, RELEASES, RESULTS, SMOKE_RESULTS, Interrupted, Testbed, drop_snapshot, install_signal_handlers,
    log, snapshot_collection, testbed_name, wait_for_user_manager,
)

BUILDER = "builder"
CLIENTS = ("client1", "client2", "client3")
CONFIGS = ("full", "shared")
JOBS = 8
WORK = "/root/slots"  # on every host: busybox, expressions, saved machines files
BOOT = time.CLOCK_BOOTTIME  # /proc/uptime's clock; one kernel, so one clock for host and containers

# A client's part of a round: wait for the shared start, run nix-build, print start and end.
RUNNER = r"""
import subprocess, sys, time
t0, out, err = float(sys.argv[1]), sys.argv[2], sys.argv[3]
while time.clock_gettime(time.CLOCK_BOOTTIME) < t0:
    time.sleep(0.002)
start = time.clock_gettime(time.CLOCK_BOOTTIME)
with open(out, "w") as o, open(err, "w") as e:
    rc = subprocess.run(sys.argv[4:], stdout=o, stderr=e).returncode
print("client %.3f %.3f" % (start, time.clock_gettime(time.CLOCK_BOOTTIME)))
sys.exit(rc)
"""

# Runs on the builder during a round: every 100 ms, the boot clock, the sum of the resident sizes
# (KiB, statm = VmRSS) of all processes, that of the build users' processes, and how many build
# users have processes (with build-users-group every running build has a user of its own; the
# owner of /proc/PID is the process's uid and gid).  stat + statm rather than parsing `status`
# keeps the sampler's own CPU small; it prints what it used at the end.
SAMPLER = r"""
import os, resource, sys, time
gid, stop, interval, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
deadline = time.monotonic() + limit
while not os.path.exists(stop) and time.monotonic() < deadline:
    now = time.clock_gettime(time.CLOCK_BOOTTIME)
    total = builds = 0
    users = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            owner = os.stat("/proc/" + pid)
            with open("/proc/%s/statm" % pid) as handle:
                rss = int(handle.read().split()[1]) * page_kib
        except (OSError, IndexError, ValueError):
            continue
        total += rss
        if owner.st_gid == gid:
            builds += rss
            users.add(owner.st_uid)
    print("%.2f %d %d %d" % (now, total, builds, len(users)), flush=True)
    time.sleep(interval)
usage = resource.getrusage(resource.RUSAGE_SELF)
print("cpu %.3f" % (usage.ru_utime + usage.ru_stime))
"""


def expression(client, nonce, jobs, loops, hold_mib):
    """`jobs` derivations in one list; each holds hold_mib MiB in a dd that blocks on the pipe
    into the busy loop (it dies of SIGPIPE when the loop ends) and records start and end."""
    hold = f"$bb/dd if=/dev/zero bs={hold_mib}M count=1 2>/dev/null | " if hold_mib > 0 else ""
    script = (f"read s _ < /proc/uptime; {hold}{{ i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done; "
              "read e _ < /proc/uptime; echo build $s $e > $out; }")
    return "\n".join([
        "let",
        f'  bb = builtins.path {{ path = {WORK}/bb; name = "bb"; }};',
        "  mk = i: derivation {",
        f'    name = "slots-{client}-${{toString i}}";',
        "    system = builtins.currentSystem;",
        '    builder = "/bin/sh";',
        "    inherit bb;",
        f'    nonce = "{nonce}-${{toString i}}";',
        f'    args = [ "-c" "{script}" ];',
        "  };",
        f"in builtins.genList mk {jobs}",
        "",
    ])


def calibrate(bed, target_s=1.0):
    """Loop iterations that take target_s on one core of the builder: best of 5 runs of the
    builder's /bin/sh (what the builds run), so 'on an idle core' as far as this machine allows."""
    probe = 200000
    out = bed.sh(BUILDER, "python3 -c " + shlex.quote(
        "import subprocess, time\nbest = 1e9\nfor _ in range(5):\n    t = time.monotonic()\n"
        f"    subprocess.run(['/bin/sh', '-c', 'i=0; while [ $i -lt {probe} ]; do i=$((i+1)); done'])\n"
        "    best = min(best, time.monotonic() - t)\nprint(best)"))
    seconds = float(out.strip())
    return max(1000, int(probe * target_s / seconds)), seconds


def machines_max_jobs(text, address):
    """Column 4 of the builder's line in a machines file (marker comments skipped)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#") and address in fields[0].split("://", 1)[-1]:
            return 1 if len(fields) < 4 or fields[3] == "-" else int(fields[3])
    raise RuntimeError(f"no machines line for {address}:\n{text}")


# The client files site.yml writes besides the machines file; the policy must not change them.
# Names ending in ~ are the role's backups of a replaced file (machines.PID.DATE@TIME~).
CLIENT_FILES = ("find /etc/nix /etc/ssh/ssh_config.d /etc/ssh/ssh_known_hosts /root/.ssh -type f 2>/dev/null"
                " | grep -v -e '^/etc/nix/machines$' -e '~$' | sort | xargs sha256sum")


def differing_files(first, second):
    """Paths whose sha256sum line differs between two CLIENT_FILES outputs."""
    def parse(text):
        return {path: digest for digest, _sep, path in (line.partition("  ") for line in text.splitlines())}
    a, b = parse(first), parse(second)
    return sorted(path for path in set(a) | set(b) if a.get(path) != b.get(path))


def configure(bed, policy, address):
    """site.yml with this policy; save each client's machines file; return max-jobs per client
    and a digest of the client's other files."""
    extra = None if policy == "full" else {"local_client_slot_policy": policy}
    seconds, _out = bed.playbook("playbooks/site.yml", extra_vars=extra,
                                 log_path=os.path.join(LOGS, f"slots-site-{policy}.log"))
    # Test-host workaround as in reuse_faults.py: a login arriving while logind stops the build
    # user's systemd manager hangs for minutes; lingering keeps the manager up.
    bed.sh(BUILDER, "loginctl enable-linger remotebuild")
    wait_for_user_manager(bed, [BUILDER])
    max_jobs, digests = {}, {}
    for client in CLIENTS:
        text = bed.sh(client, f"cp /etc/nix/machines {WORK}/machines.{policy} && cat /etc/nix/machines")
        max_jobs[client] = machines_max_jobs(text, address)
        digests[client] = bed.sh(client, CLIENT_FILES)
    log(f"site.yml ({policy}) took {seconds:.0f} s; max-jobs per client {max_jobs}")
    return max_jobs, digests


def peak_overlap(intervals):
    """Most intervals open at once (an end at the same instant as a start counts first)."""
    events = sorted([(s, 1) for s, _e in intervals] + [(e, -1) for _s, e in intervals], key=lambda x: (x[0], x[1]))
    peak = current = 0
    for _t, step in events:
        current += step
        peak = max(peak, current)
    return peak


def run_round(bed, config, loops, hold_mib, jobs, gid, timeout_s, clients=CLIENTS):
    for client in CLIENTS:  # the configuration is the client's machines file (see the docstring)
        bed.sh(client, f"cp {WORK}/machines.{config} /etc/nix/machines")
    nonce = uuid.uuid4().hex[:12]
    for client in clients:
        bed.sh(client, f"cat > {WORK}/{nonce}.nix",
               input_bytes=expression(client, nonce, jobs, loops, hold_mib).encode())
    stop = f"{WORK}/stop"
    sampler = subprocess.Popen(bed.ssh_argv(BUILDER, f"rm -f {stop}; exec python3 -c {shlex.quote(SAMPLER)} "
                                                     f"{gid} {stop} 0.1 {int(timeout_s) + 60}"),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    # Far enough ahead that three ssh logins are done before it (on a busy 2-core machine).
    t0 = time.clock_gettime(BOOT) + 3.0
    procs = {}
    for client in clients:
        command = (f"cd {WORK} && NIX_REMOTE=daemon python3 -c {shlex.quote(RUNNER)} {t0:.3f} {nonce}.out {nonce}.err"
                   f" timeout -k 10 {int(timeout_s)} nix-build --max-jobs 0 --no-out-link {nonce}.nix;"
                   f" rc=$?; for p in $(grep '^/nix/store/' {nonce}.out); do cat $p; done;"
                   f" [ $rc = 0 ] || tail -c 2000 {nonce}.err; rm -f {nonce}.*; exit $rc")
        procs[client] = subprocess.Popen(bed.ssh_argv(client, command), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outputs = {}
    for client, proc in procs.items():
        out, _err = proc.communicate(timeout=timeout_s + 60)
        outputs[client] = out.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{config}: nix-build on {client} failed ({proc.returncode}):\n"
                               f"{outputs[client][-2000:]}")
    bed.sh(BUILDER, f"touch {stop}")
    lines = sampler.communicate(timeout=30)[0].decode().splitlines()
    samples = [[float(x) for x in line.split()] for line in lines if not line.startswith("cpu")]
    sampler_cpu = [float(line.split()[1]) for line in lines if line.startswith("cpu")]

    client_ends, builds = {}, []
    for client, text in outputs.items():
        rows = [line.split() for line in text.splitlines()]
        client_ends[client] = [float(r[2]) - t0 for r in rows if r[0] == "client"][0]
        mine = [(float(r[1]) - t0, float(r[2]) - t0) for r in rows if r[0] == "build"]
        if len(mine) != jobs:
            raise RuntimeError(f"{config}: {client} got {len(mine)} of {jobs} outputs")
        builds += [[client, round(s, 2), round(e, 2)] for s, e in mine]
    before = [s for s in samples if s[0] < t0] or samples[:1]  # the builder at rest, before the start
    durations = [e - s for _c, s, e in builds]
    return {
        "config": config,
        "clients_building": len(clients),
        "wall_s": round(max(client_ends.values()), 2),
        "client_end_s": {c: round(v, 2) for c, v in client_ends.items()},
        "peak_builds": peak_overlap([(s, e) for _c, s, e in builds]),
        "peak_builds_sampled": int(max(s[3] for s in samples)) if samples else None,
        "peak_rss_mib": round(max(s[1] for s in samples) / 1024, 1) if samples else None,
        "idle_rss_mib": round(min(s[1] for s in before) / 1024, 1) if samples else None,
        "peak_build_rss_mib": round(max(s[2] for s in samples) / 1024, 1) if samples else None,
        "build_s_mean": round(statistics.mean(durations), 2),
        "build_s_max": round(max(durations), 2),
        "samples": len(samples),
        "sampler_cpu_s": sampler_cpu[0] if sampler_cpu else None,
        "builds": builds,  # [client, start, end], seconds after the shared start
    }


def summarize(config, rounds, max_jobs, capacity, building):
    mine = [r for r in rounds if r["config"] == config and r["clients_building"] == building]
    walls = [r["wall_s"] for r in mine]
    return {
        "config": config, "clients_building": building, "max_jobs": max_jobs, "max_jobs_sum": sum(max_jobs.values()), "capacity": capacity,
        "wall_s_median": round(statistics.median(walls), 2), "wall_s_min": min(walls), "wall_s_runs": walls,
        "peak_builds": max(r["peak_builds"] for r in mine),
        "peak_builds_sampled": max((r["peak_builds_sampled"] or 0) for r in mine),
        "peak_rss_mib": max((r["peak_rss_mib"] or 0) for r in mine),
        "idle_rss_mib": min((r["idle_rss_mib"] or 0) for r in mine),
        "build_s_mean": round(statistics.mean(r["build_s_mean"] for r in mine), 2),
        "rounds": mine,
    }


def bench(release, rounds, hold_mib, jobs, timeout_s):
    name = testbed_name("bench-slots")
    hosts = {BUILDER: release, **{c: release for c in CLIENTS}}
    with Testbed(name, hosts, {"nix_builders": [BUILDER], "nix_clients": list(CLIENTS)}) as bed:
        nix_version = bed.vars[BUILDER].get("testbed_nix_version", "")
        address = bed.address(BUILDER)
        for client in CLIENTS:  # busybox as a source path, with a `dd` name (busybox picks the applet by name)
            bed.sh(client, f"mkdir -p {WORK}/bb && cp /bin/busybox {WORK}/bb/busybox && ln -sf busybox {WORK}/bb/dd")
        bed.sh(BUILDER, f"mkdir -p {WORK}")
        max_jobs, digests = {}, {}
        for policy in CONFIGS:
            max_jobs[policy], digests[policy] = configure(bed, policy, address)
        changed = sorted(f"{c}:{path}" for c in CLIENTS
                         for path in differing_files(digests["full"][c], digests["shared"][c]))
        if changed:
            log(f"WARNING: the policy changed client files besides /etc/nix/machines: {changed}; switching by "
                "machines file alone is not the whole configuration (recorded as other_client_files_changed)")
        capacity = int(bed.sh(BUILDER, "nix --extra-experimental-features nix-command config show max-jobs").strip())
        gid = bed.sh(BUILDER, "getent group nixbld | cut -d: -f3").strip()
        loops, probe_s = calibrate(bed)
        log(f"Nix {nix_version}; builder capacity (max-jobs) {capacity}; busy loop {loops} iterations "
            f"(200000 took {probe_s:.3f} s)")
        # Not recorded: first logins, the build users' managers, busybox copied to the builder.
        run_round(bed, "full", 1000, 0, 1, gid, timeout_s)
        results = []
        # All three clients at once (what `shared` is for), then client1 alone (what it costs).
        for who, index, config in ((w, i, c) for w in (CLIENTS, CLIENTS[:1]) for i in range(rounds) for c in CONFIGS):
            result = run_round(bed, config, loops, hold_mib, jobs, gid, timeout_s, who)
            result["round"] = index + 1
            results.append(result)
            log(f"{len(who)} building, round {index + 1} {config:6}: wall {result['wall_s']:.2f} s, peak builds "
                f"{result['peak_builds']} (sampled {result['peak_builds_sampled']}), peak RSS "
                f"{result['peak_rss_mib']} MiB, build mean {result['build_s_mean']} s")
    common = {"release": release, "nix_version": nix_version, "clients": len(CLIENTS), "jobs_per_client": jobs,
              "loop_iterations": loops, "calibration_200000_s": round(probe_s, 3), "hold_mib": hold_mib,
              "other_client_files_changed": changed,
              "memory_source": "sum of VmRSS of every process in the builder container, every 100 ms",
              "clock": "CLOCK_BOOTTIME (/proc/uptime), shared by host and containers"}
    return [dict(common, **summarize(c, results, max_jobs[c], capacity, len(who)))
            for who in (CLIENTS, CLIENTS[:1]) for c in CONFIGS]


def markdown(records):
    rows = ["| clients building | config | max-jobs per client | sum | builder capacity | wall s median (min) | runs s "
            "| peak concurrent builds (sampled) | peak memory MiB (idle) | build s mean |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        per_client = ", ".join(str(v) for v in r["max_jobs"].values())
        runs = ", ".join(f"{w:.2f}" for w in r["wall_s_runs"])
        rows.append(f"| {r.get('clients_building', len(r['max_jobs']))} | {r['config']} | {per_client} | {r['max_jobs_sum']} | {r['capacity']} "
                    f"| {r['wall_s_median']:.2f} ({r['wall_s_min']:.2f}) | {runs} "
                    f"| {r['peak_builds']} ({r['peak_builds_sampled']}) "
                    f"| {r['peak_rss_mib']:.0f} ({r['idle_rss_mib']:.0f}) | {r['build_s_mean']:.2f} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration, interleaved (default 3)")
    parser.add_argument("--release", default="trixie", choices=RELEASES, help="release of every host (default trixie)")
    parser.add_argument("--hold-mib", type=int, default=64, help="MiB each build holds while it runs (default 64)")
    parser.add_argument("--build-timeout", type=float, default=600, help="seconds a client's nix-build may take")
    parser.add_argument("--smoke", action="store_true", help="1 round each; result under .build/bench-smoke/")
    parser.add_argument("--output-dir", help="where slots.json goes (default bench/results/)")
    parser.add_argument("--markdown", metavar="JSON", help="print this slots.json as a Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown, encoding="utf-8") as handle:
            print(markdown(json.load(handle)))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (the testbed starts systemd-nspawn containers)")
    rounds = 1 if args.smoke else args.rounds
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    out_dir = args.output_dir or (SMOKE_RESULTS if args.smoke else RESULTS)
    os.makedirs(out_dir, exist_ok=True)

    install_signal_handlers()
    try:
        source = snapshot_collection()
        records = bench(args.release, rounds, args.hold_mib, JOBS, args.build_timeout)
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
    path = os.path.join(out_dir, "slots.json")
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
