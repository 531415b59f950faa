# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Editing an OpenSSH known_hosts file line by line, keeping every line it does not manage.

Pure text in, text out: the ssh_known_hosts module reads and writes the file through file_edit.
Format (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT): `[@marker] hostnames keytype base64 [comment]`,
hostnames a comma-separated list of names or patterns, or one hashed name `|1|salt|hash`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

# Key types as OpenSSH names them: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, sk-ssh-ed25519@openssh.com, ...
_KEY_TYPE = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+|[a-z0-9-]+-cert-v01@openssh\.com)$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,3}$")


class KnownHostsError(ValueError):
    """A host name or key that cannot be written to a known_hosts file as it is."""


def check_name(name: str) -> str:
    """A host name as its known_hosts line names it (`host` or `[host]:port`), checked."""
    if not isinstance(name, str) or not name:
        raise KnownHostsError("a host name must be a non-empty string")
    if any(c.isspace() for c in name) or "," in name or "\x00" in name:
        raise KnownHostsError(f"host name {name!r}: holds whitespace, a comma or a NUL, which the known_hosts format cannot hold in one name")
    if name[0] in "#@|":
        raise KnownHostsError(f"host name {name!r}: cannot start with {name[0]!r} (a comment, a marker or a hashed name)")
    return name


def parse_key(text: str) -> tuple[str, str, str]:
    """`keytype base64 [comment]` -> (keytype, base64, the text as written, trimmed)."""
    if not isinstance(text, str) or "\n" in text or "\r" in text or "\x00" in text:
        raise KnownHostsError(f"key {text!r}: must be one line")
    fields = text.split()
    if len(fields) < 2 or not _KEY_TYPE.match(fields[0]) or not _BASE64.match(fields[1]):
        raise KnownHostsError(f"key {text[:60]!r}: is not `keytype base64 [comment]` (for example `ssh-ed25519 AAAAC3Nza...`)")
    try:
        base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise KnownHostsError(f"key {text[:60]!r}: its key field is not valid base64") from None
    return fields[0], fields[1], " ".join(fields)


def _hashed_match(field: str, name: str) -> bool:
    """Whether the hashed host field `|1|salt|hash` is NAME (HMAC-SHA1 keyed with the salt, as ssh-keygen -H writes)."""
    parts = field.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest(), digest)


class Line:
    """One line of the file; host lines know their names, type and key."""

    __slots__ = ("raw", "lead", "hosts", "rest", "keytype", "key")

    def __init__(self, raw: str):
        self.raw = raw
        self.hosts = None  # None: not a host line (comment, blank, marker, malformed): never touched
        self.lead = self.rest = self.keytype = self.key = ""
        body = raw.rstrip("\r\n")
        stripped = body.lstrip()
        if not stripped or stripped.startswith("#") or stripped.startswith("@"):
            return
        fields = stripped.split()
        if len(fields) < 3:
            return
        self.lead = body[: len(body) - len(stripped)]
        self.hosts = fields[0]
        self.rest = raw[len(self.lead) + len(fields[0]):]
        self.keytype, self.key = fields[1], fields[2]

    def names(self, name: str) -> bool:
        """Whether this host line is for NAME (named in its list, or its hashed name)."""
        if self.hosts is None:
            return False
        if self.hosts.startswith("|"):
            return _hashed_match(self.hosts, name)
        return name.lower() in (n.lower() for n in self.hosts.split(","))

    def without(self, name: str) -> str | None:
        """The line with NAME dropped from its host list; None when nothing would be left."""
        if self.hosts.startswith("|"):
            return None
        left = [n for n in self.hosts.split(",") if n.lower() != name.lower()]
        if not left:
            return None
        return self.lead + ",".join(left) + self.rest


def edit(text: str, present: dict, absent: list) -> tuple[str, list, list]:
    """Apply the edits to a known_hosts file's text.

    present: {name: [key text, ...]}: each key is pinned for the name; a key the name has of the
    same type that is not given is dropped (from a line naming several hosts only this name is
    dropped), so a replaced host key is no longer accepted.  absent: names whose every line goes.
    Lines for other names, comments, markers (@cert-authority, @revoked) and malformed lines are
    kept byte for byte.  Returns (new text, [added "name keytype"], [removed "name keytype"]).
    """
    cur: list = [Line(raw) for raw in text.splitlines(keepends=True)]
    count = len(cur)
    added, removed = [], []
    wanted = {name: [parse_key(k) for k in keys] for name, keys in present.items()}
    for name in list(wanted) + list(absent):
        check_name(name)

    def drop(index: int, name: str) -> None:
        line = cur[index]
        new = line.without(name)
        cur[index] = Line(new) if new is not None else None
        removed.append(f"{name} {line.keytype}")

    insert_at: dict = {}
    for index in range(count):
        for name in absent:
            if cur[index] is not None and cur[index].names(name):
                drop(index, name)
        for name, keys in wanted.items():
            line = cur[index]
            if line is None or not line.names(name):
                continue
            if line.keytype not in {k[0] for k in keys} or (line.keytype, line.key) in {(k[0], k[1]) for k in keys}:
                continue
            drop(index, name)
            # The replacement key goes where the replaced one was (after the line, when it stays for other names).
            insert_at.setdefault(name, index if cur[index] is None else index + 1)
    # A pinned key the name still has is not added again.
    kept = {(name, line.keytype, line.key) for line in cur if line is not None for name in wanted if line.names(name)}
    additions: dict = {}
    for name, keys in wanted.items():
        for keytype, key, written in keys:
            if (name, keytype, key) in kept:
                continue
            kept.add((name, keytype, key))
            additions.setdefault(insert_at.get(name, count), []).append(f"{name} {written}\n")
            added.append(f"{name} {keytype}")
    result: list = []
    for index in range(count + 1):
        new = additions.get(index, [])
        if new and result and not result[-1].endswith("\n"):
            result[-1] += "\n"
        result.extend(new)
        if index < count and cur[index] is not None:
            result.append(cur[index].raw)
    return "".join(result), added, removed
