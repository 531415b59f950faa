# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Long differential run: generated machines texts and nix.conf trees, collection vs real Nix.

The generator, the real-Nix oracles and the verdicts are the smoke run's (tests/differential/):
--cases machines cases and --cases nix.conf trees (default 10,000 each), every one read by the
collection and by the Nix of every testbed release found (the host's 2.8; trixie's 2.26 and
sid's 2.34 run from the cached testbed images, no container booted).  Machines cases are batched
into shared build hook runs (runner.read_batch); nix.conf trees need one Nix run each.

Per release and kind it counts the cases that agreed, were predicted legacy or version
differences, were refused on purpose, were value errors left to nix_validate, and disagreed (see
tests/differential/verdict.py).  A disagreement is minimised (lines, entries, words dropped while
it stays one) and kept in the record, the exit status is then 1.

    .venv/bin/python bench/differential.py                      # 10,000 + 10,000 per release
    .venv/bin/python bench/differential.py --cases 500 --seed 7 --output /tmp/d.json
    .venv/bin/python bench/differential.py --markdown bench/results/differential.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)
from parse_machines import collection_on_path  # noqa: E402

collection_on_path()
sys.path.insert(0, REPO)
from tests.differential import realnix, runner  # noqa: E402

COLUMNS = ("cases",) + runner.VERDICTS


def log(message):
    print(time.strftime("%H:%M:%S ") + message, file=sys.stderr, flush=True)


def describe():
    try:
        return subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _progress(kind, total, releases):
    started = time.monotonic()
    state = {"next": 0}

    def report(tally):
        done = tally.counts[releases[0].name]["cases"]
        if done >= state["next"] or done == total:
            state["next"] = done + max(total // 20, 1)
            rate = done / max(time.monotonic() - started, 1e-9)
            log("%s: %d/%d cases, %.1f cases/s, %s" % (
                kind, done, total, rate, ", ".join("%s %d disagree" % (r.name, tally.counts[r.name]["disagree"])
                                                   for r in releases)))
    return report


def _minimised(kind, release, case):
    """The minimised case, or the case itself when minimising fails."""
    try:
        if kind == "machines":
            return runner.minimise_machines(release, case)
        return runner.minimise_conf(release, case)
    # Keep the record whatever happens.
    except Exception as error:  # pylint: disable=broad-except
        log("minimising failed: %r" % error)
        return case


def run(args, releases):
    collection = describe()
    records = []
    kinds = [(kind, run_kind) for kind, run_kind in (("machines", runner.run_machines), ("nix.conf", runner.run_conf))
             if kind in args.kinds.split(",")]
    for kind, run_kind in kinds:
        log("%s: %d cases per release, seed %d, releases %s" % (
            kind, args.cases, args.seed, ", ".join(r.label for r in releases)))
        started = time.monotonic()
        options = {"batch": args.batch} if kind == "machines" else {}
        deadline = started + args.minutes * 60 / len(kinds) if args.minutes else None  # shared evenly
        tally = run_kind(releases, args.cases, args.seed, jobs=args.jobs, deadline=deadline,
                         progress=_progress(kind, args.cases, releases), **options)
        wall = time.monotonic() - started
        done = tally.counts[releases[0].name]["cases"]
        if done < args.cases:
            log("%s: stopped at %d of %d cases (--minutes %g)" % (kind, done, args.cases, args.minutes))
        for release in releases:
            counts = tally.counts[release.name]
            disagreements = []
            for _verdict, case, detail in tally.disagreements()[release.name][:args.keep]:
                log("%s DISAGREEMENT %s: %r\n%s" % (kind, release.name, case, detail[:2000]))
                disagreements.append({"case": repr(case), "detail": detail[:4000],
                                      "minimised": repr(_minimised(kind, release, case))})
            records.append(dict(
                {"release": release.name, "nix_version": release.version_text, "kind": kind},
                **{column: counts[column] for column in COLUMNS},
                nix_runs=tally.invocations[release.name], seed=args.seed, wall_s=round(wall, 1),
                cases_asked=args.cases, cases_per_s=round(counts["cases"] / wall, 2), jobs=args.jobs,
                batch=args.batch if kind == "machines" else 1, collection=collection,
                disagreements=disagreements))
        log("%s: %.0f s" % (kind, wall))
    return records


def markdown(records):
    rows = ["| collection | release | Nix | kind | cases | " + " | ".join(runner.VERDICTS)
            + " | Nix runs | wall s | cases/s |",
            "|---|---|---|---|" + "---:|" * (len(runner.VERDICTS) + 4)]
    for record in records:
        rows.append("| %s | %s | %s | %s | %s | %s | %s | %.0f | %.1f |" % (
            record["collection"], record["release"], record["nix_version"], record["kind"],
            format(record["cases"], ","), " | ".join(format(record[column], ",") for column in runner.VERDICTS),
            format(record["nix_runs"], ","), record["wall_s"], record["cases"] / record["wall_s"]))
    seeds = sorted({record["seed"] for record in records})
    rows.append("")
    rows.append("Seed %s; wall time and cases/s per kind are for all releases together (each case is read by "
                "every release)." % ", ".join(map(str, seeds)))
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--cases", type=int, default=10000, help="cases per release of each kind (default 10,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=runner.BATCH,
                        help="machines cases per build hook run (default %d)" % runner.BATCH)
    parser.add_argument("--jobs", type=int, default=runner.JOBS,
                        help="real Nix processes at a time (default %d)" % runner.JOBS)
    parser.add_argument("--minutes", type=float,
                        help="stop drawing after this many minutes, shared by the kinds (the record says how many ran)")
    parser.add_argument("--kinds", default="machines,nix.conf", help="which kinds to run (default both)")
    parser.add_argument("--keep", type=int, default=5, help="disagreements kept (and minimised) per release and kind")
    parser.add_argument("--output", default=os.path.join(RESULTS, "differential.json"),
                        help="the JSON record (default bench/results/differential.json)")
    parser.add_argument("--markdown", nargs="+", metavar="JSON", help="print the table of these records and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        records = []
        for path in args.markdown:
            with open(path, encoding="utf-8") as handle:
                records += json.load(handle)
        print(markdown(records))
        return 0
    releases, missing = realnix.discover()
    for gone in missing:
        log("skipped %s: %s" % (gone.name, gone.reason))
    if not releases:
        return 1
    started = time.monotonic()
    records = run(args, releases)
    for record in records:
        record["total_wall_s"] = round(time.monotonic() - started, 1)
        record["missing_releases"] = [gone.name for gone in missing]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(records, handle, indent=2)
        handle.write("\n")
    print(markdown(records))
    log("%s written, %.0f s in all" % (args.output, time.monotonic() - started))
    return 1 if any(record["disagree"] for record in records) else 0


if __name__ == "__main__":
    sys.exit(main())
