"""read_files: several files in one call; a missing one is an answer, any other failure names the file."""

from __future__ import annotations

import base64

from ansible_collections.nix_remote.builders.plugins.modules import read_files


def test_reads_each_file_in_order_and_reports_the_missing_one(run_module, tmp_path):
    machines = tmp_path / "machines"
    machines.write_bytes(b"ssh-ng://remotebuild@b1 x86_64-linux\n\xff raw byte\n")
    result = run_module(read_files.main, {"paths": [str(tmp_path / "absent.json"), str(machines)]})
    assert not result["failed"] and not result["changed"]
    missing, present = result["files"]
    assert missing == {"path": str(tmp_path / "absent.json"), "exists": False, "content": "", "encoding": "base64"}
    assert present["exists"] and base64.b64decode(present["content"]) == machines.read_bytes()


def test_a_broken_link_is_a_missing_file(run_module, tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    (entry,) = run_module(read_files.main, {"paths": [str(tmp_path / "link")]})["files"]
    assert entry["exists"] is False


def test_a_directory_fails_by_name(run_module, tmp_path):
    result = run_module(read_files.main, {"paths": [str(tmp_path / "missing"), str(tmp_path)]})
    assert result["failed"] and result["msg"] == f"{tmp_path}: cannot be read: Is a directory"


def test_a_path_through_a_file_fails_by_name(run_module, tmp_path):
    # Not "missing": a file where a directory should be is a broken layout the role must not take as "no file".
    (tmp_path / "file").write_text("x")
    result = run_module(read_files.main, {"paths": [str(tmp_path / "file" / "child")]})
    assert result["failed"] and result["msg"] == f"{tmp_path / 'file' / 'child'}: cannot be read: Not a directory"


def test_check_mode_reads_too(run_module, tmp_path):
    (tmp_path / "f").write_text("x")
    (entry,) = run_module(read_files.main, {"paths": [str(tmp_path / "f")]}, check_mode=True)["files"]
    assert base64.b64decode(entry["content"]) == b"x"
