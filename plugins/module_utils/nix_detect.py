# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers that find out how Nix is installed on a host.

Shared by the nix_info and nix_daemon modules. Nothing here imports AnsibleModule or runs a
command: callers run the commands and hand the output to the parsers below. Every function that
looks at the file system takes ``root`` so unit tests can point it at a fake tree; the paths they
return are always the host's own paths (without ``root``).
"""

from __future__ import annotations

import base64
import os
import re

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import (  # noqa: F401 (re-exported)
    nix_version_tuple,
    supports,
)

DEFAULT_ROOT = "/"

# Where Nix's binaries live when they are not on the non-interactive PATH (facts P1), most
# specific first. These are stable symlinks: we never resolve them to /nix/store paths, which
# disappear after an upgrade and garbage collection.
NIX_BIN_DIRS = (
    "/run/current-system/sw/bin",  # NixOS, nix-darwin
    "/nix/var/nix/profiles/default/bin",  # upstream, Determinate and Lix multi-user installers
    "/usr/local/bin",
    "/usr/bin",  # distribution packages (Debian nix-bin)
    "/bin",
)

# Where the OpenSSH client tools are looked for, before the module's PATH: the system
# directories a service's default PATH holds (systemd, launchd), then the NixOS and Nix profile
# ones. A fixed list, so the answer does not depend on the login shell Ansible happens to use.
SSH_CLIENT_DIRS = (
    "/usr/bin",
    "/bin",
    "/usr/sbin",
    "/sbin",
    "/usr/local/bin",
    "/run/current-system/sw/bin",  # NixOS, nix-darwin (programs.ssh)
    "/nix/var/nix/profiles/default/bin",
)

SSH_CLIENT_BINARIES = {
    "ssh": "ssh",
    "ssh_keygen": "ssh-keygen",
}

SYSTEMD_UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)

LAUNCHD_DIR = "/Library/LaunchDaemons"
LAUNCHD_LABEL_DETERMINATE = "systems.determinate.nix-daemon"
LAUNCHD_LABEL_UPSTREAM = "org.nixos.nix-daemon"

DAEMON_SOCKET_DIR = "/nix/var/nix/daemon-socket"
CONF_DIR = "/etc/nix"
CUSTOM_CONF_NAME = "nix.custom.conf"

# Order in which host keys are reported; ed25519 is what we pin (facts P3).
SSH_HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")

# The defaults of `system-features` when no Nix can tell us (facts section 2).
DEFAULT_SYSTEM_FEATURES = ("benchmark", "big-parallel", "nixos-test")

_VERSION_RE = re.compile(r"(\d+(?:\.\d+)+)")


def host_path(root: str, path: str) -> str:
    """Map a host path (absolute) into the tree at ``root``."""
    if root in ("", "/"):
        return path
    return os.path.join(root, path.lstrip("/"))


def parse_nix_version(output: str) -> str | None:
    """Return the Nix version from ``nix --version`` / ``nix-store --version`` output.

    Examples: ``nix-store (Nix) 2.26.3`` -> ``2.26.3``; ``nix (Determinate Nix 3.8.5) 2.30.2``
    -> ``2.30.2`` (the Nix version is the last one on the line); ``nix (Lix, like Nix) 2.91.1``
    -> ``2.91.1``; ``nix-store (Nix) 2.26.0pre20241010_abc`` -> ``2.26.0pre20241010_abc``.
    """
    for line in output.splitlines():
        tokens = line.split()
        for token in reversed(tokens):
            if _VERSION_RE.match(token):
                return token
    return None


def nix_implementation(output: str) -> str:
    """Which Nix the version line names: ``nix``, ``determinate`` or ``lix``."""
    lowered = output.lower()
    if "lix" in lowered:
        return "lix"
    if "determinate" in lowered:
        return "determinate"
    return "nix"


def config_show_argv(nix_bin: str, version: str | None, implementation: str = "nix") -> list[list[str]]:
    """The commands that print the effective configuration, best first (facts P16).

    ``nix show-config`` was renamed ``nix config show`` in 2.20; both need the ``nix-command``
    experimental feature from 2.4 on (the flag does not exist before 2.4). Lix forked at 2.18 and
    numbers itself 2.90+, so for it and for unknown versions both spellings are tried.
    """
    if not nix_version_tuple(version):
        known = False
    else:
        known = True
        if not supports("experimental_features", version, implementation):
            return [[nix_bin, "show-config"]]
    flag = ["--extra-experimental-features", "nix-command"]
    new = [nix_bin] + flag + ["config", "show"]
    old = [nix_bin] + flag + ["show-config"]
    if implementation == "lix" or not known:
        return [new, old]
    return [new, old] if supports("config_show", version, implementation) else [old, new]


def parse_config_show(output: str) -> dict[str, str]:
    """Parse ``key = value`` lines of ``nix config show`` / ``nix show-config``."""
    settings: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(" = ")
        if not sep:
            if line.endswith(" ="):
                settings[line[:-2].strip()] = ""
            continue
        key = key.strip()
        if key and " " not in key:
            settings[key] = value.strip()
    return settings


def parse_nix_string(output: str) -> str | None:
    """``"x86_64-linux"`` (as printed by ``nix-instantiate --eval``) -> ``x86_64-linux``."""
    text = output.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return None


def split_list(value: str | None) -> list[str]:
    """A Nix list setting (space separated) -> list without duplicates, order kept."""
    result: list[str] = []
    for item in (value or "").split():
        if item not in result:
            result.append(item)
    return result


def find_binary(name: str, path_env: str | None, root: str = DEFAULT_ROOT,
                extra_dirs: tuple[str, ...] = (), known_dirs: tuple[str, ...] = NIX_BIN_DIRS) -> str | None:
    """Absolute path of an executable ``name``: the known locations (Nix's by default) first, then PATH.

    The known locations come first so the path we hand to authorized_keys or ``remote-program``
    is the stable one the daemon's service uses, not whatever a login shell would find.
    """
    dirs = list(known_dirs)
    for entry in (path_env or "").split(os.pathsep):
        if entry.startswith("/") and entry not in dirs:
            dirs.append(entry)
    dirs.extend(d for d in extra_dirs if d not in dirs)
    for directory in dirs:
        candidate = os.path.join(directory, name)
        real = host_path(root, candidate)
        if os.path.isfile(real) and os.access(real, os.X_OK):
            return candidate
    return None


def parse_os_release(text: str) -> dict[str, str]:
    """Parse /etc/os-release (shell-style ``KEY=value`` with optional quotes)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        result[key.strip()] = value
    return result


def read_text(path: str) -> str | None:
    """File content, or None when the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def is_nixos(root: str = DEFAULT_ROOT) -> bool:
    """NixOS marks itself with /etc/NIXOS and ``ID=nixos`` in os-release."""
    if os.path.exists(host_path(root, "/etc/NIXOS")):
        return True
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        text = read_text(host_path(root, candidate))
        if text is not None:
            return parse_os_release(text).get("ID") == "nixos"
    return False


def launchd_label(root: str = DEFAULT_ROOT) -> str | None:
    """The nix-daemon launchd label whose plist exists (Determinate's wins), or None."""
    for label in (LAUNCHD_LABEL_DETERMINATE, LAUNCHD_LABEL_UPSTREAM):
        if os.path.exists(host_path(root, launchd_plist(label))):
            return label
    return None


def launchd_plist(label: str) -> str:
    return f"{LAUNCHD_DIR}/{label}.plist"


def systemd_unit_path(unit: str, root: str = DEFAULT_ROOT) -> str | None:
    """Host path of a systemd unit file if one is installed in a standard unit directory."""
    for directory in SYSTEMD_UNIT_DIRS:
        candidate = f"{directory}/{unit}"
        if os.path.lexists(host_path(root, candidate)):
            return candidate
    return None


def systemd_running(root: str = DEFAULT_ROOT) -> bool:
    """sd_booted(): systemd is PID 1 exactly when /run/systemd/system exists."""
    return os.path.isdir(host_path(root, "/run/systemd/system"))


def detect_service_manager(darwin: bool, nixos: bool, root: str = DEFAULT_ROOT) -> tuple[str, str | None]:
    """Return (service_manager, launchd_label) for the nix-daemon service."""
    if nixos:
        return "nixos", None
    if darwin:
        label = launchd_label(root)
        return ("launchd", label) if label else ("none", None)
    if systemd_running(root) and systemd_unit_path("nix-daemon.service", root):
        return "systemd", None
    return "none", None


def parse_meminfo(text: str) -> int | None:
    """MemTotal from /proc/meminfo in bytes."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                unit = parts[2].lower() if len(parts) > 2 else "kb"
                return int(parts[1]) * (1024 if unit == "kb" else 1)
    return None


def ssh_host_key(pub_text: str) -> dict[str, str] | None:
    """Describe one ``ssh_host_*_key.pub`` file.

    ``public_key`` is ``"<type> <base64>"`` without the comment (what known_hosts needs).
    ``base64`` is the base64 of exactly that text, no comment and no newline, for machines
    column 8: Nix writes a temporary known_hosts line ``<host> `` + decode(column 8) + ``\\n``,
    so the decoded text must start with the key type and key. Leaving the comment (often the
    builder's host name) and newline out makes the value identical for the same key everywhere.
    """
    for line in pub_text.splitlines():
        fields = line.split()
        if len(fields) < 2 or line.lstrip().startswith("#"):
            continue
        key_type, key_data = fields[0], fields[1]
        try:
            base64.b64decode(key_data, validate=True)
        except ValueError:
            return None
        public_key = f"{key_type} {key_data}"
        return {
            "type": key_type,
            "public_key": public_key,
            "base64": base64.b64encode(public_key.encode("ascii")).decode("ascii"),
        }
    return None


def custom_conf_path(conf_path: str, includes: list[tuple[bool, str]]) -> str | None:
    """The included ``nix.custom.conf`` (installer-managed layouts, facts section 2), if any.

    Relative include paths are relative to the including file's directory.
    """
    base = os.path.dirname(conf_path)
    for _optional, path in includes:
        resolved = os.path.normpath(os.path.join(base, path))
        if os.path.basename(resolved) == CUSTOM_CONF_NAME:
            return resolved
    return None


def custom_conf_target(conf_path: str, include_lines: list[tuple[int, bool, str]]) -> tuple[str, int] | None:
    """Like custom_conf_path, from ``NixConf.include_lines()``: (the included ``nix.custom.conf``,
    the 1-based number of the line that includes it), or None."""
    base = os.path.dirname(conf_path)
    for number, _optional, path in include_lines:
        resolved = os.path.normpath(os.path.join(base, path))
        if os.path.basename(resolved) == CUSTOM_CONF_NAME:
            return resolved, number
    return None
