"""The nixos_module module: the module file, the import, flakes, check mode, diff, refusals."""

from __future__ import annotations

import shutil

import pytest

from ansible_collections.nix_remote.builders.plugins.modules import nixos_module

CONFIGURATION = """\
# Edit this configuration file to define what should be installed on
# your system.  Help is available in the configuration.nix(5) man page
# and in the NixOS manual (accessible by running 'nixos-help').

{ config, pkgs, ... }:

{
  imports =
    [ # Include the results of the hardware scan.
      ./hardware-configuration.nix
    ];

  system.stateVersion = "24.05"; # Did you read the comment?
}
"""

CONTENT = {
    "nix": {"settings": {"trusted-users": ["remotebuild"], "max-jobs": 4}},
    "users": {"users": {"remotebuild": {"isSystemUser": True, "shell": {"__nix_raw": "pkgs.bashInteractive"}}}},
}

EXPECTED_MODULE = """\
# Managed by Ansible.
{ config, lib, pkgs, ... }:
{
  nix = {
    settings = {
      max-jobs = 4;
      trusted-users = [
        "remotebuild"
      ];
    };
  };
  users = {
    users = {
      remotebuild = {
        isSystemUser = true;
        shell = pkgs.bashInteractive;
      };
    };
  };
}
"""


@pytest.fixture
def etc_nixos(tmp_path, monkeypatch):
    directory = tmp_path / "nixos"
    directory.mkdir()
    (directory / "configuration.nix").write_text(CONFIGURATION)
    # Unit tests must not depend on whether this machine has Nix; tests/nixos runs the real one.
    monkeypatch.setattr(nixos_module.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    return directory


def args(directory, **extra):
    return dict({
        "path": str(directory / "remote-builder.nix"),
        "configuration": str(directory / "configuration.nix"),
        "content": CONTENT,
        "comment": "Managed by Ansible.",
    }, **extra)


def test_writes_module_and_adds_the_import(run_module, etc_nixos):
    result = run_module(nixos_module.main, args(etc_nixos))
    assert not result["failed"], result
    assert result["changed"] and result["rebuild_required"] and result["import_added"]
    assert result["instructions"] is None and result["import_path"] == "./remote-builder.nix"
    assert (etc_nixos / "remote-builder.nix").read_text() == EXPECTED_MODULE
    assert (etc_nixos / "remote-builder.nix").stat().st_mode & 0o777 == 0o644
    assert (etc_nixos / "configuration.nix").read_text() == CONFIGURATION.replace(
        "      ./hardware-configuration.nix\n", "      ./hardware-configuration.nix\n      ./remote-builder.nix\n")


def test_second_run_changes_nothing(run_module, etc_nixos):
    run_module(nixos_module.main, args(etc_nixos))
    before = {name: (etc_nixos / name).read_bytes() for name in ("remote-builder.nix", "configuration.nix")}
    reordered = dict(reversed(list(CONTENT.items())))
    result = run_module(nixos_module.main, args(etc_nixos, content=reordered))
    assert not result["changed"] and not result["rebuild_required"] and not result["import_added"]
    assert {name: (etc_nixos / name).read_bytes() for name in before} == before


def test_content_change_alone_requires_a_rebuild_but_no_import(run_module, etc_nixos):
    run_module(nixos_module.main, args(etc_nixos))
    result = run_module(nixos_module.main, args(etc_nixos, content={"nix": {"settings": {"cores": 2}}}))
    assert result["changed"] and result["rebuild_required"] and not result["import_added"]
    assert "cores = 2;" in (etc_nixos / "remote-builder.nix").read_text()


def test_check_mode_writes_nothing_and_diff_shows_both_files(run_module, etc_nixos):
    result = run_module(nixos_module.main, args(etc_nixos), check_mode=True, diff=True)
    assert result["changed"] and result["rebuild_required"] and result["import_added"]
    assert not (etc_nixos / "remote-builder.nix").exists()
    assert (etc_nixos / "configuration.nix").read_text() == CONFIGURATION
    module_diff, conf_diff = result["diff"]
    assert module_diff["before"] == "" and module_diff["after"] == EXPECTED_MODULE
    assert module_diff["before_header"].endswith("remote-builder.nix (absent)")
    assert conf_diff["before"] == CONFIGURATION and "./remote-builder.nix" in conf_diff["after"]


def test_unchanged_configuration_gets_no_diff_entry(run_module, etc_nixos):
    run_module(nixos_module.main, args(etc_nixos))
    result = run_module(nixos_module.main, args(etc_nixos, content={"nix": {}}), diff=True)
    assert len(result["diff"]) == 1 and result["diff"][0]["after"].endswith("{\n  nix = { };\n}\n")


@pytest.mark.parametrize("configuration", [
    "{ lib, ... }:\n{\n  imports = lib.optional true ./a.nix;\n}\n",
    "{ ... }:\n{\n  imports = [ ./a.nix ];\n  imports = [ ./b.nix ];\n}\n",
])
def test_unsafe_configuration_fails_with_the_line_and_writes_nothing(run_module, etc_nixos, configuration):
    (etc_nixos / "configuration.nix").write_text(configuration)
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["failed"]
    assert "put `./remote-builder.nix` in the module's imports list" in result["msg"]
    assert result["line_to_add"] == "./remote-builder.nix"
    assert (etc_nixos / "configuration.nix").read_text() == configuration
    assert not (etc_nixos / "remote-builder.nix").exists()


def test_configuration_without_imports_fails_with_a_whole_imports_line(run_module, etc_nixos):
    (etc_nixos / "configuration.nix").write_text("{ ... }:\n{\n}\n")
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["failed"] and result["line_to_add"] == "imports = [ ./remote-builder.nix ];"
    assert not (etc_nixos / "remote-builder.nix").exists()


def test_missing_configuration_fails(run_module, etc_nixos):
    (etc_nixos / "configuration.nix").unlink()
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["failed"] and "does not exist" in result["msg"] and "import=false" in result["msg"]
    assert not (etc_nixos / "remote-builder.nix").exists()


def test_import_false_leaves_configuration_alone(run_module, etc_nixos):
    result = run_module(nixos_module.main, args(etc_nixos, **{"import": False}))
    assert result["changed"] and not result["import_added"] and result["instructions"] is None
    assert (etc_nixos / "configuration.nix").read_text() == CONFIGURATION


def test_flake_system_gets_the_module_and_instructions_but_configuration_is_untouched(run_module, etc_nixos):
    flake = '{ outputs = { nixpkgs, ... }: { nixosConfigurations.h = nixpkgs.lib.nixosSystem { modules = [ ./configuration.nix ]; }; }; }\n'
    (etc_nixos / "flake.nix").write_text(flake)
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["changed"] and result["rebuild_required"] and not result["import_added"]
    assert (etc_nixos / "remote-builder.nix").read_text() == EXPECTED_MODULE
    assert (etc_nixos / "configuration.nix").read_text() == CONFIGURATION
    assert (etc_nixos / "flake.nix").read_text() == flake
    assert "flake-based" in result["instructions"]
    assert "modules = [ ./configuration.nix ./remote-builder.nix ];" in result["instructions"]
    assert f"nixos-rebuild switch --flake {etc_nixos}" in result["instructions"]


def test_flake_that_already_lists_the_module_needs_no_instructions(run_module, etc_nixos):
    (etc_nixos / "flake.nix").write_text('{ outputs = _: { m = [ ./configuration.nix ./remote-builder.nix ]; }; }\n')
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["instructions"] is None


def test_module_outside_the_configuration_directory_is_imported_by_absolute_path(run_module, etc_nixos, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "builder.nix"
    result = run_module(nixos_module.main, args(etc_nixos, path=str(target)))
    assert result["import_path"] == str(target)
    assert f"      {target}\n" in (etc_nixos / "configuration.nix").read_text()


def test_bad_content_names_the_field_and_writes_nothing(run_module, etc_nixos):
    result = run_module(nixos_module.main, args(etc_nixos, content={"nix": {"settings": {"x": {"__nix_raw": 1}}}}))
    assert result["failed"] and "content.nix.settings.x" in result["msg"]
    assert not (etc_nixos / "remote-builder.nix").exists()
    assert (etc_nixos / "configuration.nix").read_text() == CONFIGURATION


def test_backup_of_both_files(run_module, etc_nixos):
    (etc_nixos / "remote-builder.nix").write_text("{ ... }: { }\n")
    result = run_module(nixos_module.main, args(etc_nixos, backup=True))
    assert result["backup_file"] and result["configuration_backup_file"]
    with open(result["configuration_backup_file"], encoding="utf-8") as handle:
        assert handle.read() == CONFIGURATION


def test_symlinked_configuration_is_refused_unless_follow(run_module, etc_nixos, tmp_path):
    real = tmp_path / "checkout-configuration.nix"
    shutil.move(str(etc_nixos / "configuration.nix"), str(real))
    (etc_nixos / "configuration.nix").symlink_to(real)
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["failed"] and "symlink" in result["msg"]
    assert real.read_text() == CONFIGURATION
    result = run_module(nixos_module.main, args(etc_nixos, follow=True))
    assert result["import_added"] and "./remote-builder.nix" in real.read_text()


def nix_answers(monkeypatch, rc: int, err: str) -> list:
    """nix-instantiate --parse, found at /usr/bin, answers (rc, "", err); returns the calls made to it."""
    calls = []

    def run_command(self, argv, data=None, **kwargs):
        calls.append((argv, data))
        return rc, "", err

    monkeypatch.setattr(nixos_module.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/nix-instantiate")
    monkeypatch.setattr(nixos_module.AnsibleModule, "run_command", run_command)
    return calls


def test_nix_parse_rejection_fails_before_writing(run_module, etc_nixos, monkeypatch):
    calls = nix_answers(monkeypatch, 1, "error: syntax error, unexpected '}'")
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["failed"] and "nix-instantiate --parse rejects" in result["msg"] and "unexpected '}'" in result["msg"]
    assert calls[0] == (["/usr/bin/nix-instantiate", "--parse", "-"], EXPECTED_MODULE)
    assert not (etc_nixos / "remote-builder.nix").exists()
    assert (etc_nixos / "configuration.nix").read_text() == CONFIGURATION


def test_nix_failing_before_it_parses_is_not_called_a_rejection(run_module, etc_nixos, monkeypatch):
    """Seen as non-root: Nix could not open its store, and said nothing about the text."""
    store_error = "error: opening lock file '/nix/var/nix/db/big-lock': Permission denied"
    nix_answers(monkeypatch, 1, store_error)
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["failed"] and "rejects" not in result["msg"]
    assert "could not check the new content (Nix failed before parsing it; rc=1), nothing was written" in result["msg"]
    assert store_error in result["msg"]
    assert not (etc_nixos / "remote-builder.nix").exists()
    assert (etc_nixos / "configuration.nix").read_text() == CONFIGURATION


def test_a_real_parse_error_is_a_rejection(run_module, etc_nixos, monkeypatch):
    """What nix-instantiate --parse prints for bad text (Nix 2.2x), with its position in \u00abstdin\u00bb."""
    nix_answers(monkeypatch, 1, "error: undefined variable 'x'\n\n       at \u00abstdin\u00bb:1:3:")
    result = run_module(nixos_module.main, args(etc_nixos))
    assert result["failed"] and "nix-instantiate --parse rejects the new content" in result["msg"]


# --- a rebuild that failed is retried by the next run (issue 13, life cycle item d) ------------------


def test_marker_is_written_with_the_change_and_keeps_the_rebuild_required(run_module, etc_nixos):
    marker = etc_nixos / ".remote-builder.nix.rebuild-pending"
    first = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(marker)))
    assert first["changed"] and first["rebuild_required"] and not first["rebuild_pending"]
    assert marker.is_file() and "remote-builder.nix changed" in marker.read_text()
    # nixos-rebuild failed, so the caller did not remove the marker: the next run, with nothing
    # to write, must still ask for the rebuild.
    second = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(marker)))
    assert not second["changed"] and second["rebuild_required"] and second["rebuild_pending"]
    # Check mode sees the owed rebuild too, and writes nothing.
    check = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(marker)), check_mode=True)
    assert not check["changed"] and check["rebuild_required"]
    marker.unlink()  # the rebuild succeeded
    third = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(marker)))
    assert not third["changed"] and not third["rebuild_required"] and not third["rebuild_pending"]
    assert not marker.exists()


def test_marker_is_not_written_in_check_mode_or_without_a_change(run_module, etc_nixos):
    marker = etc_nixos / "pending"
    check = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(marker)), check_mode=True)
    assert check["changed"] and check["rebuild_required"] and not marker.exists()
    run_module(nixos_module.main, args(etc_nixos))
    unchanged = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(marker)))
    assert not unchanged["changed"] and not unchanged["rebuild_required"] and not marker.exists()


def test_marker_is_written_before_the_module_file(run_module, etc_nixos, monkeypatch):
    """A failure while installing the module file still leaves the owed rebuild recorded."""
    marker = etc_nixos / "pending"
    order = []
    real_replace = nixos_module.replace_file
    monkeypatch.setattr(nixos_module, "replace_file", lambda path, *a, **k: (order.append(path), real_replace(path, *a, **k)))
    real_install = nixos_module.install
    monkeypatch.setattr(nixos_module, "install", lambda module, path, *a, **k: (order.append(path), real_install(module, path, *a, **k)))
    result = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(marker)))
    assert not result["failed"], result
    assert order[:2] == [str(marker), str(etc_nixos / "remote-builder.nix")]


def test_marker_in_a_missing_directory_fails_before_writing(run_module, etc_nixos):
    result = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(etc_nixos / "no" / "pending")))
    assert result["failed"] and "directory" in result["msg"] and "does not exist" in result["msg"]
    assert not (etc_nixos / "remote-builder.nix").exists()


def test_marker_that_is_a_directory_is_refused(run_module, etc_nixos):
    (etc_nixos / "pending").mkdir()
    result = run_module(nixos_module.main, args(etc_nixos, rebuild_marker=str(etc_nixos / "pending")))
    assert result["failed"] and "rebuild_marker" in result["msg"] and "not a regular file" in result["msg"]
