# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet binary cache (issue 16): what it saves when the fleet asks for the same work twice.

A cache, two builders and two clients (sid, Nix 2.34.8), configured by site.yml with the defaults
as shipped (the cache in the group nix_caches).  Each round, per configuration, with derivations
no store has seen:

1. `build`: client c1 builds a set of derivations on builder b1 (its entry as --builders,
   --max-jobs 0): 8 derivations of 1 s that each write a 16 MiB output;
2. `upload`: (cache only) the time until the cache has every output's narinfo, the uploader's lag;
3. `again`: client c2 asks for the same set with no builders (`--builders ''`, local builds
   allowed, 8 jobs): with the cache it substitutes, without it c2 builds the set again itself;
4. `dependent`: c1 builds one derivation that reads the whole set, on builder b2 (its entry as
   --builders): with the cache b2 substitutes the inputs (builders-use-substitutes), without it c1
   copies them to b2 over SSH.

The two configurations run on the same hosts in the same round, alternating: `cache` as shipped,
and `none`, the same with b1's uploader stopped (its queue emptied), so the cache never has the
paths and every host finds them missing there, which is what a fleet without the cache does plus
one narinfo 404 per path.

    .venv/bin/python bench/cache.py                  # 3 rounds
    .venv/bin/python bench/cache.py --smoke          # 1 round; .build/bench-smoke/cache.json
    .venv/bin/python bench/cache.py --markdown bench/results/cache.json
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
    LOGS, RESULTS, SMOKE_RESULTS, Interrupted, Testbed, drop_snapshot, install_signal_handlers, log,
    snapshot_collection, testbed_name, wait_for_user_manager,
)

CACHE, B1, B2, C1, C2 = "cache", "b1", "b2", "c1", "c2"
CONFIGS = ("cache", "none")
STEPS = ("build", "upload", "again", "dependent")
COUNT, SLEEP_S, MIB = 8, 1, 16
UPLOADER = "nix-fleet-cache-uploader.service"
QUEUE = "/var/lib/nix-fleet-cache/queue"


BUSYBOX_DIR = "/root/cachebench-busybox"  # the client's busybox, the builds' tools (a sandbox has none)
BB = f'(builtins.path {{ path = {BUSYBOX_DIR}; name = "cachebench-busybox"; }})'


def set_expression(nonce):
    return (f'let bb = {BB}; in builtins.genList (i: derivation {{ name = "cachebench-{nonce}-${{toString i}}"; '
            f'system = builtins.currentSystem; builder = "${{bb}}/busybox"; args = [ "sh" "-c" '
            f'"sleep {SLEEP_S}; ${{bb}}/busybox head -c {MIB * 1024 * 1024} /dev/urandom > $out; echo {nonce} $i >> $out" ]; }}) {COUNT}')


def dependent_expression(nonce):
    return (f'let bb = {BB}; set = {set_expression(nonce)}; in derivation {{ name = "cachebench-{nonce}-all"; '
            f'system = builtins.currentSystem; builder = "${{bb}}/busybox"; '
            f'args = [ "sh" "-c" "${{bb}}/busybox cat ${{builtins.concatStringsSep " " (map toString set)}} '
            f'| ${{bb}}/busybox wc -c > $out" ]; }}')


def entry(bed, builder):
    """The builder's line of c1's machines file (the role's entry, host key and all)."""
    lines = [ln for ln in bed.sh(C1, "grep -v '^#' /etc/nix/machines").splitlines() if f"@{bed.address(builder)}" in ln]
    assert len(lines) == 1, lines
    return lines[0]


def build(bed, client, expr, builders=None, timeout_s=900, jobs=0):
    options = f"--max-jobs {jobs}" + (f" --builders {shlex.quote(builders)}" if builders is not None else "")
    start = time.monotonic()
    out = bed.sh(client, f"timeout {int(timeout_s)} nix-build --no-out-link {options} -E {shlex.quote(expr)} 2>/tmp/cachebench.err"
                 " || { tail -20 /tmp/cachebench.err >&2; exit 1; }")
    return time.monotonic() - start, out.split()


def substituted(bed, client):
    """How many paths the last build on CLIENT copied from the cache (Nix's log line)."""
    return int(bed.sh(client, "grep -c \"from 'http://\" /tmp/cachebench.err || true").strip() or 0)


def in_cache(bed, paths):
    """Whether the cache has every path's narinfo (asked from c1, as a client would)."""
    urls = " ".join(f"http://{bed.address(CACHE)}:5000/{p.split('/')[-1].split('-', 1)[0]}.narinfo" for p in paths)
    check = ("import sys, urllib.request\nfor u in sys.argv[1:]:\n    urllib.request.urlopen(u, timeout=5)\nprint('yes')")
    return bed.sh(C1, f"python3 -c {shlex.quote(check)} {urls} 2>/dev/null", check=False).strip() == "yes"


def round_(bed, config, timeout_s):
    nonce = uuid.uuid4().hex[:10]
    if config == "none":
        bed.sh(B1, f"systemctl stop {UPLOADER}; rm -f {QUEUE}/*")
    else:
        bed.sh(B1, f"systemctl start {UPLOADER}")
    times = {}
    times["build"], paths = build(bed, C1, set_expression(nonce), entry(bed, B1), timeout_s)
    size = int(bed.sh(C1, f"stat -c %s {paths[0]}").strip())
    if size < MIB * 1024 * 1024:
        raise RuntimeError(f"{paths[0]} has {size} bytes, not {MIB} MiB: the workload did not run as meant")
    start = time.monotonic()
    if config == "cache":
        while not in_cache(bed, paths):
            if time.monotonic() - start > 300:
                raise RuntimeError("the uploads did not reach the cache within 300 s")
            time.sleep(0.5)
    times["upload"] = time.monotonic() - start if config == "cache" else 0.0
    times["again"], again = build(bed, C2, set_expression(nonce), "", timeout_s, jobs=COUNT)
    assert sorted(again) == sorted(paths), (again, paths)
    from_cache_c2 = substituted(bed, C2)
    times["dependent"], _out = build(bed, C1, dependent_expression(nonce), entry(bed, B2), timeout_s)
    sigs = bed.sh(B2, f"nix --extra-experimental-features nix-command path-info --sigs {paths[0]}")
    if config == "none":
        bed.sh(B1, f"rm -f {QUEUE}/*; systemctl start {UPLOADER}")
    return times, {"c2_substituted": from_cache_c2, "b2_input_from_cache": ":" in sigs.split(maxsplit=1)[-1]}


def bench(rounds, timeout_s):
    name = testbed_name("bench-cache")
    hosts = {CACHE: "sid", B1: "sid", B2: "sid", C1: "sid", C2: "sid"}
    groups = {"nix_caches": [CACHE], "nix_builders": [B1, B2], "nix_clients": [C1, C2]}
    with Testbed(name, hosts, groups) as bed:
        nix_version = bed.vars[C1].get("testbed_nix_version", "")
        seconds, _out = bed.playbook("playbooks/site.yml", log_path=os.path.join(LOGS, "cache-site.log"),
                                     extra_vars={"binary_cache_listen_addresses": [bed.address(CACHE)]})
        for builder in (B1, B2):
            bed.sh(builder, "loginctl enable-linger remotebuild")
        wait_for_user_manager(bed, [B1, B2])
        for client in (C1, C2):
            bed.sh(client, f"mkdir -p {BUSYBOX_DIR} && cp /bin/busybox {BUSYBOX_DIR}/busybox")
        log(f"site.yml took {seconds:.0f} s; Nix {nix_version}")
        round_(bed, "none", timeout_s)  # not recorded: first logins
        results = []
        for index in range(rounds):
            for config in (CONFIGS if index % 2 == 0 else CONFIGS[::-1]):
                times, seen = round_(bed, config, timeout_s)
                results.append({"config": config, "round": index + 1, **{k: round(v, 2) for k, v in times.items()}, **seen})
                log(f"{config:5} round {index + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()) + f"; {seen}")
    records = []
    for config in CONFIGS:
        mine = [r for r in results if r["config"] == config]
        records.append({"release": "sid", "nix_version": nix_version, "config": config, "derivations": COUNT,
                        "output_mib": MIB, "sleep_s": SLEEP_S,
                        **{f"{step}_s_median": round(statistics.median(r[step] for r in mine), 2) for step in STEPS},
                        "runs": mine})
    return records


def markdown(records):
    rows = ["| config | c1 builds on b1 | upload lag | c2 asks for the same | c1 builds a dependent on b2 |",
            "|---|---|---|---|---|"]
    for r in records:
        seen = r["runs"][0]
        rows.append(f"| {r['config']} | {r['build_s_median']:.2f} s | {r['upload_s_median']:.2f} s "
                    f"| {r['again_s_median']:.2f} s ({seen['c2_substituted']} paths from the cache) "
                    f"| {r['dependent_s_median']:.2f} s (inputs {'from the cache' if seen['b2_input_from_cache'] else 'from c1'}) |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each configuration (default 3)")
    parser.add_argument("--build-timeout", type=float, default=900, help="seconds a nix-build may take")
    parser.add_argument("--smoke", action="store_true", help="1 round; result under .build/bench-smoke/")
    parser.add_argument("--output-dir", help="where cache.json goes (default bench/results/)")
    parser.add_argument("--markdown", metavar="JSON", help="print this cache.json as a Markdown table and exit")
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
    except (RuntimeError, AssertionError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log(f"FAILED, no result written: {exc}")
        return 1
    finally:
        drop_snapshot()
    for record in records:
        record["collection"] = source
    path = os.path.join(out_dir, "cache.json")
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
