"""nix_machines: the builders setting follows !include nix.custom.conf; entries a client Nix below
2.29 reads differently are not kept silently under exclusive; broken @file references are named
(issue 13, item 4)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.nix_remote.builders.plugins.modules import nix_machines

B1 = {"uri": "ssh-ng://remotebuild@b1", "systems": ["x86_64-linux"]}
B1_LINE = "ssh-ng://remotebuild@b1 x86_64-linux - 1 1 - - -"


def files_of(directory) -> dict:
    state = {}
    for base, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(base, name)
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    state[path] = (handle.read(), os.stat(path).st_mtime_ns)
    return state


@pytest.fixture
def etc(tmp_path):
    directory = tmp_path / "etc-nix"
    directory.mkdir()
    return directory


# --- !include nix.custom.conf --------------------------------------------------------------------

def test_builders_edit_lands_in_the_included_custom_conf(run_module, etc):
    main = "build-users-group = nixbld\n!include nix.custom.conf\n"
    (etc / "nix.conf").write_text(main)
    (etc / "nix.custom.conf").write_text("builders = @/etc/nix/machines\n")
    result = run_module(nix_machines.main, {"nix_conf_path": str(etc / "nix.conf"), "builders": [B1]})
    assert result["changed"] and result["restart_required"] and result["path"] == str(etc / "nix.custom.conf")
    assert (etc / "nix.custom.conf").read_text() == f"builders = @/etc/nix/machines ; {B1_LINE}\n"
    assert (etc / "nix.conf").read_text() == main
    again = run_module(nix_machines.main, {"nix_conf_path": str(etc / "nix.conf"), "builders": [B1]})
    assert not again["changed"]


def test_new_custom_conf_starts_from_the_value_in_effect(run_module, etc):
    main = "builders = @/srv/machines\ninclude nix.custom.conf\n"
    (etc / "nix.conf").write_text(main)
    (etc / "nix.custom.conf").write_text("")
    result = run_module(nix_machines.main, {"nix_conf_path": str(etc / "nix.conf"), "builders": [B1]})
    assert result["changed"] and (etc / "nix.custom.conf").read_text() == f"builders = @/srv/machines ; {B1_LINE}\n"
    assert (etc / "nix.conf").read_text() == main


def test_missing_custom_conf_starts_from_nix_default_in_the_nix_conf_directory(run_module, etc):
    (etc / "nix.conf").write_text("!include nix.custom.conf\n")
    result = run_module(nix_machines.main, {"nix_conf_path": str(etc / "nix.conf"), "builders": [B1]})
    assert result["changed"]
    assert (etc / "nix.custom.conf").read_text() == f"builders = @{etc}/machines ; {B1_LINE}\n"


def test_builders_after_the_include_is_refused(run_module, etc):
    (etc / "nix.conf").write_text("!include nix.custom.conf\n# later\nbuilders = @/etc/nix/machines\n")
    (etc / "nix.custom.conf").write_text("cores = 2\n")
    before = files_of(etc)
    result = run_module(nix_machines.main, {"nix_conf_path": str(etc / "nix.conf"), "builders": [B1]})
    assert result["failed"], result
    assert f"{etc}/nix.conf, line 3: builders is set after the include of {etc}/nix.custom.conf (line 1)" in result["msg"]
    assert files_of(etc) == before


def test_follow_custom_conf_false_edits_nix_conf(run_module, etc):
    (etc / "nix.conf").write_text("!include nix.custom.conf\n")
    result = run_module(nix_machines.main, {"nix_conf_path": str(etc / "nix.conf"), "builders": [B1], "follow_custom_conf": False})
    assert result["path"] == str(etc / "nix.conf") and B1_LINE in (etc / "nix.conf").read_text()
    assert not (etc / "nix.custom.conf").exists()


# --- client Nix below 2.29 -----------------------------------------------------------------------

LEGACY_FILE = "# old builder, retired ; nix@old x86_64-linux\nssh://b2 x86_64-linux - 1 1\n"


@pytest.mark.parametrize("version", ["2.28.1", "2.25.5", "2.24.14", "2.93.3"])
def test_exclusive_refuses_what_old_nix_and_lix_read_as_an_entry(run_module, etc, version):
    (etc / "machines").write_text(LEGACY_FILE)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1], "exclusive": True, "nix_version": version})
    assert result["failed"] and "after ';' in a comment as a builder" in result["msg"], result


def test_exclusive_refuses_what_old_nix_reads_as_an_entry(run_module, etc):
    (etc / "machines").write_text(LEGACY_FILE)
    before = files_of(etc)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1], "exclusive": True, "nix_version": "2.28.1"})
    assert result["failed"], result
    assert f"{etc}/machines: line 1: Nix < 2.29 and Lix read 'nix@old x86_64-linux' after ';' in a comment as a builder" in result["msg"]
    assert "exclusive=true" in result["msg"]
    assert files_of(etc) == before


def test_without_exclusive_old_nix_differences_are_warned(run_module, etc):
    (etc / "machines").write_text(LEGACY_FILE)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1], "nix_version": "2.18"})
    assert result["changed"]
    assert any(w.startswith(f"{etc}/machines: line 1: Nix < 2.29") for w in result["warnings"]), result["warnings"]


@pytest.mark.parametrize("version", ["2.29.0", "2.28.2", "2.28.7", "2.24.15"])
def test_new_nix_reads_the_comment_as_a_comment(run_module, etc, version):
    # 2.29's parser (NixOS/nix b74b0f4e1c) was backported to 2.28.2 and 2.24.15 (nix_capabilities).
    (etc / "machines").write_text(LEGACY_FILE)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1], "exclusive": True, "nix_version": version})
    assert result["changed"] and not any(str(etc) in warning for warning in result["warnings"])
    assert (etc / "machines").read_text() == f"# old builder, retired ; nix@old x86_64-linux\n{B1_LINE}\n"


def test_exclusive_refuses_a_blank_entry_in_the_builders_setting(run_module, etc):
    (etc / "nix.conf").write_text(f"sandbox = true\nbuilders = @/etc/nix/machines ; ; {B1_LINE}\n")
    before = files_of(etc)
    result = run_module(nix_machines.main, {"nix_conf_path": str(etc / "nix.conf"), "builders": [B1], "exclusive": True, "nix_version": "2.8.0"})
    assert result["failed"], result
    assert f"{etc}/nix.conf, line 2 (builders): Nix < 2.29 and Lix fail on a blank entry" in result["msg"]
    assert files_of(etc) == before


# --- broken @file references ---------------------------------------------------------------------

def test_self_reference_is_refused(run_module, etc):
    (etc / "machines").write_text(f"ssh://b2 - - 1 1\n@{etc}/machines\n")
    before = files_of(etc)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1]})
    assert result["failed"], result
    assert f"{etc}/machines: line 2, column 1 (store URI): machines file '{etc}/machines' includes itself" in result["msg"]
    assert files_of(etc) == before


def test_reference_cycle_through_another_file_is_refused(run_module, etc):
    (etc / "a").write_text(f"# a\n@{etc}/b\n")
    (etc / "b").write_text(f"@{etc}/a\n")
    (etc / "machines").write_text(f"@{etc}/a\n")
    before = files_of(etc)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1]})
    assert result["failed"] and f"{etc}/b: line 1, column 1 (store URI): machines file '{etc}/a' includes itself" in result["msg"], result
    assert files_of(etc) == before


def test_directory_reference_is_refused(run_module, etc):
    (etc / "machines.d").mkdir()
    (etc / "machines").write_text(f"@{etc}/machines.d\n")
    before = files_of(etc)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1]})
    assert result["failed"], result
    assert f"{etc}/machines: line 1, column 1 (store URI): cannot read machines file '{etc}/machines.d': Is a directory" in result["msg"]
    assert files_of(etc) == before


def test_fifo_reference_is_refused_without_hanging(run_module, etc):
    os.mkfifo(etc / "pipe")
    (etc / "machines").write_text(f"@{etc}/pipe\n")
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1]})
    assert result["failed"] and f"cannot read machines file '{etc}/pipe': it is not a regular file" in result["msg"], result


def test_bad_entry_in_a_referenced_file_is_named(run_module, etc):
    (etc / "more").write_text("\nnix@b3 x86_64-linux - eight 1\n")
    (etc / "machines").write_text(f"@{etc}/more\n")
    before = files_of(etc)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1]})
    assert result["failed"] and f"{etc}/more: line 2, column 4 (max jobs): 'eight'" in result["msg"], result
    assert files_of(etc) == before


def test_directory_reference_in_the_builders_setting_is_refused(run_module, etc):
    (etc / "machines.d").mkdir()
    (etc / "nix.conf").write_text(f"builders = @{etc}/machines.d\n")
    before = files_of(etc)
    result = run_module(nix_machines.main, {"nix_conf_path": str(etc / "nix.conf"), "builders": [B1]})
    assert result["failed"], result
    assert f"{etc}/nix.conf, line 1 (builders): line 1, column 1 (store URI): cannot read machines file '{etc}/machines.d'" in result["msg"]
    assert files_of(etc) == before


def test_missing_referenced_file_is_skipped_as_nix_skips_it(run_module, etc):
    (etc / "machines").write_text(f"@{etc}/not-yet\n")
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1]})
    assert result["changed"]


def test_lix_reads_the_old_way(run_module, etc):
    (etc / "machines").write_text(LEGACY_FILE)
    before = files_of(etc)
    result = run_module(nix_machines.main, {"path": str(etc / "machines"), "builders": [B1], "exclusive": True, "nix_version": "2.91.1"})
    assert result["failed"] and f"{etc}/machines: line 1: Nix < 2.29 and Lix read 'nix@old x86_64-linux'" in result["msg"], result
    assert files_of(etc) == before
