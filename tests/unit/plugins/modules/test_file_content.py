"""file_content's keep_backups and validate: what the roles need to replace ansible.builtin.template
and their find/remove backup pruning (validate as ansible.builtin.copy has it, but also in check mode)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nix_remote.builders.plugins.modules import file_content

REFUSE = "sh -c 'echo \"line 1: not a sudoers line\" >&2; exit 3' check %s"


def snapshot(directory) -> dict:
    """Every entry of a directory with its bytes and mtime."""
    return {entry.name: (entry.read_bytes(), entry.stat().st_mtime_ns) for entry in sorted(directory.iterdir())}


@pytest.fixture
def target(tmp_path):
    directory = tmp_path / "etc"
    directory.mkdir()
    path = directory / "sudoers"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    return path


def recorder(tmp_path) -> tuple[str, object]:
    """A validate command that logs the path, mode and content it was given, and accepts."""
    log = tmp_path / "validate.log"
    return f"sh -c 'echo \"$1\" >> {log}; stat -c %%a \"$1\" >> {log}; cat \"$1\" >> {log}' check %s", log


@pytest.mark.parametrize("keep", [1, 2])
def test_keep_backups_prunes_the_oldest(run_module, target, keep):
    kept = []
    for number in range(1, 5):
        result = run_module(file_content.main, {"path": str(target), "content": f"v{number}\n", "backup": True, "keep_backups": keep})
        assert not result["failed"], result
        # backup_local names a backup by PID and second: give each the name a separate run would have.
        name = f"{target}.{1000 + number}.2026-11-25@12:00:0{number}~"
        os.rename(result["backup_file"], name)
        os.utime(name, ns=(number * 10**9, number * 10**9))
        kept = (kept + [os.path.basename(name)])[-keep:]
    left = sorted(name for name in os.listdir(target.parent) if name.startswith("sudoers.") and name.endswith("~"))
    assert len(left) == keep and left[-1] == kept[-1]
    assert (target.parent / left[-1]).read_text() == "v3\n" and target.read_text() == "v4\n"


def test_keep_backups_must_keep_one(run_module, target):
    result = run_module(file_content.main, {"path": str(target), "content": "new\n", "backup": True, "keep_backups": 0})
    assert result["failed"] and result["msg"] == "keep_backups: 0 would remove the backup just made; use 1 or more"
    assert target.read_text() == "old\n"


def test_validate_accepts_and_sees_a_temporary_copy_with_the_new_mode(run_module, target, tmp_path):
    command, log = recorder(tmp_path)
    args = {"path": str(target), "content": "new\n", "mode": "0440", "validate": command}
    result = run_module(file_content.main, args)
    assert not result["failed"] and result["changed"], result
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o440
    candidate, mode, content = log.read_text().splitlines()
    assert (mode, content) == ("440", "new")
    assert os.path.dirname(candidate) != str(target.parent) and os.path.basename(candidate) == "sudoers"
    assert not os.path.exists(candidate) and not os.path.exists(os.path.dirname(candidate)), "the temporary copy is removed"
    assert sorted(os.listdir(target.parent)) == ["sudoers"]
    # Idempotent: nothing to change, so nothing to validate.
    again = run_module(file_content.main, args)
    assert not again["failed"] and not again["changed"] and len(log.read_text().splitlines()) == 3


@pytest.mark.parametrize("backup", [False, True])
def test_validate_refuses_and_the_file_stays_byte_identical(run_module, target, backup):
    before = snapshot(target.parent)
    result = run_module(file_content.main, {"path": str(target), "content": "new\n", "validate": REFUSE, "backup": backup}, diff=True)
    assert result["failed"], result
    assert str(target) in result["msg"] and "line 1: not a sudoers line" in result["msg"] and "status 3" in result["msg"]
    assert result["exit_status"] == 3 and "not a sudoers line" in result["stderr"]
    assert result["diff"]["after"] == "new\n"
    assert snapshot(target.parent) == before, "no change, no temporary file, no backup"


def test_validate_refuses_a_new_file_and_creates_nothing(run_module, tmp_path):
    path = tmp_path / "new"
    result = run_module(file_content.main, {"path": str(path), "content": "x\n", "validate": REFUSE})
    assert result["failed"] and str(path) in result["msg"] and not path.exists()


@pytest.mark.parametrize("command, message", [
    ("/usr/sbin/visudo -csf", "validate must contain %s"),
    ("sh -c 'date +%Y' %s", "a % directive other than %s"),
])
def test_a_bad_validate_command_is_refused_even_when_nothing_would_change(run_module, target, command, message):
    for content in ("old\n", "new\n"):
        for check_mode in (False, True):
            result = run_module(file_content.main, {"path": str(target), "content": content, "validate": command}, check_mode=check_mode)
            assert result["failed"] and message in result["msg"] and command in result["msg"], result
    assert target.read_text() == "old\n"


def test_a_validate_program_that_does_not_exist_is_named(run_module, target):
    result = run_module(file_content.main, {"path": str(target), "content": "new\n", "validate": "no-such-checker-here %s"})
    assert result["failed"] and str(target) in result["msg"] and "no-such-checker-here" in result["msg"], result
    assert target.read_text() == "old\n"


def test_validate_runs_in_check_mode(run_module, target, tmp_path):
    before = snapshot(target.parent)
    result = run_module(file_content.main, {"path": str(target), "content": "new\n", "validate": REFUSE}, check_mode=True)
    assert result["failed"] and "not a sudoers line" in result["msg"] and result["changed"]
    command, log = recorder(tmp_path)
    result = run_module(file_content.main, {"path": str(target), "content": "new\n", "validate": command}, check_mode=True, diff=True)
    assert not result["failed"] and result["changed"] and result["diff"]["before"] == "old\n" and result["diff"]["after"] == "new\n"
    assert log.read_text().splitlines()[1:] == ["644", "new"]
    assert snapshot(target.parent) == before


def test_check_mode_without_a_change_runs_no_validate(run_module, target, tmp_path):
    command, log = recorder(tmp_path)
    result = run_module(file_content.main, {"path": str(target), "content": "old\n", "validate": command}, check_mode=True)
    assert not result["failed"] and not result["changed"] and not log.exists()


def test_a_path_with_spaces_reaches_the_command_as_one_word(run_module, tmp_path):
    directory = tmp_path / "a dir"
    directory.mkdir()
    path = directory / "my file"
    command, log = recorder(tmp_path)
    result = run_module(file_content.main, {"path": str(path), "content": "x\n", "validate": command})
    assert not result["failed"], result
    assert path.read_text() == "x\n" and log.read_text().splitlines()[1:] == ["644", "x"]


# directory_mode: the role's drop-in directory (ssh_config.d) made in the same call as its file.
def test_directory_mode_makes_a_missing_directory_then_the_file(run_module, tmp_path):
    path = tmp_path / "ssh_config.d" / "60-x.conf"
    first = run_module(file_content.main, {"path": str(path), "content": "Host b1\n", "directory_mode": "0755"})
    assert not first["failed"] and first["changed"], first
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755 and path.read_text() == "Host b1\n"
    second = run_module(file_content.main, {"path": str(path), "content": "Host b1\n", "directory_mode": "0755"})
    assert not second["failed"] and not second["changed"]


def test_directory_mode_makes_missing_parents_too(run_module, tmp_path):
    path = tmp_path / "etc" / "ansible" / "facts.d" / "x.fact"
    result = run_module(file_content.main, {"path": str(path), "content": "{}\n", "directory_mode": "0755"})
    assert not result["failed"] and result["changed"], result
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755
    assert path.read_text() == "{}\n"


def test_directory_mode_leaves_an_existing_directory_as_it_is(run_module, tmp_path):
    directory = tmp_path / "ssh_config.d"
    directory.mkdir(mode=0o750)
    os.chmod(directory, 0o750)
    result = run_module(file_content.main, {"path": str(directory / "x.conf"), "content": "x\n", "directory_mode": "0755"})
    assert not result["failed"] and result["changed"]
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o750


def test_directory_mode_in_check_mode_makes_nothing(run_module, tmp_path):
    path = tmp_path / "ssh_config.d" / "x.conf"
    result = run_module(file_content.main, {"path": str(path), "content": "x\n", "directory_mode": "0755"}, check_mode=True, diff=True)
    assert not result["failed"] and result["changed"]
    assert not path.parent.exists()


@pytest.mark.parametrize("extra, message", [
    ({"validate": REFUSE}, "line 1: not a sudoers line"),
    ({"owner": "no-such-user-here"}, "owner: no user named 'no-such-user-here' on this host; nothing was written"),
    ({"directory_mode": "u=banana"}, "mode: 'u=banana' is neither an octal nor a symbolic mode"),
])
def test_directory_mode_makes_nothing_when_the_write_is_refused(run_module, tmp_path, extra, message):
    path = tmp_path / "ssh_config.d" / "x.conf"
    result = run_module(file_content.main, dict({"path": str(path), "content": "x\n", "directory_mode": "0755"}, **extra))
    assert result["failed"] and message in result["msg"], result
    assert not path.parent.exists()


def test_directory_mode_refuses_a_file_in_the_directorys_place(run_module, tmp_path):
    (tmp_path / "ssh_config.d").write_text("")
    result = run_module(file_content.main, {"path": str(tmp_path / "ssh_config.d" / "x.conf"), "content": "x\n", "directory_mode": "0755"})
    # Refused before the lock, when the path is first examined.
    assert result["failed"] and result["msg"].startswith(f"{tmp_path / 'ssh_config.d' / 'x.conf'}: ")
    assert result["msg"].endswith(": cannot examine: Not a directory")
    assert (tmp_path / "ssh_config.d").read_text() == ""
