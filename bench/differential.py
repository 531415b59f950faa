# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Long differential run: generated machines texts and nix.conf trees, collection vs real Nix.

One command; prints, per release, the cases run and how many agreed, were predicted legacy or
version differences, were refused on purpose, were value errors left to nix_validate, and
disagreed (see tests/differential/verdict.py), plus up to 3 disagreements in full.

    .venv/bin/python bench/differential.py                     # 10,000 cases per release
    .venv/bin/python bench/differential.py --cases 2000 --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".build", "collections"))  # `make collections` links the checkout there
sys.path.insert(0, REPO)

from tests.differential import realnix, runner  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10000, help="cases per release, split evenly: machines and nix.conf")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the counts to this file too")
    args = parser.parse_args(argv)
    releases, missing = realnix.discover()
    for gone in missing:
        print("skipped %s: %s" % (gone.name, gone.reason))
    if not releases:
        return 1
    started = time.monotonic()
    machines = runner.run_machines(releases, args.cases - args.cases // 2, args.seed)
    conf = runner.run_conf(releases, args.cases // 2, args.seed)
    elapsed = time.monotonic() - started
    columns = ("cases",) + runner.VERDICTS
    print("%-10s %-8s %-9s " % ("release", "nix", "kind") + " ".join("%9s" % c for c in columns))
    result = []
    for release in releases:
        for kind, tally in (("machines", machines), ("nix.conf", conf)):
            counts = tally.counts[release.name]
            print("%-10s %-8s %-9s " % (release.name, release.version_text, kind)
                  + " ".join("%9d" % counts[c] for c in columns))
            result.append(dict({"release": release.name, "nix_version": release.version_text, "kind": kind},
                               **{c: counts[c] for c in columns}))
    print("%.0f s, seed %d" % (elapsed, args.seed))
    failed = False
    for tally in (machines, conf):
        for name, examples in tally.disagreements().items():
            for _verdict, case, detail in examples[:3]:
                failed = True
                print("\nDISAGREEMENT %s: %r\n%s" % (name, case, detail[:2000]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
