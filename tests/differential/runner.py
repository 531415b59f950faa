# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run generated cases through the collection and every release's Nix; count the verdicts."""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, Phase, given, seed, settings

from . import cases, realnix, verdict

VERDICTS = ("agree", "legacy", "version", "stricter", "value", "disagree")


class Tally:
    def __init__(self, releases):
        self.releases = releases
        self.counts = {release.name: collections.Counter() for release in releases}
        self.examples = {release.name: [] for release in releases}  # (verdict, case, detail)

    def add(self, release, verdict_, case, detail):
        self.counts[release.name]["cases"] += 1
        self.counts[release.name][verdict_] += 1
        if verdict_ != "agree" and len(self.examples[release.name]) < 200:
            self.examples[release.name].append((verdict_, case, detail))

    def disagreements(self):
        return {name: [e for e in examples if e[0] == "disagree"] for name, examples in self.examples.items()}


def _settings(count, phases=(Phase.generate,)):
    return settings(max_examples=count, deadline=None, database=None, phases=list(phases),
                    suppress_health_check=list(HealthCheck))


def run_machines(releases, count, seed_value, tally=None):
    tally = tally or Tally(releases)
    directory = tempfile.mkdtemp(prefix="nix-diff-files-")
    pool = ThreadPoolExecutor(max_workers=len(releases))

    @seed(seed_value)
    @_settings(count)
    @given(cases.machines_case(directory))
    def one(case):
        builders, files = case
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        for path, text in files.items():
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(text)
        prediction = verdict.predict_machines(builders, files)
        results = list(pool.map(lambda r: realnix.machines_oracle(r, builders), releases))
        for release, result in zip(releases, results):
            got, detail = verdict.machines_verdict(release, builders, files, prediction, result)
            tally.add(release, got, case, detail)

    try:
        one()
    finally:
        pool.shutdown()
        shutil.rmtree(directory, ignore_errors=True)
    return tally


def run_conf(releases, count, seed_value, tally=None):
    tally = tally or Tally(releases)
    pool = ThreadPoolExecutor(max_workers=len(releases))

    @seed(seed_value)
    @_settings(count)
    @given(cases.conf_case())
    def one(files):
        prediction = verdict.predict_conf(files)
        results = list(pool.map(lambda r: realnix.conf_oracle(r, files), releases))
        for release, result in zip(releases, results):
            got, detail = verdict.conf_verdict(release, files, prediction, result)
            tally.add(release, got, files, detail)

    try:
        one()
    finally:
        pool.shutdown()
    return tally
