# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a given Nix version can do, in one table.

Pure: callers hand in the version string and the implementation (``nix``, ``determinate``,
``lix``) that nix_info read. A new Nix release that changes one of these facts changes this file
only. Every threshold names where it comes from in Nix's source (NixOS/nix, ``git tag
--contains``), so a reader can check it.
"""

from __future__ import annotations

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_detect import nix_version_tuple

# Connection reuse (ssh ControlMaster) for the daemon's connections to its builders, by the code
# in src/libstore/ssh.cc (SSHMaster::startCommand) of each release:
#  - up to 2.14 Nix reads nothing from ssh before its protocol: a multiplexed session works;
#  - 2.15.0 (PR #8018) waits on *every* connection for the line `started` that ssh prints through
#    `-oLocalCommand=echo started`; a session over an existing master never runs LocalCommand,
#    so the wait never ends (NixOS/nix#8329);
#  - 2.16.0 (PR #8349) first runs `ssh -O check <host>` and skips the wait when a master is up,
#    but without the connection's own options (key, port, known-hosts file), so the check can look
#    at another ControlPath than the connection uses;
#  - 2.17.0 (PR #8506) gives the check the connection's options: check and connection agree as
#    long as the master does not appear or vanish between the two. Unchanged through 2.35.
SSH_REUSE_BROKEN_FROM = (2, 15)
SSH_REUSE_FIXED_IN = (2, 17)

# Lix forked from Nix 2.18 and numbers itself 2.90 and later; its ssh code has the 2.17 check.
LIX_FIRST_VERSION = (2, 90)

CAPABILITIES_DOC = {
    "ssh_reuse": "ssh connection reuse (ControlMaster) is safe for the daemon's builder connections",
    "host_key_column": "machines column 8 (base64 host key) is read (2.4)",
    "port_in_uri": "ssh://user@host:port in a builder URI (2.31)",
    "config_show": "`nix config show` (2.20) instead of `nix show-config`",
    "signing_remote_builds": "ssh-ng builds by an untrusted user with signed inputs (2.16)",
}


def ssh_reuse_policy(version: str | None, implementation: str | None = "nix") -> dict:
    """Whether connection reuse is safe with this client Nix, and why, in words for a user.

    Returns ``{"safe": bool, "reason": str}``. Unknown versions are treated as unsafe: reuse on a
    Nix that waits for ``started`` hangs builds, while no reuse only costs an ssh login per build.
    """
    vt = nix_version_tuple(version)
    impl = implementation or "nix"
    if not vt:
        return {"safe": False, "reason": "the client's Nix version is unknown"}
    if impl == "lix" and vt >= LIX_FIRST_VERSION:
        return {"safe": True, "reason": f"Lix {version} (forked from Nix 2.18) checks for a running master"}
    if vt < SSH_REUSE_BROKEN_FROM:
        return {"safe": True, "reason": f"Nix {version} reads nothing from ssh before its protocol"}
    if vt < SSH_REUSE_FIXED_IN:
        return {"safe": False, "reason": (
            f"Nix {version} waits for ssh's `started` line on a reused connection, which never "
            "prints it (NixOS/nix#8329; fixed in 2.17): builds would hang")}
    return {"safe": True, "reason": f"Nix {version} checks for a running master first (2.17 and later)"}


def capabilities(version: str | None, implementation: str | None = "nix") -> dict:
    """Booleans the roles test instead of comparing versions themselves (plus the reuse reason)."""
    vt = nix_version_tuple(version)
    impl = implementation or "nix"
    lix = impl == "lix" and vt >= LIX_FIRST_VERSION
    # Lix's features are those of Nix 2.18 plus its own; port-in-URI it does not have.
    nixv = (2, 18) if lix else vt
    reuse = ssh_reuse_policy(version, impl)
    return {
        "ssh_reuse": reuse["safe"],
        "ssh_reuse_reason": reuse["reason"],
        "host_key_column": bool(nixv) and nixv >= (2, 4),
        "port_in_uri": bool(nixv) and not lix and nixv >= (2, 31),
        "config_show": bool(nixv) and not lix and nixv >= (2, 20),
        "signing_remote_builds": bool(nixv) and nixv >= (2, 16),
    }
