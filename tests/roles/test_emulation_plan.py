"""Emulated systems on a builder (issue 15), planned with site.yml --check --diff.

Debian: a kernel registration with the F flag (an emulator installed by hand) is detected,
added to extra-platforms with Nix's own default kept, and advertised in the client's entry; without
F its interpreter goes into the sandbox. NixOS: boot.binfmt.emulatedSystems in the generated module.
macOS and names that are not Nix systems: refused before anything is written. The package install
and a real aarch64 build through qemu run on the testbed (molecule/fleet).
"""

from __future__ import annotations


import pytest

from plan_run import failures, never_ran, plan_one_pair, task
from test_linux_plan import linux_nix, machines
from test_darwin_plan import darwin_nix

AARCH64_F = {"name": "qemu-aarch64", "enabled": True, "interpreter": "/usr/bin/qemu-aarch64", "flags": "OPF",
             "fix_binary": True, "system": "aarch64-linux", "offset": 0, "magic": None, "mask": None, "extension": None}
RISCV_NO_F = dict(AARCH64_F, name="qemu-riscv64", interpreter="/usr/bin/qemu-riscv64-static", flags="P",
                  fix_binary=False, system="riscv64-linux")


def _plan(tmp_path_factory, nix, **extra):
    return plan_one_pair(tmp_path_factory.mktemp("emulation"), nix, **extra)


def _debian(tmp_path_factory, entries, **extra):
    nix = linux_nix("debian", str(tmp_path_factory.mktemp("etc") / "nix"))
    nix.update(extra_platforms=["i686-linux"], systems=["x86_64-linux", "i686-linux"], binfmt=entries,
               binfmt_systems=[e["system"] for e in entries], binfmt_configs=[])
    results, run = _plan(tmp_path_factory, nix, **extra)
    assert not [f for f in failures(results) if "Restart" not in f[1]], (failures(results), run.stderr[-2000:])
    return results


def test_registration_set_up_by_hand_is_detected_and_advertised(tmp_path_factory):
    results = _debian(tmp_path_factory, [AARCH64_F])
    args = task(results["builder"], "Write the builder's nix.conf settings")["invocation"]["module_args"]
    # Nix's default (i686-linux) is written with it: an extra-platforms line replaces the default.
    assert args["list_items"]["extra-platforms"]["present"] == ["i686-linux", "aarch64-linux"]
    assert args["list_items"]["extra-sandbox-paths"]["present"] == []
    export = task(results["builder"], "Export the builder's connection details and capacity")["ansible_facts"]
    assert export["remote_builder_export"]["systems"] == ["x86_64-linux", "aarch64-linux", "i686-linux"]
    assert machines(results)["192.0.2.10"]["systems"] == ["x86_64-linux", "aarch64-linux", "i686-linux"]
    # Nothing requested: no packages.
    assert never_ran(results["builder"], "Install the user-mode emulators and their binfmt registrations")


def test_detection_off_or_no_registration_leaves_nix_alone(tmp_path_factory):
    for entries, extra in (([AARCH64_F], {"remote_builder_emulated_systems_detect": False}), ([], {})):
        results = _debian(tmp_path_factory, entries, **extra)
        args = task(results["builder"], "Write the builder's nix.conf settings")["invocation"]["module_args"]
        assert args["list_items"]["extra-platforms"]["present"] == []
        assert machines(results)["192.0.2.10"]["systems"] == ["x86_64-linux", "i686-linux"]


def test_registration_without_fix_binary_puts_its_interpreter_in_the_sandbox(tmp_path_factory):
    # Requested and registered without F: installing is planned (check mode), the registration serves.
    results = _debian(tmp_path_factory, [RISCV_NO_F], remote_builder_emulated_systems=["riscv64-linux"],
                      remote_builder_emulation_packages=[])
    args = task(results["builder"], "Write the builder's nix.conf settings")["invocation"]["module_args"]
    assert args["list_items"]["extra-platforms"]["present"] == ["i686-linux", "riscv64-linux"]
    assert args["list_items"]["extra-sandbox-paths"]["present"] == ["/usr/bin/qemu-riscv64-static"]


def test_requested_system_the_kernel_cannot_run_is_refused(tmp_path_factory):
    nix = linux_nix("debian", str(tmp_path_factory.mktemp("etc") / "nix"))
    results, _run = _plan(tmp_path_factory, nix, remote_builder_emulated_systems=["aarch64-linux"],
                          remote_builder_emulation_packages=[])
    failed = [f for f in failures(results) if f[0] == "builder"]
    assert [n for _h, n, _m in failed] == ["nix_remote.builders.remote_builder : Require that the kernel runs every emulated system"]
    assert "cannot build for aarch64-linux" in failed[0][2] and "binfmt_misc" in failed[0][2]
    assert never_ran(results["builder"], "Write the builder's nix.conf settings")


def test_nixos_gets_emulated_systems_in_its_module(tmp_path_factory):
    nix = linux_nix("nixos", str(tmp_path_factory.mktemp("etc") / "nix"))
    results, run = _plan(tmp_path_factory, nix, remote_builder_emulated_systems=["aarch64-linux", "riscv64-linux"])
    module = task(results["builder"], "Write the builder's NixOS module and import it from configuration.nix")
    content = module["invocation"]["module_args"]["content"]
    assert content["boot"] == {"binfmt": {"emulatedSystems": ["aarch64-linux", "riscv64-linux"]}}, run.stderr[-2000:]
    assert machines(results)["192.0.2.10"]["systems"] == ["x86_64-linux", "aarch64-linux", "riscv64-linux"]
    assert never_ran(results["builder"], "Install the user-mode emulators and their binfmt registrations")


@pytest.mark.parametrize("platform, systems, words", [
    ("darwin", ["x86_64-linux"], "cannot be set up on macOS"),
    ("debian", ["aarch64 linux"], "must be Nix system types"),
])
def test_what_cannot_be_emulated_is_refused_first(tmp_path_factory, platform, systems, words):
    conf = str(tmp_path_factory.mktemp("etc") / "nix")
    nix = darwin_nix(conf) if platform == "darwin" else linux_nix("debian", conf)
    results, _run = _plan(tmp_path_factory, nix, remote_builder_emulated_systems=systems)
    failed = [f for f in failures(results) if f[0] == "builder"]
    assert [n for _h, n, _m in failed] == ["nix_remote.builders.remote_builder : Refuse emulated systems the role cannot set up"]
    assert words in " ".join(failed[0][2].split())
    assert never_ran(results["builder"], "Write the builder's nix.conf settings")
