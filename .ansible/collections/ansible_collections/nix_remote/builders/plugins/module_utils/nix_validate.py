# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Let the installed Nix read a candidate nix.conf before it is installed.

Nix reads `$NIX_CONF_DIR/nix.conf`; pointing NIX_CONF_DIR at a temporary directory that holds
the candidate makes `nix show-config` (Nix < 2.20) or `nix config show` parse exactly what the
daemon would parse at its next start, with the same includes, without touching /etc/nix.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

# Where Nix lives when it is not on the PATH of a non-interactive shell (see facts P1).
NIX_BIN_DIRS = [
    "/nix/var/nix/profiles/default/bin",
    "/run/current-system/sw/bin",
    "/usr/local/bin",
    "/usr/bin",
]

_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def version_tuple(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of the first version number in text, e.g. 'nix (Nix) 2.26.3'."""
    match = _VERSION_RE.search(text or "")
    if not match:
        raise ValueError(f"no Nix version in {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def show_config_argv(nix: str, version: tuple[int, int, int]) -> list[str]:
    """The command that prints the effective configuration (renamed in Nix 2.20, facts P16)."""
    command = ["config", "show"] if version >= (2, 20, 0) else ["show-config"]
    return [nix, "--extra-experimental-features", "nix-command"] + command


def validate_candidate(module, conf_dir: str, candidates: dict) -> tuple[bool, str]:
    """Run Nix on a copy of conf_dir in which `candidates` (file name -> text) replace the originals.

    Returns (validated, message): (False, reason) when Nix rejected the candidate; (True, "")
    when it accepted it or when no Nix is installed to ask (then nothing more can be checked).
    Warnings Nix prints (such as unknown settings) are passed to module.warn.
    """
    nix = module.get_bin_path("nix", opt_dirs=NIX_BIN_DIRS)
    if not nix:
        return True, ""
    rc, out, err = module.run_command([nix, "--version"])
    if rc != 0:
        return True, ""
    try:
        version = version_tuple(out)
    except ValueError:
        return True, ""
    workdir = tempfile.mkdtemp(prefix="nix-conf-check-", dir=module.tmpdir)
    try:
        # Mirror the directory so relative includes resolve as they will for the daemon.
        if os.path.isdir(conf_dir):
            for name in os.listdir(conf_dir):
                source = os.path.join(conf_dir, name)
                if name not in candidates and os.path.isfile(source):
                    os.symlink(source, os.path.join(workdir, name))
        for name, text in candidates.items():
            with open(os.path.join(workdir, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        environ = {
            "NIX_CONF_DIR": workdir,
            # Only the system file: a user's own nix.conf must not decide what the daemon accepts.
            "NIX_USER_CONF_FILES": os.path.join(workdir, "no-user-conf"),
            "NIX_CONFIG": "",
        }
        rc, out, err = module.run_command(show_config_argv(nix, version), environ_update=environ)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for line in err.splitlines():
        if line.startswith("warning:"):
            module.warn(f"nix: {line}")
    if rc != 0:
        return False, err.strip() or out.strip() or f"nix exited with status {rc}"
    return True, ""
