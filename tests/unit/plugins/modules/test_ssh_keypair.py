"""ssh_keypair: root's key for nix-daemon in one module call (the directory, the key, its mode, its public half),
run against the real ssh-keygen."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess

import pytest

from ansible_collections.nix_remote.builders.plugins.modules import ssh_keypair

ME = pwd.getpwuid(os.geteuid()).pw_name
MY_GROUP = grp.getgrgid(os.getegid()).gr_name


def args(path, **extra) -> dict:
    return dict({"path": str(path), "comment": "nix-remote-builds@client1", "owner": ME, "group": MY_GROUP}, **extra)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def public_half(path) -> str:
    """What ssh-keygen itself says the public key is (type and base64)."""
    out = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(path)], check=True, capture_output=True, text=True).stdout
    return " ".join(out.split()[:2])


def test_creates_the_directory_and_key_and_returns_the_public_half(run_module, tmp_path):
    key = tmp_path / "home" / ".ssh" / "nix-remote-builds"
    result = run_module(ssh_keypair.main, args(key))
    assert not result["failed"], result
    assert result["changed"] and result["created"]
    assert mode(key.parent) == 0o700 and mode(key) == 0o600
    assert result["public_key"] == public_half(key)
    assert result["public_key"].startswith("ssh-ed25519 ") and len(result["public_key"].split()) == 2
    # The comment is the one asked for, in the .pub ssh-keygen wrote.
    assert (tmp_path / "home" / ".ssh" / "nix-remote-builds.pub").read_text().split()[2] == "nix-remote-builds@client1"


def test_a_second_run_changes_nothing_and_keeps_the_key(run_module, tmp_path):
    key = tmp_path / ".ssh" / "id"
    first = run_module(ssh_keypair.main, args(key))
    before = key.read_bytes()
    second = run_module(ssh_keypair.main, args(key), diff=True)
    assert not second["failed"] and not second["changed"] and not second["created"]
    assert second["public_key"] == first["public_key"]
    assert key.read_bytes() == before
    assert "diff" not in second


def test_check_mode_on_a_fresh_host_reports_the_key_and_writes_nothing(run_module, tmp_path):
    key = tmp_path / ".ssh" / "id"
    result = run_module(ssh_keypair.main, args(key), check_mode=True, diff=True)
    assert not result["failed"], result
    assert result["changed"] and result["created"] and result["public_key"] == ""
    assert not (tmp_path / ".ssh").exists()
    assert result["diff"]["before"]["key"] == "absent"


def test_an_open_key_and_directory_are_closed_and_check_mode_only_says_so(run_module, tmp_path):
    key = tmp_path / ".ssh" / "id"
    run_module(ssh_keypair.main, args(key))
    os.chmod(key, 0o644)
    os.chmod(key.parent, 0o755)
    checked = run_module(ssh_keypair.main, args(key), check_mode=True)
    assert checked["changed"] and not checked["created"] and checked["public_key"] == ""
    assert any("check mode cannot read its public half" in warning for warning in checked["warnings"])
    assert mode(key) == 0o644 and mode(key.parent) == 0o755
    fixed = run_module(ssh_keypair.main, args(key))
    assert fixed["changed"] and not fixed["created"]
    assert mode(key) == 0o600 and mode(key.parent) == 0o700
    assert fixed["public_key"] == public_half(key)


def test_a_key_with_a_passphrase_is_refused_by_name_and_kept(run_module, tmp_path):
    key = tmp_path / ".ssh" / "id"
    key.parent.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True)
    before = key.read_bytes()
    result = run_module(ssh_keypair.main, args(key))
    assert result["failed"]
    assert result["msg"].startswith(f"{key} cannot be used by nix-daemon (")
    assert "without a passphrase" in result["msg"]
    assert key.read_bytes() == before
    assert "public_key" not in result


def test_a_file_that_is_no_key_is_refused_by_name(run_module, tmp_path):
    key = tmp_path / ".ssh" / "id"
    key.parent.mkdir(mode=0o700)
    key.write_text("not a key\n")
    os.chmod(key, 0o600)
    result = run_module(ssh_keypair.main, args(key))
    assert result["failed"] and result["msg"].startswith(f"{key} cannot be used by nix-daemon")
    assert key.read_text() == "not a key\n"


def test_a_link_in_place_of_the_key_is_refused_and_left_alone(run_module, tmp_path):
    key = tmp_path / ".ssh" / "id"
    key.parent.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("x\n")
    key.symlink_to(target)
    result = run_module(ssh_keypair.main, args(key))
    assert result["failed"] and result["msg"].startswith(f"{key}: the key is not a regular file")
    assert os.readlink(key) == str(target) and target.read_text() == "x\n"


def test_a_file_in_place_of_the_directory_is_refused(run_module, tmp_path):
    (tmp_path / ".ssh").write_text("")
    result = run_module(ssh_keypair.main, args(tmp_path / ".ssh" / "id"))
    assert result["failed"] and result["msg"] == f"{tmp_path / '.ssh'}: the key's directory is not a directory; nothing was changed"


def test_no_part_of_the_private_key_is_returned(run_module, tmp_path):
    key = tmp_path / ".ssh" / "id"
    run_module(ssh_keypair.main, args(key))
    os.chmod(key, 0o640)
    result = run_module(ssh_keypair.main, args(key), diff=True)
    private = key.read_text()
    body = "".join(line for line in private.splitlines() if not line.startswith("-----"))
    dumped = json.dumps(result)
    assert body[:40] not in dumped and "PRIVATE KEY" not in dumped
    assert result["diff"]["after"][str(key)] == f"{ME}:{MY_GROUP} 0600"


@pytest.mark.root
def test_the_key_and_directory_get_the_owner_asked_for(run_module, tmp_path):
    key = tmp_path / ".ssh" / "id"
    result = run_module(ssh_keypair.main, args(key, owner="nobody", group="nogroup"))
    assert not result["failed"], result
    for path in (key, key.parent):
        assert pwd.getpwuid(os.lstat(path).st_uid).pw_name == "nobody"
        assert grp.getgrgid(os.lstat(path).st_gid).gr_name == "nogroup"


def test_an_unknown_owner_makes_no_directory(run_module, tmp_path):
    key = tmp_path / "home" / ".ssh" / "id"
    result = run_module(ssh_keypair.main, args(key, owner="no-such-user-here"))
    assert result["failed"] and "no user named 'no-such-user-here'" in result["msg"], result
    assert not (tmp_path / "home").exists()
