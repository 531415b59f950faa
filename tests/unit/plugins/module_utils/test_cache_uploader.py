"""The builder's cache uploader (module_utils/cache_uploader.py), run as real processes with a
stand-in nix-copy-closure that records its arguments and NIX_SSHOPTS and exits as told.  The real
copy into a real cache runs on the testbed (molecule/fleet/tests/test_binary_cache.py); the post-build
hook's tests are in tests/unit/test_cache_hook.py (they render the role's template, controller-side)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import cache_uploader as up

REPO = Path(__file__).resolve().parents[4]
PROGRAM = REPO / "plugins" / "module_utils" / "cache_uploader.py"


def stand_in(tmp_path, rc):
    """A nix-copy-closure that records its argv and NIX_SSHOPTS, then exits RC."""
    record = tmp_path / "calls"
    program = tmp_path / f"nix-copy-closure-{rc}"
    program.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$NIX_SSHOPTS\" \"$*\" >> {record}\n"
                       f"[ {rc} -eq 0 ] || echo 'cannot connect to cache' >&2\nexit {rc}\n")
    program.chmod(0o755)
    return program, record


def queue_with(tmp_path, *batches):
    queue = tmp_path / "queue"
    queue.mkdir(exist_ok=True)
    for index, paths in enumerate(batches):
        (queue / f"{1000 + index}.x{index}").write_text("".join(p + "\n" for p in paths))
    # An unfinished file of the hook: never read.
    (queue / ".in.abcdef").write_text("/nix/store/unfinished\n")
    return queue


def run_once(tmp_path, queue, program, *targets):
    argv = [sys.executable, str(PROGRAM), "--queue", str(queue), "--key", "/etc/nix/k", "--known-hosts", "/etc/nix/kh",
            "--nix-copy-closure", str(program), "--once"]
    for target in targets:
        argv += ["--to", target]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_a_round_uploads_existing_paths_once_each_then_empties_the_queue(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    a, b = store / "aaaa-a", store / "bbbb-b"
    a.write_text("a")
    b.write_text("b")
    queue = queue_with(tmp_path, [str(a), str(b)], [str(a), str(store / "gone-collected")])
    program, record = stand_in(tmp_path, 0)
    result = run_once(tmp_path, queue, program, "nix-cache@10.0.0.5:2222")
    assert result.returncode == 0, result.stderr
    opts, args = record.read_text().splitlines()
    assert args == f"--to nix-cache@10.0.0.5 {a} {b}"
    assert opts.split() == ["-p", "2222", "-i", "/etc/nix/k", "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=/etc/nix/kh",
                            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                            "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
    assert sorted(os.listdir(queue)) == [".in.abcdef"]
    assert "nix-cache@10.0.0.5:2222: uploaded 2 paths" in result.stdout


def test_an_unreachable_cache_leaves_the_queue_and_the_next_round_drains_it(tmp_path):
    path = tmp_path / "aaaa-a"
    path.write_text("a")
    queue = queue_with(tmp_path, [str(path)])
    down, _record = stand_in(tmp_path, 1)
    result = run_once(tmp_path, queue, down, "nix-cache@cache:22")
    assert result.returncode == 1
    assert "upload of 1 paths failed (1): cannot connect to cache; they stay queued" in result.stdout
    assert len([n for n in os.listdir(queue) if not n.startswith(".")]) == 1
    back, record = stand_in(tmp_path, 0)
    assert run_once(tmp_path, queue, back, "nix-cache@cache:22").returncode == 0
    assert record.read_text().splitlines()[1] == f"--to nix-cache@cache {path}"
    assert [n for n in os.listdir(queue) if not n.startswith(".")] == []


def test_a_queue_file_stays_until_every_cache_took_it(tmp_path):
    path = tmp_path / "aaaa-a"
    path.write_text("a")
    queue = queue_with(tmp_path, [str(path)])
    calls = []

    def run(argv, **kw):
        calls.append(argv[2])
        return subprocess.CompletedProcess(argv, 0 if argv[2] == "u@one" else 1, "", "refused")

    args = argparse.Namespace(
        queue=str(queue), to=["u@one:22", "u@[fd00::2]:22"], key="k", known_hosts="kh", nix_copy_closure="ncc",
        connect_timeout=5, timeout=10)
    logged = []
    assert up.upload_round(args, run=run, log=logged.append) == (0, 0, 1)
    assert calls == ["u@one", "u@[fd00::2]"]
    assert len(os.listdir(queue)) == 2
    assert logged[0] == "u@one:22: uploaded 1 paths" and "failed (1): refused" in logged[1]


@pytest.mark.parametrize("text", ["cache:22", "u@cache", "u@cache:ssh", "@cache:22"])
def test_bad_targets_are_refused(text):
    with pytest.raises(ValueError, match="user@host:port"):
        up.parse_target(text)
    result = subprocess.run([sys.executable, str(PROGRAM), "--queue", "/q", "--key", "k", "--known-hosts", "kh",
                             "--to", text, "--once"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "user@host:port" in result.stderr
