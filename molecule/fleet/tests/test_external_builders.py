"""A real build through Nix's external-builders on real hosts (issue 15 part 2).

client-sid runs Nix 2.34. The test installs tests/external_builder/run_build.py (a minimal external
builder that follows the JSON protocol Nix documents and runs the build it is given), runs
site.yml for client-sid with local_client_external_derivation_builders naming it for
aarch64-linux, and builds an aarch64-linux derivation with no remote builder (`--builders ''`):
Nix runs the program, the program runs the derivation's aarch64 busybox (through the qemu
registration the testbed made in this machine's kernel for builder-port, which every process
sees), and the output says aarch64. Then site.yml without the variable takes the setting and the
experimental feature out again, and leaves the host as converge made it.
"""

from __future__ import annotations

import json
import sys
import uuid

import pytest
from fleet import PROJECT, host_of, login, recap, site

sys.path.insert(0, str(PROJECT / "tests" / "testbed"))
import binfmt_host  # noqa: E402  pylint: disable=wrong-import-position
import testbed  # noqa: E402  pylint: disable=wrong-import-position

CLIENT = "client-sid"
PROGRAM = "/usr/local/libexec/nix-remote-builders-tests/run-build"
STAGE = "/root/external-builder"
CONF = "/etc/nix/nix.conf"


@pytest.fixture(scope="module")
def configured(tmp_path_factory):
    host = host_of(CLIENT)
    # The program with the interpreter line the repository's copy leaves out (it is a module there).
    program = tmp_path_factory.mktemp("external-builder") / "run-build"
    program.write_text("#!/usr/bin/python3\n" + (PROJECT / "tests/external_builder/run_build.py").read_text())
    for src, dest, mode in ((program, PROGRAM, "0755"),
                            (binfmt_host.foreign_busybox("aarch64-linux", testbed.CACHE, testbed.MIRROR) / "busybox",
                             f"{STAGE}/busybox", "0755")):
        assert host.run(f"mkdir -p {dest.rsplit('/', 1)[0]}").rc == 0
        result = host.ansible("copy", f"src={src} dest={dest} mode={mode}", check=False)
        assert not result.get("failed") and host.file(dest).is_file, result
    before = host.file(CONF).content_string
    builders = [{"systems": ["aarch64-linux"], "program": PROGRAM, "args": ["--tag=fleet"]}]
    run = site("--limit", CLIENT, "-e", json.dumps({"local_client_external_derivation_builders": builders}))
    assert run.returncode == 0, run.stdout[-4000:]
    assert recap(run.stdout)[CLIENT]["changed"] > 0
    yield host, before
    if "external-builders" in host.file(CONF).content_string:  # a test failed before the last one restored it
        site("--limit", CLIENT)


def test_the_setting_and_the_feature_are_what_nix_reads(configured):
    host, _before = configured
    shown = login(host, "nix --extra-experimental-features nix-command config show external-builders")
    assert shown.rc == 0, shown.stderr
    assert json.loads(shown.stdout) == [{"systems": ["aarch64-linux"], "program": PROGRAM, "args": ["--tag=fleet"]}]
    features = login(host, "nix --extra-experimental-features nix-command config show experimental-features")
    assert "external-builders" in features.stdout.split(), features.stdout


def test_a_derivation_builds_through_the_external_builder(configured):
    host, _before = configured
    nonce = uuid.uuid4().hex[:12]
    expr = (f'let bb = builtins.path {{ path = {STAGE}; name = "busybox-arm64"; }}; in '
            f'derivation {{ name = "external-{nonce}"; system = "aarch64-linux"; builder = "${{bb}}/busybox"; '
            f'args = [ "sh" "-c" "echo {nonce} $(${{bb}}/busybox uname -m) > $out" ]; }}')
    # No remote builder: builder-port offers aarch64-linux too, and Nix prefers a remote build.
    build = login(host, f"nix-build --no-out-link --builders '' -E '{expr}'")
    assert build.rc == 0, build.stderr[-3000:]
    out = build.stdout.strip().splitlines()[-1]
    assert host.file(out).content_string == f"{nonce} aarch64\n"
    # The program's own line in the build log: it built the derivation, not a local builder.
    assert f"run-build fleet: building {out} for aarch64-linux" in build.stderr, build.stderr[-3000:]


def test_an_empty_list_takes_the_setting_out_again(configured):
    host, before = configured
    restore = site("--limit", CLIENT)
    assert restore.returncode == 0, restore.stdout[-4000:]
    text = host.file(CONF).content_string
    assert "external-builders" not in text, text
    assert text == before
