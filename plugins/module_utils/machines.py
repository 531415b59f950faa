# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Parse, render and edit Nix machines files and the nix.conf ``builders`` value.

Parsing follows Nix >= 2.29 (``src/libstore/machines.cc``): the text is split on newlines,
``#`` starts a comment that runs to the end of the line (even past a ``;``), each line is split
on ``;``, entries are trimmed and empty ones skipped, ``@path`` entries are expanded recursively
(a missing file is skipped, any other read error is an error).

Rendering writes the portable form that every Nix (and Lix) version reads the same way: one
entry per line, all 8 columns, ``-`` for unset ones, no leading whitespace, no comment in the
entry's line.  An entry's comment (MachinesDocument.upsert's ``comment``) is a line of its own,
``# <comment>`` in the first column directly above the entry, and never holds ``;`` (check_comment).

Pure Python standard library: this file is shipped to target hosts as module_utils.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import struct
from dataclasses import dataclass

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import (
    nix_version_tuple,
    supports,
)

__all__ = [
    "Machine",
    "check_comment",
    "MachinesDocument",
    "MachinesFormatError",
    "check_file_references",
    "legacy_parse_differences",
    "normalize_store_uri",
    "parse_machines",
    "parse_nix_version",
    "render_machine",
]

# Human names of the 8 columns, used in error messages (index 0 = column 1).
FIELD_NAMES = (
    "store URI",
    "systems",
    "SSH key",
    "max jobs",
    "speed factor",
    "supported features",
    "mandatory features",
    "public host key",
)

# Nix tokenizes entries on exactly these characters; other whitespace (\v, \f) is data to Nix.
_WHITESPACE = " \t\n\r"
_TOKEN_SPLIT = re.compile(r"[ \t\n\r]+")
# Characters str.split() treats as whitespace but Nix does not.
_OTHER_SPACE = re.compile("[\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_UNSIGNED_INT = re.compile(r"\+?[0-9]+\Z")
# What boost::lexical_cast<float> accepts, minus inf/nan, which no sane machines file holds.
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_BASE64_BAD_CHAR = re.compile(r"[^A-Za-z0-9+/\n]")
_UINT_MAX = 2 ** 32 - 1
# Nix >= 2.26 parses the store URI (StoreReference::parse); a URL may hold only these characters,
# anything else (non-ASCII, '\\', '^', ...) is "Cannot parse Nix store" and fails the whole list.
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_URL_BAD_CHAR = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%\[\]]")
# A token we write must not be split or cut short when Nix reads it back.
_UNSAFE_TOKEN_CHARS = re.compile(r"[\s#;]")


class MachinesFormatError(ValueError):
    """A malformed machines entry (or an unreadable machines file).

    ``source`` is the file path (or ``<builders>`` for a setting value), ``line`` the 1-based line
    in that text, ``column`` the 1-based field number (1 = store URI ... 8 = public host key).
    """

    def __init__(self, source, line, column, detail, token=None):
        self.source = source
        self.line = line
        self.column = column
        self.detail = detail
        self.token = token
        field = FIELD_NAMES[column - 1] if 1 <= column <= len(FIELD_NAMES) else "entry"
        super().__init__("%s: line %d, column %d (%s): %s" % (source, line, column, field, detail))


def _needs_ssh_prefix(uri):
    """Nix >= 2.4 rule (Machine::Machine) for when ``ssh://`` is prepended to the first column."""
    if "://" in uri or "/" in uri:
        return False
    if uri in ("auto", "daemon", "local"):
        return False
    return not uri.startswith(("auto?", "daemon?", "local?", "?"))


_DIGITS = re.compile(r"[0-9]+\Z")


def _url_port(uri):
    """The port of a "scheme://[user@]host[:port]..." URL as written (None when there is none)."""
    scheme_sep = uri.find("://")
    if scheme_sep < 0:
        return None
    authority = re.split(r"[/?#]", uri[scheme_sep + 3:], maxsplit=1)[0]
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):
        rest = host_port.partition("]")[2]
        return rest[1:] if rest.startswith(":") else None
    return host_port.rpartition(":")[2] if ":" in host_port else None


def _store_uri_error(uri):
    """Why Nix >= 2.26 cannot parse ``uri`` (after the ``ssh://`` rule) as a store, or None.

    A URL ("scheme:...") must be plain RFC 3986 characters, its scheme in lower case (2.26's
    parseURL refuses "SSH://h" and "Builder:22?x=/y"; 2.34 reads them); anything else must be
    ``auto``, ``daemon``, ``local`` (with or without ``?params``) or a path (a ``/`` before any ``?``).
    """
    scheme = _URL_SCHEME.match(uri)
    if scheme:
        if scheme.group(0) != scheme.group(0).lower():
            return "upper-case letter in the scheme %r" % scheme.group(0)[:-1]
        bad = _URL_BAD_CHAR.search(uri)
        if bad:
            return "character %r is not allowed in a store URL" % bad.group(0)
        port = _url_port(uri)
        if port and not _DIGITS.match(port):
            # 2.34 refuses it ("Cannot parse Nix store"); 2.26 passes "host:x" to ssh as a host name.
            return "port %r is not a number" % port
        return None
    base = uri.partition("?")[0]
    if base in ("", "auto", "daemon", "local") or "/" in base:
        return None
    return "it is neither a URL, a path nor auto/daemon/local"


def _speed_error(speed):
    """Nix reads the speed factor as a C float: a value beyond its range is an error."""
    try:
        struct.pack("<f", speed)
    except OverflowError:
        return "is out of range for a float"
    return None


def _apply_ssh_rule(uri):
    return "ssh://" + uri if _needs_ssh_prefix(uri) else uri


def normalize_store_uri(uri):
    """Return the form used to decide whether two entries name the same builder.

    Applies Nix's ``ssh://`` rule and lowercases the scheme, so ``nix@host``,
    ``ssh://nix@host`` and ``SSH://nix@host`` all match.
    """
    uri = _apply_ssh_rule(uri.strip(_WHITESPACE))
    scheme, sep, rest = uri.partition("://")
    if sep:
        return scheme.lower() + sep + rest
    return uri


def _as_name_tuple(value, field):
    """Systems and features are sets in Nix: store them sorted and unique."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    items = set()
    for item in value:
        if not isinstance(item, str):
            raise ValueError("%s: %r is not a string" % (field, item))
        if item:
            items.add(item)
    return tuple(sorted(items))


def _base64_error(value):
    """Return why Nix's base64::decode would reject ``value``, or None.

    Nix stops at the first ``=`` and skips newlines, so padding is optional; only the
    standard alphabet is accepted (URL-safe base64 is rejected).
    """
    bad = _BASE64_BAD_CHAR.search(value.partition("=")[0])
    if bad:
        return "invalid character %r in base64 string" % bad.group(0)
    return None


@dataclass(frozen=True)
class Machine:
    """One builder, with the meaning Nix gives each column.

    Constructing one normalizes the values the way Nix's parser does: ``ssh://`` is added by
    Nix's rule, systems and features become sorted unique tuples (a string is split on commas),
    an empty ``ssh_key`` becomes None, a speed factor of 0 becomes 1.0. Values Nix would reject
    (negative max jobs, negative speed factor, invalid base64) raise ValueError.
    """

    store_uri: str
    systems: tuple = ()
    ssh_key: str | None = None
    max_jobs: int = 1
    speed_factor: float = 1.0
    supported_features: tuple = ()
    mandatory_features: tuple = ()
    public_host_key: str = ""

    def __post_init__(self):
        if not isinstance(self.store_uri, str) or not self.store_uri.strip(_WHITESPACE):
            raise ValueError("store_uri: a non-empty string is required, got %r" % (self.store_uri,))
        setattr_ = object.__setattr__  # the dataclass is frozen; normalize once, here
        setattr_(self, "store_uri", _apply_ssh_rule(self.store_uri))
        setattr_(self, "systems", _as_name_tuple(self.systems, "systems"))
        setattr_(self, "supported_features", _as_name_tuple(self.supported_features, "supported_features"))
        setattr_(self, "mandatory_features", _as_name_tuple(self.mandatory_features, "mandatory_features"))
        if self.ssh_key is not None and not isinstance(self.ssh_key, str):
            raise ValueError("ssh_key: %r is not a string" % (self.ssh_key,))
        setattr_(self, "ssh_key", self.ssh_key or None)
        max_jobs = self.max_jobs
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or not 0 <= max_jobs <= _UINT_MAX:
            raise ValueError("max_jobs: %r is not an unsigned integer" % (max_jobs,))
        speed = self.speed_factor
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed):
            raise ValueError("speed_factor: %r is not a finite number" % (speed,))
        if speed < 0:
            raise ValueError("speed_factor: %r is negative; it must be >= 0" % (speed,))
        if _speed_error(speed):
            raise ValueError("speed_factor: %r %s (Nix reads a 32-bit float)" % (speed, _speed_error(speed)))
        # Nix turns a speed factor of 0 into 1.0 (machines.cc), so 0 and 1 are the same machine.
        setattr_(self, "speed_factor", float(speed) if speed != 0 else 1.0)
        key = self.public_host_key
        if key is None:
            key = ""
        if not isinstance(key, str):
            raise ValueError("public_host_key: %r is not a string" % (key,))
        reason = _base64_error(key)
        if reason:
            raise ValueError("public_host_key: %r is not valid base64: %s" % (key, reason))
        setattr_(self, "public_host_key", key)

    def as_dict(self):
        """Plain dict with lists, as a module returns it."""
        return {
            "store_uri": self.store_uri,
            "systems": list(self.systems),
            "ssh_key": self.ssh_key,
            "max_jobs": self.max_jobs,
            "speed_factor": self.speed_factor,
            "supported_features": list(self.supported_features),
            "mandatory_features": list(self.mandatory_features),
            "public_host_key": self.public_host_key,
        }


def _new_machine(store_uri, systems, ssh_key, max_jobs, speed_factor, supported, mandatory, host_key):
    """Build a Machine from values the parser has already validated and normalized.

    Skips __post_init__ (the parser is the hot path of a 10,000-entry file).
    """
    machine = object.__new__(Machine)
    values = machine.__dict__
    values["store_uri"] = store_uri
    values["systems"] = systems
    values["ssh_key"] = ssh_key
    values["max_jobs"] = max_jobs
    values["speed_factor"] = speed_factor
    values["supported_features"] = supported
    values["mandatory_features"] = mandatory
    values["public_host_key"] = host_key
    return machine


def _set_tuple(token):
    if "," not in token:
        return (token,)
    # tokenizeString drops empty pieces, so "a,,b" is {a, b}.
    return tuple(sorted({item for item in token.split(",") if item}))


def _tokens(entry):
    """Split an entry on Nix's whitespace (space, tab, CR, LF), padded to 8 columns with '-'."""
    # str.split() is much faster but also splits on \v, \f and Unicode spaces, which are data to Nix.
    tokens = _TOKEN_SPLIT.split(entry) if _OTHER_SPACE.search(entry) else entry.split()
    if len(tokens) < 8:
        tokens.extend(("-",) * (8 - len(tokens)))
    return tokens


def _fail(source, line, tokens, index, detail):
    return MachinesFormatError(source, line, index + 1, "%r %s" % (tokens[index], detail), tokens[index])


def _parse_entry(entry, default_systems, source, line):
    """Parse one trimmed, non-empty machine entry (parseBuilderLine).

    A column is "set" when it exists and is neither "" nor "-"; tokens after the 8th are ignored.
    """
    tokens = _tokens(entry)
    store_uri, systems, ssh_key, max_jobs, speed, supported, mandatory, host_key = tokens[:8]
    if store_uri == "-":
        raise MachinesFormatError(source, line, 1, "store URI was not found at the first column of the entry")
    systems = _set_tuple(systems) if systems != "-" else default_systems
    if ssh_key == "-":
        ssh_key = None

    if max_jobs == "-":
        max_jobs = 1
    else:
        if not _UNSIGNED_INT.match(max_jobs) or int(max_jobs) > _UINT_MAX:
            raise _fail(source, line, tokens, 3, "is not an unsigned integer")
        max_jobs = int(max_jobs)

    if speed == "-":
        speed = 1.0
    else:
        if not _FLOAT.match(speed):
            raise _fail(source, line, tokens, 4, "is not a number")
        speed = float(speed)
        if speed < 0:
            raise _fail(source, line, tokens, 4, "is negative; the speed factor must be >= 0")
        if _speed_error(speed):
            raise _fail(source, line, tokens, 4, _speed_error(speed))
        if speed == 0:
            speed = 1.0  # Nix turns 0 into 1.0

    supported = _set_tuple(supported) if supported != "-" else ()
    mandatory = _set_tuple(mandatory) if mandatory != "-" else ()

    if host_key == "-":
        host_key = ""
    else:
        reason = _base64_error(host_key)
        if reason:
            raise _fail(source, line, tokens, 7, "is not valid base64 (%s)" % reason)
    store_uri = _apply_ssh_rule(store_uri)
    reason = _store_uri_error(store_uri)
    if reason:
        raise _fail(source, line, tokens, 0, "is not a store Nix >= 2.26 can parse (%s)" % reason)
    return _new_machine(store_uri, systems, ssh_key, max_jobs, speed, supported, mandatory, host_key)


def _split_line(line):
    """Yield (start, end) of every trimmed, non-empty ``;``-separated entry before any ``#``.

    Offsets index into ``line``.
    """
    hash_at = line.find("#")
    content_end = len(line) if hash_at < 0 else hash_at
    start = 0
    while start <= content_end:
        semi = line.find(";", start, content_end)
        seg_end = content_end if semi < 0 else semi
        ent_start = start
        ent_end = seg_end
        while ent_start < ent_end and line[ent_start] in _WHITESPACE:
            ent_start += 1
        while ent_end > ent_start and line[ent_end - 1] in _WHITESPACE:
            ent_end -= 1
        if ent_start < ent_end:
            yield ent_start, ent_end
        if semi < 0:
            break
        start = semi + 1


def _read_text(path):
    """Read a machines file. Kept separate so tests can simulate EACCES when running as root.

    Opened without blocking and checked to be a regular file first: a FIFO would block forever,
    and a directory is an error to Nix too (OSError with EISDIR / EINVAL).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR) + " (a machines file must be a file)", path)
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "it is not a regular file (a FIFO, device or socket)", path)
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            return handle.read().decode("utf-8", "surrogateescape")
    finally:
        if fd >= 0:
            os.close(fd)


def _file_reference(entry):
    # "@ /etc/nix/machines" works too: Nix trims the path.
    return entry[1:].strip(_WHITESPACE)


def _expand(text, default_systems, source, result, active):
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        for start, end in _split_line(line):
            entry = line[start:end]
            if entry[0] != "@":
                result.append(_parse_entry(entry, default_systems, source, number))
                continue
            path = _file_reference(entry)
            try:
                content = _read_text(path)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue  # Nix skips a missing machines file without error
                raise MachinesFormatError(
                    source, number, 1, "cannot read machines file %r: %s" % (path, exc.strerror or exc), entry) from None
            key = os.path.realpath(path)
            if key in active:
                raise MachinesFormatError(source, number, 1, "machines file %r includes itself (directly or through "
                                          "other @file references); Nix would recurse until it crashes" % path, entry)
            active.add(key)
            try:
                _expand(content, default_systems, path, result, active)
            finally:
                active.discard(key)


def check_file_references(text, path=None, *, source="<builders>"):
    """Expand the ``@file`` references of a machines text (or builders value) as Nix will.

    ``path`` is the file the text is (or will be) written to: a reference that leads back to it
    is a cycle even before it is written. Raises MachinesFormatError naming the file and line of
    the reference (or of the entry inside a referenced file) that Nix cannot read: a cycle, a
    directory or other non-regular file, an unreadable file, a malformed entry. Returns the
    machines Nix would read through the references. A missing file is skipped, as Nix skips it.
    """
    active = {os.path.realpath(path)} if path else set()
    result = []
    _expand(text, (), source, result, active)
    return result


def parse_machines(text, default_systems=(), *, source="<builders>"):
    """Parse a ``builders`` value or machines file text as Nix >= 2.29 does.

    ``@file`` references are expanded recursively; errors inside a referenced file name that
    file and its line. Returns a list of Machine (duplicates kept, as Nix keeps them).
    """
    default_systems = _as_name_tuple(default_systems, "default_systems")
    result = []
    _expand(text, default_systems, source, result, set())
    return result


def parse_nix_version(version):
    """Return (major, minor, patch) of a Nix version such as ``2.26.3`` or ``2.31.0pre2025``.

    None means unknown, treated as 2.4 (the oldest version whose format we write). Parsed by
    nix_capabilities.nix_version_tuple; ValueError for text without a version.
    """
    if version is None:
        return (2, 4, 0)
    parts = nix_version_tuple(version)
    if not parts:
        raise ValueError("nix_version: %r is not a Nix version such as '2.26.3'" % (version,))
    return (parts + (0, 0, 0))[:3]


def _format_speed(speed, version):
    whole = speed.is_integer()
    if not supports("float_speed_factor", version):
        # Before 2.20 Nix reads the speed factor as an unsigned integer: "1.5" is an error there.
        if not whole or speed > _UINT_MAX:
            raise ValueError(
                "speed_factor %r cannot be written for Nix %d.%d: before 2.20 it must be a whole number"
                % (speed, version[0], version[1]))
        return str(int(speed))
    if whole and speed <= _UINT_MAX:
        return str(int(speed))
    return repr(speed)


def _check_token(value, field):
    if not value or value == "-" or _UNSAFE_TOKEN_CHARS.search(value):
        raise ValueError("%s %r cannot be written to a machines file (empty, '-', whitespace, '#' or ';')" % (field, value))
    if "\x00" in value:
        raise ValueError("%s %r contains a NUL character, which Nix cannot pass on" % (field, value))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("%s %r is not valid UTF-8 text" % (field, value)) from None


def _render_list(items, field):
    if not items:
        return "-"
    for item in items:
        if "," in item:
            raise ValueError("%s %r cannot contain ','" % (field, item))
        _check_token(item, field)
    return ",".join(items)


def render_machine(machine, nix_version="2.4"):
    """Render one entry in the portable form (facts 1.5): all columns, ``-`` for unset ones.

    The speed factor is written as an integer for Nix < 2.20 (ValueError if it is not whole),
    column 8 only for Nix >= 2.4. The SSH key must be an absolute path (Nix >= 2.34 requires it).
    Raises ValueError for values that Nix would read back differently.
    """
    version = parse_nix_version(nix_version)
    _check_token(machine.store_uri, "store_uri")
    if machine.store_uri.startswith("@"):
        raise ValueError("store_uri %r would be read as a file reference" % machine.store_uri)
    if _store_uri_error(machine.store_uri):
        raise ValueError("store_uri %r cannot be parsed by Nix >= 2.26: %s"
                         % (machine.store_uri, _store_uri_error(machine.store_uri)))
    columns = [
        machine.store_uri,
        _render_list(machine.systems, "systems"),
        "-",
        str(machine.max_jobs),
        _format_speed(machine.speed_factor, version),
        _render_list(machine.supported_features, "supported_features"),
        _render_list(machine.mandatory_features, "mandatory_features"),
    ]
    if machine.ssh_key is not None:
        _check_token(machine.ssh_key, "ssh_key")
        if not machine.ssh_key.startswith("/"):
            raise ValueError("ssh_key %r must be an absolute path (Nix 2.34 and later reject relative paths)" % machine.ssh_key)
        columns[2] = machine.ssh_key
    if supports("host_key_column", version):
        if machine.public_host_key:
            _check_token(machine.public_host_key, "public_host_key")
        columns.append(machine.public_host_key or "-")
    return " ".join(columns)


def check_comment(text):
    """Raise ValueError when ``text`` cannot be an entry's comment line (``# <text>``).

    A newline, carriage return or NUL would end or cut the line.  ``;`` is refused because Nix
    before 2.29 and Lix split a line on ``;`` before they remove the comment: ``# a ; b`` would
    give them a builder ``b`` (facts 1.5).  ``#`` is harmless (the line is a comment already).
    """
    if not isinstance(text, str):
        raise ValueError("comment %r is not a string" % (text,))
    for char, why in (("\n", "a newline would end the comment line"),
                      ("\r", "a carriage return would end the comment line"),
                      ("\x00", "a NUL character cannot be written"),
                      (";", "Nix before 2.29 and Lix split lines on ';' before they remove comments, so the text "
                            "after it would be read as a builder")):
        if char in text:
            raise ValueError("comment %r contains %r: %s" % (text, char, why))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("comment %r is not valid UTF-8 text" % (text,)) from None


def comment_line(text):
    """The line written for an entry's comment: ``# <text>``."""
    return "# " + text


def _comment_text(line):
    """The text of a whole-line comment (after ``#`` and one space), or None for any other line."""
    body = line[:-1] if line.endswith("\r") else line
    body = body.lstrip(" \t")
    if not body.startswith("#"):
        return None
    body = body[1:]
    return body[1:] if body.startswith(" ") else body


def _written_comment(line):
    """True when ``line`` is a comment line upsert could have written (``# <text>`` in the first
    column, text that check_comment accepts)."""
    if not line.startswith("# "):
        return False
    try:
        check_comment(line[2:])
    except ValueError:
        return False
    return True


class _Entry:
    """One non-empty entry of a document line: a machine or an ``@file`` reference."""

    __slots__ = ("start", "end", "machine", "reference", "key")

    def __init__(self, start, end, machine, reference):
        self.start = start
        self.end = end
        self.machine = machine
        self.reference = reference
        self.key = normalize_store_uri(machine.store_uri) if machine is not None else None


class MachinesDocument:
    """A machines file (or ``builders`` value) that can be edited without touching other bytes.

    ``inline=False``: a machines file; new entries go on new lines, comments and blank lines are
    kept byte for byte. ``inline=True``: the value of the nix.conf ``builders`` setting; new
    entries are appended with `` ; ``. ``@file`` references are kept as opaque entries and are
    not expanded. Every direct entry is validated when the document is parsed.
    """

    def __init__(self, lines, source, inline):
        self._lines = lines
        self._source = source
        self._inline = inline
        self._entries = [self._analyze(number, line) for number, line in enumerate(lines, 1)]

    @classmethod
    def parse(cls, text, *, source="<path>", inline=False):
        return cls(text.split("\n"), source, inline)

    def _analyze(self, number, line):
        if not line:
            return ()
        entries = []
        for start, end in _split_line(line):
            entry = line[start:end]
            if entry[0] == "@":
                entries.append(_Entry(start, end, None, _file_reference(entry)))
            else:
                entries.append(_Entry(start, end, _parse_entry(entry, (), self._source, number), None))
        return entries

    def _set_line(self, index, line):
        self._lines[index] = line
        self._entries[index] = self._analyze(index + 1, line)

    def _delete_line(self, index):
        del self._lines[index]
        del self._entries[index]
        if not self._lines:
            # The text was that one line without a final newline: it is now empty.
            self._lines.append("")
            self._entries.append(())

    def render(self):
        return "\n".join(self._lines)

    def _eol(self, index):
        """"\r" when the line at ``index`` (or the last one before it) ends so: CRLF files stay CRLF."""
        for near in (index, index - 1):
            if 0 <= near < len(self._lines) and self._lines[near]:
                return "\r" if self._lines[near].endswith("\r") else ""
        return ""

    def _insert_line(self, index, text):
        self._lines.insert(index, text)
        self._entries.insert(index, ())
        self._set_line(index, text)

    def _comment_index(self, index):
        """The line index of the comment of the entry alone on line ``index``, or None.

        An entry's comment is the whole-line comment directly above it; an entry that shares its
        line with others has none.
        """
        if self._inline or len(self._entries[index]) != 1 or index == 0:
            return None
        return index - 1 if _comment_text(self._lines[index - 1]) is not None else None

    def comments(self):
        """Every whole-line comment as (line number, text, machine): machine is the Machine of the
        entry directly below when that line holds exactly that one machine entry, else None."""
        out = []
        for index, line in enumerate(self._lines):
            text = _comment_text(line) if not self._inline else None
            if text is None:
                continue
            below = self._entries[index + 1] if index + 1 < len(self._entries) else ()
            machine = below[0].machine if len(below) == 1 else None
            out.append((index + 1, text, machine))
        return out

    def comment(self, store_uri):
        """The comment of the first entry for ``store_uri`` (see upsert), or None."""
        matches = self._matches(normalize_store_uri(store_uri))
        if not matches:
            return None
        above = self._comment_index(matches[0][0])
        return None if above is None else _comment_text(self._lines[above])

    def machines(self):
        """The direct entries, in order (``@file`` references are not expanded)."""
        return [entry.machine for entries in self._entries for entry in entries if entry.machine is not None]

    def file_references(self):
        """The paths of the ``@file`` entries, in order (without the ``@``)."""
        return [entry.reference for entries in self._entries for entry in entries if entry.reference is not None]

    def _matches(self, key):
        return [
            (index, position)
            for index, entries in enumerate(self._entries)
            for position, entry in enumerate(entries)
            if entry.key == key
        ]

    def _remove_entry(self, index, position):
        entries = self._entries[index]
        line = self._lines[index]
        if len(entries) == 1 and not self._inline:
            self._delete_line(index)  # the whole line, with any comment that described the entry
            return
        entry = entries[position]
        if position + 1 < len(entries):
            # "a ; b ; c" without b is "a ; c": cut from this entry up to the next one.
            cut_start, cut_end = entry.start, entries[position + 1].start
        elif position > 0:
            # Last entry: cut from the end of the previous one, which undoes an append exactly.
            cut_start, cut_end = entries[position - 1].end, entry.end
        else:
            cut_start, cut_end = entry.start, entry.end
        self._set_line(index, line[:cut_start] + line[cut_end:])

    def _append(self, text):
        if self._inline:
            # Into the last line that holds an entry (the value is normally a single line).
            for index in range(len(self._lines) - 1, -1, -1):
                if self._entries[index]:
                    end = self._entries[index][-1].end
                    line = self._lines[index]
                    self._set_line(index, line[:end] + " ; " + text + line[end:])
                    return
            index = len(self._lines) - 1
            line = self._lines[index]
            if line.endswith("\r"):
                self._set_line(index, line[:-1] + text + "\r")
            else:
                self._set_line(index, line + text)
            return
        if self._lines[-1] == "":
            # Text ends with a newline (or is empty): the new line goes before that final split.
            # Keep the file's line-ending style: CRLF if its first line ends so.
            if len(self._lines) > 1 and self._lines[0].endswith("\r"):
                text += "\r"
            self._lines.insert(len(self._lines) - 1, text)
            self._entries.insert(len(self._entries) - 1, ())
            self._set_line(len(self._lines) - 2, text)
        else:
            # No final newline: keep it that way; the new entry becomes the last line.
            self._lines.append(text)
            self._entries.append(())
            self._set_line(len(self._lines) - 1, text)

    def _remove_with_comment(self, index, position, comment, any_comment):
        above = self._comment_index(index) if len(self._entries[index]) == 1 else None
        self._remove_entry(index, position)
        if above is not None:
            # The entry's line is gone; its comment line is still at `above`.
            line = self._lines[above].rstrip("\r")
            if (comment is not None and line == comment_line(comment)) or (any_comment and _written_comment(line)):
                self._delete_line(above)

    def _set_comment(self, index, position, comment):
        """Make ``# <comment>`` the comment line of the entry at (index, position). Returns changed."""
        wanted = comment_line(comment)
        if self._inline:
            raise ValueError("a builders setting is one line and has no room for a comment line")
        if len(self._entries[index]) != 1:
            # The entry shares its line: move it to a line of its own, below, under its comment.
            entry = self._entries[index][position]
            text = self._lines[index][entry.start:entry.end]
            eol = self._eol(index)
            self._remove_entry(index, position)
            self._insert_line(index + 1, wanted + eol)
            self._insert_line(index + 2, text + eol)
            return True
        above = self._comment_index(index)
        eol = self._eol(index)
        if above is None:
            self._insert_line(index, wanted + eol)
            return True
        line = self._lines[above]
        if line.rstrip("\r") == wanted:
            return False
        self._set_line(above, wanted + ("\r" if line.endswith("\r") else ""))
        return True

    def upsert(self, machine, nix_version="2.4", comment=None):
        """Replace the entry with the same normalized URI in place, or append one.

        Returns True when the text changed. An existing entry that already means the same
        machine is left byte-identical; further entries for the same URI are removed.

        ``comment`` (checked by check_comment) makes the line directly above the entry
        ``# <comment>``: an existing whole-line comment there is the entry's comment and is
        replaced, otherwise the line is inserted; an entry that shares its line with others is
        moved to a line of its own below it.  Further entries' comment lines that read the same
        go with them.  None leaves comments as they are.  Not for an inline (nix.conf) value.
        """
        if comment is not None:
            check_comment(comment)
            if self._inline:
                raise ValueError("a builders setting is one line and has no room for a comment line")
        text = render_machine(machine, nix_version)
        # What Nix will read from our line (e.g. column 8 is dropped for Nix < 2.4).
        wanted = _parse_entry(text, (), "<rendered>", 1)
        key = normalize_store_uri(machine.store_uri)
        matches = self._matches(key)
        if not matches:
            if comment is not None:
                self._append(comment_line(comment))
            self._append(text)
            return True
        changed = False
        for index, position in reversed(matches[1:]):
            self._remove_with_comment(index, position, comment, False)
            changed = True
        index, position = matches[0]
        entry = self._entries[index][position]
        if entry.machine != wanted:
            line = self._lines[index]
            self._set_line(index, line[:entry.start] + text + line[entry.end:])
            changed = True
        if comment is not None:
            changed = self._set_comment(index, position, comment) or changed
        return changed

    def remove(self, store_uri, comment=None, any_comment=False):
        """Remove every entry whose normalized URI equals that of ``store_uri``. Returns changed.

        The comment line directly above an entry alone on its line goes with it when it reads
        ``# <comment>``, or with ``any_comment`` when upsert could have written it (``# `` in the
        first column, no ``;``); otherwise it is kept.
        """
        matches = self._matches(normalize_store_uri(store_uri))
        for index, position in reversed(matches):
            self._remove_with_comment(index, position, comment, any_comment)
        return bool(matches)


def _legacy_pieces(line):
    """Yield (start, piece) as Nix < 2.29 / Lix split a line: on ``;`` first, comments after."""
    start = 0
    for piece in line.split(";"):
        if piece:
            yield start, piece
        start += len(piece) + 1


def legacy_parse_differences(text, *, source="<builders>"):
    """Warnings for text that Nix < 2.29 and Lix read differently from Nix >= 2.29.

    Those versions split on newline and ``;`` before removing ``#`` comments, and do not trim
    entries. ``@file`` references are not followed.
    """
    warnings = []
    for number, line in enumerate(text.split("\n"), 1):
        hash_at = line.find("#")
        for start, piece in _legacy_pieces(line):
            cut = piece.find("#")
            entry = piece if cut < 0 else piece[:cut]
            if not entry:
                continue
            stripped = entry.strip(_WHITESPACE)
            where = "%s: line %d: " % (source, number)
            if 0 <= hash_at < start:
                if stripped:
                    warnings.append(
                        where + "Nix < 2.29 and Lix read %r after ';' in a comment as a builder" % stripped)
                else:
                    warnings.append(where + "Nix < 2.29 and Lix fail on the blank entry after ';' in a comment "
                                    "(store URL was not found)")
            elif not stripped:
                warnings.append(where + "Nix < 2.29 and Lix fail on a blank entry (store URL was not found): "
                                "whitespace-only text between ';', or indentation before a comment")
            elif entry[0] in _WHITESPACE and stripped.startswith("@"):
                warnings.append(where + "Nix < 2.29 and Lix read the indented file reference %r as a builder, "
                                "not as a file" % stripped)
    # A line such as " ; ; " would repeat the same warning; report it once.
    return list(dict.fromkeys(warnings))
