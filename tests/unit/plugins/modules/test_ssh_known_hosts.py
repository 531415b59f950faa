"""ssh_known_hosts and file_content: the known_hosts and authorized_keys writes of the roles go
through the collection's safe-write path under the host lock (issue 13, life cycle item c)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import file_edit
from ansible_collections.nix_remote.builders.plugins.modules import file_content, ssh_known_hosts

ED1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
ED2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
BY_HAND = "# pinned by hand\nother.example " + ED2 + "   keep  me\r\n"


@pytest.fixture
def known_hosts(tmp_path):
    path = tmp_path / "ssh_known_hosts"
    path.write_bytes(BY_HAND.encode())
    return path


def test_present_and_absent_keep_other_lines_byte_for_byte(run_module, known_hosts):
    args = {"path": str(known_hosts), "hosts": [{"name": "b1", "keys": [ED1]}, {"name": "[b2]:2222", "keys": [ED2]}]}
    result = run_module(ssh_known_hosts.main, args)
    assert not result["failed"], result
    assert result["changed"] and result["added"] == ["b1 ssh-ed25519", "[b2]:2222 ssh-ed25519"]
    assert known_hosts.read_bytes() == (BY_HAND + f"b1 {ED1}\n[b2]:2222 {ED2}\n").encode()
    assert not run_module(ssh_known_hosts.main, args)["changed"]
    hosts = [{"name": "b1", "state": "absent"}, {"name": "[b2]:2222", "state": "absent"}]
    gone = run_module(ssh_known_hosts.main, {"path": str(known_hosts), "hosts": hosts})
    assert gone["changed"] and gone["removed"] == ["b1 ssh-ed25519", "[b2]:2222 ssh-ed25519"]
    assert known_hosts.read_bytes() == BY_HAND.encode()


def test_a_changed_host_key_replaces_the_old_one(run_module, known_hosts):
    run_module(ssh_known_hosts.main, {"path": str(known_hosts), "hosts": [{"name": "b1", "keys": [ED2]}]})
    result = run_module(ssh_known_hosts.main, {"path": str(known_hosts), "hosts": [{"name": "b1", "keys": [ED1]}]})
    assert result["changed"] and result["removed"] == ["b1 ssh-ed25519"]
    assert known_hosts.read_bytes().decode() == BY_HAND + f"b1 {ED1}\n"


def test_check_mode_and_diff_write_nothing(run_module, known_hosts):
    args = {"path": str(known_hosts), "hosts": [{"name": "b1", "keys": [ED1]}]}
    result = run_module(ssh_known_hosts.main, args, check_mode=True, diff=True)
    assert result["changed"] and result["diff"]["before"] == BY_HAND and result["diff"]["after"] == BY_HAND + f"b1 {ED1}\n"
    assert known_hosts.read_bytes().decode() == BY_HAND
    assert not os.path.exists(file_edit.HOST_LOCK_PATH), "check mode only reads, so it takes no lock"


def test_new_file_gets_the_mode_and_the_lock_is_taken(run_module, tmp_path, monkeypatch):
    path = tmp_path / "new_known_hosts"
    taken = []
    real_lock = file_edit.host_lock

    def spy(*args, **kwargs):
        taken.append(True)
        return real_lock(*args, **kwargs)

    monkeypatch.setattr(file_edit, "host_lock", spy)
    result = run_module(ssh_known_hosts.main, {"path": str(path), "hosts": [{"name": "b1", "keys": [ED1]}], "mode": "0640"})
    assert not result["failed"], result
    assert taken and path.read_text() == f"b1 {ED1}\n" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_mode_is_set_before_the_rename(run_module, known_hosts, monkeypatch):
    """The file never appears with the wrong mode: the temporary file has it when it is renamed."""
    seen = []
    real_rename = os.rename
    monkeypatch.setattr(file_edit.os, "rename", lambda src, dst: (seen.append(stat.S_IMODE(os.stat(src).st_mode)), real_rename(src, dst)))
    run_module(ssh_known_hosts.main, {"path": str(known_hosts), "hosts": [{"name": "b1", "keys": [ED1]}], "mode": "0600"})
    assert seen == [0o600]


def test_only_absent_on_a_missing_file_creates_nothing(run_module, tmp_path):
    path = tmp_path / "missing"
    result = run_module(ssh_known_hosts.main, {"path": str(path), "hosts": [{"name": "b1", "state": "absent"}]})
    assert not result["changed"] and not path.exists()


@pytest.mark.parametrize("hosts, message", [
    ([{"name": "b1", "keys": [ED1]}, {"name": "B1", "state": "absent"}], "listed both present and absent"),
    ([{"name": "b1"}], "needs at least one key"),
    ([{"name": "b1", "keys": [ED1], "state": "absent"}], "keys are given with state=absent"),
    ([{"name": "b 1", "keys": [ED1]}], "whitespace"),
    ([{"name": "b1", "keys": ["b1 " + ED1]}], "is not `keytype base64"),
])
def test_bad_hosts_fail_and_write_nothing(run_module, known_hosts, hosts, message):
    result = run_module(ssh_known_hosts.main, {"path": str(known_hosts), "hosts": hosts})
    assert result["failed"] and message in result["msg"], result
    assert known_hosts.read_bytes().decode() == BY_HAND


@pytest.mark.parametrize("main, extra", [(ssh_known_hosts.main, {"hosts": [{"name": "b1", "keys": [ED1]}]}),
                                         (file_content.main, {"content": "x\n"})], ids=["ssh_known_hosts", "file_content"])
def test_non_regular_targets_and_symlinks_are_refused(run_module, tmp_path, main, extra):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run_module(main, dict(extra, path=str(fifo)))
    assert result["failed"] and "a FIFO" in result["msg"] and not os.path.exists(file_edit.HOST_LOCK_PATH)
    target = tmp_path / "target"
    target.write_text("")
    link = tmp_path / "link"
    link.symlink_to(target)
    result = run_module(main, dict(extra, path=str(link)))
    assert result["failed"] and "is a symlink" in result["msg"] and target.read_text() == ""


def test_file_content_writes_the_whole_file_with_owner_and_mode_before_the_rename(run_module, tmp_path, monkeypatch):
    path = tmp_path / "authorized_keys"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    seen = []
    real_rename = os.rename
    monkeypatch.setattr(file_edit.os, "rename", lambda src, dst: (seen.append(stat.S_IMODE(os.stat(src).st_mode)), real_rename(src, dst)))
    args = {"path": str(path), "content": "# source: c1\nrestrict " + ED1 + "\n", "mode": "0600",
            "owner": str(os.getuid()), "group": str(os.getgid())}
    result = run_module(file_content.main, args, diff=True)
    assert not result["failed"], result
    assert result["changed"] and result["diff"]["before"] == "old\n" and path.read_text() == args["content"]
    assert seen == [0o600] and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not run_module(file_content.main, args)["changed"]


def test_file_content_check_mode_and_new_empty_file(run_module, tmp_path):
    path = tmp_path / "empty"
    result = run_module(file_content.main, {"path": str(path), "content": ""}, check_mode=True)
    assert result["changed"] and not path.exists()
    result = run_module(file_content.main, {"path": str(path), "content": ""})
    assert result["changed"] and path.exists() and path.read_text() == ""
    assert not run_module(file_content.main, {"path": str(path), "content": ""})["changed"]


def test_file_content_refuses_a_nul(run_module, tmp_path):
    path = tmp_path / "f"
    try:
        result = run_module(file_content.main, {"path": str(path), "content": "a\x00b"})
    except ValueError as exc:  # older ansible-core lets syslog's refusal escape: a module failure
        assert "embedded null character" in str(exc)
        result = {"failed": True, "msg": "Failed to log to syslog (embedded null character)"}
    assert result["failed"] and not path.exists()
    # Where AnsibleModule logs its invocation to syslog (ansible-test's units on Python 3.12 and later),
    # syslog refuses the NUL before the module's own check runs; the message is then Ansible's, and
    # still nothing is written.
    assert "NUL" in result["msg"] or result["msg"].startswith("Failed to log to syslog (embedded null character)"), result
