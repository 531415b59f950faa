# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Smoke run of the differential test: ~200 generated cases of each kind per release, fixed seed.

Every case is read by the collection and by the real Nix of every testbed release (the host's
2.8, the trixie and sid images' 2.26 and 2.34, run from the cached images without booting).
A release whose Nix is not there is skipped with the reason; `make differential-smoke` runs
after `testbed-selftest`, which builds the images. The long run is bench/differential.py.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile

import pytest

from . import cases, realnix, runner, verdict

pytestmark = pytest.mark.differential
SEED = 20261201
CASES = 200

RELEASES, MISSING = realnix.discover()


def _release_params():
    params = [pytest.param(release, id=release.name) for release in RELEASES]
    params += [pytest.param(None, id=missing.name, marks=pytest.mark.skip(reason=missing.reason)) for missing in MISSING]
    return params


def _report(tally, release):
    lines = []
    for _verdict, case, detail in tally.disagreements()[release.name][:5]:
        lines.append("%r\n%s" % (case, detail[:1500]))
    return "\n\n".join(lines)


@pytest.fixture(scope="module")
def machines_tally():
    return runner.run_machines(RELEASES, CASES, SEED)


@pytest.fixture(scope="module")
def conf_tally():
    return runner.run_conf(RELEASES, CASES, SEED)


@pytest.mark.parametrize("release", _release_params())
def test_machines_agree_with_real_nix(machines_tally, release):
    counts = machines_tally.counts[release.name]
    assert counts["cases"] == CASES
    assert counts["disagree"] == 0, _report(machines_tally, release)
    # The run must exercise what it claims: most cases agree outright.
    assert counts["agree"] > CASES // 2


@pytest.mark.parametrize("release", _release_params())
def test_legacy_differences_are_predicted_only_before_2_29(machines_tally, release):
    counts = machines_tally.counts[release.name]
    if release.version >= (2, 29):
        assert counts["legacy"] == 0 and counts["version"] == 0
    else:
        # The generator writes comments with ';' and blank entries often: 2.8 and 2.26 read some
        # cases differently, and legacy_parse_differences() must have said so for each.
        assert counts["legacy"] > 0


@pytest.mark.parametrize("release", _release_params())
def test_nix_conf_agrees_with_real_nix(conf_tally, release):
    counts = conf_tally.counts[release.name]
    assert counts["cases"] == CASES
    assert counts["disagree"] == 0, _report(conf_tally, release)
    assert counts["agree"] > CASES // 2


@pytest.mark.parametrize("release", _release_params())
def test_a_batched_reading_is_each_case_read_alone(release):
    """The premise of runner.read_batch: between two sentinels is what Nix makes of that case alone.

    Every drawn case this Nix accepts on its own (legacy and version differences included) goes
    into one batch; the batch must be accepted and split into exactly the single readings.
    """
    drawn = []
    runner.draw_cases(cases.machines_case(runner.CASE_DIR), 80, SEED + 1, drawn.append)
    root = tempfile.mkdtemp(prefix="nix-diff-batch-")
    try:
        texts, singles = [], []
        for index, case in enumerate(drawn):
            directory = os.path.join(root, str(index))
            os.makedirs(directory)
            builders, files = runner._relocate(case, directory)  # noqa: SLF001
            runner._write(files)  # noqa: SLF001
            alone = realnix.machines_oracle(release, builders)
            if alone.error is None:
                texts.append(builders)
                singles.append((alone.uris, alone.rows))
        assert len(texts) >= 10, "too few accepted cases to check batching"
        runs = collections.Counter()
        batched = runner.read_batch(release, texts, runs)
        assert runs[release.name] == 1, "Nix refused a batch of cases it accepts one by one"
        assert [(r.uris, r.rows) for r in batched] == singles
    finally:
        shutil.rmtree(root, ignore_errors=True)


# Found by the long run (bench/results/differential-run3.json, 2 of 10,000 cases on 2.34): each
# pinned case with the verdict it must get on every release.
PINNED = [
    # 2.34 reads any user part before a bracketed IPv6 host without a port; 2.26 refuses it.
    (" ü@[::1]?max-connections=4&compress=true", {"bookworm": "version", "trixie": "agree", "sid": "version"}),
    ("a^@[::1]", {"bookworm": "version", "trixie": "agree", "sid": "version"}),
    # Elsewhere 2.34 refuses such a character too: agreement, not the version rule.
    ("ü@h", {"bookworm": "version", "trixie": "agree", "sid": "agree"}),
    # A port that is not a number: 2.34 refuses it, 2.26 reads "builder:ssh" as a host; the
    # collection refuses it on purpose (ssh cannot use it either).
    ("nix@builder:ssh", {"bookworm": "version", "trixie": "stricter", "sid": "agree"}),
    # After a bracketed IPv6 host 2.26 refuses it too.
    ("ssh-ng://[::1]:x?compress=true", {"bookworm": "version", "trixie": "agree", "sid": "agree"}),
]


@pytest.mark.parametrize("release", _release_params())
@pytest.mark.parametrize("builders, expected", PINNED)
def test_pinned_cases_from_the_long_run(release, builders, expected):
    prediction = verdict.predict_machines(builders, {})
    result = realnix.machines_oracle(release, builders)
    got, detail = verdict.machines_verdict(release, builders, {}, prediction, result)
    assert got == expected[release.name], detail
