"""The include tree reader of nix_validate and the value comparison of nix_conf (pure functions)."""

from __future__ import annotations

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import NixConf, NixConfError, same_value
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_validate import IncludeError, conf_root, load_tree


def test_tree_follows_relative_includes_from_each_files_own_directory(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "nix.conf").write_text("include a/x.conf\n")
    (tmp_path / "a" / "x.conf").write_text("include b/y.conf\n")
    (tmp_path / "a" / "b" / "y.conf").write_text("cores = 1\n")
    tree = load_tree(str(tmp_path / "nix.conf"), {})
    assert [shown for shown, _text, _includes in tree.files.values()] == [
        str(tmp_path / "nix.conf"), str(tmp_path / "a/x.conf"), str(tmp_path / "a/b/y.conf")]


def test_override_stands_in_for_the_file_and_may_not_exist_yet(tmp_path):
    (tmp_path / "nix.conf").write_text("include new.conf\n")
    tree = load_tree(str(tmp_path / "nix.conf"), {str(tmp_path / "new.conf"): "cores = 2\n"})
    assert str(tmp_path / "new.conf") in tree


def test_diamond_is_not_a_cycle(tmp_path):
    (tmp_path / "nix.conf").write_text("include a.conf\ninclude b.conf\n")
    (tmp_path / "a.conf").write_text("include c.conf\n")
    (tmp_path / "b.conf").write_text("include c.conf\n")
    (tmp_path / "c.conf").write_text("cores = 1\n")
    assert len(load_tree(str(tmp_path / "nix.conf"), {}).files) == 4


def test_cycle_through_a_symlink_is_found(tmp_path):
    (tmp_path / "nix.conf").write_text("include link.conf\n")
    (tmp_path / "link.conf").symlink_to(tmp_path / "nix.conf")
    with pytest.raises(IncludeError, match="include cycle"):
        load_tree(str(tmp_path / "nix.conf"), {})


def test_syntax_error_in_an_included_file_names_it(tmp_path):
    (tmp_path / "nix.conf").write_text("include a.conf\n")
    (tmp_path / "a.conf").write_text("\nsandbox\n")
    with pytest.raises(NixConfError, match=r"a\.conf, line 2"):
        load_tree(str(tmp_path / "nix.conf"), {})


def test_conf_root_of_a_file_with_another_name(tmp_path):
    (tmp_path / "nix.conf").write_text("include sub/site.conf\n")
    (tmp_path / "sub").mkdir()
    site = str(tmp_path / "sub" / "site.conf")
    assert conf_root(str(tmp_path / "nix.conf"), str(tmp_path / "nix.conf"), {}) == str(tmp_path / "nix.conf")
    assert conf_root(site, site, {site: ""}, default_dir=str(tmp_path)) == str(tmp_path / "nix.conf")
    assert conf_root(site, site, {site: ""}, default_dir=str(tmp_path / "none")) is None


def test_include_lines_and_assignment_lines():
    conf = NixConf.parse("a = 1\n!include x.conf\n\nbuild-max-jobs = 2\nextra-trusted-users = b\ninclude y\n")
    assert conf.include_lines() == [(2, True, "x.conf"), (6, False, "y")]
    assert conf.assignment_lines("max-jobs") == [4]
    assert conf.assignment_lines("trusted-users") == [5]


@pytest.mark.parametrize("key, first, second, same", [
    ("builders-use-substitutes", "yes", "true", True),
    ("builders-use-substitutes", "0", "no", True),
    ("builders-use-substitutes", "True", "true", False),
    ("build-fallback", "1", "true", True),
    ("sandbox", "yes", "true", False),
    ("system-features", "kvm a kvm", "a kvm", True),
    ("extra-system-features", "b a", "a b", True),
    ("substituters", "b a", "a b", False),
    ("max-jobs", "04", "4", True),
    ("max-jobs", "auto", "4", False),
    ("max-jobs", "\u0664", "4", False),  # not an ASCII digit: Nix rejects it
    ("build-users-group", "01", "1", False),
])
def test_same_value(key, first, second, same):
    assert same_value(key, first, second) is same


def test_optional_include_of_a_dangling_symlink_is_skipped(tmp_path):
    (tmp_path / "nix.conf").write_text("!include link.conf\n")
    (tmp_path / "link.conf").symlink_to(tmp_path / "gone.conf")
    assert len(load_tree(str(tmp_path / "nix.conf"), {}).files) == 1
