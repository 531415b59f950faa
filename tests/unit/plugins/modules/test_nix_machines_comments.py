"""nix_machines builders[].comment: a '# <comment>' line directly above the entry."""

from __future__ import annotations

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.machines import (
    Machine,
    MachinesDocument,
    legacy_parse_differences,
)
from ansible_collections.nix_remote.builders.plugins.modules import nix_machines

B1 = {"uri": "ssh-ng://remotebuild@builder1", "systems": ["x86_64-linux"], "ssh_key": "/root/.ssh/id"}
B1_LINE = "ssh-ng://remotebuild@builder1 x86_64-linux /root/.ssh/id 1 1 - - -"
USER = "# mine\nnix@old.example.org x86_64-linux /root/.ssh/id_old 2 1\n\n"


def run(run_module, path, builders, **args):
    return run_module(nix_machines.main, dict({"path": str(path), "builders": builders, "nix_version": "2.26.3"}, **args))


@pytest.fixture
def machines(tmp_path):
    path = tmp_path / "machines"
    path.write_text(USER)
    return path


def test_a_new_entry_gets_its_comment_line_above_it(run_module, machines):
    result = run(run_module, machines, [dict(B1, comment="managed: builder1")])
    assert result["changed"]
    assert machines.read_text() == USER + "# managed: builder1\n" + B1_LINE + "\n"


def test_same_comment_is_no_change_and_check_mode_matches_the_real_run(run_module, machines):
    args = [dict(B1, comment="managed: builder1")]
    before = machines.read_bytes()
    checked = run_module(nix_machines.main, {"path": str(machines), "builders": args}, check_mode=True, diff=True)
    assert machines.read_bytes() == before
    real = run_module(nix_machines.main, {"path": str(machines), "builders": args}, diff=True)
    assert checked["changed"] and checked["diff"] == real["diff"] and real["diff"]["after"] == machines.read_text()
    after = machines.read_bytes()
    for check_mode in (True, False):
        again = run_module(nix_machines.main, {"path": str(machines), "builders": args}, check_mode=check_mode)
        assert not again["changed"] and machines.read_bytes() == after


def test_a_changed_comment_is_replaced_in_place(run_module, machines):
    run(run_module, machines, [dict(B1, comment="one"), {"uri": "ssh://b2", "comment": "two"}])
    result = run(run_module, machines, [dict(B1, comment="one, changed")])
    assert result["changed"]
    assert machines.read_text() == USER + "# one, changed\n" + B1_LINE + "\n# two\nssh://b2 - - 1 1 - - -\n"


def test_a_comment_for_an_existing_entry_without_one_is_inserted(run_module, machines):
    machines.write_text(USER + B1_LINE + "\n")
    assert run(run_module, machines, [dict(B1, comment="now managed")])["changed"]
    assert machines.read_text() == USER + "# now managed\n" + B1_LINE + "\n"


def test_the_whole_line_comment_directly_above_is_the_entry_s_comment(run_module, machines):
    # documented: a comment directly above an entry is replaced; keep others apart with a blank line
    old = {"uri": "nix@old.example.org", "systems": ["x86_64-linux"], "ssh_key": "/root/.ssh/id_old", "max_jobs": 2}
    assert run(run_module, machines, [dict(old, comment="old one")])["changed"]
    assert machines.read_text() == "# old one\nnix@old.example.org x86_64-linux /root/.ssh/id_old 2 1\n\n"


def test_without_comment_the_comments_stay_as_they_are(run_module, machines):
    run(run_module, machines, [dict(B1, comment="managed")])
    text = machines.read_text()
    result = run(run_module, machines, [B1, {"uri": "nix@old.example.org", "systems": ["x86_64-linux"],
                                             "ssh_key": "/root/.ssh/id_old", "max_jobs": 2}])
    assert not result["changed"] and machines.read_text() == text
    # A changed entry without comment keeps the comment above it.
    assert run(run_module, machines, [dict(B1, max_jobs=4)])["changed"]
    assert machines.read_text() == USER + "# managed\n" + B1_LINE.replace(" 1 1 ", " 4 1 ") + "\n"


def test_an_entry_sharing_its_line_moves_below_it_under_its_comment(run_module, machines):
    machines.write_bytes(b"nix@a ; ssh-ng://remotebuild@builder1 x86_64-linux /root/.ssh/id ; nix@c # note\r\nnix@d\r\n")
    assert run(run_module, machines, [dict(B1, comment="b1")])["changed"]
    assert machines.read_bytes() == (b"nix@a ; nix@c # note\r\n# b1\r\nssh-ng://remotebuild@builder1 x86_64-linux /root/.ssh/id\r\n"
                                     b"nix@d\r\n")
    assert not run(run_module, machines, [dict(B1, comment="b1")])["changed"]


def test_absent_with_its_comment_removes_both(run_module, machines):
    run(run_module, machines, [dict(B1, comment="b1")])
    result = run(run_module, machines, [{"uri": B1["uri"], "state": "absent", "comment": "b1"}])
    assert result["changed"] and machines.read_text() == USER


def test_absent_without_comment_or_with_another_one_keeps_the_comment_line(run_module, machines):
    run(run_module, machines, [dict(B1, comment="b1")])
    run(run_module, machines, [{"uri": B1["uri"], "state": "absent", "comment": "other"}])
    assert machines.read_text() == USER + "# b1\n"
    machines.write_text(USER + "# b1\n" + B1_LINE + "\n")
    run(run_module, machines, [{"uri": B1["uri"], "state": "absent"}])
    assert machines.read_text() == USER + "# b1\n"


def test_exclusive_removes_the_comment_lines_it_could_have_written(run_module, machines):
    machines.write_text(USER + "# b2 ; retired\nssh://b2\n# b3\nssh://b3\n")
    result = run(run_module, machines, [dict(B1, comment="b1")], exclusive=True, nix_version="2.31.0")
    assert result["changed"]
    # "# mine" and "# b3" could have been written by comment: they go with their entries; a ';' comment never is ours.
    assert machines.read_text() == "\n# b2 ; retired\n# b1\n" + B1_LINE + "\n"


def test_add_with_comment_then_remove_restores_the_bytes(run_module, tmp_path):
    for text in ("", "# last line is a comment", "nix@a\r\n", "nix@a\n# trailing\n"):
        path = tmp_path / "m"
        path.write_bytes(text.encode())
        run(run_module, path, [dict(B1, comment="x")])
        assert b"# x" in path.read_bytes()
        run(run_module, path, [{"uri": B1["uri"], "state": "absent", "comment": "x"}])
        assert path.read_bytes() == text.encode()


def test_the_written_comment_is_safe_for_old_nix_and_lix(run_module, machines):
    result = run(run_module, machines, [dict(B1, comment="a # b, c: d")], nix_version="2.18.1", exclusive=False)
    assert result["changed"] and not any(str(machines) in w for w in result["warnings"])
    assert legacy_parse_differences(machines.read_text()) == []


@pytest.mark.parametrize("comment, expect", [
    ("a ; b", "builders[0].comment 'a ; b' contains ';': Nix before 2.29 and Lix split lines on ';'"),
    ("a\nb", "contains '\\n'"),
    ("a\rb", "contains '\\r'"),
    ("a\x00b", "contains '\\x00'"),
])
def test_a_comment_that_cannot_be_written_is_refused(run_module, machines, comment, expect):
    before = machines.read_bytes()
    for state in ("present", "absent"):
        result = run(run_module, machines, [dict(B1, comment=comment, state=state)])
        assert result["failed"] and expect in result["msg"] and str(machines) in result["msg"], result
        assert machines.read_bytes() == before


def test_a_comment_in_the_builders_setting_of_nix_conf_is_refused(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("sandbox = true\n")
    result = run_module(nix_machines.main, {"nix_conf_path": str(conf), "builders": [dict(B1, comment="x")]})
    assert result["failed"] and "builders[0].comment: the builders setting of a nix.conf is one line" in result["msg"]
    assert conf.read_text() == "sandbox = true\n"


# --- the document model ----------------------------------------------------------------------

def test_document_comment_and_comments():
    doc = MachinesDocument.parse("  # indented\nnix@a\n#bare\nnix@b ; nix@c\n# last\n")
    assert doc.comment("ssh://nix@a") == "indented"
    assert doc.comment("nix@b") is None and doc.comment("nix@zz") is None
    assert [(n, t, m.store_uri if m else None) for n, t, m in doc.comments()] == [
        (1, "indented", "ssh://nix@a"), (3, "bare", None), (5, "last", None)]


def test_document_refuses_comments_in_an_inline_value():
    doc = MachinesDocument.parse("nix@a", inline=True)
    with pytest.raises(ValueError, match="no room for a comment line"):
        doc.upsert(Machine("nix@a"), comment="x")
    assert doc.comments() == []


def test_document_duplicates_go_with_their_equal_comment_lines():
    doc = MachinesDocument.parse("# x\nnix@a\n# x\nnix@a x86_64-linux\n# other\nnix@a\n")
    assert doc.upsert(Machine("nix@a", ("x86_64-linux",)), "2.31", comment="x") is True
    assert doc.render() == "# x\nssh://nix@a x86_64-linux - 1 1 - - -\n# other\n"
