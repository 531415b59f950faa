# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask a real Nix how it reads a machines text or a nix.conf tree.

Releases: the host's Nix (Debian bookworm's nix-bin 2.8) and the Nix of each cached testbed
image (trixie 2.26, sid 2.34), run straight from the image with the image's own loader and
libraries: no container is booted, nothing is written into the image.

Machines: Nix has no command that prints a parsed machines list, but its build hook
(`nix __build-remote`, `build-remote` before 2.9) parses the `builders` setting it is handed on
stdin with Machine::parseConfig / getMachines and, asked for a system no machine has, logs at
debug level "considering building on remote machine 'URI'" for every machine in order and then
warns "Failed to find a machine" with a table of every machine's systems, max jobs, supported
and mandatory features (each value between the logger's colour codes, so lists are not
ambiguous). A parse error ends the hook with Nix's own message. No store is opened but
`dummy://`, no machine is connected to.

nix.conf: NIX_CONF_DIR points at a temporary directory holding the case's files; `nix
show-config --json` (2.8) or `nix config show --json` prints every setting's effective value.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("TESTBED_CACHE", "/var/cache/nix-remote-testbed"))
# The releases of the testbed (tests/testbed/README.md); bookworm's Nix is the host's.
IMAGE_RELEASES = ("trixie", "sid")
SYSTEM = "x86_64-linux"
DRV = "/nix/store/" + "a" * 32 + "-differential.drv"
NO_SUCH_SYSTEM = "differential-no-such-system"
_ANSI_ARG = re.compile(r"\x1b\[35;1m(.*?)\x1b\[0m", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CONSIDER = re.compile(r"considering building on remote machine '(.*)'\Z", re.S)


@dataclass
class Release:
    name: str
    version: tuple
    argv: list          # how to start its `nix`
    hook_argv: list     # how to start its build hook, without the verbosity argument
    version_text: str = ""

    @property
    def label(self):
        return "%s (Nix %s)" % (self.name, self.version_text)


@dataclass
class Missing:
    name: str
    reason: str


def _version_tuple(text):
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part or 0) for part in match.groups()) if match else (0, 0, 0)


def _image_rootfs(release):
    """The newest cached image of `release` (image.json written last, so a built one)."""
    metas = sorted((CACHE / "images").glob(release + "-*/image.json"), key=lambda p: p.stat().st_mtime)
    metas = [meta for meta in metas if json.loads(meta.read_text()).get("release") == release]
    if not metas:
        return None
    return Path(json.loads(metas[-1].read_text())["rootfs"])


def _image_argv(rootfs):
    loader = rootfs / "lib64/ld-linux-x86-64.so.2"
    libs = ":".join(str(rootfs / d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))
    return [str(loader), "--library-path", libs, str(rootfs / "usr/bin/nix")]


def discover():
    """Return (releases, missing): every testbed release whose Nix can be run here."""
    found, missing = [], []
    host = shutil.which("nix")
    if host:
        hook = "/usr/libexec/nix/build-remote"
        found.append(Release("bookworm", (), [host], [hook] if os.path.exists(hook) else [host, "__build-remote"]))
    else:
        missing.append(Missing("bookworm", "no `nix` on the host (apt-get install nix-bin)"))
    for name in IMAGE_RELEASES:
        rootfs = _image_rootfs(name)
        if rootfs is None or not (rootfs / "usr/bin/nix").exists():
            missing.append(Missing(name, "no cached %s image under %s (build it: flock /work/.testbed.lock "
                                         ".venv/bin/python tests/testbed/testbed.py build %s)" % (name, CACHE, name)))
            continue
        argv = _image_argv(rootfs)
        found.append(Release(name, (), argv, argv + ["__build-remote"]))
    for release in found:
        out = subprocess.run(release.argv + ["--version"], capture_output=True, text=True, check=True).stdout
        release.version_text = out.split()[-1]
        release.version = _version_tuple(out)
    return found, missing


def _clean_env(workdir):
    env = {key: value for key, value in os.environ.items() if not key.startswith("NIX_")}
    env.update({
        "NIX_CONF_DIR": str(workdir / "etc"),
        "NIX_USER_CONF_FILES": str(workdir / "no-user-conf"),
        "NIX_STATE_DIR": str(workdir / "state"),
        "NIX_LOG_DIR": str(workdir / "log"),
        "HOME": str(workdir / "home"),
        "XDG_CACHE_HOME": str(workdir / "cache"),
    })
    return env


# --------------------------------------------------------------------- machines


def _u64(number):
    return struct.pack("<Q", number)


def _wire(text):
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return _u64(len(data)) + data + b"\0" * (-len(data) % 8)


@dataclass
class MachinesResult:
    """What one Nix made of a builders value: an error, or the machines in order."""

    error: str | None = None
    uris: list = field(default_factory=list)
    rows: list = field(default_factory=list)  # per machine: (systems, max_jobs, supported, mandatory) as printed
    raw: str = ""


def _hook_messages(stderr):
    for line in stderr.splitlines():
        if line.startswith("@nix "):
            try:
                yield json.loads(line[5:])
            except ValueError:
                continue


def machines_oracle(release, builders, files=None):
    """Parse `builders` (and the machines files it references) with `release`'s Nix.

    `files` maps absolute paths to texts; they are written before the hook runs (the case's
    paths are in a private temporary directory, see cases.py).
    """
    workdir = Path(tempfile.mkdtemp(prefix="nix-diff-m-"))
    try:
        (workdir / "state" / "current-load").mkdir(parents=True)
        (workdir / "etc").mkdir()
        for path, text in (files or {}).items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(text.encode("utf-8", "surrogateescape"))
        message = b""
        for name, value in (("builders", builders), ("system", SYSTEM), ("store", "dummy://")):
            message += _u64(1) + _wire(name) + _wire(value)
        message += _u64(0)
        message += _wire("try") + _u64(0) + _wire(NO_SUCH_SYSTEM) + _wire(DRV) + _u64(0)
        proc = subprocess.run(release.hook_argv + ["7"], input=message, capture_output=True,
                              env=_clean_env(workdir), timeout=60, check=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    result = MachinesResult(raw=stderr)
    table = None
    for message in _hook_messages(stderr):
        text = message.get("msg", "")
        if message.get("level") == 0:
            if result.error is None:  # the first one is the error; "Try --help" follows it
                result.error = _ANSI.sub("", text)
            continue
        considered = _CONSIDER.match(text)
        if considered:
            result.uris.append(considered.group(1))
        elif text.startswith("Failed to find a machine"):
            table = text
    if result.error is not None:
        return result
    if proc.returncode != 0:
        result.error = "exit status %d: %s" % (proc.returncode, stderr[-500:])
        return result
    if "# decline-permanently" in stderr:
        return result  # no machines
    if table is None:
        result.error = "no machine table in the hook's output: %s" % stderr[-500:]
        return result
    args = _ANSI_ARG.findall(table)
    # drv, system, features, count, then 4 per machine.
    count = int(args[3])
    machine_args = args[4:]
    result.rows = [tuple(machine_args[4 * i:4 * i + 4]) for i in range(count)]
    return result


# ---------------------------------------------------------------------- nix.conf


@dataclass
class ConfResult:
    error: str | None = None
    settings: dict = field(default_factory=dict)  # name -> {"value": ..., "defaultValue": ...}
    warnings: list = field(default_factory=list)


def conf_oracle(release, files):
    """Effective settings of a nix.conf tree; `files` maps paths relative to the conf dir to texts."""
    workdir = Path(tempfile.mkdtemp(prefix="nix-diff-c-"))
    try:
        etc = workdir / "etc"
        etc.mkdir()
        for relative, text in files.items():
            target = etc / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8", "surrogateescape"))
        command = ["show-config"] if release.version < (2, 20) else ["config", "show"]
        argv = release.argv + ["--extra-experimental-features", "nix-command"] + command + ["--json"]
        proc = subprocess.run(argv, capture_output=True, env=_clean_env(workdir), timeout=60, check=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stderr = _ANSI.sub("", proc.stderr.decode("utf-8", "replace"))
    result = ConfResult(warnings=[line for line in stderr.splitlines() if line.startswith("warning:")])
    if proc.returncode != 0:
        result.error = stderr.strip() or "exit status %d" % proc.returncode
        return result
    result.settings = json.loads(proc.stdout)
    return result
