"""A cross-architecture build through emulation on real hosts (issue 15).

builder-port (sid, x86_64) has remote_builder_emulated_systems: [aarch64-linux]. What is real here:
the role's Debian path (qemu-user-static and binfmt-support installed from Debian's archive, their
binfmt.d registration read and its F flag checked, extra-platforms written), the builder's export and
every client's machines entry, and the builds: an aarch64 busybox from Debian's arm64 busybox-static
package runs inside Nix's sandbox on the builder. What the testbed stands in for: the kernel
registration, which a container cannot make (binfmt_misc is global and its /proc/sys read-only), so
`testbed.py up` registers qemu-aarch64 on this machine with the F flag (the platform's `emulate`
key), as a NixOS host with boot.binfmt.emulatedSystems would have it.
"""

from __future__ import annotations

import sys
import uuid

import pytest
from fleet import BUILDERS, CLIENTS, PROJECT, host_of, login

sys.path.insert(0, str(PROJECT / "tests" / "testbed"))
import binfmt_host  # noqa: E402  pylint: disable=wrong-import-position
import testbed  # noqa: E402  pylint: disable=wrong-import-position

EMULATING = "builder-port"
NATIVE = [b for b in BUILDERS if b != EMULATING]
STAGE = "/root/emulation"


@pytest.fixture(scope="module")
def busybox_dir():
    """A directory with the arm64 busybox, from Debian's archive (cached with the images)."""
    directory = binfmt_host.foreign_busybox("aarch64-linux", testbed.CACHE, testbed.MIRROR)
    # An aarch64 ELF file: class 64-bit, little endian, e_machine 183 (EM_AARCH64).
    header = (directory / "busybox").read_bytes()[:20]
    assert header[:6] == b"\x7fELF\x02\x01" and header[18:20] == b"\xb7\x00"
    return directory


def test_the_builder_installed_the_emulators_and_their_registration_has_fix_binary():
    builder = host_of(EMULATING)
    assert builder.package("binfmt-support").is_installed
    # sid: qemu-user-static is provided by qemu-user-binfmt; older releases ship it as such.
    assert builder.package("qemu-user-binfmt").is_installed or builder.package("qemu-user-static").is_installed
    conf = builder.file("/usr/lib/binfmt.d/qemu-aarch64.conf").content_string.strip()
    assert conf.startswith(":qemu-aarch64:M:") and "F" in conf.rsplit(":", 1)[1], conf
    platforms = login(builder, "nix --extra-experimental-features nix-command config show extra-platforms")
    assert platforms.rc == 0, platforms.stderr
    items = platforms.stdout.replace("extra-platforms =", "").split()
    # aarch64-linux added, Nix's default (i686-linux on x86_64) kept.
    assert "aarch64-linux" in items and "i686-linux" in items, items


def test_only_the_emulating_builder_is_advertised_for_aarch64():
    for client in CLIENTS:
        text = host_of(client).file("/etc/nix/machines").content_string
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        aarch64 = [line for line in lines if "aarch64-linux" in line.split()[1].split(",")]
        assert len(aarch64) == 1, (client, lines)
    for builder in NATIVE:
        assert "aarch64-linux" not in host_of(builder).file("/etc/nix/nix.conf").content_string


@pytest.mark.parametrize("client", CLIENTS)
def test_an_aarch64_derivation_builds_on_the_emulating_builder(client, busybox_dir):
    """The aarch64 busybox is the derivation's builder: its `uname -m` says aarch64 only when the
    aarch64 binary ran (an x86_64 one would say x86_64), and the output exists on builder-port."""
    host = host_of(client)
    assert host.run(f"mkdir -p {STAGE}").rc == 0
    result = host.ansible("copy", f"src={busybox_dir}/busybox dest={STAGE}/busybox mode=0755", check=False)
    assert not result.get("failed") and host.file(f"{STAGE}/busybox").is_file, result
    nonce = uuid.uuid4().hex[:12]
    expr = (f'let bb = builtins.path {{ path = {STAGE}; name = "busybox-arm64"; }}; in '
            f'derivation {{ name = "emulated-{nonce}"; system = "aarch64-linux"; builder = "${{bb}}/busybox"; '
            f'args = [ "sh" "-c" "echo {nonce} $(${{bb}}/busybox uname -m) > $out" ]; }}')
    build = login(host, f"nix-build --no-out-link --max-jobs 0 -E '{expr}'")
    assert build.rc == 0, build.stderr[-3000:]
    out = build.stdout.strip().splitlines()[-1]
    assert host.file(out).content_string == f"{nonce} aarch64\n"
    on_builder = login(host_of(EMULATING), f"nix-store --check-validity {out}")
    assert on_builder.rc == 0, f"{out} was not built on {EMULATING}: {on_builder.stderr}"
    for builder in NATIVE:
        assert login(host_of(builder), f"nix-store --check-validity {out}").rc != 0
