"""nix_conf validates what Nix will read (issue 13, item 2): the candidate as part of the nix.conf
that includes it, with the rest of the include tree as it is on disk; include cycles and missing
includes named by our own parser, with the chain of files; no message names only a temporary path.

The tests that need Nix itself use the real Nix on this machine (Debian's nix-bin, Nix 2.8).
"""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import nix_validate
from ansible_collections.nix_remote.builders.plugins.modules import nix_conf

REAL_NIX = "/usr/bin/nix"


@pytest.fixture
def etc(tmp_path):
    directory = tmp_path / "etc-nix"
    directory.mkdir()
    return directory


def snapshot(directory) -> dict:
    state = {}
    for base, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    state[path] = (handle.read(), st.st_mtime_ns)
            else:
                state[path] = (stat.S_IFMT(st.st_mode), None)
    return state


def need_nix():
    assert os.path.exists(REAL_NIX), "Nix is not installed here: apt-get install nix-bin (.ci/run does)"


def no_temporary_path(message: str) -> None:
    assert "nix-conf-check-" not in message and "<temporary copy>" not in message, message


def test_valid_include_of_a_subdirectory_does_not_make_every_edit_fail(run_module, etc):
    need_nix()
    (etc / "conf.d").mkdir()
    (etc / "conf.d" / "x.conf").write_text("cores = 3\n")
    (etc / "nix.conf").write_text("build-users-group = nixbld\ninclude conf.d/x.conf\n")
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"max-jobs": 4}})
    assert not result["failed"] and result["changed"], result
    assert (etc / "nix.conf").read_text() == "build-users-group = nixbld\ninclude conf.d/x.conf\nmax-jobs = 4\n"


def test_bad_value_in_an_included_subdirectory_file_is_found(run_module, etc):
    need_nix()
    (etc / "conf.d").mkdir()
    (etc / "conf.d" / "x.conf").write_text("max-jobs = many\n")
    (etc / "nix.conf").write_text("include conf.d/x.conf\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}})
    assert result["failed"] and "Nix rejects" in result["msg"] and "max-jobs" in result["msg"], result
    no_temporary_path(result["msg"])
    assert snapshot(etc) == before


def test_syntax_error_in_an_included_file_is_named_by_our_parser(run_module, etc):
    (etc / "conf.d").mkdir()
    (etc / "conf.d" / "x.conf").write_text("cores = 1\nfoo bar baz\n")
    (etc / "nix.conf").write_text("include conf.d/x.conf\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}})
    assert result["failed"] and f"{etc}/conf.d/x.conf, line 2" in result["msg"], result
    no_temporary_path(result["msg"])
    assert snapshot(etc) == before


def test_include_cycle_is_named_with_its_chain_not_a_crash(run_module, etc):
    (etc / "nix.conf").write_text("sandbox = true\ninclude a.conf\n")
    (etc / "a.conf").write_text("# a\ninclude sub/b.conf\n")
    (etc / "sub").mkdir()
    (etc / "sub" / "b.conf").write_text("include ../nix.conf\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}})
    assert result["failed"], result
    message = result["msg"]
    assert "include cycle" in message and "status -11" not in message
    assert f"{etc}/nix.conf, line 2 -> {etc}/a.conf, line 2 -> {etc}/sub/b.conf, line 1 includes {etc}/nix.conf again" in message
    assert snapshot(etc) == before


def test_self_include_is_a_cycle(run_module, etc):
    (etc / "nix.conf").write_text("!include nix.conf\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}})
    assert result["failed"] and f"include cycle: {etc}/nix.conf, line 1 includes {etc}/nix.conf again" in result["msg"]
    assert snapshot(etc) == before


def test_missing_include_is_named_with_the_including_file_and_line(run_module, etc):
    (etc / "nix.conf").write_text("include a.conf\n")
    (etc / "a.conf").write_text("\n\ninclude gone.conf\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}})
    assert result["failed"], result
    assert f"{etc}/a.conf, line 3: included file {etc}/gone.conf not found (included through {etc}/nix.conf, line 1)" in result["msg"]
    assert snapshot(etc) == before


def test_missing_optional_include_is_fine(run_module, etc):
    (etc / "nix.conf").write_text("!include gone.conf\n")
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}, "follow_custom_conf": False})
    assert not result["failed"] and result["changed"]


def test_target_with_another_name_is_validated_as_part_of_the_nix_conf_including_it(run_module, etc):
    need_nix()
    (etc / "nix.conf").write_text("build-users-group = nixbld\ninclude site.conf\n")
    (etc / "site.conf").write_text("cores = 1\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "site.conf"), "settings": {"max-jobs": "many"}})
    assert result["failed"] and "max-jobs" in result["msg"] and f"read as part of {etc}/nix.conf" in result["msg"], result
    assert str(etc / "site.conf") in result["msg"]
    assert snapshot(etc) == before
    result = run_module(nix_conf.main, {"path": str(etc / "site.conf"), "settings": {"max-jobs": 3}})
    assert result["changed"] and not any(str(etc) in w for w in result["warnings"])


def test_target_no_nix_conf_reads_is_checked_as_nix_conf_with_a_warning(run_module, etc, monkeypatch):
    need_nix()
    monkeypatch.setattr(nix_validate, "CONF_DIR", str(etc / "nowhere"))
    (etc / "orphan.conf").write_text("cores = 1\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "orphan.conf"), "settings": {"max-jobs": "many"}})
    assert result["failed"] and "max-jobs" in result["msg"], result
    assert snapshot(etc) == before
    result = run_module(nix_conf.main, {"path": str(etc / "orphan.conf"), "settings": {"max-jobs": 2}})
    assert result["changed"] and any(w.startswith(f"{etc}/orphan.conf: Nix does not read this file") for w in result["warnings"])


def test_followed_custom_conf_in_another_directory_is_validated(run_module, etc, tmp_path):
    need_nix()
    other = tmp_path / "determinate"
    other.mkdir()
    (other / "nix.custom.conf").write_text("cores = 1\n")
    (etc / "nix.conf").write_text(f"build-users-group = nixbld\n!include {other}/nix.custom.conf\n")
    before = snapshot(etc), snapshot(other)
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"max-jobs": "many"}})
    assert result["failed"] and "max-jobs" in result["msg"] and str(other / "nix.custom.conf") in result["msg"], result
    no_temporary_path(result["msg"])
    assert (snapshot(etc), snapshot(other)) == before
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"max-jobs": 5}})
    assert result["changed"] and (other / "nix.custom.conf").read_text() == "cores = 1\nmax-jobs = 5\n"


def test_new_custom_conf_included_without_bang_is_not_a_missing_include(run_module, etc):
    (etc / "nix.conf").write_text("include nix.custom.conf\n")
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}})
    assert not result["failed"] and (etc / "nix.custom.conf").read_text() == "cores = 2\n"


def test_included_directory_is_a_warning_as_nix_skips_it(run_module, etc):
    (etc / "conf.d").mkdir()
    (etc / "nix.conf").write_text("include conf.d\n")
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}})
    assert not result["failed"] and result["changed"]
    assert any(f"{etc}/nix.conf, line 1: included path {etc}/conf.d is a directory" in w for w in result["warnings"])


def test_included_fifo_is_refused(run_module, etc):
    os.mkfifo(etc / "pipe.conf")
    (etc / "nix.conf").write_text("include pipe.conf\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}})
    assert result["failed"] and f"{etc}/nix.conf, line 1: included file {etc}/pipe.conf is a FIFO" in result["msg"]
    assert snapshot(etc) == before


def test_check_mode_reports_the_same_failure(run_module, etc):
    (etc / "nix.conf").write_text("include a.conf\n")
    (etc / "a.conf").write_text("include nix.conf\n")
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}}, check_mode=True)
    assert result["failed"] and "include cycle" in result["msg"]


def test_validate_false_skips_the_tree(run_module, etc):
    (etc / "nix.conf").write_text("include gone.conf\n")
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 2}, "validate": False})
    assert not result["failed"] and result["changed"]


def test_setting_overridden_after_the_custom_include_is_refused(run_module, etc):
    (etc / "nix.conf").write_text("!include nix.custom.conf\nbuild-max-jobs = 2\n")
    before = snapshot(etc)
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"max-jobs": 4}})
    assert result["failed"], result
    assert f"{etc}/nix.conf, line 2: max-jobs is set after the include of {etc}/nix.custom.conf (line 1)" in result["msg"]
    assert snapshot(etc) == before
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"cores": 4}})
    assert result["changed"] and (etc / "nix.custom.conf").read_text() == "cores = 4\n"


def test_extra_line_after_the_custom_include_appends_and_is_not_an_override(run_module, etc):
    (etc / "nix.conf").write_text("!include nix.custom.conf\nextra-trusted-users = alice\n")
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"trusted-users": ["root"]}, "validate": False})
    assert not result["failed"] and (etc / "nix.custom.conf").read_text() == "trusted-users = root\n"


def test_followed_symlink_is_checked_where_nix_reads_it(run_module, etc, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "abc-nix.conf").write_text("include extra.conf\n")
    (etc / "extra.conf").write_text("cores = 1\n")
    (etc / "nix.conf").symlink_to(store / "abc-nix.conf")
    result = run_module(nix_conf.main, {"path": str(etc / "nix.conf"), "settings": {"max-jobs": 2}, "follow": True})
    assert not result["failed"] and result["changed"], result
    assert not any(w.startswith(str(store)) for w in result["warnings"])
    assert (store / "abc-nix.conf").read_text() == "include extra.conf\nmax-jobs = 2\n"
