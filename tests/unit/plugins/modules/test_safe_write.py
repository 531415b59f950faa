"""The one safe-write path (file_edit.read_config / write_atomic / replace_file / host_lock):
non-regular targets refused before the lock, owner/group/mode applied before the rename, every
OS error a failure naming the file, never a temporary file left behind."""

from __future__ import annotations

import os
import socket
import stat
import subprocess

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import file_edit
from ansible_collections.nix_remote.builders.plugins.modules import nix_conf, nix_daemon, nix_machines, nixos_module

ORIGINAL = "sandbox = true\n"


def make_fifo(path):
    os.mkfifo(path)


def make_dir(path):
    os.mkdir(path)


def make_socket(path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


KINDS = {"fifo": (make_fifo, "a FIFO"), "directory": (make_dir, "a directory"), "socket": (make_socket, "a socket")}


def args_for(module, path, tmp_path):
    if module is nix_conf:
        return {"path": str(path), "settings": {"cores": 2}}
    if module is nix_machines:
        return {"path": str(path), "builders": [{"uri": "ssh-ng://b1"}]}
    return {"path": str(path), "content": {"nix.distributedBuilds": True}, "configuration": str(tmp_path / "configuration.nix"), "import": False}


@pytest.mark.parametrize("module", [nix_conf, nix_machines, nixos_module], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_non_regular_target_is_refused_before_the_lock(run_module, tmp_path, module, kind):
    target = tmp_path / "target"
    KINDS[kind][0](target)
    result = run_module(module.main, args_for(module, target, tmp_path))
    assert result["failed"]
    assert f"{target}: is {KINDS[kind][1]}" in result["msg"] and "not a regular file" in result["msg"]
    # Refused before the host lock was even created, so it cannot have been held.
    assert not os.path.exists(file_edit.HOST_LOCK_PATH)
    assert sorted(os.listdir(tmp_path)) == sorted(["target", ".ansible-tmp"])


@pytest.mark.parametrize("check_mode", [False, True])
def test_character_device_is_not_read_as_empty(run_module, tmp_path, check_mode):
    result = run_module(nix_conf.main, {"path": "/dev/null", "settings": {"cores": 2}}, check_mode=check_mode)
    assert result["failed"] and "/dev/null: is a character device" in result["msg"]
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_behind_followed_symlink_is_refused(run_module, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "fifo", tmp_path / "nix.conf")
    result = run_module(nix_conf.main, {"path": str(tmp_path / "nix.conf"), "follow": True, "settings": {"cores": 2}})
    assert result["failed"] and "is a FIFO" in result["msg"]


def test_fifo_as_followed_custom_conf_is_refused(run_module, tmp_path):
    (tmp_path / "nix.conf").write_text("!include nix.custom.conf\n")
    os.mkfifo(tmp_path / "nix.custom.conf")
    result = run_module(nix_conf.main, {"path": str(tmp_path / "nix.conf"), "settings": {"cores": 2}})
    assert result["failed"] and f"{tmp_path}/nix.custom.conf: is a FIFO" in result["msg"]


def listing(directory):
    return sorted(name for name in os.listdir(directory) if name not in (".ansible-tmp", "nix-remote-builders.lock"))


@pytest.mark.parametrize("bad, expect", [
    ({"owner": "no-such-user-h13"}, "owner: no user named 'no-such-user-h13'"),
    ({"group": "no-such-group-h13"}, "group: no group named 'no-such-group-h13'"),
    ({"mode": "u+q"}, "mode: 'u+q' is neither an octal nor a symbolic mode"),
    ({"mode": "07777777"}, "holds more than permission bits"),
])
@pytest.mark.parametrize("module", [nix_conf, nix_machines], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_bad_owner_group_mode_fails_with_the_file_untouched(run_module, tmp_path, bad, expect, module):
    path = tmp_path / ("nix.conf" if module is nix_conf else "machines")
    path.write_text(ORIGINAL if module is nix_conf else "ssh://old x86_64-linux\n")
    before = path.read_bytes(), os.stat(path)
    result = run_module(module.main, dict(args_for(module, path, tmp_path), **bad))
    assert result["failed"] and f"{path}: " in result["msg"] and expect in result["msg"], result["msg"]
    after = os.stat(path)
    assert path.read_bytes() == before[0] and after.st_mtime_ns == before[1].st_mtime_ns and after.st_ino == before[1].st_ino
    assert listing(tmp_path) == [path.name]


@pytest.mark.root  # chown to another user
def test_owner_group_mode_are_on_the_file_when_it_appears(run_module, tmp_path):
    path = tmp_path / "nix.conf"
    path.write_text(ORIGINAL)
    os.chmod(path, 0o600)
    result = run_module(nix_conf.main, {"path": str(path), "settings": {"cores": 2}, "owner": "1234", "group": "2345", "mode": "u=rw,g=r"})
    assert result["changed"] and not result.get("failed")
    info = os.stat(path)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1234, 2345, 0o640)


@pytest.mark.root  # chown to another user
def test_existing_owner_and_mode_are_kept(run_module, tmp_path):
    path = tmp_path / "nix.conf"
    path.write_text(ORIGINAL)
    os.chown(path, 4321, 5432)
    os.chmod(path, 0o604)
    run_module(nix_conf.main, {"path": str(path), "settings": {"cores": 2}})
    info = os.stat(path)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 5432, 0o604)


def chattr(flag, path):
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"this file system has no immutable attribute: {done.stderr.decode().strip()}")


@pytest.mark.root  # chattr +i
@pytest.mark.parametrize("module", [nix_conf, nix_machines], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_immutable_file_is_a_clear_failure(run_module, tmp_path, module):
    path = tmp_path / ("nix.conf" if module is nix_conf else "machines")
    path.write_text(ORIGINAL if module is nix_conf else "ssh://old x86_64-linux\n")
    before = path.read_bytes()
    chattr("+i", path)
    try:
        result = run_module(module.main, args_for(module, path, tmp_path))
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert result["failed"] and f"{path}: cannot write (replace failed): Operation not permitted" in result["msg"]
    assert "immutable" in result["msg"]
    assert path.read_bytes() == before and listing(tmp_path) == [path.name]


@pytest.mark.root  # chattr +i
def test_immutable_directory_is_a_clear_failure(run_module, tmp_path):
    conf_dir = tmp_path / "etc-nix"
    conf_dir.mkdir()
    path = conf_dir / "nix.conf"
    path.write_text(ORIGINAL)
    chattr("+i", conf_dir)
    try:
        result = run_module(nix_conf.main, {"path": str(path), "settings": {"cores": 2}})
    finally:
        subprocess.run(["chattr", "-i", str(conf_dir)], check=True)
    assert result["failed"] and f"{path}: cannot write" in result["msg"] and "Operation not permitted" in result["msg"]
    assert path.read_text() == ORIGINAL and os.listdir(conf_dir) == ["nix.conf"]


@pytest.mark.parametrize("make_lock, cause", [
    (os.mkdir, "Is a directory"),
    (lambda p: os.symlink("/nonexistent", p), "Too many levels of symbolic links"),
])
def test_unusable_host_lock_is_a_clear_failure(run_module, tmp_path, monkeypatch, make_lock, cause):
    lock = tmp_path / "lock"
    make_lock(lock)
    monkeypatch.setattr(file_edit, "HOST_LOCK_PATH", str(lock))
    path = tmp_path / "nix.conf"
    path.write_text(ORIGINAL)
    result = run_module(nix_conf.main, {"path": str(path), "settings": {"cores": 2}})
    assert result["failed"] and f"{lock}: cannot take this host's edit lock: {cause}" in result["msg"]
    assert path.read_text() == ORIGINAL


@pytest.mark.root  # drops to another user
def test_lock_denied_to_an_unprivileged_user_is_a_clear_failure():
    """EACCES as a real non-root process (root cannot be denied)."""
    import pathlib  # pylint: disable=import-outside-toplevel
    import shutil  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel

    # pytest's tmp_path is private to root; this directory must be reachable by nobody.
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="h13-lock-"))
    try:
        _lock_denied(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _lock_denied(tmp_path):
    lock = tmp_path / "lock"
    lock.write_text("")
    os.chmod(lock, 0o600)
    os.chmod(tmp_path, 0o755)

    def as_nobody():
        os.setgid(65534)
        os.setuid(65534)

    # A copy of the module_utils file, so the unprivileged process needs nothing under /root or the checkout.
    work = tmp_path / "code"
    work.mkdir(mode=0o755)
    with open(file_edit.__file__, encoding="utf-8") as source:
        (work / "file_edit.py").write_text(source.read())
    code = ("import sys; sys.path.insert(0, sys.argv[2]); import file_edit as f\n"
            "try:\n    f.host_lock(path=sys.argv[1]).__enter__()\nexcept f.ConfigFileError as e:\n    print(e)\n")
    done = subprocess.run(["/usr/bin/python3", "-c", code, str(lock), str(work)], capture_output=True, text=True, check=False,
                          preexec_fn=as_nobody, cwd="/")
    assert f"{lock}: cannot take this host's edit lock: Permission denied" in done.stdout, done.stderr


def test_replace_file_leaves_no_temporary_file_when_prepare_fails(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")

    def boom(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(file_edit.ConfigFileError, match="No space left on device"):
        file_edit.replace_file(str(path), b"new", 0o644, prepare=boom)
    assert os.listdir(tmp_path) == ["f"] and path.read_text() == "old"


def test_daemon_restore_keeps_backup_mode_and_refuses_a_fifo(tmp_path):
    path, backup = tmp_path / "nix.conf", tmp_path / "nix.conf.bak"
    path.write_text("new\n")
    backup.write_text("old\n")
    os.chmod(backup, 0o640)
    nix_daemon.restore({"path": str(path), "backup": str(backup)})
    assert path.read_text() == "old\n" and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["nix.conf", "nix.conf.bak"]
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(file_edit.ConfigFileError, match="is a FIFO"):
        nix_daemon.restore({"path": str(path), "backup": str(backup)})


def test_machines_path_and_nix_conf_path_exclude_each_other(run_module, tmp_path):
    (tmp_path / "nix.conf").write_text(ORIGINAL)
    result = run_module(nix_machines.main, {"path": str(tmp_path / "machines"), "nix_conf_path": str(tmp_path / "nix.conf"),
                                            "builders": [{"uri": "ssh-ng://b1"}]})
    assert result["failed"] and "mutually exclusive: path|nix_conf_path" in result["msg"]
    assert (tmp_path / "nix.conf").read_text() == ORIGINAL and not (tmp_path / "machines").exists()


def test_nixos_module_task_mode_is_not_applied_to_configuration_nix(run_module, tmp_path):
    configuration = tmp_path / "configuration.nix"
    configuration.write_text("{ ... }:\n{\n  imports = [ ];\n}\n")
    os.chmod(configuration, 0o644)
    result = run_module(nixos_module.main, {"path": str(tmp_path / "remote-builder.nix"), "content": {"nix.distributedBuilds": True},
                                            "configuration": str(configuration), "mode": "0600"})
    assert result["changed"] and result["import_added"], result
    assert stat.S_IMODE(os.stat(tmp_path / "remote-builder.nix").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(configuration).st_mode) == 0o644


def _leftovers(directory, name):
    prefix = file_edit.temporary_prefix(str(directory / name))
    return sorted(e for e in os.listdir(directory) if e.startswith(prefix))


def test_a_killed_write_leaves_the_old_file_and_the_next_locked_run_removes_its_temporary(run_module, tmp_path):
    """A real SIGKILL between creating the temporary file and the rename (no cleanup code runs)."""
    import signal  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    path = tmp_path / "nix.conf"
    path.write_text(ORIGINAL)
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); import file_edit as f\n"
            "def stop(tmp):\n    print('ready', flush=True)\n    time.sleep(60)\n"
            "f.replace_file(sys.argv[1], b'cores = 2\\n', 0o644, prepare=stop)\n")
    work = tmp_path / "code"
    work.mkdir()
    with open(file_edit.__file__, encoding="utf-8") as source:
        (work / "file_edit.py").write_text(source.read())
    child = subprocess.Popen([sys.executable, "-c", code, str(path), str(work)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = _leftovers(tmp_path, "nix.conf")
    assert len(left) == 1 and path.read_text() == ORIGINAL
    assert (tmp_path / left[0]).read_bytes() == b"cores = 2\n"
    # Not this collection's, or not one of mkstemp's names: kept.
    others = [".nix.conf.tmp-abcdefgh", ".nix.conf" + file_edit.TEMP_MARK + "abcdefgh.keep", ".machines" + file_edit.TEMP_MARK + "abcdefgh"]
    for other in others:
        (tmp_path / other).write_text("someone else's\n")
    os.symlink("/nonexistent", tmp_path / (".nix.conf" + file_edit.TEMP_MARK + "symlink1"))
    # A run that changes nothing removes the leftover too.
    result = run_module(nix_conf.main, {"path": str(path), "settings": {"sandbox": True}})
    assert not result.get("failed") and not result["changed"], result
    assert _leftovers(tmp_path, "nix.conf") == sorted([".nix.conf" + file_edit.TEMP_MARK + "abcdefgh.keep",
                                                       ".nix.conf" + file_edit.TEMP_MARK + "symlink1"])
    assert all((tmp_path / other).read_text() == "someone else's\n" for other in others)


def test_leftovers_are_kept_without_the_host_lock_and_check_mode_removes_nothing(run_module, tmp_path):
    path = tmp_path / "nix.conf"
    path.write_text(ORIGINAL)
    leftover = tmp_path / (file_edit.temporary_prefix(str(path)) + "abcdefgh")
    leftover.write_text("partial")
    # nix_daemon's restore writes without the host lock: another run may be writing right now.
    file_edit.replace_file(str(path), b"cores = 1\n", 0o644)
    assert leftover.exists() and path.read_text() == "cores = 1\n"
    result = run_module(nix_conf.main, {"path": str(path), "settings": {"cores": 2}}, check_mode=True)
    assert result["changed"] and leftover.exists()
    result = run_module(nix_conf.main, {"path": str(path), "settings": {"cores": 2}})
    assert result["changed"] and not leftover.exists()
    assert _leftovers(tmp_path, "nix.conf") == []


def test_a_backup_that_fails_on_a_full_disk_leaves_nothing(run_module, tmp_path, monkeypatch):
    """ansible-core's backup_local copies in place and left a truncated backup on a full /etc/nix
    (seen on the testbed's tmpfs); the backup is an atomic write like the rest now."""
    path = tmp_path / "nix.conf"
    path.write_text(ORIGINAL)

    def full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_edit.os, "fsync", full)
    result = run_module(nix_conf.main, {"path": str(path), "settings": {"cores": 2}, "backup": True})
    assert result["failed"]
    assert result["msg"].startswith(f"{path}: cannot back up before writing: ") and "No space left on device" in result["msg"]
    assert set(os.listdir(tmp_path)) - {"nix-remote-builders.lock"} == {"nix.conf", ".ansible-tmp"}
    assert path.read_text() == ORIGINAL


def test_a_backup_keeps_the_original_content_mode_and_times(run_module, tmp_path):
    path = tmp_path / "nix.conf"
    path.write_text(ORIGINAL)
    os.chmod(path, 0o640)
    os.utime(path, ns=(10**9, 2 * 10**9))
    result = run_module(nix_conf.main, {"path": str(path), "settings": {"cores": 2}, "backup": True})
    backup = result["backup_file"]
    assert not result["failed"] and os.path.basename(backup).startswith("nix.conf.")
    meta = os.stat(backup)
    assert open(backup, encoding="utf-8").read() == ORIGINAL and stat.S_IMODE(meta.st_mode) == 0o640
    assert meta.st_mtime_ns == 2 * 10**9
    assert set(os.listdir(tmp_path)) - {"nix-remote-builders.lock"} == {"nix.conf", os.path.basename(backup), ".ansible-tmp"}
