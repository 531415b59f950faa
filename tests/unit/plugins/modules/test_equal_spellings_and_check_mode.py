"""Equal values spelled differently are no change and no restart; check mode reports exactly what
the real run changes (issue 13, items 4 and 7)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nix_remote.builders.plugins.modules import nix_conf, nix_machines


@pytest.mark.parametrize(
    "line, settings",
    [
        ("builders-use-substitutes = yes", {"builders-use-substitutes": True}),
        ("builders-use-substitutes = 1", {"builders-use-substitutes": True}),
        ("require-sigs = no", {"require-sigs": False}),
        ("build-use-substitutes = 0", {"substitute": False}),  # an alias, spelled as a number
        ("system-features = kvm big-parallel kvm", {"system-features": ["big-parallel", "kvm"]}),
        ("extra-platforms = i686-linux aarch64-linux", {"extra-platforms": "aarch64-linux i686-linux"}),
        ("max-jobs = 04", {"max-jobs": 4}),
        ("cores =   8  ", {"cores": "8"}),
    ],
)
def test_equal_value_spelled_differently_is_no_change(run_module, tmp_path, line, settings):
    conf = tmp_path / "nix.conf"
    conf.write_text(line + "\n")
    before = conf.read_bytes()
    for check_mode in (True, False):
        result = run_module(nix_conf.main, {"path": str(conf), "settings": settings, "validate": False}, check_mode=check_mode)
        assert not result["failed"] and not result["changed"] and not result["restart_required"], result
    assert conf.read_bytes() == before


@pytest.mark.parametrize(
    "line, settings",
    [
        ("sandbox = yes", {"sandbox": True}),  # sandbox is true/false/relaxed, not a boolean: "yes" is not "true"
        ("builders-use-substitutes = True", {"builders-use-substitutes": True}),  # Nix is case-sensitive
        ("substituters = https://b https://a", {"substituters": ["https://a", "https://b"]}),  # a list: order kept
        ("trusted-users = root root", {"trusted-users": ["root"]}),  # Strings, not a set
        ("build-users-group = 01", {"build-users-group": "1"}),  # a string
        ("max-jobs = auto", {"max-jobs": 4}),
    ],
)
def test_different_values_still_change(run_module, tmp_path, line, settings):
    conf = tmp_path / "nix.conf"
    conf.write_text(line + "\n")
    result = run_module(nix_conf.main, {"path": str(conf), "settings": settings, "validate": False})
    assert result["changed"] and result["restart_required"]


@pytest.mark.parametrize("module, name, text", [(nix_conf, "nix.conf", "cores = 2\n"), (nix_machines, "machines", "ssh://b1 - - 1 1 - - -\n")])
@pytest.mark.parametrize("attributes", [{"mode": "0600"}, pytest.param({"group": "0", "mode": "0644", "owner": "0"}, marks=pytest.mark.root)])
def test_check_mode_reports_an_attribute_change_like_the_real_run(run_module, tmp_path, module, name, text, attributes):
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o644)
    if os.geteuid() == 0:  # only root may give the file to someone else (nobody), so that owner 0 is a change
        os.chown(path, 65534, 65534)
    owner = path.stat().st_uid
    if module is nix_conf:
        args = {"path": str(path), "settings": {"cores": 2}, "validate": False}
    else:
        args = {"path": str(path), "builders": [{"uri": "ssh://b1"}], "nix_version": "2.29"}
    args.update(attributes)
    checked = run_module(module.main, args, check_mode=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.stat().st_uid == owner
    real = run_module(module.main, args)
    assert not checked["failed"] and not real["failed"]
    assert checked["changed"] is True and real["changed"] is True
    again = run_module(module.main, args, check_mode=True)
    assert again["changed"] is False
