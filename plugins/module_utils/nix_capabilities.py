# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a given Nix version can do, in one table.

Pure: callers hand in the version string and the implementation (``nix``, ``determinate``,
``lix``) that nix_info read. A new Nix release that changes one of these facts changes this file
only. Every threshold names where it comes from in Nix's source (NixOS/nix, ``git tag
--contains``), so a reader can check it.
"""

from __future__ import annotations

import re

# A version: digits, then dot-digits; anything after (pre20241010_abc) is ignored.
_VERSION_RE = re.compile(r"(\d+(?:\.\d+)+)")


def nix_version_tuple(version) -> tuple[int, ...]:
    """The collection's one Nix version parser (nix_capabilities and machines call it).

    ``"2.26.3"`` -> ``(2, 26, 3)``; ``"2.4pre2021"`` -> ``(2, 4)``; ``"nix (Nix) 2.18.1"`` ->
    ``(2, 18, 1)`` (the first version in the text); ``(2, 20)`` -> ``(2, 20)``; ``None`` or text
    without a version -> ``()``.
    """
    if isinstance(version, (tuple, list)):
        return tuple(int(part) for part in version)
    if not version:
        return ()
    match = _VERSION_RE.search(str(version))
    if not match:
        return ()
    return tuple(int(part) for part in match.group(1).split("."))


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

# What each capability means, the first Nix release that has it, and the evidence in Nix's source
# (paths at the release tag; `git tag --contains <commit>` for the first release).
#  - host_key_column 2.4: 2.3 parses column 8 into Machine::sshPublicHostKey but nothing reads it;
#    2.4 passes it to the store as base64-ssh-public-host-key (src/libstore/machines.cc).
#  - extra_settings 2.4: `extra-<name>` appends to any list setting from commit ff4dea63c9
#    ("Generalize extra-* settings", src/libutil/config.cc Config::set); 2.3 knows only a few
#    dedicated extra-* names and no extra-trusted-users, so trusted-users itself must be edited.
#  - experimental_features 2.4: the experimental-features setting (src/libstore/globals.hh) and
#    the nix-command feature gate, so `--extra-experimental-features nix-command` is accepted.
#  - signing_remote_builds 2.16: Store::isTrustedClient() (src/libstore/store-api.hh, 2.15.0 has
#    it too) and the daemon's trusted flag in the handshake let an ssh-ng client know it is
#    untrusted and send signed inputs (the reading the roles have used since 0.1.0).
#  - store_info 2.19: `nix store info` (src/nix/store-info.cc, commit b4b1a07f97); 2.18 has only
#    `nix store ping` (src/nix/ping-store.cc), which 2.19 and later keep as an alias.
#  - config_show 2.20: `nix config show` (src/nix/config.cc); 2.19 has `nix show-config`
#    (src/nix/show-config.cc), kept as an alias in src/nix/main.cc.
#  - float_speed_factor 2.20: Machine::speedFactor is a float (src/libstore/machines.hh); 2.19
#    reads an unsigned int.
#  - machines_comments_first 2.29 (commit b74b0f4e1c, "Fix another machine config parsing bug",
#    backported to 2.28.2 and 2.24.15): a machines text is split on newlines, comments are cut,
#    and only then is a line split on `;` (src/libstore/machines.cc Machine::parseConfig); before,
#    `;` split first, so `;` in a comment started an entry.
#  - port_in_uri 2.31: user@address:port in an ssh URI (commit 49ba06175e "Add
#    user@address:port support", src/libstore/ssh.cc passes `-p<port>`).
#  - external_builders 2.32: the `external-builders` setting (src/libstore/include/nix/store/local-settings.hh,
#    a JSON list of {systems, program, args}, all three required by ExternalBuilder's from_json in
#    src/libstore/build/derivation-builder.cc) behind the experimental feature `external-builders`
#    (src/libutil/experimental-features.cc); Nix runs `program args... <build.json>` as the build
#    user, outside the sandbox (src/libstore/unix/build/external-derivation-builder.cc), in a local
#    build slot. Determinate Nix had it first (3.8.4, on a Nix 2.30 base: DETERMINATE_SINCE).
#  - ssh_reuse: see SSH_REUSE_* above.
CAPABILITIES_DOC = {
    "ssh_reuse": "ssh connection reuse (ControlMaster) is safe for the daemon's builder connections",
    "host_key_column": "machines column 8 (base64 host key) is read (2.4)",
    "extra_settings": "extra-<setting> appends to any list setting, e.g. extra-trusted-users (2.4)",
    "experimental_features": "the experimental-features setting and the nix-command gate exist (2.4)",
    "signing_remote_builds": "ssh-ng builds by an untrusted user with signed inputs (2.16)",
    "store_info": "`nix store info` (2.19) instead of `nix store ping`",
    "config_show": "`nix config show` (2.20) instead of `nix show-config`",
    "float_speed_factor": "a machines speed factor may be a decimal such as 1.5 (2.20)",
    "machines_comments_first": "a machines text is cut at `#` before `;` splits entries (2.29, 2.28.2, 2.24.15)",
    "port_in_uri": "ssh://user@host:port in a builder URI (2.31)",
    "external_builders": "the external-builders setting: programs that build for given systems (2.32; Determinate 3.8.4)",
}

# First release (Nix numbering) of each version-decided capability. A list of ranges stands for
# a change that was backported: (first, before) pairs, before=None for open-ended.
SINCE = {
    "host_key_column": (2, 4),
    "extra_settings": (2, 4),
    "experimental_features": (2, 4),
    "signing_remote_builds": (2, 16),
    "store_info": (2, 19),
    "config_show": (2, 20),
    "float_speed_factor": (2, 20),
    "machines_comments_first": [((2, 24, 15), (2, 25)), ((2, 28, 2), (2, 29)), ((2, 29), None)],
    "port_in_uri": (2, 31),
    "external_builders": (2, 32),
}

# Determinate Nix reports the Nix release it is based on; where it had a capability before Nix,
# the first base it had it on.
DETERMINATE_SINCE = {
    "external_builders": (2, 30),
}

# What Lix has: the capabilities of its Nix 2.18 base (its own numbering says nothing about
# Nix's), minus what it parses its own way (its machines parser splits on `;` first), plus
# LIX_WITH: what the collection read from Lix's number (2.9x >= 2.19, 2.20) before this table
# and keeps doing. Lix's own source is not checked here; a Lix test host would settle them.
LIX_BASE = (2, 18)
LIX_WITHOUT = ("port_in_uri", "config_show", "machines_comments_first", "external_builders")
LIX_WITH = ("store_info", "float_speed_factor")


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


def is_lix(version, implementation: str | None = "nix") -> bool:
    """Lix: named so by nix_info, numbered 2.90 or later."""
    return (implementation or "nix") == "lix" and nix_version_tuple(version) >= LIX_FIRST_VERSION


def guess_implementation(version) -> str:
    """For callers that know only a number (a module option such as nix_machines' nix_version):
    Nix itself is far below 2.90, so 2.90 up to 3.0 is Lix; Determinate Nix reports Nix's number."""
    vt = nix_version_tuple(version)
    return "lix" if LIX_FIRST_VERSION <= vt < (3,) else "nix"


def supports(capability: str, version, implementation: str | None = "nix") -> bool:
    """Whether this Nix has CAPABILITY (a key of SINCE). Unknown versions have none.

    VERSION is a version string (``2.26.3``, ``2.4pre2021``) or tuple.
    """
    vt = nix_version_tuple(version)
    if not vt:
        return False
    if is_lix(vt, implementation):
        if capability in LIX_WITHOUT:
            return False
        if capability in LIX_WITH:
            return True
        vt = LIX_BASE
    since = SINCE[capability]
    if (implementation or "nix") == "determinate" and capability in DETERMINATE_SINCE:
        since = DETERMINATE_SINCE[capability]
    ranges = since if isinstance(since, list) else [(since, None)]
    return any(vt >= first and (before is None or vt < before) for first, before in ranges)


def capabilities(version, implementation: str | None = "nix") -> dict:
    """Booleans the roles and filters test instead of comparing versions themselves (plus the
    reuse reason)."""
    impl = implementation or "nix"
    reuse = ssh_reuse_policy(version, impl)
    caps = {"ssh_reuse": reuse["safe"], "ssh_reuse_reason": reuse["reason"]}
    caps.update((name, supports(name, version, impl)) for name in SINCE)
    return caps
