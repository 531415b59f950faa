"""Real test hosts on one machine: systemd-nspawn containers that boot systemd, sshd and nix-daemon.

    testbed.py up --name NAME [--group GROUP=HOST,HOST ...] [--timeout S] HOST=RELEASE[:PORT] ...
    testbed.py down --name NAME | --all
    testbed.py status [--name NAME] [--json]
    testbed.py build [RELEASE ...]

Releases: bookworm (Nix 2.8), trixie (Nix 2.26), sid (Nix 2.34) and trixie-upstream (trixie with
Nix laid out as the upstream multi-user installer does). Must run as root. See README.md beside.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import binfmt_host

REPO = Path(__file__).resolve().parents[2]
STATE_ROOT = REPO / ".testbed"
RUNTIME_ROOT = Path(os.environ.get("TESTBED_RUNTIME", "/run/nix-remote-testbed"))
CACHE = Path(os.environ.get("TESTBED_CACHE", "/var/cache/nix-remote-testbed"))
MIRROR = os.environ.get("TESTBED_MIRROR", "http://deb.debian.org/debian")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
HOST_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
# 127.0.0.1 is the machine's own localhost; Debian maps 127.0.1.1 to the hostname.
ADDRESS_POOL = [f"127.0.0.{fourth}" for fourth in range(2, 255)] + [
    f"127.0.{third}.{fourth}" for third in range(2, 255) for fourth in range(1, 255)]
PYTHON = "/usr/bin/python3"
# A store path that never exists: asking the daemon whether it is valid is a pure store query.
PROBE_PATH = "/nix/store/00000000000000000000000000000000-testbed-probe"
UPSTREAM_PROFILE = "/nix/var/nix/profiles/default"

# Everything an image holds. Nothing of the collection's own job (build user, keys, builders).
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "openssh-client", "python3",
    "nix-bin", "nix-setup-systemd", "sudo", "iproute2", "busybox-static", "procps",
)


@dataclass(frozen=True)
class Release:
    name: str
    suite: str
    aptopts: tuple[str, ...] = ()
    upstream_layout: bool = False


RELEASES = {
    "bookworm": Release("bookworm", "bookworm"),
    "trixie": Release("trixie", "trixie"),
    # The mirror's sid Release file is often past its Valid-Until date.
    "sid": Release("sid", "sid", aptopts=('Acquire::Check-Valid-Until "false"',)),
    "trixie-upstream": Release("trixie-upstream", "trixie", upstream_layout=True),
}

# Every container gets a cgroup v2 tree of its own. sid's systemd refuses the legacy (hybrid)
# hierarchy this machine runs; trixie's boots on it but logs "Failed to attach ... to compat
# systemd cgroup" and sometimes ends degraded. bookworm runs fine either way.
BOOT_ENV = {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}

HOST_TOOLS = {  # tool -> Debian package that provides it
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
}


class TestbedError(Exception):
    """An error the user can act on; printed without a traceback."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the testbed was changing something."""


# --------------------------------------------------------------------------- parsing


@dataclass
class HostSpec:
    name: str
    release: str
    port: int = 22


def parse_host_spec(text: str) -> HostSpec:
    """HOST=RELEASE[:PORT] -> HostSpec, with an error naming what is wrong."""
    if "=" not in text:
        raise TestbedError(f"host {text!r}: expected HOST=RELEASE[:PORT], e.g. builder1=bookworm:2222")
    host, _sep, rest = text.partition("=")
    release, _sep, port_text = rest.partition(":")
    if not HOST_RE.match(host):
        raise TestbedError(f"host {text!r}: name {host!r} must be lowercase letters, digits and '-'")
    if release not in RELEASES:
        raise TestbedError(f"host {text!r}: unknown release {release!r}; one of {', '.join(RELEASES)}")
    port = 22
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise TestbedError(f"host {text!r}: port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return HostSpec(host, release, port)


def parse_groups(items: list[str], hosts: list[str]) -> dict[str, list[str]]:
    """['nix_builders=b1,b2', ...] -> {'nix_builders': ['b1', 'b2']} (repeated groups merge)."""
    groups: dict[str, list[str]] = {}
    for item in items:
        group, sep, members = item.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", group):
            raise TestbedError(f"--group {item!r}: expected GROUP=HOST[,HOST...] with a valid group name")
        for member in filter(None, members.split(",")):
            if member not in hosts:
                raise TestbedError(f"--group {item!r}: {member!r} is not one of the hosts {hosts}")
            groups.setdefault(group, [])
            if member not in groups[group]:
                groups[group].append(member)
    return groups


# --------------------------------------------------------------------------- checks


def require_root() -> None:
    if os.geteuid() != 0:
        raise TestbedError("testbed.py must run as root (it mounts overlays and starts systemd-nspawn)")


def require_tools(tools: list[str]) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = sorted({HOST_TOOLS[tool] for tool in missing})
        raise TestbedError(
            f"missing {', '.join(missing)}: install with `apt-get install -y {' '.join(packages)}`"
        )


# --------------------------------------------------------------------------- images


def _customize_base(rootfs: Path) -> None:
    """Make a freshly bootstrapped release a test-host image (applies to every release)."""
    # Each host generates its own keys at `up`; shared keys would make host-key pinning untestable.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # No binary cache is reachable from here: without this, every build waits ~6 s for one.
    # Test-host setup only: the roles must never rely on it.
    nix_conf = rootfs / "etc/nix/nix.conf"
    text = nix_conf.read_text() if nix_conf.exists() else ""
    nix_conf.write_text(text.rstrip("\n") + "\n\n# testbed: there is no binary cache to reach\nsubstituters =\n")
    # Written per host at `up`; an empty file here would make every boot a "first boot".
    (rootfs / "etc/machine-id").write_text("")
    for stale in ("var/lib/dbus/machine-id",):
        with contextlib.suppress(FileNotFoundError):
            (rootfs / stale).unlink()
    # No physical consoles: a getty on tty1 only fails.
    with contextlib.suppress(FileNotFoundError):
        (rootfs / "etc/systemd/system/getty.target.wants/getty@tty1.service").unlink()


def _customize_upstream(rootfs: Path, nix_version: str) -> None:
    """Lay Nix out as the upstream multi-user installer does.

    The binaries live in a package directory reached through the default profile, only login
    shells get it on their PATH (/etc/profile.d/nix.sh), and the nix-daemon units point there.
    """
    package = rootfs / f"opt/nix-{nix_version}"
    (package / "bin").mkdir(parents=True)
    shutil.move(str(rootfs / "usr/bin/nix"), package / "bin/nix")
    for link in sorted((rootfs / "usr/bin").glob("nix-*")):
        link.unlink()
        (package / "bin" / link.name).symlink_to("nix")
    (package / "libexec/nix").mkdir(parents=True)
    (package / "libexec/nix/build-remote").symlink_to("../../bin/nix")
    # The binary looks for build-remote under its compiled-in libexec directory.
    build_remote = rootfs / "usr/libexec/nix/build-remote"
    build_remote.unlink()
    build_remote.symlink_to(f"/opt/nix-{nix_version}/bin/nix")
    profiles = rootfs / "nix/var/nix/profiles"
    (profiles / "default-1-link").symlink_to(f"/opt/nix-{nix_version}")
    (profiles / "default").symlink_to("default-1-link")
    # Units: the installer links /etc/systemd/system/nix-daemon.* to the profile's copies.
    units = package / "lib/systemd/system"
    units.mkdir(parents=True)
    for unit in ("nix-daemon.service", "nix-daemon.socket"):
        vendor = rootfs / "usr/lib/systemd/system" / unit
        text = vendor.read_text().replace("/usr/bin/nix-daemon", f"{UPSTREAM_PROFILE}/bin/nix-daemon")
        (units / unit).write_text(text)
        vendor.unlink()
        (rootfs / "etc/systemd/system" / unit).symlink_to(f"{UPSTREAM_PROFILE}/lib/systemd/system/{unit}")
    for wants, unit in (("multi-user.target.wants", "nix-daemon.service"),
                        ("sockets.target.wants", "nix-daemon.socket")):
        link = rootfs / "etc/systemd/system" / wants / unit
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(f"/etc/systemd/system/{unit}")
    # Debian's own session PATH addition is not part of an upstream install.
    with contextlib.suppress(FileNotFoundError):
        (rootfs / "usr/lib/environment.d/nix-daemon.conf").unlink()
    (rootfs / "etc/profile.d/nix.sh").write_text(
        "# Nix: as the upstream multi-user installer does, login shells only\n"
        f"if [ -d {UPSTREAM_PROFILE}/bin ]; then\n"
        f'  case ":$PATH:" in *":{UPSTREAM_PROFILE}/bin:"*) ;;\n'
        f'    *) PATH="$HOME/.nix-profile/bin:{UPSTREAM_PROFILE}/bin:$PATH"; export PATH ;;\n'
        "  esac\n"
        "fi\n"
    )


# Read once at import: a file edited while this runs must not change the key mid-run.
_CUSTOMIZE_SOURCES = {fn.__name__: inspect.getsource(fn) for fn in (_customize_base, _customize_upstream)}


def recipe(release: Release) -> dict:
    """Everything an image is built from; its hash names the cached image."""
    data = {
        "suite": release.suite,
        "variant": "apt",
        "packages": list(PACKAGES),
        "aptopts": list(release.aptopts),
        "mirror": MIRROR,
        "customize_base": _CUSTOMIZE_SOURCES["_customize_base"],
    }
    if release.upstream_layout:
        data["customize_upstream"] = _CUSTOMIZE_SOURCES["_customize_upstream"]
    return data


def image_key(release: Release) -> str:
    digest = hashlib.sha256(json.dumps(recipe(release), sort_keys=True).encode()).hexdigest()
    return f"{release.name}-{digest[:16]}"


def image_dir(release: Release) -> Path:
    return CACHE / "images" / image_key(release)


def _dpkg_version(rootfs: Path, package: str) -> str:
    out = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", "-f=${Version}", package],
        check=True, capture_output=True, text=True,
    ).stdout
    match = re.match(r"(?:\d+:)?(\d+(?:\.\d+)+)", out)
    if not match:
        raise TestbedError(f"cannot read the version of {package} in {rootfs}: {out!r}")
    return match.group(1)


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unmount_below(path: Path) -> None:
    """Unmount whatever an interrupted build left mounted below path (deepest first)."""
    for mountpoint in sorted(_mounts_below(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mountpoint], check=False)


def build_image(release: Release, log=print) -> dict:
    """Return the image's metadata, building and caching it first if needed."""
    target = image_dir(release)
    with _locked(CACHE / "locks" / f"{release.name}.lock"):
        meta_file = target / "image.json"
        if meta_file.exists():
            return json.loads(meta_file.read_text())
        require_tools(["mmdebstrap"])
        started = time.monotonic()
        tmp = target.with_name(target.name + ".tmp")
        if tmp.exists():
            _unmount_below(tmp)
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        rootfs = tmp / "rootfs"
        try:
            if release.upstream_layout:
                base = build_image(RELEASES[release.suite], log)
                log(f"image {release.name}: copying {base['key']}")
                subprocess.run(["cp", "-a", "--reflink=auto", base["rootfs"], str(rootfs)], check=True)
            else:
                log(f"image {release.name}: mmdebstrap {release.suite} (about 30 s)")
                command = ["mmdebstrap", "--variant=apt", "--mode=root", "--quiet",
                           f"--include={','.join(PACKAGES)}"]
                command += [f"--aptopt={opt}" for opt in release.aptopts]
                command += [release.suite, str(rootfs), MIRROR]
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    raise TestbedError(f"mmdebstrap {release.suite} failed:\n{result.stderr[-3000:]}")
                _customize_base(rootfs)
            nix_version = _dpkg_version(rootfs, "nix-bin")
            if release.upstream_layout:
                _customize_upstream(rootfs, nix_version)
            meta = {
                "key": target.name,
                "release": release.name,
                "suite": release.suite,
                "nix_version": nix_version,
                "systemd_version": _dpkg_version(rootfs, "systemd"),
                "rootfs": str(target / "rootfs"),
                "build_seconds": round(time.monotonic() - started, 1),
                "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (tmp / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
            tmp.rename(target)
        except BaseException:
            _unmount_below(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"image {release.name}: built in {meta['build_seconds']} s (Nix {nix_version})")
        _prune_images(release)
        return meta


def _prune_images(release: Release) -> None:
    """Drop images of this release built from an older recipe, unless a host still uses one."""
    current = image_key(release)
    mounted = Path("/proc/self/mountinfo").read_text()
    for old in (CACHE / "images").glob(f"{release.name}-*"):
        if old.name == current or not re.fullmatch(rf"{re.escape(release.name)}-[0-9a-f]{{16}}", old.name):
            continue
        if str(old) not in mounted:
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- state


@dataclass
class Host:
    name: str
    release: str
    address: str
    port: int
    nix_version: str = ""
    machine: str = ""
    uuid: str = ""
    merged: str = ""
    pid: int = 0
    ready_seconds: float = 0.0
    emulated: list[str] = field(default_factory=list)


@dataclass
class Testbed:
    name: str
    repo: str
    state_dir: str
    runtime_dir: str
    hosts: list[Host] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Testbed:
        data = json.loads(path.read_text())
        data["hosts"] = [Host(**host) for host in data["hosts"]]
        return cls(**data)

    def save(self) -> None:
        """Runtime copy (what runs now) and, once it exists, a copy in the state directory."""
        for directory in (Path(self.runtime_dir), Path(self.state_dir)):
            if directory.is_dir():
                path = directory / "testbed.json"
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
                tmp.replace(path)


def runtime_dir(name: str) -> Path:
    return RUNTIME_ROOT / name


def state_dir(name: str) -> Path:
    return STATE_ROOT / name


def running_testbeds() -> list[Testbed]:
    found = []
    for path in sorted(RUNTIME_ROOT.glob("*/testbed.json")):
        with contextlib.suppress(ValueError, TypeError, KeyError, OSError):
            found.append(Testbed.load(path))
    return found


def allocate_addresses(count: int, taken: set[str]) -> list[str]:
    free = [address for address in ADDRESS_POOL if address not in taken]
    if len(free) < count:
        raise TestbedError(f"no free loopback addresses left for {count} hosts")
    return free[:count]


# --------------------------------------------------------------------------- processes and mounts


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4].replace("\\040", " ")
        if mountpoint == str(path) or mountpoint.startswith(prefix):
            found.append(mountpoint)
    return found


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _alive(pid: int) -> bool:
    # Zombies count as gone: this machine's PID 1 does not always reap orphans.
    return _proc_state(pid) not in ("", "Z")


def _testbed_processes(runtime: Path, uuids: set[str]) -> tuple[list[int], list[int]]:
    """(nspawn processes of this testbed, init processes of its containers).

    nspawns are found by the directory on their command line; container inits by the
    container_uuid nspawn gives them, which also finds containers whose nspawn was killed
    (SIGKILL on nspawn leaves the container running, reparented).
    """
    marker = str(runtime).rstrip("/") + "/"
    nspawns, inits = [], []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not _alive(int(proc.name)):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if cmdline[0].endswith(b"systemd-nspawn"):
                if any(marker in arg.decode(errors="replace") for arg in cmdline):
                    nspawns.append(int(proc.name))
                continue
            if uuids:
                environ = (proc / "environ").read_bytes().split(b"\0")
                if any(entry.startswith(b"container_uuid=") and entry[15:].decode() in uuids
                       for entry in environ):
                    inits.append(int(proc.name))
        except (OSError, IndexError, UnicodeDecodeError):
            continue
    return nspawns, inits


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _stop_processes(runtime: Path, uuids: set[str], grace: float = 3.0) -> None:
    """TERM the nspawns (systemd in the container shuts down cleanly), then KILL what remains."""
    nspawns, inits = _testbed_processes(runtime, uuids)
    _signal(nspawns, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in nspawns):
        time.sleep(0.1)
    for _attempt in range(100):
        nspawns, inits = _testbed_processes(runtime, uuids)
        if not nspawns and not inits:
            return
        # Killing a container's init ends its whole PID namespace; nspawn then exits.
        _signal(inits + nspawns, signal.SIGKILL)
        time.sleep(0.1)
    raise TestbedError(f"processes of {runtime} survive SIGKILL: {nspawns + inits}")


def _unmount_all(path: Path) -> None:
    for mountpoint in sorted(_mounts_below(path), key=len, reverse=True):
        for _attempt in range(20):
            if subprocess.run(["umount", mountpoint], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            subprocess.run(["umount", "-l", mountpoint], check=False)
    left = _mounts_below(path)
    if left:
        raise TestbedError(f"cannot unmount {left}")


def blackhole_table(name: str) -> str:
    """The nftables table that drops the packets of testbed NAME's blackholed hosts."""
    return "testbed_blackhole_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def blackhole(name: str, address: str, on: bool, refuse_port: int | None = None) -> None:
    """Drop (ON) or pass again every packet to ADDRESS, a host of testbed NAME; with REFUSE_PORT,
    answer connections to that TCP port with a reset instead (a service that is stopped).

    The hosts share the machine's network namespace, each on its own loopback address, so an
    nftables rule on the output hook makes one of them a host whose packets vanish: a connect
    waits for its timeout, as with a builder behind a dead link.  Off removes every rule of the
    address.  `down` removes the table."""
    table = blackhole_table(name)
    nft = shutil.which("nft")
    if nft is None:
        raise TestbedError("blackhole needs nft (Debian package nftables; hacking/install-deps.sh installs it)")
    if on:
        rule = (f"ip daddr {address} tcp dport {int(refuse_port)} reject with tcp reset" if refuse_port
                else f"ip daddr {address} drop")
        script = (f"table ip {table} {{\n chain output {{\n  type filter hook output priority 0; policy accept;\n"
                  f"  {rule}\n }}\n}}\n")
        subprocess.run([nft, "-f", "-"], input=script, text=True, check=True, capture_output=True)
        return
    listed = subprocess.run([nft, "-a", "list", "chain", "ip", table, "output"], text=True, capture_output=True, check=False)
    for line in listed.stdout.splitlines():
        handle = re.search(r"ip daddr (\S+) .*# handle (\d+)", line)
        if handle and handle.group(1) == address:
            subprocess.run([nft, "delete", "rule", "ip", table, "output", "handle", handle.group(2)], check=True)


def remove_blackholes(name: str) -> None:
    nft = shutil.which("nft")
    if nft is not None:
        subprocess.run([nft, "delete", "table", "ip", blackhole_table(name)], capture_output=True, check=False)


def teardown(name: str, log=print) -> None:
    """Stop every host of testbed NAME and remove its mounts and state, also after a crash."""
    remove_blackholes(name)
    binfmt_host.unregister_all(name, RUNTIME_ROOT)
    runtime = runtime_dir(name)
    state = None
    for path in (runtime / "testbed.json", state_dir(name) / "testbed.json"):
        with contextlib.suppress(ValueError, TypeError, KeyError, OSError):
            state = state or Testbed.load(path)
    uuids = {host.uuid for host in state.hosts if host.uuid} if state else set()
    _stop_processes(runtime, uuids)
    _unmount_all(runtime)  # raises rather than let rmtree below reach into a mount
    shutil.rmtree(runtime, ignore_errors=True)
    for local in sorted({state_dir(name), Path(state.state_dir) if state else state_dir(name)}):
        shutil.rmtree(local, ignore_errors=True)
    log(f"testbed {name}: down")


# --------------------------------------------------------------------------- hosts


def _ssh_base(key: Path, known_hosts: Path, host: Host) -> list[str]:
    return [
        "ssh", "-i", str(key), "-p", str(host.port),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "LogLevel=ERROR", f"root@{host.address}",
    ]


READY_SCRIPT = f"""
state=$(systemctl is-system-running 2>/dev/null)
echo "system: $state"
case "$state" in running|degraded) ;; *) exit 3 ;; esac
PATH="$PATH:{UPSTREAM_PROFILE}/bin" nix-store --store daemon --check-validity --print-invalid {PROBE_PATH}
"""


def _prepare_root(merged: Path, host: Host, pubkey: str) -> list[str]:
    """Per-host identity; returns the host's public host keys."""
    machine_id = uuid.uuid4()
    host.uuid = str(machine_id)
    (merged / "etc/machine-id").write_text(machine_id.hex + "\n")
    (merged / "etc/hostname").write_text(host.name + "\n")
    (merged / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n{host.address}\t{host.name}\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (merged / "etc/ssh/sshd_config.d/testbed-listen.conf").write_text(
        "# testbed: each host has its own loopback address and port\n"
        f"ListenAddress {host.address}:{host.port}\n"
    )
    subprocess.run(["ssh-keygen", "-A", "-f", str(merged)], check=True, capture_output=True)
    ssh_dir = merged / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(pubkey)
    authorized.chmod(0o600)
    return [p.read_text().split()[:2] for p in sorted((merged / "etc/ssh").glob("ssh_host_*_key.pub"))]


def _known_hosts_line(host: Host, key: list[str]) -> str:
    where = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
    return f"{where} {key[0]} {key[1]}\n"


def _console_tail(console: Path, lines: int = 25) -> str:
    try:
        text = console.read_text(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def start_host(bed: Testbed, host: Host, image: dict, pubkey: str) -> list[str]:
    runtime = Path(bed.runtime_dir) / host.name
    local = Path(bed.state_dir) / host.name
    upper, work, merged = local / "upper", local / "work", runtime / "root"
    for directory in (upper, work, merged):
        directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={image['rootfs']},upperdir={upper},workdir={work}", str(merged)],
        check=True, capture_output=True,
    )
    host.merged = str(merged)
    host.machine = f"{bed.name}-{host.name}"[:64]
    host_keys = _prepare_root(merged, host, pubkey)
    bed.save()  # the uuid is what finds this container again if nspawn dies
    env = dict(os.environ, **BOOT_ENV)
    command = [
        "systemd-nspawn", f"--directory={merged}", f"--machine={host.machine}", f"--uuid={host.uuid}",
        f"--hostname={host.name}", "--boot", "--register=no", "--keep-unit",
        "--link-journal=no", "--console=passive",
    ]
    with open(local / "console.log", "wb") as console:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=console,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    host.pid = process.pid
    return host_keys


def wait_ready(bed: Testbed, host: Host, deadline: float, key: Path, known_hosts: Path,
               started: float, errors: dict[str, str], stop: threading.Event) -> None:
    console = Path(bed.state_dir) / host.name / "console.log"
    last = ""
    while not stop.is_set():
        if not _alive(host.pid):
            errors[host.name] = f"systemd-nspawn exited; console tail:\n{_console_tail(console)}"
            return
        try:
            result = subprocess.run(_ssh_base(key, known_hosts, host) + [READY_SCRIPT],
                                    capture_output=True, text=True, check=False, timeout=30)
        except subprocess.TimeoutExpired:
            last = "ssh did not return within 30 s"
        else:
            if result.returncode == 0:
                host.ready_seconds = round(time.monotonic() - started, 1)
                return
            last = (result.stdout + result.stderr).strip()
        if time.monotonic() > deadline:
            errors[host.name] = (f"not ready within the timeout (last check: {last or 'no answer'});"
                                 f" console tail:\n{_console_tail(console)}")
            return
        time.sleep(0.5)


def write_inventory(bed: Testbed, key: Path, known_hosts: Path) -> Path:
    """The Ansible inventory of the testbed (YAML, written without a YAML library)."""
    ssh_args = f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    lines = [f"# Written by tests/testbed/testbed.py up --name {bed.name}; removed by down.",
             "all:", "  hosts:"]
    for host in bed.hosts:
        lines += [
            f"    {host.name}:",
            f"      ansible_host: {host.address}",
            f"      ansible_port: {host.port}",
            "      ansible_user: root",
            f"      ansible_ssh_private_key_file: {key}",
            f"      ansible_ssh_common_args: {json.dumps(ssh_args)}",
            f"      ansible_python_interpreter: {PYTHON}",
            f"      testbed_release: {host.release}",
            f'      testbed_nix_version: "{host.nix_version}"',
        ]
    if bed.groups:
        lines.append("  children:")
        for group, members in bed.groups.items():
            lines += [f"    {group}:", "      hosts:"] + [f"        {member}: {{}}" for member in members]
    path = Path(bed.state_dir) / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def ensure_collection_link() -> Path:
    """.testbed/collections/ansible_collections/nix_remote/builders -> the repository.

    Put .testbed/collections on ANSIBLE_COLLECTIONS_PATH and `nix_remote.builders` resolves to this
    working tree, without Galaxy.
    """
    link = STATE_ROOT / "collections/ansible_collections/nix_remote/builders"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() or os.readlink(link) != str(REPO):
        tmp = link.with_name("builders.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(REPO)
        tmp.replace(link)
    return link.parents[2]


# Every systemd takes inotify instances; the kernel default (128 per user, shared by all
# containers, as they all run as root here) runs out at about ten hosts: "Failed to allocate
# manager object: Too many open files".
KERNEL_MINIMUMS = {"fs/inotify/max_user_instances": 8192, "fs/inotify/max_user_watches": 1048576}


def raise_kernel_limits(log=print) -> None:
    for key, minimum in KERNEL_MINIMUMS.items():
        path = Path("/proc/sys") / key
        current = int(path.read_text())
        if current < minimum:
            try:
                path.write_text(f"{minimum}\n")
            except OSError as error:
                raise TestbedError(f"cannot raise {key.replace('/', '.')} from {current} to {minimum} "
                                   f"({error}): run `sysctl -w {key.replace('/', '.')}={minimum}`") from None
            log(f"raised {key.replace('/', '.')} from {current} to {minimum}")


def parse_emulate(items: list[str], hosts: list[str]) -> dict[str, list[str]]:
    """['b1=aarch64-linux,riscv64-linux', ...] -> {'b1': ['aarch64-linux', 'riscv64-linux']}."""
    emulate: dict[str, list[str]] = {}
    for item in items:
        host, sep, systems = item.partition("=")
        if not sep or host not in hosts:
            raise TestbedError(f"--emulate {item!r}: expected HOST=SYSTEM[,SYSTEM] with HOST one of {hosts}")
        for system in filter(None, systems.split(",")):
            if system not in binfmt_host.QEMU_ARCH:
                raise TestbedError(f"--emulate {item!r}: cannot emulate {system!r}; one of {', '.join(binfmt_host.QEMU_ARCH)}")
            emulate.setdefault(host, [])
            if system not in emulate[host]:
                emulate[host].append(system)
    return emulate


def emulate_systems(bed: Testbed, emulate: dict[str, list[str]], log=print) -> None:
    """Register the emulators in this machine's kernel and show binfmt_misc to the hosts that emulate."""
    try:
        for host in bed.hosts:
            systems = emulate.get(host.name) or []
            if not systems:
                continue
            for system in systems:
                binfmt_host.register(bed.name, system, CACHE, RUNTIME_ROOT)
            binfmt_host.mount_in_container(binfmt_host.container_init(host.pid))
            host.emulated = list(systems)
            log(f"  {host.name}: emulates {', '.join(systems)} (binfmt_misc on this machine, F flag)")
        bed.save()
    except (binfmt_host.EmulationError, OSError) as error:
        raise TestbedError(f"testbed {bed.name}: emulation: {error}") from None


def up(name: str, specs: list[HostSpec], groups: dict[str, list[str]], timeout: float,
       log=print, emulate: dict[str, list[str]] | None = None) -> Testbed:
    require_root()
    require_tools(["systemd-nspawn", "ssh", "ssh-keygen", "mount"])
    raise_kernel_limits(log)
    if not NAME_RE.match(name):
        raise TestbedError(f"--name {name!r}: lowercase letters, digits and '-', at most 31 characters")
    names = [spec.name for spec in specs]
    if not specs:
        raise TestbedError("no hosts given: up --name NAME HOST=RELEASE[:PORT] ...")
    if len(set(names)) != len(names):
        raise TestbedError(f"host names repeat: {names}")
    releases = sorted({spec.release for spec in specs}, key=list(RELEASES).index)
    images = {release: build_image(RELEASES[release], log) for release in releases}

    started = time.monotonic()
    RUNTIME_ROOT.mkdir(parents=True, exist_ok=True)
    with _locked(RUNTIME_ROOT / "allocate.lock"):
        runtime = runtime_dir(name)
        if runtime.exists() or state_dir(name).exists():
            owner = ""
            with contextlib.suppress(Exception):
                owner = f" (by {Testbed.load(runtime / 'testbed.json').repo})"
            raise TestbedError(f"testbed name {name!r} is already in use{owner}: "
                               f"`testbed.py down --name {name}` first, or choose another name")
        taken = {host.address for bed in running_testbeds() for host in bed.hosts}
        addresses = allocate_addresses(len(specs), taken)
        runtime.mkdir(parents=True)
        try:
            bed = Testbed(name=name, repo=str(REPO), state_dir=str(state_dir(name)),
                          runtime_dir=str(runtime), groups=groups)
            for spec, address in zip(specs, addresses):
                bed.hosts.append(Host(spec.name, spec.release, address, spec.port,
                                      nix_version=images[spec.release]["nix_version"]))
            bed.save()
        except BaseException:
            shutil.rmtree(runtime, ignore_errors=True)
            raise

    try:
        bed = _boot(bed, images, timeout, started, log)
        if emulate:
            emulate_systems(bed, emulate, log)
        return bed
    except BaseException:
        # Interrupted, timed out or failed: leave nothing behind. Further signals wait.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        teardown(name, log=lambda msg: print(msg, file=sys.stderr))
        raise


def _boot(bed: Testbed, images: dict, timeout: float, started: float, log) -> Testbed:
    name = bed.name
    local = Path(bed.state_dir)
    local.mkdir(parents=True, exist_ok=True)
    key = local / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"testbed-{name}", "-f", str(key)],
                   check=True)
    pubkey = key.with_suffix(".pub").read_text()
    known_hosts = local / "known_hosts"
    lines = []
    for host in bed.hosts:
        for host_key in start_host(bed, host, images[host.release], pubkey):
            lines.append(_known_hosts_line(host, host_key))
        bed.save()
    known_hosts.write_text("".join(lines))

    errors: dict[str, str] = {}
    stop = threading.Event()
    deadline = time.monotonic() + timeout
    threads = [threading.Thread(target=wait_ready, daemon=True,
                                args=(bed, host, deadline, key, known_hosts, started, errors, stop))
               for host in bed.hosts]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(0.2)
    finally:
        stop.set()
    if errors:
        raise TestbedError("\n".join(f"host {host}: {message}" for host, message in errors.items()))
    bed.save()
    inventory = write_inventory(bed, key, known_hosts)
    ensure_collection_link()
    total = round(time.monotonic() - started, 1)
    for host in bed.hosts:
        log(f"  {host.name:<16} {host.release:<16} Nix {host.nix_version:<8} "
            f"{host.address}:{host.port}  ready after {host.ready_seconds} s")
    log(f"testbed {name}: {len(bed.hosts)} hosts ready in {total} s; inventory: {inventory}")
    return bed


# --------------------------------------------------------------------------- commands


def _raise_interrupted(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def parse_platforms(text: str) -> tuple[list[str], list[str], list[str]]:
    """Molecule platforms as JSON -> (HOST=RELEASE[:PORT] texts, GROUP=HOST,... texts, HOST=SYSTEM,... texts)."""
    try:
        platforms = json.loads(text)
    except ValueError as error:
        raise TestbedError(f"--platforms: not JSON: {error}") from None
    if not isinstance(platforms, list):
        raise TestbedError("--platforms: expected a list of {name, release, port, groups}")
    hosts, groups, emulate = [], {}, []
    for index, platform in enumerate(platforms):
        where = f"--platforms item {index + 1}"
        if not isinstance(platform, dict) or "name" not in platform or "release" not in platform:
            raise TestbedError(f"{where}: needs `name` and `release` (one of {', '.join(RELEASES)})")
        port = f":{platform['port']}" if platform.get("port") is not None else ""
        hosts.append(f"{platform['name']}={platform['release']}{port}")
        member_of = platform.get("groups") or []
        if not isinstance(member_of, list):
            raise TestbedError(f"{where} ({platform['name']}): `groups` must be a list")
        for group in member_of:
            groups.setdefault(str(group), []).append(str(platform["name"]))
        systems = platform.get("emulate") or []
        if not isinstance(systems, list):
            raise TestbedError(f"{where} ({platform['name']}): `emulate` must be a list of systems")
        if systems:
            emulate.append(f"{platform['name']}={','.join(map(str, systems))}")
    return hosts, [f"{group}={','.join(members)}" for group, members in groups.items()], emulate


def write_instance_config(bed: Testbed, path: Path) -> None:
    """Molecule's instance config: how molecule's own inventory reaches each host."""
    key = Path(bed.state_dir) / "id_ed25519"
    instances = [{"instance": host.name, "address": host.address, "user": "root", "port": host.port,
                  "identity_file": str(key)} for host in bed.hosts]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(instances, indent=2) + "\n")  # JSON is YAML


def cmd_up(args) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    host_texts, group_texts, emulate_texts = list(args.hosts), list(args.group), list(args.emulate)
    if args.platforms:
        more_hosts, more_groups, more_emulate = parse_platforms(args.platforms)
        host_texts += more_hosts
        group_texts += more_groups
        emulate_texts += more_emulate
    specs = [parse_host_spec(text) for text in host_texts]
    groups = parse_groups(group_texts, [spec.name for spec in specs])
    emulate = parse_emulate(emulate_texts, [spec.name for spec in specs])
    bed = up(args.name, specs, groups, args.timeout, emulate=emulate)
    if args.instance_config:
        write_instance_config(bed, Path(args.instance_config))
    return 0


def cmd_down(args) -> int:
    require_root()
    if args.all:
        names = {path.name for path in RUNTIME_ROOT.glob("*") if path.is_dir()}
        names |= {path.name for path in STATE_ROOT.glob("*") if path.is_dir() and path.name != "collections"}
        for name in sorted(names):
            teardown(name)
        return 0
    if not args.name:
        raise TestbedError("down needs --name NAME or --all")
    teardown(args.name)
    return 0


def cmd_blackhole(args) -> int:
    require_root()
    bed = next((bed for bed in running_testbeds() if bed.name == args.name), None)
    if bed is None:
        raise TestbedError(f"no running testbed {args.name!r}")
    host = next((host for host in bed.hosts if host.name == args.host), None)
    if host is None:
        raise TestbedError(f"testbed {args.name} has no host {args.host!r}")
    blackhole(bed.name, host.address, args.state == "on", refuse_port=args.refuse_port)
    return 0


def cmd_status(args) -> int:
    # `status | head` closes the pipe early; that is not an error of ours.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    beds = [bed for bed in running_testbeds() if not args.name or bed.name == args.name]
    if args.json:
        print(json.dumps([asdict(bed) for bed in beds], indent=2))
        return 0
    if not beds:
        print("no testbed runs")
    for bed in beds:
        print(f"testbed {bed.name} ({bed.state_dir})")
        for host in bed.hosts:
            state = "running" if _alive(host.pid) else "STOPPED"
            print(f"  {host.name:<16} {host.release:<16} Nix {host.nix_version:<8} "
                  f"{host.address}:{host.port:<5} pid {host.pid} {state}"
                  + (f" emulates {','.join(host.emulated)}" if host.emulated else ""))
    return 0


def cmd_build(args) -> int:
    require_root()
    for name in args.releases or list(RELEASES):
        if name not in RELEASES:
            raise TestbedError(f"unknown release {name!r}; one of {', '.join(RELEASES)}")
        meta = build_image(RELEASES[name])
        print(f"{name}: {meta['key']} Nix {meta['nix_version']} systemd {meta['systemd_version']}"
              f" (built in {meta['build_seconds']} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testbed.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start hosts")
    p_up.add_argument("--name", required=True)
    p_up.add_argument("--group", action="append", default=[], metavar="GROUP=HOST,HOST",
                      help="inventory group membership, e.g. nix_builders=b1,b2 (repeatable)")
    p_up.add_argument("--timeout", type=float, default=float(os.environ.get("TESTBED_TIMEOUT", 120)),
                      help="seconds until every host must be ready (default 120)")
    p_up.add_argument("--platforms", metavar="JSON",
                      help="molecule platforms: [{name, release, port?, groups?, emulate?}, ...]")
    p_up.add_argument("--instance-config", metavar="FILE", help="also write molecule's instance config")
    p_up.add_argument("--emulate", action="append", default=[], metavar="HOST=SYSTEM[,SYSTEM]",
                      help="register qemu for SYSTEM in this machine's kernel and show binfmt_misc to HOST, "
                           "e.g. b1=aarch64-linux (repeatable; `down` removes the registration)")
    p_up.add_argument("hosts", nargs="*", metavar="HOST=RELEASE[:PORT]")
    p_up.set_defaults(func=cmd_up)
    p_down = sub.add_parser("down", help="stop hosts, remove mounts and state")
    p_down.add_argument("--name")
    p_down.add_argument("--all", action="store_true")
    p_down.set_defaults(func=cmd_down)
    p_blackhole = sub.add_parser("blackhole", help="drop every packet to a host (on), or pass them again (off)")
    p_blackhole.add_argument("--name", required=True)
    p_blackhole.add_argument("host")
    p_blackhole.add_argument("state", choices=["on", "off"])
    p_blackhole.add_argument("--refuse-port", type=int, help="with on: refuse connections to this TCP port (reset) instead of dropping every packet")
    p_blackhole.set_defaults(func=cmd_blackhole)
    p_status = sub.add_parser("status", help="list running testbeds")
    p_status.add_argument("--name")
    p_status.add_argument("--json", action="store_true")
    p_status.set_defaults(func=cmd_status)
    p_build = sub.add_parser("build", help="build (or reuse) the cached images")
    p_build.add_argument("releases", nargs="*")
    p_build.set_defaults(func=cmd_build)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TestbedError as error:
        print(f"testbed.py: error: {error}", file=sys.stderr)
        return 1
    except Interrupted as signame:
        print(f"testbed.py: interrupted by {signame}; cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
