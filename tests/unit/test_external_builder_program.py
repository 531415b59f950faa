"""The tests' external builder (tests/external_builder/run_build.py) against a build description of
the shape Nix 2.32+ writes (src/libstore/unix/build/external-derivation-builder.cc): it signals
Nix with "\\2" before anything else, runs the builder with the derivation's environment, and maps
the sandbox's temporary directory to the real one. Run as a real process here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROGRAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "external_builder", "run_build.py")


def _build(tmp_path, builder="/bin/sh", script='echo "$greeting from $PWD, tmp $TMPDIR" > "$out"'):
    top = tmp_path / "nix-build-x.drv-0"
    (top / "build").mkdir(parents=True)
    out = tmp_path / "store" / "abc-x"
    description = {
        "version": 1, "builder": builder, "args": ["-c", script],
        "env": {"greeting": "hello", "out": str(out), "TMPDIR": "/build", "NIX_BUILD_TOP": "/build", "HOME": "/homeless-shelter"},
        "topTmpDir": str(top), "tmpDir": str(top / "build"), "tmpDirInSandbox": "/build",
        "storeDir": "/nix/store", "realStoreDir": "/nix/store", "system": "aarch64-linux",
        "inputPaths": [], "outputs": {"out": str(out)},
    }
    (top / "build.json").write_text(json.dumps(description))
    (tmp_path / "store").mkdir()
    run = subprocess.run([sys.executable, PROGRAM, "--tag=unit", str(top / "build.json")], capture_output=True,
                         text=True, check=False, cwd=str(top / "build"), env={"PATH": "/usr/bin:/bin"})
    return run, out, top


def test_runs_the_build_with_its_environment_after_signalling_nix(tmp_path):
    run, out, top = _build(tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith("\x02\n"), run.stderr
    assert run.stdout.startswith("run-build unit: building %s for aarch64-linux with /bin/sh" % out)
    assert out.read_text() == "hello from %s, tmp %s\n" % (top / "build", top / "build")


def test_the_builder_s_exit_status_is_nix_s(tmp_path):
    run, out, _top = _build(tmp_path, script="exit 3")
    assert run.returncode == 3 and not out.exists()


@pytest.mark.parametrize("argv", [[], ["--tag=x"], ["x", "y"]])
def test_usage(argv):
    run = subprocess.run([sys.executable, PROGRAM, *argv], capture_output=True, text=True, check=False)
    assert run.returncode == 2 and "usage" in run.stderr
