"""Edits are serialized by a host-wide lock, and backups are pruned to the number asked for."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import file_edit
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import NixConf
from ansible_collections.nix_remote.builders.plugins.modules import nix_conf

# The directory holding ansible_collections/ that this test imported the collection from
# (.build/collections under plain pytest, ansible-test's own tree under `ansible-test units`).
COLLECTIONS = os.path.abspath(file_edit.__file__).rsplit(os.sep + "ansible_collections" + os.sep, 1)[0]

# Runs the module as Ansible runs it on a host: a separate Python process reading its
# arguments from a file, with the host lock pointed at the test's own path.
RUNNER = """
import sys
from ansible_collections.nix_remote.builders.plugins.module_utils import file_edit
file_edit.HOST_LOCK_PATH = sys.argv[2]
sys.argv = [sys.argv[0], sys.argv[1]]
from ansible_collections.nix_remote.builders.plugins.modules import nix_conf
nix_conf.main()
"""


def start_module(tmp_path, index: int, conf, lock):
    args = tmp_path / f"args-{index}.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "path": str(conf),
        "settings": {f"setting-{index}": index},
        "validate": False,
        "_ansible_tmpdir": str(tmp_path),
    }}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(args), str(lock)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_parallel_runs_lose_no_edit(tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("# the user's own\nsandbox = true\n")
    lock = tmp_path / "host.lock"
    workers = [start_module(tmp_path, index, conf, lock) for index in range(8)]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode() + out.decode()
        assert json.loads(out)["changed"] is True
    parsed = NixConf.parse(conf.read_text())
    assert [parsed.get(f"setting-{index}") for index in range(8)] == [str(index) for index in range(8)]
    assert conf.read_text().startswith("# the user's own\nsandbox = true\n")
    assert sorted(os.listdir(tmp_path)) == sorted(["nix.conf", "host.lock"] + [f"args-{i}.json" for i in range(8)])


def test_edit_waits_for_the_lock_holder(run_module, tmp_path, monkeypatch):
    conf = tmp_path / "nix.conf"
    conf.write_text("cores = 1\n")
    holder = os.open(file_edit.HOST_LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    released = []

    def release_later():
        time.sleep(0.5)
        released.append(time.monotonic())
        os.close(holder)

    thread = threading.Thread(target=release_later)
    thread.start()
    result = run_module(nix_conf.main, {"path": str(conf), "settings": {"cores": 2}})
    finished = time.monotonic()
    thread.join()
    assert result["changed"] and conf.read_text() == "cores = 2\n"
    assert released and finished >= released[0]


def test_lock_timeout_fails_clearly_and_changes_nothing(run_module, tmp_path, monkeypatch):
    monkeypatch.setattr(file_edit, "HOST_LOCK_TIMEOUT", 0.3)
    conf = tmp_path / "nix.conf"
    conf.write_text("cores = 1\n")
    holder = os.open(file_edit.HOST_LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        result = run_module(nix_conf.main, {"path": str(conf), "settings": {"cores": 2}})
    finally:
        os.close(holder)
    assert result["failed"] and "edit lock" in result["msg"] and file_edit.HOST_LOCK_PATH in result["msg"]
    assert conf.read_text() == "cores = 1\n"


@pytest.mark.parametrize("keep", [1, 2])
def test_keep_backups_prunes_the_oldest(run_module, tmp_path, keep):
    conf = tmp_path / "nix.conf"
    conf.write_text("cores = 0\n")
    kept = []
    for cores in range(1, 5):
        result = run_module(nix_conf.main, {"path": str(conf), "settings": {"cores": cores}, "backup": True, "keep_backups": keep})
        # backup_local names a backup by PID and second, so backups made by one process in one
        # second collide; give each the name a separate run would have, oldest first.
        name = f"{conf}.{1000 + cores}.2026-11-25@12:00:0{cores}~"
        os.rename(result["backup_file"], name)
        os.utime(name, ns=(cores * 10**9, cores * 10**9))
        kept = (kept + [os.path.basename(name)])[-keep:]
    left = sorted(name for name in os.listdir(tmp_path) if name.startswith("nix.conf.") and name.endswith("~"))
    assert len(left) == keep
    assert left[-1] == kept[-1] and (tmp_path / left[-1]).read_text() == "cores = 3\n"
    assert "nix.conf.1001.2026-11-25@12:00:01~" not in left


def test_keep_backups_must_keep_one(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("cores = 0\n")
    result = run_module(nix_conf.main, {"path": str(conf), "settings": {"cores": 1}, "backup": True, "keep_backups": 0})
    assert result["failed"] and "keep_backups" in result["msg"]
    assert conf.read_text() == "cores = 0\n"
