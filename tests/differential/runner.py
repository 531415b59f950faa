# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run generated cases through the collection and every release's Nix; count the verdicts.

Hypothesis draws the cases (cases.py) in order; they are handed in chunks to a small thread
pool, so the next chunk is drawn while real Nix reads the last ones, and the verdicts are
tallied in the order the cases were drawn.

Machines cases are batched: one Nix build hook reads many cases at once. The cases of a batch
are joined by newlines with a sentinel machine after each (``ssh://differential-sentinel-N``);
Nix reads a machines text line by line (every release: Nix splits on newlines before anything
else and a line's entries, comments and ``@file`` expansions stay within it), so the machines
between two sentinels are exactly what Nix makes of that case alone. Only cases the collection
accepts and that no known release difference touches go into a batch; a batch Nix refuses is
split in halves until the refused cases stand alone, and any case whose batched reading is not
an outright agreement is read again on its own, so every verdict but ``agree`` comes from a
single-case run (test_differential_smoke.py checks batched and single readings are identical).
nix.conf cases cannot be joined (one Nix process reads one configuration): one run each.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, Phase, given, seed, settings

from ansible_collections.nix_remote.builders.plugins.module_utils.machines import legacy_parse_differences

from . import cases, realnix, verdict

VERDICTS = ("agree", "legacy", "version", "stricter", "value", "disagree")
# The directory machines cases are drawn with; each case is moved to its own temporary one.
CASE_DIR = "/tmp/nix-differential-case"
SENTINEL = "ssh://differential-sentinel-%d"
BATCH = 40   # machines cases per build hook run
CHUNK = 8    # nix.conf cases per pool task
JOBS = 3     # pool threads: real Nix processes at a time (the drawing thread is one more)


class Tally:
    def __init__(self, releases):
        self.releases = releases
        self.counts = {release.name: collections.Counter() for release in releases}
        self.examples = {release.name: [] for release in releases}  # (verdict, case, detail)
        self.invocations = collections.Counter()  # Nix processes started, per release

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


class _Deadline(BaseException):  # not an Exception: Hypothesis lets it through as it is
    pass


def draw_cases(strategy, count, seed_value, each, deadline=None):
    """Call each(case) for `count` cases of `strategy`, drawn by Hypothesis from `seed_value`.

    With a `deadline` (time.monotonic()), drawing stops early once it has passed.
    """

    @seed(seed_value)
    @_settings(count)
    @given(strategy)
    def one(case):
        if deadline is not None and time.monotonic() > deadline:
            raise _Deadline()
        each(case)

    try:
        one()
    except _Deadline:
        pass


class _Pipeline:
    """work(chunk) for consecutive chunks of items in a thread pool; done(result) in item order."""

    def __init__(self, work, done, chunk, jobs):
        self.work, self.done, self.chunk, self.jobs = work, done, chunk, jobs
        self.pool = ThreadPoolExecutor(max_workers=jobs)
        self.pending = []
        self.futures = collections.deque()

    def add(self, item):
        self.pending.append(item)
        if len(self.pending) >= self.chunk:
            self._submit()

    def _submit(self):
        self.futures.append(self.pool.submit(self.work, self.pending))
        self.pending = []
        while len(self.futures) > 2 * self.jobs:  # bounded look-ahead: memory stays flat
            self.done(self.futures.popleft().result())

    def finish(self):
        try:
            if self.pending:
                self._submit()
            while self.futures:
                self.done(self.futures.popleft().result())
        finally:
            self.pool.shutdown(cancel_futures=True)


# ------------------------------------------------------------------ machines


def _relocate(case, directory):
    """The case with its machines files under `directory` instead of CASE_DIR."""
    builders, files = case
    return (builders.replace(CASE_DIR, directory),
            {path.replace(CASE_DIR, directory): text.replace(CASE_DIR, directory) for path, text in files.items()})


def _write(files):
    for path, text in files.items():
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)


def _batchable(release, builders, files, prediction):
    """Whether the case can share a hook run: the collection accepts it and no release rule applies."""
    if prediction[0] != "machines":
        return False
    texts = [builders] + list(files.values())
    if release.version < (2, 29) and any(legacy_parse_differences(text) for text in texts):
        return False
    return release.version >= (2, 20) or verdict._integer_speed_only(texts)  # noqa: SLF001


def read_batch(release, texts, runs):
    """Nix's reading of each builders text, from as few hook runs as it takes (see the docstring).

    `runs` (a Counter) counts the hook runs by release name.
    """
    runs[release.name] += 1
    if len(texts) == 1:
        return [realnix.machines_oracle(release, texts[0])]
    joined = "".join("%s\n%s\n" % (text, SENTINEL % index) for index, text in enumerate(texts))
    split = _split(realnix.machines_oracle(release, joined), len(texts))
    if split is None:
        half = len(texts) // 2
        return read_batch(release, texts[:half], runs) + read_batch(release, texts[half:], runs)
    return split


def _split(result, count):
    """The per-case results between the sentinels, or None when Nix refused the batch."""
    if result.error is not None or len(result.uris) != len(result.rows):
        return None
    parts, start = [], 0
    for index, uri in enumerate(result.uris):
        if uri == SENTINEL % len(parts):
            parts.append(realnix.MachinesResult(uris=result.uris[start:index], rows=result.rows[start:index]))
            start = index + 1
    if len(parts) != count or start != len(result.uris):
        return None
    return parts


def _machines_work(releases, batch):
    root = tempfile.mkdtemp(prefix="nix-diff-files-")
    try:
        located = []
        for index, case in enumerate(batch):
            directory = os.path.join(root, str(index))
            os.makedirs(directory)
            builders, files = _relocate(case, directory)
            _write(files)
            located.append((builders, files, verdict.predict_machines(builders, files)))
        verdicts, runs = [[] for _case in batch], collections.Counter()
        for release in releases:
            together = [i for i, (b, f, p) in enumerate(located) if _batchable(release, b, f, p)]
            readings = dict(zip(together, read_batch(release, [located[i][0] for i in together], runs)))
            for index, (builders, files, prediction) in enumerate(located):
                result = readings.get(index)
                got = None
                if result is not None:
                    got = verdict.machines_verdict(release, builders, files, prediction, result)
                if got is None or got[0] != "agree":  # every other verdict from a run of its own
                    result = read_batch(release, [builders], runs)[0]
                    got = verdict.machines_verdict(release, builders, files, prediction, result)
                verdicts[index].append(got)
        return verdicts, runs
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_machines(releases, count, seed_value, tally=None, batch=BATCH, jobs=JOBS, progress=None, deadline=None):
    tally = tally or Tally(releases)
    drawn = []

    def done(work_result):
        results, runs = work_result
        tally.invocations.update(runs)
        chunk = drawn[:len(results)]
        del drawn[:len(results)]
        for case, per_release in zip(chunk, results):
            for release, (got, detail) in zip(releases, per_release):
                tally.add(release, got, case, detail)
        if progress:
            progress(tally)

    pipeline = _Pipeline(lambda chunk: _machines_work(releases, chunk), done, batch, jobs)

    def each(case):
        drawn.append(case)
        pipeline.add(case)

    try:
        draw_cases(cases.machines_case(CASE_DIR), count, seed_value, each, deadline)
    finally:
        pipeline.finish()
    return tally


# ------------------------------------------------------------------ nix.conf


def _conf_work(releases, chunk):
    verdicts, runs = [], collections.Counter()
    for files in chunk:
        prediction = verdict.predict_conf(files)
        per_release = []
        for release in releases:
            runs[release.name] += 1
            result = realnix.conf_oracle(release, files)
            per_release.append(verdict.conf_verdict(release, files, prediction, result))
        verdicts.append(per_release)
    return verdicts, runs


def run_conf(releases, count, seed_value, tally=None, chunk=CHUNK, jobs=JOBS, progress=None, deadline=None):
    tally = tally or Tally(releases)
    drawn = []

    def done(work_result):
        results, runs = work_result
        tally.invocations.update(runs)
        part = drawn[:len(results)]
        del drawn[:len(results)]
        for files, per_release in zip(part, results):
            for release, (got, detail) in zip(releases, per_release):
                tally.add(release, got, files, detail)
        if progress:
            progress(tally)

    pipeline = _Pipeline(lambda part: _conf_work(releases, part), done, chunk, jobs)

    def each(files):
        drawn.append(files)
        pipeline.add(files)

    try:
        draw_cases(cases.conf_case(), count, seed_value, each, deadline)
    finally:
        pipeline.finish()
    return tally


# ------------------------------------------------------------------ minimising


def _smaller(text):
    """Texts one step smaller than `text`: a line dropped, an entry dropped, a line's last word dropped."""
    lines = text.split("\n")
    for index in range(len(lines)):
        yield "\n".join(lines[:index] + lines[index + 1:])
    for index, line in enumerate(lines):
        pieces = line.split(";")
        for drop in range(len(pieces) if len(pieces) > 1 else 0):
            yield "\n".join(lines[:index] + [";".join(pieces[:drop] + pieces[drop + 1:])] + lines[index + 1:])
        words = line.rstrip(" \t\r").rsplit(None, 1)
        if len(words) == 2:
            yield "\n".join(lines[:index] + [words[0]] + lines[index + 1:])


def _minimise(texts, fails):
    """Greedy: shrink the texts of a {name: text} while fails(texts) holds."""
    changed = True
    while changed:
        changed = False
        for name in list(texts):
            for candidate in _smaller(texts[name]):
                trial = dict(texts, **{name: candidate})
                if fails(trial):
                    texts, changed = trial, True
                    break
            if changed:
                break
    return texts


def minimise_machines(release, case):
    """A smaller machines case (builders, files) on which the collection and `release` still disagree."""
    root = tempfile.mkdtemp(prefix="nix-diff-min-")

    def fails(texts):
        builders, files = _relocate((texts.pop("<builders>"), texts), root)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        _write(files)
        result = realnix.machines_oracle(release, builders)
        return verdict.machines_verdict(release, builders, files, verdict.predict_machines(builders, files),
                                        result)[0] == "disagree"

    try:
        texts = _minimise(dict(case[1], **{"<builders>": case[0]}), lambda t: fails(dict(t)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return texts.pop("<builders>"), texts


def minimise_conf(release, files):
    """A smaller nix.conf tree on which the collection and `release` still disagree."""
    def fails(trial):
        return verdict.conf_verdict(release, trial, verdict.predict_conf(trial),
                                    realnix.conf_oracle(release, trial))[0] == "disagree"
    return _minimise(dict(files), fails)
