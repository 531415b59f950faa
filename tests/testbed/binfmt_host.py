"""Emulated systems for test hosts: qemu's user-mode emulators registered in this machine's kernel.

binfmt_misc is global to the kernel and the containers cannot register entries themselves (their
/proc/sys is read-only), so the testbed registers the emulator on the host, as a NixOS host with
boot.binfmt.emulatedSystems (or a Debian host with qemu-user-static) would have it, and mounts
binfmt_misc read-only inside the hosts that emulate, where systemd's automount would have mounted
it on a real machine.  The registration has the fix-binary (F) flag: the kernel opens the
interpreter now, so it runs in any container and any Nix sandbox without being visible there.

The emulator comes from Debian's qemu-user-static package for this machine (`apt-get download`,
unpacked into the image cache, never installed), with the registration line the package ships.
Every registration is named testbed-<bed>-<arch>; `down` removes them, and unmounts the host's
binfmt_misc if the testbed mounted it and nothing else is registered.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from pathlib import Path

HOST_DIR = Path("/proc/sys/fs/binfmt_misc")
# Nix system -> qemu's name for the architecture.
QEMU_ARCH = {"aarch64-linux": "aarch64", "riscv64-linux": "riscv64", "armv7l-linux": "arm",
             "powerpc64le-linux": "ppc64le", "s390x-linux": "s390x"}
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8


class EmulationError(Exception):
    """What the user can act on."""


def entry_name(bed: str, system: str) -> str:
    return f"testbed-{bed}-{QEMU_ARCH[system]}"


def _mounted_marker(runtime_root: Path) -> Path:
    return runtime_root / "binfmt_misc-mounted-by-testbed"


def ensure_host_mount(runtime_root: Path) -> None:
    """Mount binfmt_misc on the host if it is not (and remember that the testbed did)."""
    if (HOST_DIR / "register").exists():
        return
    run = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(HOST_DIR)], capture_output=True, text=True,
                         check=False)
    if run.returncode != 0:
        raise EmulationError(f"cannot mount binfmt_misc on {HOST_DIR}: {run.stderr.strip()} "
                             "(the kernel needs CONFIG_BINFMT_MISC)")
    runtime_root.mkdir(parents=True, exist_ok=True)
    _mounted_marker(runtime_root).write_text("")


def emulator(system: str, cache: Path) -> tuple[Path, str]:
    """(qemu-<arch>-static, the package's registration line for it), from qemu-user-static."""
    if system not in QEMU_ARCH:
        raise EmulationError(f"cannot emulate {system!r}; one of {', '.join(QEMU_ARCH)}")
    arch = QEMU_ARCH[system]
    root = cache / "emulators"
    unpacked = root / "qemu-user-static"
    binary = unpacked / "usr/bin" / f"qemu-{arch}-static"
    conf = unpacked / "usr/lib/binfmt.d" / f"qemu-{arch}.conf"
    if not (binary.exists() and conf.exists()):
        download = root / "download"
        download.mkdir(parents=True, exist_ok=True)
        for stale in download.glob("*.deb"):
            stale.unlink()
        run = subprocess.run(["apt-get", "download", "qemu-user-static"], cwd=download, capture_output=True, text=True,
                             check=False)
        debs = sorted(download.glob("qemu-user-static_*.deb"))
        if run.returncode != 0 or not debs:
            raise EmulationError(f"apt-get download qemu-user-static failed: {run.stderr.strip()[-500:]}")
        partial = root / "qemu-user-static.partial"
        subprocess.run(["rm", "-rf", str(partial)], check=True)
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(partial)], check=True)
        subprocess.run(["rm", "-rf", str(unpacked)], check=True)
        partial.rename(unpacked)
    line = next((text for text in conf.read_text().splitlines() if text.startswith(":")), None)
    if line is None:
        raise EmulationError(f"{conf} has no registration line")
    return binary, line


def register(bed: str, system: str, cache: Path, runtime_root: Path) -> str:
    """Register SYSTEM's emulator for testbed BED (once); return the entry's name."""
    ensure_host_mount(runtime_root)
    name = entry_name(bed, system)
    if (HOST_DIR / name).exists():
        return name
    binary, line = emulator(system, cache)
    fields = line[1:].split(line[0])
    # :name:type:offset:magic:mask:interpreter:flags, with our name, our interpreter, and F.
    fields[0], fields[5] = name, str(binary)
    fields = (fields + [""] * 7)[:7]
    fields[6] = "F"
    (HOST_DIR / "register").write_text(":" + ":".join(fields))
    return name


def unregister_all(bed: str, runtime_root: Path) -> None:
    """Remove testbed BED's registrations; unmount what the testbed mounted once nothing is left."""
    if not (HOST_DIR / "register").exists():
        return
    for entry in HOST_DIR.glob(f"testbed-{bed}-*"):
        with contextlib.suppress(OSError):
            entry.write_text("-1")
    marker = _mounted_marker(runtime_root)
    left = [p for p in HOST_DIR.iterdir() if p.name not in ("register", "status")]
    if marker.exists() and not left:
        if subprocess.run(["umount", str(HOST_DIR)], capture_output=True, check=False).returncode == 0:
            marker.unlink()


def container_init(nspawn_pid: int) -> int:
    """The container's PID 1 as this machine sees it: systemd-nspawn's child."""
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    if not children:
        raise EmulationError(f"systemd-nspawn {nspawn_pid} has no container process")
    return int(children[0])


def mount_in_container(init_pid: int) -> None:
    """Mount binfmt_misc read-only at /proc/sys/fs/binfmt_misc in the container's mount namespace."""
    pid = os.fork()
    if pid == 0:  # the child joins the namespace; a forked process has one thread, as setns requires
        code = 1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/proc/{init_pid}/ns/mnt", os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNS) == 0 and libc.mount(
                    b"binfmt_misc", str(HOST_DIR).encode(), b"binfmt_misc",
                    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0:
                code = 0
            else:
                code = ctypes.get_errno() or 1
        finally:
            os._exit(code)  # pylint: disable=protected-access
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise EmulationError(f"cannot mount binfmt_misc in the container of PID {init_pid}: {os.strerror(code)}")


# Debian's name for the architecture of a Nix system.
DEBIAN_ARCH = {"aarch64-linux": "arm64", "riscv64-linux": "riscv64", "armv7l-linux": "armhf",
               "powerpc64le-linux": "ppc64el", "s390x-linux": "s390x"}


def foreign_busybox(system: str, cache: Path, mirror: str, suite: str = "bookworm") -> Path:
    """A directory holding `busybox`, the statically linked busybox of SYSTEM's architecture, from
    Debian's busybox-static package of that architecture (found through the suite's Packages index)."""
    import lzma  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    arch = DEBIAN_ARCH[system]
    target = cache / "foreign" / f"busybox-{arch}"
    if (target / "busybox").exists():
        return target
    with urllib.request.urlopen(f"{mirror}/dists/{suite}/main/binary-{arch}/Packages.xz", timeout=60) as response:
        index = lzma.decompress(response.read()).decode("utf-8", "replace")
    filename = None
    for stanza in index.split("\n\n"):
        if stanza.startswith("Package: busybox-static\n"):
            filename = next((line.split(": ", 1)[1] for line in stanza.splitlines() if line.startswith("Filename: ")), None)
            break
    if filename is None:
        raise EmulationError(f"no busybox-static for {arch} in {suite}")
    partial = target.with_suffix(".partial")
    subprocess.run(["rm", "-rf", str(partial)], check=True)
    partial.mkdir(parents=True)
    deb = partial / "busybox-static.deb"
    with urllib.request.urlopen(f"{mirror}/{filename}", timeout=120) as response:
        deb.write_bytes(response.read())
    subprocess.run(["dpkg-deb", "-x", str(deb), str(partial / "root")], check=True)
    (partial / "root/bin/busybox").rename(partial / "busybox")
    subprocess.run(["rm", "-rf", str(deb), str(partial / "root")], check=True)
    subprocess.run(["rm", "-rf", str(target)], check=True)
    partial.rename(target)
    return target
