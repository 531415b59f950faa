"""nix_conf list_items and managed_marker: single items of list settings, admin items kept, a marker
comment instead of a state file."""

from __future__ import annotations

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import NixConf
from ansible_collections.nix_remote.builders.plugins.modules import nix_conf

MARKER = "nix_remote.builders"


def run(run_module, path, list_items, check_mode=False, diff=False, **extra):
    args = dict({"path": str(path), "list_items": list_items, "validate": False}, **extra)
    return run_module(nix_conf.main, args, check_mode=check_mode, diff=diff)


def run_both(run_module, path, list_items, **extra):
    """Check mode first (nothing written), then the real run: both must report the same."""
    before = path.read_bytes() if path.exists() else None
    checked = run(run_module, path, list_items, check_mode=True, diff=True, **extra)
    assert (path.read_bytes() if path.exists() else None) == before
    real = run(run_module, path, list_items, diff=True, **extra)
    assert not checked["failed"] and not real["failed"], (checked, real)
    for field in ("changed", "restart_required", "list_items", "settings"):
        assert checked[field] == real[field], field
    assert checked.get("diff") == real.get("diff")
    return real


def test_adds_missing_items_at_the_end_keeping_admin_items_and_bytes(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("# admins\ntrusted-users = root  @wheel\talice   # people\nsandbox = true\n")
    result = run_both(run_module, conf, {"trusted-users": {"present": ["alice", "remotebuild", "ci", "remotebuild"]}})
    assert result["changed"] and result["restart_required"]
    assert conf.read_text() == "# admins\ntrusted-users = root  @wheel\talice remotebuild ci   # people\nsandbox = true\n"
    assert result["list_items"] == {"trusted-users": {"added": ["remotebuild", "ci"], "removed": [],
                                                      "items": ["root", "@wheel", "alice", "remotebuild", "ci"], "managed": []}}


def test_removes_absent_items_keeping_the_others_in_place(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("trusted-users = root   remotebuild  alice remotebuild # x\r\n")
    result = run_both(run_module, conf, {"trusted-users": {"absent": ["remotebuild", "nobody"]}})
    assert conf.read_bytes() == b"trusted-users = root  alice # x\r\n"
    assert result["list_items"]["trusted-users"]["removed"] == ["remotebuild"]


def test_second_run_changes_nothing(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("sandbox = true\nextra-trusted-users = alice\n")
    items = {"extra-trusted-users": {"present": ["remotebuild"], "absent": ["bob"]}, "extra-trusted-public-keys": {"present": ["k1:AAAA"]}}
    first = run_both(run_module, conf, items, managed_marker=MARKER)
    assert first["changed"]
    written = conf.read_bytes()
    again = run_both(run_module, conf, items, managed_marker=MARKER)
    assert not again["changed"] and not again["restart_required"]
    assert "diff" not in again or again["diff"]["before"] == again["diff"]["after"]
    assert conf.read_bytes() == written
    assert again["list_items"]["extra-trusted-users"] == {"added": [], "removed": [], "items": ["alice", "remotebuild"], "managed": ["remotebuild"]}


def test_items_already_there_are_no_change(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("trusted-users = root\nextra-trusted-users =  remotebuild\n")
    before = conf.read_bytes()
    result = run_both(run_module, conf, {"trusted-users": {"present": ["remotebuild", "root"], "absent": ["nobody"]}},
                      managed_marker=MARKER)
    assert not result["changed"] and not result["restart_required"]
    assert conf.read_bytes() == before  # already there: not recorded, so never removed by a later run


def test_new_line_goes_where_settings_puts_it(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("extra-trusted-users = bob\nsandbox = true")
    run_both(run_module, conf, {"trusted-users": {"present": ["root", "remotebuild"]}})
    # A plain line after the extra- line would discard it (NixOS/nix#9487): it goes before.
    assert conf.read_text() == "trusted-users = root remotebuild\nextra-trusted-users = bob\nsandbox = true"
    conf.write_text("sandbox = true\n")
    run_both(run_module, conf, {"extra-system-features": {"present": ["kvm"]}})
    assert conf.read_text() == "sandbox = true\nextra-system-features = kvm\n"


def test_missing_file_is_created(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    result = run_both(run_module, conf, {"extra-trusted-users": {"present": ["remotebuild"]}}, managed_marker=MARKER)
    assert result["changed"]
    assert conf.read_text() == "# nix_remote.builders manages extra-trusted-users: remotebuild\nextra-trusted-users = remotebuild\n"


def test_last_item_removed_removes_the_line(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("sandbox = true\nextra-trusted-users = remotebuild # added\nmax-jobs = 2\n")
    result = run_both(run_module, conf, {"extra-trusted-users": {"absent": ["remotebuild"]}})
    assert conf.read_text() == "sandbox = true\nmax-jobs = 2\n"
    assert result["restart_required"]


def test_removal_reaches_a_line_that_comes_into_effect(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("trusted-users = root remotebuild\ntrusted-users = remotebuild\n")
    run_both(run_module, conf, {"trusted-users": {"absent": ["remotebuild"]}})
    assert conf.read_text() == "trusted-users = root\n"
    assert NixConf.parse(conf.read_text()).get("trusted-users") == "root"


def test_extra_form_works_on_the_extra_lines_only(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("trusted-users = root remotebuild\n")
    run_both(run_module, conf, {"extra-trusted-users": {"absent": ["remotebuild"], "present": ["ci"]}})
    assert conf.read_text() == "trusted-users = root remotebuild\nextra-trusted-users = ci\n"


def test_plain_form_includes_the_effective_extra_lines(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("extra-trusted-users = gone\ntrusted-users = root\nextra-trusted-users = alice remotebuild\n")
    result = run_both(run_module, conf, {"trusted-users": {"present": ["alice"], "absent": ["remotebuild", "gone"]}})
    # The extra- line before the plain one is discarded by Nix (NixOS/nix#9487): not part of the list, left alone.
    assert conf.read_text() == "extra-trusted-users = gone\ntrusted-users = root\nextra-trusted-users = alice\n"
    assert result["list_items"]["trusted-users"]["items"] == ["root", "alice"]


def test_old_nix_trusted_users_without_extra(run_module, tmp_path):
    """Nix before 2.4 has no extra-trusted-users: the roles edit trusted-users itself, keeping root."""
    conf = tmp_path / "nix.conf"
    conf.write_text("build-users-group = nixbld\n")
    items = {"trusted-users": {"present": ["root", "remotebuild"]}}
    run_both(run_module, conf, items, managed_marker=MARKER)
    assert conf.read_text() == ("build-users-group = nixbld\n# nix_remote.builders manages trusted-users: root remotebuild\n"
                                "trusted-users = root remotebuild\n")
    conf.write_text("build-users-group = nixbld\ntrusted-users = root @wheel\n")
    run_both(run_module, conf, items, managed_marker=MARKER)
    assert conf.read_text() == ("build-users-group = nixbld\n# nix_remote.builders manages trusted-users: remotebuild\n"
                                "trusted-users = root @wheel remotebuild\n")
    result = run_both(run_module, conf, {"trusted-users": {"present": ["root"]}}, managed_marker=MARKER)
    assert conf.read_text() == "build-users-group = nixbld\ntrusted-users = root @wheel\n"
    assert result["list_items"]["trusted-users"]["removed"] == ["remotebuild"]


@pytest.mark.parametrize("key", ["trusted-public-keys", "binary-cache-public-keys"])
def test_aliases_are_the_same_setting(run_module, tmp_path, key):
    conf = tmp_path / "nix.conf"
    conf.write_text("binary-cache-public-keys = a:1 old:2  # keys\n")
    result = run_both(run_module, conf, {key: {"present": ["b:3"], "absent": ["old:2"]}}, managed_marker=MARKER)
    # The line keeps the name it is written with; the marker names the canonical setting.
    assert conf.read_text() == "# nix_remote.builders manages trusted-public-keys: b:3\nbinary-cache-public-keys = a:1 b:3  # keys\n"
    assert result["list_items"][key]["items"] == ["a:1", "b:3"]
    other = "trusted-public-keys" if key != "trusted-public-keys" else "binary-cache-public-keys"
    again = run_both(run_module, conf, {other: {"present": []}}, managed_marker=MARKER)
    assert again["list_items"][other]["removed"] == ["b:3"]
    assert conf.read_text() == "binary-cache-public-keys = a:1  # keys\n"


def test_marker_round_trip(run_module, tmp_path):
    """Items dropped from present are removed on the next run; items of the administrator never are."""
    conf = tmp_path / "nix.conf"
    conf.write_text("extra-trusted-public-keys = admin:1\n")
    items = {"extra-trusted-public-keys": {"present": ["client:1", "builder:1"]}}
    result = run_both(run_module, conf, items, managed_marker=MARKER)
    assert conf.read_text() == ("# nix_remote.builders manages extra-trusted-public-keys: client:1 builder:1\n"
                                "extra-trusted-public-keys = admin:1 client:1 builder:1\n")
    assert result["list_items"]["extra-trusted-public-keys"]["managed"] == ["client:1", "builder:1"]
    # The administrator adds a key of their own after ours.
    conf.write_text(conf.read_text().replace("= admin:1 client:1 builder:1\n", "= admin:1 client:1 builder:1 admin:2\n"))
    assert conf.read_text().endswith("= admin:1 client:1 builder:1 admin:2\n")
    result = run_both(run_module, conf, {"extra-trusted-public-keys": {"present": ["builder:1", "builder:2"]}}, managed_marker=MARKER)
    assert result["changed"] and result["restart_required"]
    assert result["list_items"]["extra-trusted-public-keys"]["removed"] == ["client:1"]
    assert conf.read_text() == ("# nix_remote.builders manages extra-trusted-public-keys: builder:1 builder:2\n"
                                "extra-trusted-public-keys = admin:1 builder:1 admin:2 builder:2\n")
    # Nothing wanted any more: ours go, the administrator's stay, the comment goes.
    result = run_both(run_module, conf, {"extra-trusted-public-keys": {}}, managed_marker=MARKER)
    assert conf.read_text() == "extra-trusted-public-keys = admin:1 admin:2\n"
    assert result["list_items"]["extra-trusted-public-keys"]["removed"] == ["builder:1", "builder:2"]


def test_adopted_items_are_recorded_and_later_removed(run_module, tmp_path):
    """An upgrade from 0.1.0: its state file listed the keys it trusted, nix.conf already has them."""
    conf = tmp_path / "nix.conf"
    conf.write_text("extra-trusted-public-keys = admin:1 client:1 old:1\n")
    items = {"extra-trusted-public-keys": {"present": ["client:1", "builder:1"], "absent": ["old:1"], "adopt": ["client:1"]}}
    result = run_both(run_module, conf, items, managed_marker=MARKER)
    assert conf.read_text() == ("# nix_remote.builders manages extra-trusted-public-keys: client:1 builder:1\n"
                                "extra-trusted-public-keys = admin:1 client:1 builder:1\n")
    assert result["list_items"]["extra-trusted-public-keys"]["managed"] == ["client:1", "builder:1"]
    # The client leaves: its adopted key goes like one the module added; the administrator's stays.
    run_both(run_module, conf, {"extra-trusted-public-keys": {"present": ["builder:1"]}}, managed_marker=MARKER)
    assert conf.read_text() == ("# nix_remote.builders manages extra-trusted-public-keys: builder:1\n"
                                "extra-trusted-public-keys = admin:1 builder:1\n")


def test_without_adopt_an_item_already_there_is_not_recorded(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("extra-trusted-public-keys = client:1\n")
    result = run_both(run_module, conf, {"extra-trusted-public-keys": {"present": ["client:1"]}}, managed_marker=MARKER)
    assert not result["changed"] and conf.read_text() == "extra-trusted-public-keys = client:1\n"


@pytest.mark.parametrize("spec, marker, message", [
    ({"present": ["a"], "adopt": ["b"]}, MARKER, "list_items.trusted-users.adopt: item 'b' is not in present"),
    ({"present": ["a"], "adopt": ["a"]}, None, "list_items.trusted-users.adopt: adopt needs managed_marker"),
    ({"present": ["a"], "keep": ["b*"]}, None, "list_items.trusted-users.keep: keep needs managed_marker"),
    ({"present": ["a"], "keep": ["b *"]}, MARKER, "list_items.trusted-users.keep"),
    ({"present": ["a"], "keep": "b*"}, MARKER, "list_items.trusted-users.keep: expected a list"),
])
def test_bad_adopt_is_refused_and_nothing_changes(run_module, tmp_path, spec, marker, message):
    conf = tmp_path / "nix.conf"
    conf.write_text("trusted-users = root a\n")
    extra = {"managed_marker": marker} if marker else {}
    result = run(run_module, conf, {"trusted-users": spec}, **extra)
    assert result["failed"] and message in result["msg"], result
    assert conf.read_text() == "trusted-users = root a\n"


KEYS = "extra-trusted-public-keys"


def test_kept_patterns_keep_recorded_items_this_run_does_not_know(run_module, tmp_path):
    """A --limit run knows the keys of some hosts only: the others' recorded keys stay, recorded."""
    conf = tmp_path / "nix.conf"
    text = ("# nix_remote.builders manages extra-trusted-public-keys: b1-1:x c1-1:y c2-1:z gone-1:w\n"
            "extra-trusted-public-keys = admin:1 b1-1:x c1-1:y c2-1:z gone-1:w\n")
    conf.write_text(text)
    items = {KEYS: {"present": ["b1-1:x", "c1-1:new"], "keep": ["c2-1:*", "c3-1:*"]}}
    result = run_both(run_module, conf, items, managed_marker=MARKER)
    assert conf.read_text() == ("# nix_remote.builders manages extra-trusted-public-keys: b1-1:x c1-1:new c2-1:z\n"
                                "extra-trusted-public-keys = admin:1 b1-1:x c2-1:z c1-1:new\n")
    assert result["list_items"][KEYS]["removed"] == ["c1-1:y", "gone-1:w"]
    # The full run that follows knows c2's key again: nothing Nix reads changes, and the record
    # keeps its order because it records the same items.
    result = run_both(run_module, conf, {KEYS: {"present": ["b1-1:x", "c1-1:new", "c2-1:z"]}}, managed_marker=MARKER)
    assert not result["changed"], result


def test_keep_never_keeps_an_item_that_is_absent_or_unrecorded(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("# nix_remote.builders manages extra-trusted-public-keys: c2-1:z\n"
                    "extra-trusted-public-keys = c2-1:z c2-1:admin\n")
    run_both(run_module, conf, {KEYS: {"present": [], "absent": ["c2-1:z"], "keep": ["c2-1:*"]}}, managed_marker=MARKER)
    # Absent wins over keep; the administrator's item matching the pattern is not taken over.
    assert conf.read_text() == "extra-trusted-public-keys = c2-1:admin\n"


def test_without_the_marker_recorded_items_are_left_alone(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    text = "# nix_remote.builders manages extra-trusted-users: remotebuild\nextra-trusted-users = remotebuild\n"
    conf.write_text(text)
    result = run_both(run_module, conf, {"extra-trusted-users": {"present": []}})
    assert not result["changed"] and conf.read_text() == text
    # Another marker is another owner.
    result = run_both(run_module, conf, {"extra-trusted-users": {"present": []}}, managed_marker="someone.else")
    assert not result["changed"] and conf.read_text() == text


def test_marker_is_found_wherever_it_is(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("  #   nix_remote.builders manages extra-trusted-users: remotebuild gone\nsandbox = true\n"
                    "extra-trusted-users = alice remotebuild gone\n")
    result = run_both(run_module, conf, {"extra-trusted-users": {"present": ["remotebuild"]}}, managed_marker=MARKER)
    assert conf.read_text() == ("  # nix_remote.builders manages extra-trusted-users: remotebuild\nsandbox = true\n"
                                "extra-trusted-users = alice remotebuild\n")
    assert result["list_items"]["extra-trusted-users"]["removed"] == ["gone"]


def test_only_the_comment_changes_when_a_recorded_item_was_removed_by_hand(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("# nix_remote.builders manages extra-trusted-users: remotebuild\nextra-trusted-users = alice\n")
    result = run_both(run_module, conf, {"extra-trusted-users": {"present": []}}, managed_marker=MARKER)
    assert result["changed"] and not result["restart_required"]
    assert conf.read_text() == "extra-trusted-users = alice\n"


def test_signing_mode_as_the_roles_call_it(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("build-users-group = nixbld\nextra-trusted-users = remotebuild\nextra-trusted-public-keys = old:1 admin:1\n")
    items = {"extra-trusted-public-keys": {"present": ["client:1", "builder:1"], "absent": ["old:1"]},
             "extra-trusted-users": {"absent": ["remotebuild"]}}
    result = run_both(run_module, conf, items, managed_marker=MARKER)
    assert conf.read_text() == ("build-users-group = nixbld\n"
                                "# nix_remote.builders manages extra-trusted-public-keys: client:1 builder:1\n"
                                "extra-trusted-public-keys = admin:1 client:1 builder:1\n")
    assert result["list_items"]["extra-trusted-users"]["removed"] == ["remotebuild"]
    assert not run_both(run_module, conf, items, managed_marker=MARKER)["changed"]


def test_combined_with_settings(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("max-jobs = 1\n")
    result = run_both(run_module, conf, {"extra-trusted-users": {"present": ["remotebuild"]}}, settings={"max-jobs": 4}, absent=["cores"])
    assert conf.read_text() == "max-jobs = 4\nextra-trusted-users = remotebuild\n"
    assert result["settings"] == {"max-jobs": "4"}


def test_custom_conf_is_followed(run_module, tmp_path):
    main = tmp_path / "nix.conf"
    main.write_text("build-users-group = nixbld\n!include nix.custom.conf\n")
    result = run_both(run_module, main, {"extra-trusted-users": {"present": ["remotebuild"]}}, managed_marker=MARKER)
    custom = tmp_path / "nix.custom.conf"
    assert result["path"] == str(custom)
    assert custom.read_text() == "# nix_remote.builders manages extra-trusted-users: remotebuild\nextra-trusted-users = remotebuild\n"
    assert main.read_text() == "build-users-group = nixbld\n!include nix.custom.conf\n"


def test_custom_conf_overridden_after_the_include_is_refused(run_module, tmp_path):
    main = tmp_path / "nix.conf"
    main.write_text("!include nix.custom.conf\ntrusted-users = root\n")
    result = run(run_module, main, {"extra-trusted-users": {"present": ["remotebuild"]}})
    assert result["failed"] and f"{main}, line 2: extra-trusted-users is set after the include" in result["msg"]
    assert not (tmp_path / "nix.custom.conf").exists()


def test_backup(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("trusted-users = root\n")
    result = run(run_module, conf, {"trusted-users": {"present": ["remotebuild"]}}, backup=True)
    assert open(result["backup_file"]).read() == "trusted-users = root\n"


def test_diff_shows_the_change(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("trusted-users = root\n")
    result = run(run_module, conf, {"trusted-users": {"present": ["remotebuild"]}}, diff=True)
    assert result["diff"]["before"] == "trusted-users = root\n"
    assert result["diff"]["after"] == "trusted-users = root remotebuild\n"


TOKEN = "ghp_listITEMsecret0123456789"
OLD_TOKEN = "ghp_oldLISTsecret9876543210"


def test_access_token_items_are_masked(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text(f"# nix_remote.builders manages access-tokens: github.com={OLD_TOKEN}\naccess-tokens = gitlab.com=glpat-adminTOKEN42\n")
    for check_mode in (True, False):
        result = run(run_module, conf, {"access-tokens": {"present": [f"github.com={TOKEN}"]}}, check_mode=check_mode, diff=True,
                     managed_marker=MARKER)
        assert result["changed"] and not result["failed"]
        for secret in (TOKEN, OLD_TOKEN, "glpat-adminTOKEN42"):
            assert secret not in repr(result)
        assert len(result["list_items"]["access-tokens"]["added"]) == 1  # there, but masked
    assert f"access-tokens = gitlab.com=glpat-adminTOKEN42 github.com={TOKEN}\n" in conf.read_text()


@pytest.mark.parametrize("list_items, extra, expected", [
    ({"trusted-users": {"present": ["build user"]}}, {}, ["list_items.trusted-users.present", "'build user'", "whitespace"]),
    ({"trusted-users": {"present": ["a\tb"]}}, {}, ["list_items.trusted-users.present", "whitespace"]),
    ({"trusted-users": {"absent": ["x#y"]}}, {}, ["list_items.trusted-users.absent", "'x#y'", "'#'"]),
    ({"trusted-users": {"present": ["x\x00"]}}, {}, ["list_items.trusted-users.present", "NUL"]),
    ({"trusted-users": {"present": [""]}}, {}, ["list_items.trusted-users.present", "empty"]),
    ({"trusted-users": {"present": [4]}}, {}, ["list_items.trusted-users.present", "not a string"]),
    ({"trusted-users": {"present": "root"}}, {}, ["list_items.trusted-users.present", "expected a list"]),
    ({"trusted-users": {"present": ["a"], "absent": ["a"]}}, {}, ["list_items.trusted-users", "'a'", "both in present and absent"]),
    ({"trusted-users": {"wanted": ["a"]}}, {}, ["list_items.trusted-users", "unknown key 'wanted'", "only present, absent, adopt and keep"]),
    ({"trusted-users": ["a"]}, {}, ["list_items.trusted-users", "expected a dictionary"]),
    ({"trusted-users": {"present": ["a"]}}, {"settings": {"trusted-users": "root"}}, ["settings.trusted-users", "also in list_items"]),
    ({"binary-cache-public-keys": {"present": ["a"]}}, {"settings": {"trusted-public-keys": "k"}}, ["settings.trusted-public-keys", "also in list_items"]),
    ({"extra-trusted-users": {"present": ["a"]}}, {"absent": ["trusted-users"]}, ["absent: trusted-users", "list_items.extra-trusted-users"]),
    ({"trusted-users": {"present": ["a"]}}, {"absent": ["trusted-users"]}, ["absent: trusted-users", "list_items.trusted-users"]),
    ({"trusted-public-keys": {"present": ["a"]}, "binary-cache-public-keys": {"absent": ["b"]}}, {}, ["an alias"]),
    ({"max-jobs": {"present": ["4"]}}, {}, ["list_items.max-jobs", "not a list setting"]),
    ({"extra-builders": {"present": ["ssh://b"]}}, {}, ["list_items.extra-builders", "'builders' is a string setting"]),
    ({"trusted-users": {"present": ["a"]}}, {"managed_marker": "a#b"}, ["managed_marker", "'#'"]),
    ({"trusted-users": {"present": ["a"]}}, {"managed_marker": "a\nb"}, ["managed_marker", "line break"]),
    ({"trusted-users": {"present": ["a"]}}, {"managed_marker": ""}, ["managed_marker", "non-empty"]),
])
def test_bad_input_is_refused_and_the_file_is_untouched(run_module, tmp_path, list_items, extra, expected):
    conf = tmp_path / "nix.conf"
    conf.write_text("trusted-users = root\n")
    before = conf.read_bytes()
    result = run(run_module, conf, list_items, **extra)
    assert result["failed"], result
    for text in expected:
        assert text in result["msg"], (text, result["msg"])
    assert conf.read_bytes() == before


def test_settings_of_another_form_may_be_combined(run_module, tmp_path):
    """settings: {trusted-users: ...} replaces the plain line; list_items of extra-trusted-users edits the extra- line."""
    conf = tmp_path / "nix.conf"
    conf.write_text("")
    run_both(run_module, conf, {"extra-trusted-users": {"present": ["remotebuild"]}}, settings={"trusted-users": ["root"]})
    assert conf.read_text() == "trusted-users = root\nextra-trusted-users = remotebuild\n"


def test_adopting_every_item_writes_the_marker_above_their_line(run_module, tmp_path):
    """Nothing to add, all adopted: the marker still goes above the line that holds them."""
    conf = tmp_path / "nix.conf"
    conf.write_text("sandbox = true\nextra-trusted-public-keys = admin:1 client:1\n")
    items = {"extra-trusted-public-keys": {"present": ["client:1"], "adopt": ["client:1"]}}
    result = run_both(run_module, conf, items, managed_marker=MARKER)
    assert result["changed"] and not result["restart_required"]
    assert conf.read_text() == ("sandbox = true\n# nix_remote.builders manages extra-trusted-public-keys: client:1\n"
                                "extra-trusted-public-keys = admin:1 client:1\n")
    assert not run_both(run_module, conf, items, managed_marker=MARKER)["changed"]
