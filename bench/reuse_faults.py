# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connection reuse under faults: bursts of remote builds while a master appears or vanishes.

Nix >= 2.15 reads ssh's `started` line unless `ssh -O check` saw a master; a master that appears
or vanishes between the check and the connection either hangs the build (no `started` ever
comes) or leaks `started` into the protocol (`protocol mismatch`).  This script provokes exactly
those moments, many times, with the collection configured by site.yml as shipped, and counts
hangs and protocol errors.

Per release: one client and two builders of that release, site.yml with the defaults.  Then, for
each fault, --bursts bursts of --jobs derivations (each sleeps a random 0-0.6 s, so sessions open
and close all through the burst), each burst bounded by --timeout seconds, the fault injected at
a random moment 0.1-1.0 s into the burst:

  persist-expiry   ControlPersist set to 1 s on the client for this fault only, so masters
                   expire between the sessions of a burst and come up again (the race of a
                   60 s persist ending, made a hundred times more frequent);
  sshd-restart     `systemctl restart ssh` on one builder (masters survive: KillMode=process);
  builder-restart  every process of the build user killed, sshd and nix-daemon restarted on one
                   builder: the client's masters lose their connection as in a reboot;
  client-daemon    `systemctl restart nix-daemon` on the client.  The burst's own nix-build is
                   cut off by the restart (an expected error, counted apart); what must not
                   happen is a hang or a protocol error, in it or in the next burst.

A hang is a burst still running at its timeout; a protocol error is `protocol mismatch` or
`got 'started'` in nix-build's output.  Other failures are counted and their last lines kept.

    .venv/bin/python bench/reuse_faults.py                       # bookworm, trixie, sid; 50 bursts
    .venv/bin/python bench/reuse_faults.py --releases trixie --bursts 10
    .venv/bin/python bench/reuse_faults.py --markdown bench/results/reuse-faults-*.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from offload import (  # noqa: E402  (the testbed helpers live beside, in offload.py)
    RELEASES,
    RESULTS,
    Interrupted,
    Testbed,
    drop_snapshot,
    install_signal_handlers,
    load_records,
    log,
    snapshot_collection,
    testbed_name,
)

FAULTS = ("persist-expiry", "sshd-restart", "builder-restart", "client-daemon")
SSH_CONFIG = "/etc/ssh/ssh_config.d/60-nix-remote-builders.conf"
BURST_DIR = "/root/bursts"

# Runs on the client: the burst, timed, bounded, with its output kept for the classification.
BURST = r"""
set -u
n=$1; to=$2; nonce=$3
mkdir -p {dir}/bb && cp -n /bin/busybox {dir}/bb/busybox 2>/dev/null; ln -sf busybox {dir}/bb/sleep
cat > {dir}/$nonce.nix <<NIX
let bb = builtins.path {{ path = {dir}/bb; name = "bb"; }};
in builtins.genList (i: derivation {{
  name = "burst-$nonce-\${{toString i}}"; system = builtins.currentSystem; builder = "\${{bb}}/busybox";
  args = [ "sh" "-c" "\${{bb}}/busybox sleep 0.\${{toString (i - (builtins.div i 7) * 7)}}; echo \${{toString i}} > \$out" ];
}}) $n
NIX
NIX_REMOTE=daemon timeout -k 5 $to nix-build --max-jobs 0 --no-out-link {dir}/$nonce.nix > {dir}/$nonce.out 2> {dir}/$nonce.err
echo "rc=$?"
echo "built=$(grep -c '^/nix/store/' {dir}/$nonce.out)"
echo "protocol=$(grep -ci "protocol mismatch\|got 'started" {dir}/$nonce.err)"
echo "---"
grep -iE "cannot build on|mismatch|failed to start|disconnected|hang" {dir}/$nonce.err | head -4
rm -f {dir}/$nonce.*
""".format(dir=BURST_DIR)


def inject(bed, fault, client, builder):
    # reset-failed: systemd refuses a unit started more than 5 times in 10 s, and the bursts come
    # about every 2 s.
    if fault == "sshd-restart":
        bed.sh(builder, "systemctl reset-failed ssh.service; systemctl restart ssh.service")
    elif fault == "builder-restart":
        bed.sh(builder, "pkill -KILL -u remotebuild; systemctl reset-failed ssh.service nix-daemon.service;"
                        " systemctl restart ssh.service nix-daemon.service", check=False)
    elif fault == "client-daemon":
        bed.sh(client, "systemctl reset-failed nix-daemon.service; systemctl restart nix-daemon.service")
    # persist-expiry needs nothing during the burst: the short ControlPersist does it.


def classify(output, timeout_s, seconds):
    fields = dict(line.split("=", 1) for line in output.split("---")[0].split() if "=" in line)
    rc = int(fields.get("rc", "-1"))
    tail = output.split("---", 1)[1].strip() if "---" in output else ""
    if rc == 124 or rc == 137 or seconds >= timeout_s:
        return "hang", tail
    if int(fields.get("protocol", "0")):
        # Nix's hook gives up on that builder for the derivation and tries another: the burst may
        # still succeed, which the tail shows (rc).
        return "protocol-error", f"rc={rc}: {tail}"
    if rc == 0:
        return "ok", ""
    return "failed", tail


def run_fault(bed, client, builders, fault, bursts, jobs, timeout_s, rng):
    counts = {"ok": 0, "hang": 0, "protocol-error": 0, "failed": 0}
    tails = []
    for index in range(bursts):
        nonce = f"{fault}-{index}-{rng.randrange(1 << 30):x}"
        command = f"bash -c {shlex.quote(BURST)} burst {jobs} {int(timeout_s)} {nonce}"
        start = time.monotonic()
        proc = subprocess.Popen(bed.ssh_argv(client, command), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if fault != "persist-expiry":
            time.sleep(rng.uniform(0.1, 1.0))
            inject(bed, fault, client, rng.choice(builders))
        out, _err = proc.communicate(timeout=timeout_s + 30)
        seconds = time.monotonic() - start
        verdict, tail = classify(out.decode(errors="replace"), timeout_s, seconds)
        counts[verdict] += 1
        if verdict != "ok" and len(tails) < 5:
            tails.append(f"burst {index}: {verdict}: {tail[-400:]}")
        if fault == "client-daemon":
            # The daemon must be back before the next burst; an expected cut, not a hang.
            bed.sh(client, "for i in $(seq 50); do systemctl is-active --quiet nix-daemon.service && break; sleep 0.2;"
                           " done", check=False)
        log(f"{fault} burst {index + 1}/{bursts}: {verdict} ({seconds:.1f} s)")
    # One clean burst after the faults: the fleet must work again without anyone's help.
    out = bed.sh(client, f"bash -c {shlex.quote(BURST)} burst {jobs} {int(timeout_s)} after-{fault}", check=False)
    after, after_tail = classify(out, timeout_s, 0)
    return counts, tails, after, after_tail


def bench_release(release, bursts, jobs, timeout_s, seed):
    rng = random.Random(seed)
    name = testbed_name(f"bench-rf-{release}")
    client, builders = "client", ["builder1", "builder2"]
    with Testbed(name, {client: release, builders[0]: release, builders[1]: release},
                 {"nix_builders": builders, "nix_clients": [client]}) as bed:
        nix_version = bed.sh(client, "nix-store --version").split()[-1]
        log(f"{release}: Nix {nix_version}; site.yml with the roles' defaults")
        bed.playbook("playbooks/site.yml")
        for builder in builders:
            bed.sh(builder, "loginctl enable-linger remotebuild")
        ssh_config = bed.sh(client, f"cat {SSH_CONFIG}")
        reuse = "ControlMaster auto" in ssh_config
        results = []
        for fault in FAULTS:
            if fault == "persist-expiry":
                bed.sh(client, f"sed -i 's/ControlPersist .*/ControlPersist 1/' {SSH_CONFIG}")
            counts, tails, after, after_tail = run_fault(bed, client, builders, fault, bursts, jobs, timeout_s, rng)
            if fault == "persist-expiry":
                bed.sh(client, f"printf '%s' {shlex.quote(ssh_config)} > {SSH_CONFIG}")
            record = {"release": release, "nix_version": nix_version, "reuse": reuse, "fault": fault,
                      "bursts": bursts, "jobs": jobs, "timeout_s": timeout_s, **counts,
                      "after": after, "examples": tails + ([f"after: {after_tail}"] if after != "ok" else [])}
            log(f"{release} {fault}: {counts}, burst after the faults: {after}")
            results.append(record)
    return results


def markdown(records):
    rows = ["| release | Nix | reuse | fault | bursts | ok | hang | protocol error | other failure | next burst |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        rows.append(f"| {r['release']} | {r['nix_version']} | {'on' if r['reuse'] else 'off'} | {r['fault']} | "
                    f"{r['bursts']} | {r['ok']} | {r['hang']} | {r['protocol-error']} | {r['failed']} | {r['after']} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--releases", default=",".join(RELEASES))
    parser.add_argument("--bursts", type=int, default=50, help="bursts per fault (default 50)")
    parser.add_argument("--jobs", type=int, default=8, help="derivations per burst (default 8)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds before a burst counts as hung")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--output-dir", default=RESULTS)
    parser.add_argument("--markdown", nargs="+", metavar="JSON")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(load_records(args.markdown)))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (the testbed starts systemd-nspawn containers)")
    install_signal_handlers()
    failed = []
    try:
        snapshot_collection()
        for release in [r for r in args.releases.split(",") if r]:
            try:
                records = bench_release(release, args.bursts, args.jobs, args.timeout, args.seed)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                log(f"{release}: FAILED: {exc}")
                failed.append(release)
                continue
            path = os.path.join(args.output_dir, f"reuse-faults-{release}.json")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(records, handle, indent=2)
                handle.write("\n")
            log(f"wrote {path}")
            print(markdown(records))
    except Interrupted as exc:
        log(f"interrupted ({exc}); testbed torn down")
        return 130
    finally:
        drop_snapshot()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
