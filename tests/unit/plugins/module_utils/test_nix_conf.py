# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nix.conf parsing and editing: one case per rule of facts section 2, plus round-trip properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import (
    ALIASES,
    LIST_SETTINGS,
    NixConf,
    NixConfError,
    canonical_key,
    same_value,
    split_key,
    to_nix_value,
)


def edited(text, *edits):
    """Apply ("set", key, value) / ("unset", key) edits and return the new text."""
    conf = NixConf.parse(text)
    for edit in edits:
        if edit[0] == "set":
            conf.set(edit[1], edit[2])
        else:
            conf.unset(edit[1])
    return conf.render()


# --- syntax -----------------------------------------------------------------

@pytest.mark.parametrize("line", [
    pytest.param("key=value", id="no-spaces-around-equals"),
    pytest.param("key =value", id="no-space-after-equals"),
    pytest.param("key= value", id="no-space-before-equals"),
    pytest.param("value == key", id="double-equals-upstream-test"),
    pytest.param("value ", id="single-token-trailing-space-upstream-test"),
    pytest.param("max-jobs", id="single-token"),
    pytest.param("max-jobs 4", id="missing-equals"),
    pytest.param("include", id="include-without-path"),
    pytest.param("include a b", id="include-two-paths"),
    pytest.param("!include = a", id="optional-include-as-assignment"),
])
def test_syntax_error_names_file_and_line(line):
    text = "# header\nmax-jobs = 1\n%s\ncores = 2\n" % line
    with pytest.raises(NixConfError) as info:
        NixConf.parse(text, source="/etc/nix/nix.conf")
    assert info.value.line == 3
    assert info.value.source == "/etc/nix/nix.conf"
    assert "/etc/nix/nix.conf, line 3" in str(info.value)
    assert line.strip() in str(info.value)
    assert isinstance(info.value, ValueError)


def test_empty_value_is_allowed():
    conf = NixConf.parse("substituters =\n")
    assert conf.get("substituters") == ""


@pytest.mark.parametrize("text", ["", "\n", "   \n\t\n", "# only a comment\n", "\r\n"])
def test_blank_and_comment_only_files_assign_nothing(text):
    conf = NixConf.parse(text)
    assert conf.get("max-jobs") is None
    assert conf.render() == text


# --- comments -----------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    pytest.param("builders = @/etc/nix/machines # managed", "@/etc/nix/machines", id="trailing-comment"),
    pytest.param("builders = @/etc/nix/machines#managed", "@/etc/nix/machines", id="comment-glued-to-value"),
    pytest.param("substituters = https://a.example/#frag https://b.example", "https://a.example/", id="hash-inside-url"),
    pytest.param("builders = # nothing", "", id="comment-right-after-equals"),
])
def test_hash_starts_a_comment_anywhere(line, expected):
    assert NixConf.parse(line + "\n").get(canonical_key(line.split()[0])) == expected


def test_comment_can_hide_the_equals_sign():
    with pytest.raises(NixConfError):
        NixConf.parse("max-jobs #= 4\n")


# --- tokenizing -------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    pytest.param("trusted-users   =   root    alice", "root alice", id="space-runs"),
    pytest.param("\ttrusted-users\t=\troot\t\talice\t", "root alice", id="tabs"),
    pytest.param("trusted-users = root alice\r", "root alice", id="carriage-return"),
    pytest.param("trusted-users = \"root alice\"", "\"root alice\"", id="quotes-have-no-meaning"),
    pytest.param("trusted-users = root\x0balice", "root\x0balice", id="vertical-tab-is-not-whitespace"),
])
def test_value_tokens_are_joined_by_one_space(line, expected):
    assert NixConf.parse(line).get("trusted-users") == expected


def test_no_line_continuations():
    conf = NixConf.parse("builders = a \\\nmax-jobs = 2\n")
    assert conf.get("builders") == "a \\"
    assert conf.get("max-jobs") == "2"


def test_lines_split_on_newline_only():
    # A lone "\r" is whitespace inside one line, not a line break.
    conf = NixConf.parse("max-jobs = 2\rcores = 3\n")
    assert conf.get("max-jobs") == "2 cores = 3"
    assert conf.get("cores") is None


# --- includes --------------------------------------------------------------------

def test_includes_in_file_order_with_optional_flag():
    text = "include /etc/nix/a.conf\nmax-jobs = 1\n!include nix.custom.conf  # installer\n"
    conf = NixConf.parse(text)
    assert conf.includes() == [(False, "/etc/nix/a.conf"), (True, "nix.custom.conf")]
    assert conf.render() == text


def test_include_lines_are_not_settings():
    conf = NixConf.parse("!include nix.custom.conf\n")
    assert conf.get("include") is None
    assert conf.get("!include") is None
    with pytest.raises(NixConfError):
        conf.set("include", "x")


# --- last assignment wins, aliases -------------------------------------------------------

def test_last_assignment_wins():
    assert NixConf.parse("max-jobs = 1\ncores = 4\nmax-jobs = 8\n").get("max-jobs") == "8"


@pytest.mark.parametrize("alias, canonical", sorted(ALIASES.items()))
def test_alias_line_sets_the_canonical_setting(alias, canonical):
    assert canonical_key(alias) == canonical
    conf = NixConf.parse("%s = first\n" % alias)
    assert conf.get(canonical) == "first"
    assert conf.get(alias) == "first"


@pytest.mark.parametrize("alias, canonical", sorted(ALIASES.items()))
def test_canonical_line_after_alias_wins_and_vice_versa(alias, canonical):
    assert NixConf.parse("%s = old\n%s = new\n" % (alias, canonical)).get(alias) == "new"
    assert NixConf.parse("%s = old\n%s = new\n" % (canonical, alias)).get(canonical) == "new"


def test_set_through_alias_rewrites_the_alias_line():
    assert edited("build-max-jobs = 2 # old name\n", ("set", "max-jobs", "4")) == "max-jobs = 4 # old name\n"


def test_unset_removes_alias_lines():
    text = "build-use-sandbox = false\ncores = 2\nsandbox = true\nbuild-use-chroot = true\n"
    assert edited(text, ("unset", "sandbox")) == "cores = 2\n"


@pytest.mark.parametrize("key, expected", [
    ("build-max-jobs", "max-jobs"),
    ("max-jobs", "max-jobs"),
    ("extra-binary-caches", "extra-substituters"),
    ("extra-platforms", "extra-platforms"),
    ("unknown-thing", "unknown-thing"),
])
def test_canonical_key(key, expected):
    assert canonical_key(key) == expected


# --- extra- appending --------------------------------------------------------------------

def test_extra_appends_to_list_setting():
    conf = NixConf.parse("trusted-users = root\nextra-trusted-users = alice @wheel\n")
    assert conf.get("trusted-users") == "root alice @wheel"
    assert conf.get("extra-trusted-users") == "alice @wheel"


def test_extra_appends_through_alias():
    conf = NixConf.parse("binary-caches = https://a\nextra-binary-caches = https://b\nextra-substituters = https://c\n")
    assert conf.get("substituters") == "https://a https://b https://c"
    assert conf.get("extra-substituters") == "https://b https://c"


def test_extra_without_base_returns_only_the_appended_values():
    conf = NixConf.parse("extra-experimental-features = nix-command flakes\n")
    assert conf.get("experimental-features") == "nix-command flakes"


def test_later_plain_assignment_discards_earlier_extra_values_nix_9487():
    conf = NixConf.parse("extra-trusted-users = alice\ntrusted-users = root\n")
    assert conf.get("trusted-users") == "root"
    assert conf.get("extra-trusted-users") is None


def test_extra_of_a_scalar_setting_does_not_append():
    conf = NixConf.parse("max-jobs = 2\nextra-max-jobs = 3\n")
    assert conf.get("max-jobs") == "2"


def test_extra_platforms_is_a_standalone_last_wins_setting():
    conf = NixConf.parse("extra-platforms = i686-linux\nextra-platforms = aarch64-linux\n")
    assert conf.get("extra-platforms") == "aarch64-linux"
    assert conf.get("platforms") is None
    assert edited("extra-platforms = i686-linux\n", ("set", "extra-platforms", "aarch64-linux")) == "extra-platforms = aarch64-linux\n"


def test_extra_platforms_has_its_own_extra_form():
    assert "extra-platforms" in LIST_SETTINGS
    assert NixConf.parse("extra-platforms = a\nextra-extra-platforms = b\n").get("extra-platforms") == "a b"


def test_extra_builders_in_a_file_parses_but_does_not_change_builders():
    conf = NixConf.parse("builders = @/etc/nix/machines\nextra-builders = ssh://x\n")
    assert conf.get("builders") == "@/etc/nix/machines"


@pytest.mark.parametrize("key", ["extra-builders", "extra-max-jobs", "extra-build-max-jobs", "extra-unknown-setting"])
def test_extra_form_of_non_list_setting_is_refused(key):
    text = "builders = @/etc/nix/machines\n"
    conf = NixConf.parse(text, source="/etc/nix/nix.conf")
    with pytest.raises(ValueError) as info:
        conf.set(key, "ssh://x")
    assert key in str(info.value)
    assert "not a list" in str(info.value)
    assert "/etc/nix/nix.conf" in str(info.value)
    assert conf.render() == text


def test_extra_builders_refusal_says_builders_is_a_string_setting():
    with pytest.raises(NixConfError, match="'builders' is a string setting"):
        NixConf.parse("").set("extra-builders", "ssh://x")


def test_unset_builders_also_removes_ignored_extra_builders():
    assert edited("builders = a\nextra-builders = b\ncores = 1\n", ("unset", "builders")) == "cores = 1\n"
    assert edited("builders = a\nextra-builders = b\n", ("unset", "extra-builders")) == "builders = a\n"


# --- placement of new lines --------------------------------------------------------------------

def test_new_extra_line_goes_after_the_last_base_line():
    text = "trusted-users = root\nmax-jobs = 2\ntrusted-users = root bob\ncores = 4\n"
    out = edited(text, ("set", "extra-trusted-users", "alice"))
    assert out == text + "extra-trusted-users = alice\n"
    assert NixConf.parse(out).get("trusted-users") == "root bob alice"


def test_new_base_line_goes_before_existing_extra_line():
    text = "max-jobs = 2\nextra-trusted-users = alice\ncores = 4\n"
    out = edited(text, ("set", "trusted-users", "root"))
    assert out == "max-jobs = 2\ntrusted-users = root\nextra-trusted-users = alice\ncores = 4\n"
    assert NixConf.parse(out).get("trusted-users") == "root alice"


def test_new_base_line_goes_before_extra_alias_line():
    out = edited("extra-binary-caches = https://b\n", ("set", "substituters", "https://a"))
    assert out == "substituters = https://a\nextra-binary-caches = https://b\n"


def test_set_extra_when_only_discarded_extras_exist_adds_effective_line():
    text = "extra-trusted-users = alice\ntrusted-users = root\n"
    out = edited(text, ("set", "extra-trusted-users", "alice"))
    assert out == text + "extra-trusted-users = alice\n"
    assert NixConf.parse(out).get("trusted-users") == "root alice"


def test_set_extra_merges_several_effective_lines():
    text = "trusted-users = root\nextra-trusted-users = alice\ncores = 1\nextra-trusted-users = bob # b\n"
    out = edited(text, ("set", "extra-trusted-users", "carol"))
    assert out == "trusted-users = root\ncores = 1\nextra-trusted-users = carol # b\n"


def test_set_extra_equal_to_several_lines_changes_nothing():
    conf = NixConf.parse("extra-trusted-users = alice\nextra-trusted-users = bob\n")
    assert conf.set("extra-trusted-users", "alice bob") is False


# --- editing semantics ------------------------------------------------------------------------

def test_set_rewrites_last_line_in_place_keeping_indent_and_comment():
    text = "max-jobs = 1\n  max-jobs   =  2   # tuned\ncores = 0\n"
    conf = NixConf.parse(text)
    assert conf.set("max-jobs", 4) is True
    assert conf.render() == "max-jobs = 1\n  max-jobs = 4   # tuned\ncores = 0\n"


@pytest.mark.parametrize("text, key, value", [
    ("max-jobs   =  4   # tuned\n", "max-jobs", "4"),
    ("build-max-jobs = 4\n", "max-jobs", 4),
    ("trusted-users = root \t alice\n", "trusted-users", ["root", "alice"]),
    ("sandbox = true", "sandbox", True),
    ("builders =\n", "builders", ""),
])
def test_set_equal_value_changes_nothing(text, key, value):
    conf = NixConf.parse(text)
    assert conf.set(key, value) is False
    assert conf.render() == text


def test_set_appends_new_key_keeping_missing_final_newline():
    assert edited("cores = 1", ("set", "max-jobs", "2")) == "cores = 1\nmax-jobs = 2"


def test_set_on_empty_file():
    assert edited("", ("set", "max-jobs", "2")) == "max-jobs = 2\n"


def test_set_in_crlf_file_writes_crlf():
    assert edited("cores = 1\r\n", ("set", "max-jobs", "2")) == "cores = 1\r\nmax-jobs = 2\r\n"
    assert edited("max-jobs = 1\r\n", ("set", "max-jobs", "2")) == "max-jobs = 2\r\n"


def test_set_empty_value_writes_bare_equals():
    assert edited("", ("set", "substituters", "")) == "substituters =\n"


@pytest.mark.parametrize("value", ["a#b", "a\nb", "a\rb", ["ok", "a b"], ["ok", ""], None, 1.5])
def test_set_rejects_values_nix_cannot_read_back(value):
    text = "max-jobs = 1\n"
    conf = NixConf.parse(text, source="x.conf")
    with pytest.raises(ValueError, match="x.conf"):
        conf.set("max-jobs", value)
    assert conf.render() == text


@pytest.mark.parametrize("key", ["", "a b", "a#b", "a\nb", "=", "!include"])
def test_set_rejects_invalid_setting_names(key):
    with pytest.raises(NixConfError):
        NixConf.parse("").set(key, "1")


def test_set_leaves_earlier_duplicates_alone():
    assert edited("max-jobs = 1\nmax-jobs = 2\n", ("set", "max-jobs", "3")) == "max-jobs = 1\nmax-jobs = 3\n"


def test_set_base_does_not_touch_extra_lines():
    text = "trusted-users = root\nextra-trusted-users = alice\n"
    out = edited(text, ("set", "trusted-users", "root bob"))
    assert out == "trusted-users = root bob\nextra-trusted-users = alice\n"


def test_unset_removes_key_aliases_and_extra_forms():
    text = "a = 1\nsubstituters = x\nbinary-caches = y\nextra-substituters = z\nextra-binary-caches = w\nb = 2\n"
    conf = NixConf.parse(text)
    assert conf.unset("substituters") is True
    assert conf.render() == "a = 1\nb = 2\n"
    assert conf.unset("substituters") is False


def test_unset_extra_keeps_base():
    assert edited("substituters = x\nextra-substituters = z\n", ("unset", "extra-binary-caches")) == "substituters = x\n"


def test_unset_last_line_without_final_newline():
    assert edited("cores = 1\nmax-jobs = 2", ("unset", "max-jobs")) == "cores = 1"


# --- to_nix_value ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (17179869184, "17179869184"),
    (["root", "@wheel"], "root @wheel"),
    ([], ""),
    ("@/etc/nix/machines", "@/etc/nix/machines"),
    ("a b=c =", "a b=c ="),
    ("", ""),
    ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),
])
def test_to_nix_value(value, expected):
    assert to_nix_value(value) == expected


@pytest.mark.parametrize("value", ["a#b", "a\nb", ["a b"], [""], None, 1.5, {"a": 1},
                                   # Nix would read these differently (whitespace collapses), or not at all:
                                   "a  b", " a", "a ", "a\tb", "a\x00b", "\udcff", ["a\x00"]])
def test_to_nix_value_rejects(value):
    with pytest.raises(ValueError):
        to_nix_value(value)


# --- properties ------------------------------------------------------------------------------

PLAIN_KEYS = {"max-jobs", "cores", "builders", "trusted-users", "substituters", "system-features", "extra-platforms", "foo-bar"}
EXTRA_KEYS = {"extra-trusted-users", "extra-substituters", "extra-binary-caches", "extra-system-features", "extra-builders", "extra-extra-platforms"}
KEYS = sorted(PLAIN_KEYS | set(ALIASES) | EXTRA_KEYS)
SETTABLE_KEYS = [key for key in KEYS if key != "extra-builders"]

blank = st.text(alphabet=" \t\r", max_size=4)
nonblank = st.text(alphabet=" \t\r", min_size=1, max_size=3)
token = st.text(alphabet=st.characters(blacklist_characters=" \t\r\n#\x00", blacklist_categories=("Cs",)), min_size=1, max_size=8)
comment = st.one_of(st.just(""), st.builds(lambda gap, text: gap + "#" + text, blank, st.text(
    alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=10)))
value_tokens = st.lists(token, max_size=3)


known_key = st.sampled_from(KEYS)


@st.composite
def assignment_line(draw, keys=known_key):
    tokens = draw(value_tokens)
    line = draw(blank) + draw(keys) + draw(nonblank) + "=" + "".join(draw(nonblank) + item for item in tokens) + draw(blank)
    return line + draw(comment)


include_line = st.builds(lambda a, kw, b, path, c, rest: a + kw + b + path + c + rest,
                         blank, st.sampled_from(["include", "!include"]), nonblank, token, blank, comment)
other_line = st.one_of(blank, st.builds(lambda a, c: a + c, blank, comment), include_line)


def join(lines, final_newline, crlf):
    eol = "\r\n" if crlf else "\n"
    return eol.join(lines) + (eol if final_newline and lines else "")


conf_text = st.builds(join, st.lists(st.one_of(assignment_line(), other_line), max_size=12), st.booleans(), st.booleans())
new_value = st.lists(token, max_size=3).map(" ".join)


def snapshot(conf):
    return {key: conf.get(key) for key in KEYS}


def family(key):
    """Canonical names whose lines an edit of ``key`` may touch."""
    name = canonical_key(key)
    base = name[len("extra-"):] if name.startswith("extra-") and name not in LIST_SETTINGS else name
    return {base, "extra-" + base}


@settings(max_examples=300)
@given(conf_text)
def test_property_untouched_render_is_byte_identical(text):
    assert NixConf.parse(text).render() == text


@settings(max_examples=300)
@given(conf_text, st.sampled_from(SETTABLE_KEYS), new_value)
def test_property_set_then_unset_of_absent_key_restores_bytes(text, key, value):
    probe = NixConf.parse(text)
    assume(not probe.unset(key))
    conf = NixConf.parse(text)
    assert conf.set(key, value) is True
    assert conf.unset(key) is True
    assert conf.render() == text


@st.composite
def file_with_target_line(draw):
    """A file whose only (or last, for plain keys) line of ``key`` is written as ``key = value``; returns (text, key, old, new)."""
    key = draw(st.sampled_from(SETTABLE_KEYS))
    appends = canonical_key(key).startswith("extra-") and canonical_key(key) not in LIST_SETTINGS
    names = family(key)

    def foreign(line):
        tokens = [item for item in re.split("[ \t\r]+", line.split("#", 1)[0]) if item]
        return not tokens or canonical_key(tokens[0]) not in names

    prefix = draw(st.lists(st.one_of(assignment_line(), other_line), max_size=5))
    suffix = [line for line in draw(st.lists(st.one_of(assignment_line(), other_line), max_size=5)) if foreign(line)]
    if appends:
        prefix = [line for line in prefix if foreign(line)]
    old = draw(new_value)
    new = draw(new_value)
    target = draw(blank) + (key + " = " + old if old else key + " =") + draw(blank) + draw(comment)
    return join(prefix + [target] + suffix, draw(st.booleans()), draw(st.booleans())), key, old, new


@settings(max_examples=300)
@given(file_with_target_line())
def test_property_set_then_set_back_restores_bytes(case):
    text, key, old, new = case
    conf = NixConf.parse(text)
    conf.set(key, new)
    # Spellings Nix reads as the same value (a set with a repeat, `yes` for `true`) are no change.
    assert conf.set(key, old) is (not same_value(canonical_key(key), old, new))
    assert conf.render() == text


@settings(max_examples=300)
@given(conf_text, st.sampled_from(SETTABLE_KEYS), new_value)
def test_property_set_is_idempotent_and_touches_only_its_key(text, key, value):
    conf = NixConf.parse(text)
    before = snapshot(conf)
    conf.set(key, value)
    out = conf.render()
    reparsed = NixConf.parse(out)
    assert snapshot(reparsed) == snapshot(conf)
    assert reparsed.set(key, value) is False
    assert reparsed.render() == out
    touched = family(key)
    for other, old in before.items():
        if canonical_key(other) not in touched and family(other) != touched:
            assert reparsed.get(other) == old, other
    name = canonical_key(key)
    if name.startswith("extra-") and name not in LIST_SETTINGS:
        assert reparsed.get(key) == value
    elif name in LIST_SETTINGS:
        assert reparsed.get(key).startswith(value)
    else:
        assert reparsed.get(key) == value


@settings(max_examples=200)
@given(conf_text, st.sampled_from(KEYS))
def test_property_unset_leaves_no_value_and_other_keys_alone(text, key):
    conf = NixConf.parse(text)
    before = snapshot(conf)
    conf.unset(key)
    reparsed = NixConf.parse(conf.render())
    assert reparsed.get(key) is None
    touched = family(key)
    for other, old in before.items():
        if family(other) != touched and canonical_key(other) not in touched:
            assert reparsed.get(other) == old, other


# --- list items (edit_list) ----------------------------------------------------------------------

def listed(text, key, present=(), absent=(), marker=None):
    conf = NixConf.parse(text)
    result = conf.edit_list(key, present, absent, marker=marker)
    return conf.render(), result


@pytest.mark.parametrize("text, key, present, absent, expected", [
    pytest.param("trusted-users = root\n", "trusted-users", ["a", "b"], [], "trusted-users = root a b\n", id="append"),
    pytest.param("trusted-users =\n", "trusted-users", ["a"], [], "trusted-users = a\n", id="append-to-empty"),
    pytest.param("trusted-users = root # c\n", "trusted-users", ["a"], [], "trusted-users = root a # c\n", id="before-comment"),
    pytest.param("trusted-users = root\t \r\n", "trusted-users", ["a"], [], "trusted-users = root a\t \r\n", id="before-trailing-space"),
    pytest.param("  trusted-users\t=  x  y  z\n", "trusted-users", [], ["y"], "  trusted-users\t=  x  z\n", id="middle"),
    pytest.param("trusted-users = x y\n", "trusted-users", [], ["x"], "trusted-users = y\n", id="first"),
    pytest.param("trusted-users = x y\n", "trusted-users", [], ["y"], "trusted-users = x\n", id="last"),
    pytest.param("a = 1\ntrusted-users = x#c\nb = 2", "trusted-users", [], ["x"], "a = 1\nb = 2", id="last-item-removes-line"),
    pytest.param("extra-platforms = i686-linux\n", "extra-platforms", ["x"], [], "extra-platforms = i686-linux x\n", id="extra-platforms-own"),
    pytest.param("extra-trusted-users = a\nextra-trusted-users = b\n", "extra-trusted-users", ["c"], ["a"],
                 "extra-trusted-users = b c\n", id="extra-lines"),
    pytest.param("build-chroot-dirs = /a\n", "sandbox-paths", ["/b"], [], "build-chroot-dirs = /a /b\n", id="alias-line-kept"),
    pytest.param("x = 1\n", "extra-binary-caches", ["https://c"], [], "x = 1\nextra-binary-caches = https://c\n", id="new-extra-alias"),
    pytest.param("trusted-users = a a\n", "trusted-users", [], ["a"], "", id="repeated-item"),
])
def test_edit_list(text, key, present, absent, expected):
    assert listed(text, key, present, absent)[0] == expected


@pytest.mark.parametrize("key, present, absent, message", [
    ("max-jobs", ["1"], [], "not a list setting"),
    ("extra-sandbox", ["1"], [], "not a list setting"),
    ("extra-builders", ["x"], [], "string setting"),
    ("include", ["x"], [], "not a setting"),
    ("trusted-users", ["a b"], [], "whitespace"),
    ("trusted-users", ["a\x0bb"], [], "whitespace"),
    ("trusted-users", [], ["a#"], "'#'"),
    ("trusted-users", ["a"], ["a"], "both in present and absent"),
    ("trusted-users", "a", [], "must be a list"),
])
def test_edit_list_refuses(key, present, absent, message):
    conf = NixConf.parse("trusted-users = root\n")
    with pytest.raises(NixConfError) as info:
        conf.edit_list(key, present, absent)
    assert message in str(info.value) and key in str(info.value)
    assert conf.render() == "trusted-users = root\n"


@pytest.mark.parametrize("marker", ["", " m", "m ", "a#b", "a\nb", "a\rb", "a\tb", "\x00"])
def test_marker_refused(marker):
    with pytest.raises(ValueError):
        NixConf.parse("").edit_list("trusted-users", ["a"], marker=marker)


def test_marker_comment_is_a_comment_to_nix_and_found_again():
    text, result = listed("sandbox = true\n", "extra-trusted-users", ["remotebuild"], marker="my marker")
    assert text == "sandbox = true\n# my marker manages extra-trusted-users: remotebuild\nextra-trusted-users = remotebuild\n"
    conf = NixConf.parse(text)
    assert conf.meaning() == [("sandbox", "true"), ("extra-trusted-users", "remotebuild")]
    assert conf.managed_items("my marker") == {"extra-trusted-users": ["remotebuild"]}
    assert conf.managed_items("my") == {}
    # Moved to the top of the file by hand: still found, updated where it is.
    moved = "# my marker manages extra-trusted-users: remotebuild\nsandbox = true\nextra-trusted-users = remotebuild alice\n"
    assert listed(moved, "extra-trusted-users", [], marker="my marker")[0] == "sandbox = true\nextra-trusted-users = alice\n"


def test_two_marker_comments_for_one_setting_are_merged():
    text = ("# m manages trusted-users: a\ntrusted-users = root a b\n# m manages trusted-users: b\n")
    out, result = listed(text, "trusted-users", ["a"], marker="m")
    assert out == "# m manages trusted-users: a\ntrusted-users = root a\n"
    assert result == {"added": [], "removed": ["b"], "items": ["root", "a"], "managed": ["a"]}


LIST_KEYS = [key for key in KEYS if key != "extra-builders" and split_key(key)[0] in LIST_SETTINGS]
item = token.filter(lambda text: not any(char.isspace() for char in text))


@settings(max_examples=300)
@given(conf_text, st.sampled_from(LIST_KEYS), st.lists(item, max_size=3), st.lists(item, max_size=3))
def test_property_edit_list(text, key, present, absent):
    absent = [entry for entry in absent if entry not in present]
    conf = NixConf.parse(text)
    before_snapshot = snapshot(conf)
    before = conf.list_value(key)
    base_lines = len(conf.overriding_lines(key))
    result = conf.edit_list(key, present, absent)
    out = conf.render()
    reparsed = NixConf.parse(out)
    after = reparsed.list_value(key)
    assert after == result["items"]
    assert all(entry in after for entry in present) and not any(entry in after for entry in absent)
    if split_key(key)[1] or len(reparsed.overriding_lines(key)) == base_lines:
        kept = [entry for entry in before if entry not in absent]
        new = [entry for entry in dict.fromkeys(present) if entry not in kept]
        # New items go to the end of the last NAME line: extra-NAME lines after it still follow them.
        assert sorted(after) == sorted(kept + new)
        assert [entry for entry in after if entry in new] == new
        assert [entry for entry in after if entry not in new] == kept
    # Again: nothing changes.
    assert reparsed.edit_list(key, present, absent)["added"] == [] and reparsed.render() == out
    touched = family(key)
    for other, old in before_snapshot.items():
        if family(other) != touched and canonical_key(other) not in touched:
            assert reparsed.get(other) == old, other
    if not result["added"] and not result["removed"]:
        assert out == text


@settings(max_examples=200)
@given(conf_text, st.sampled_from(LIST_KEYS), st.lists(item, max_size=4), st.lists(item, max_size=4))
def test_property_marker_removes_only_what_it_added(text, key, first, second):
    conf = NixConf.parse(text)
    before = conf.list_value(key)
    added = conf.edit_list(key, first, marker="m")["added"]
    result = conf.edit_list(key, second, marker="m")
    after = conf.list_value(key)
    assert all(entry in after for entry in second)
    for entry in before:
        if split_key(key)[1] or entry not in added:
            # An item that was there before the first run is never removed by the second.
            assert entry in after or entry in added, entry
    for entry in added:
        if entry not in second:
            assert entry not in after
    assert set(result["managed"]) == {entry for entry in added if entry in second} | set(result["added"])
    # The comment alone does not change what Nix reads; without items it is gone.
    assert conf.managed_items("m") == ({canonical_key(key) if not split_key(key)[1] else "extra-" + split_key(key)[0]: result["managed"]}
                                       if result["managed"] else {})
