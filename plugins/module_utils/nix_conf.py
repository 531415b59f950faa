# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and edit nix.conf the way Nix itself parses it.

Pure Python (stdlib only) so it runs on target hosts and can be unit tested
without Ansible. The parsing rules follow Nix's ``parseConfigFiles`` and
``Config::set`` (libutil/configuration.cc):

* the text is split on ``\\n`` only; there are no line continuations;
* ``#`` starts a comment anywhere in a line, so a value never contains ``#``;
* a line is split into tokens on space, tab and carriage return; a line
  without tokens is ignored;
* ``include PATH`` and ``!include PATH`` (exactly two tokens) include a file;
* every other line must have ``=`` as its second token, otherwise it is a
  syntax error; the value is the remaining tokens joined by one space;
* the last assignment of a setting wins, and an alias sets the same setting;
* ``extra-NAME`` appends to NAME only when NAME is a list setting; a plain
  ``NAME =`` later in the file discards earlier ``extra-NAME`` values
  (NixOS/nix#9487), which is why new ``extra-`` lines are always written
  after their base setting; ``extra-platforms`` is a setting of its own.

Editing keeps every byte the caller did not ask to change: an untouched
document renders byte-identical (CRLF, odd whitespace, comments, missing
final newline and all).
"""

from __future__ import annotations

import fnmatch

from ansible_collections.nix_remote.builders.plugins.module_utils.nix_secrets import redact

# Old setting names that Nix still accepts; each sets the canonical setting.
ALIASES = {
    "build-max-jobs": "max-jobs",
    "build-cores": "cores",
    "build-max-silent-time": "max-silent-time",
    "build-timeout": "timeout",
    "build-use-substitutes": "substitute",
    "build-fallback": "fallback",
    "binary-caches": "substituters",
    "binary-cache-public-keys": "trusted-public-keys",
    "trusted-binary-caches": "trusted-substituters",
    "build-use-chroot": "sandbox",
    "build-use-sandbox": "sandbox",
    "build-chroot-dirs": "sandbox-paths",
    "build-sandbox-paths": "sandbox-paths",
    "gc-keep-outputs": "keep-outputs",
    "gc-keep-derivations": "keep-derivations",
    # Nix's source names this setting max-build-log-size (alias build-max-log-size).
    "build-max-log-size": "max-build-log-size",
    "build-keep-log": "keep-build-log",
    "build-compress-log": "compress-build-log",
    "env-keep-derivations": "keep-env-derivations",
    "build-repeat": "repeat",
    "build-impersonate-linux-26": "impersonate-linux-26",
    "substitution-max-jobs": "max-substitution-jobs",
}

# Settings whose type is a list, set or map in Nix (Strings, StringSet, Paths,
# PathSet, StringMap, feature sets): only these accept an ``extra-`` form that
# appends.  ``extra-platforms`` is listed because it is itself a string set
# (so ``extra-extra-platforms`` appends to it); it is not an append to a
# ``platforms`` setting, which does not exist.
LIST_SETTINGS = frozenset((
    "access-tokens",
    "allowed-impure-host-deps",
    "allowed-uris",
    "allowed-users",
    "build-hook",
    "experimental-features",
    "extra-platforms",
    "hashed-mirrors",
    "ignored-acls",
    "impure-env",
    "nix-path",
    "plugin-files",
    "sandbox-paths",
    "secret-key-files",
    "substituters",
    "system-features",
    "trusted-public-keys",
    "trusted-substituters",
    "trusted-users",
))

# Settings Nix reads as booleans (BaseSetting<bool>::parse): "true", "yes" and "1" are true,
# "false", "no" and "0" false, case-sensitive. ``sandbox`` is not one (true/false/relaxed only).
BOOL_SETTINGS = frozenset((
    "accept-flake-config", "allow-dirty", "allow-import-from-derivation", "allow-new-privileges",
    "allow-symlinked-store", "always-allow-substitutes", "auto-allocate-uids", "auto-optimise-store",
    "builders-use-substitutes", "compress-build-log", "darwin-log-sandbox-violations", "enforce-determinism",
    "fallback", "filter-syscalls", "fsync-metadata", "fsync-store-paths", "http2", "impersonate-linux-26",
    "keep-build-log", "keep-derivations", "keep-env-derivations", "keep-failed", "keep-going", "keep-outputs",
    "preallocate-contents", "print-missing", "pure-eval", "require-drop-supplementary-groups", "require-sigs",
    "restrict-eval", "run-diff-hook", "sandbox-fallback", "show-trace", "substitute", "sync-before-registering",
    "trace-function-calls", "use-case-hack", "use-cgroups", "use-registries", "use-sqlite-wal",
    "use-xdg-base-directories", "warn-dirty",
))
_TRUE = frozenset(("true", "yes", "1"))
_FALSE = frozenset(("false", "no", "0"))

# Settings Nix holds as a set (StringSet, PathSet, the experimental feature set): the order of the
# words and repeated words make no difference to it.
SET_SETTINGS = frozenset((
    "allowed-impure-host-deps",
    "experimental-features",
    "extra-platforms",
    "ignored-acls",
    "sandbox-paths",
    "system-features",
    "trusted-substituters",
))

# Unsigned integer settings: "04" and "4" are the same number to Nix. (Unit suffixes such as
# "1K", accepted from Nix 2.23 only, are compared as written.)
INT_SETTINGS = frozenset((
    "build-poll-interval", "connect-timeout", "cores", "download-attempts", "gc-reserved-space",
    "http-connections", "log-lines", "max-build-log-size", "max-free", "max-jobs", "max-silent-time",
    "max-substitution-jobs", "min-free", "min-free-check-interval", "narinfo-cache-negative-ttl",
    "narinfo-cache-positive-ttl", "repeat", "stalled-download-timeout", "tarball-ttl", "timeout",
))

_EXTRA = "extra-"
# Nix tokenizes on " \t\n\r"; lines never contain "\n" because the text is split on it.
_WHITESPACE = " \t\r"
_INCLUDE_KEYWORDS = ("include", "!include")


class NixConfError(ValueError):
    """A nix.conf syntax error or a refused edit.

    ``line`` is the 1-based line number (None when the error is not about a
    line of the file) and ``source`` the file name given to ``NixConf.parse``.
    """

    def __init__(self, message, *, line=None, source="nix.conf"):
        self.line = line
        self.source = source
        self.detail = message
        where = source if line is None else "%s, line %d" % (source, line)
        super().__init__("%s: %s" % (where, message))


def _tokenize(text):
    tokens = []
    current = []
    for char in text:
        if char in _WHITESPACE:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        tokens.append("".join(current))
    return tokens


def canonical_key(key):
    """Return the canonical setting name for ``key`` (aliases resolved, also in ``extra-`` form)."""
    if key in ALIASES:
        return ALIASES[key]
    if key.startswith(_EXTRA) and key not in LIST_SETTINGS:
        base = key[len(_EXTRA):]
        if base in ALIASES:
            return _EXTRA + ALIASES[base]
    return key


def _split_key(key):
    """Return ``(base, appends)``: ``appends`` is True for the ``extra-`` form of a list setting.

    Nix looks a name up exactly first, so ``extra-platforms`` is a setting of
    its own.  ``extra-NAME`` for a NAME that is not a list setting is returned
    unchanged (Nix ignores it with an "unknown setting" warning).
    """
    key = canonical_key(key)
    if key.startswith(_EXTRA) and key not in LIST_SETTINGS and key[len(_EXTRA):] in LIST_SETTINGS:
        return key[len(_EXTRA):], True
    return key, False


def split_key(key):
    """``(base, appends)`` for ``key``: aliases resolved, ``appends`` True for the ``extra-`` form of a list setting."""
    return _split_key(key)


def same_value(key, first, second):
    """Whether Nix gives ``key`` the same value from the two spellings (whitespace already collapsed).

    Booleans compare by meaning (``yes`` is ``true``), set-valued settings ignore order and
    repeats, integers ignore leading zeros. Everything else compares as written.
    """
    if first == second:
        return True
    base, _appends = _split_key(key)
    if base in BOOL_SETTINGS:
        return (first in _TRUE and second in _TRUE) or (first in _FALSE and second in _FALSE)
    if base in SET_SETTINGS:
        return set(_tokenize(first)) == set(_tokenize(second))
    if base in INT_SETTINGS:
        return first.isdigit() and second.isdigit() and first.isascii() and second.isascii() and int(first) == int(second)
    return False


def _check_text(value):
    """Refuse what no file can carry as written: NUL, and strings that are not Unicode (surrogates)."""
    if "\x00" in value:
        raise ValueError("value %r contains a NUL character, which Nix cannot read from a file" % (value,))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("value %r is not valid UTF-8 text" % (value,)) from None


def to_nix_value(value):
    """Render a Python value the way nix.conf spells it.

    bool -> ``true``/``false``, int -> decimal, list/tuple -> items joined by
    one space, str -> unchanged.  A value Nix cannot read back unchanged
    (``#``, a line break, a list item with whitespace) raises ValueError.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if isinstance(item, (list, tuple, dict)):
                raise ValueError("list item %r is itself a list or dict; a nix.conf list holds words" % (item,))
            text = to_nix_value(item)
            if not text or _tokenize(text) != [text]:
                raise ValueError("list item %r is empty or contains whitespace; nix.conf lists are separated by whitespace" % (item,))
            items.append(text)
        return " ".join(items)
    if isinstance(value, str):
        if "#" in value:
            raise ValueError("value %r contains '#', which starts a comment in nix.conf; Nix would cut the value there" % (value,))
        if "\n" in value or "\r" in value:
            raise ValueError("value %r contains a line break; nix.conf has no line continuations" % (value,))
        _check_text(value)
        read = " ".join(_tokenize(value))
        if read != value:
            raise ValueError("value %r would be read by Nix as %r: nix.conf splits a value into words on spaces and tabs "
                             "and joins them with one space (no leading, trailing, doubled or tab whitespace)" % (value, read))
        return value
    raise ValueError("cannot write a %s as a nix.conf value (use a string, integer, boolean or list): %r" % (type(value).__name__, value))


class _Line:
    """One line of the file: its raw text (without ``\\n``) and what it means to Nix."""

    __slots__ = ("raw", "key", "value", "include")

    def __init__(self, raw, key=None, value=None, include=None):
        self.raw = raw
        self.key = key          # setting name as written, or None
        self.value = value      # value with whitespace collapsed
        self.include = include  # (optional, path) for include lines


def _parse_line(raw, number, source):
    content = raw.split("#", 1)[0]
    tokens = _tokenize(content)
    if not tokens:
        return _Line(raw)
    shown = redact(content.strip(_WHITESPACE))  # quoted in messages: no credential in them
    if len(tokens) < 2:
        raise NixConfError("syntax error in configuration line %r: expected 'name = value' (a lone word is not a setting)" % shown,
                           line=number, source=source)
    if tokens[0] in _INCLUDE_KEYWORDS:
        if len(tokens) != 2:
            raise NixConfError("illegal configuration line %r: %s takes exactly one path" % (shown, tokens[0]), line=number, source=source)
        return _Line(raw, include=(tokens[0] == "!include", tokens[1]))
    if tokens[1] != "=":
        raise NixConfError("syntax error in configuration line %r: expected 'name = value' with spaces around '='" % shown,
                           line=number, source=source)
    return _Line(raw, key=tokens[0], value=" ".join(tokens[2:]))


def _assignment_text(key, value):
    return "%s = %s" % (key, value) if value else "%s =" % key


class NixConf:
    """A parsed nix.conf that can be edited while keeping unrelated bytes intact.

    Semantics of the editing methods:

    * ``get(NAME)`` is the value Nix computes from this file alone (includes
      not followed): aliases resolved, last assignment wins, and for list
      settings the ``extra-NAME`` values that follow the last ``NAME`` line
      appended.  When only ``extra-NAME`` lines exist the result is those
      values alone: Nix would append them to the built-in default, which this
      file does not know.  ``get("extra-NAME")`` returns just the appended
      part that is in effect (``extra-`` lines after the last ``NAME`` line).
      None when nothing assigns the setting.  Set-typed settings are returned
      in file order, duplicates kept.
    * ``set(NAME, value)`` makes the file's own assignment of NAME equal to
      value and returns whether the text changed.  The last line assigning
      NAME (or an alias) is rewritten in place as ``NAME = value`` (keeping
      its indentation and trailing comment).  Earlier assignments are kept:
      the last one wins, so they are harmless, and keeping them makes an edit
      touch one line.  ``extra-NAME`` lines are not touched by ``set(NAME)``.
      A new ``NAME`` line goes before the first ``extra-NAME`` line (so it
      does not discard it, NixOS/nix#9487), otherwise at the end.
    * ``set("extra-NAME", value)`` makes the appended part equal to value:
      it rewrites the last effective ``extra-NAME`` line and removes the other
      effective ones (they would append too); new lines go at the end, which
      is after every ``NAME`` line.  Refused for settings that are not lists.
    * ``unset(NAME)`` removes every line assigning NAME, its aliases and its
      ``extra-`` form; ``unset("extra-NAME")`` removes only the ``extra-``
      lines.
    """

    def __init__(self, lines, source="nix.conf", newline="\n"):
        self._lines = lines
        self.source = source
        # Line ending for lines we add ("\r" is kept inside the raw line, since Nix splits on "\n").
        self._eol_cr = newline == "\r\n"

    @classmethod
    def parse(cls, text, *, source="nix.conf"):
        """Parse ``text``; raise NixConfError naming ``source`` and the line on a syntax error."""
        if not isinstance(text, str):
            raise TypeError("nix.conf text must be str, not %s" % type(text).__name__)
        lines = [_parse_line(raw, number, source) for number, raw in enumerate(text.split("\n"), 1)]
        newline = "\r\n" if text.count("\r\n") * 2 > text.count("\n") else "\n"
        return cls(lines, source=source, newline=newline)

    def render(self):
        """Return the text of the document."""
        return "\n".join(line.raw for line in self._lines)

    def includes(self):
        """Return ``(optional, path)`` for each include line, in file order (``!include`` is optional)."""
        return [line.include for line in self._lines if line.include is not None]

    def include_lines(self):
        """Return ``(line_number, optional, path)`` for each include line, in file order (1-based line numbers)."""
        return [(number, line.include[0], line.include[1])
                for number, line in enumerate(self._lines, 1) if line.include is not None]

    def overriding_lines(self, key):
        """1-based numbers of the lines that set ``key`` outright (an alias included), discarding
        any value before them: for ``extra-NAME`` those are the plain ``NAME`` lines too."""
        base, _appends = _split_key(key)
        return [number for number, line in enumerate(self._lines, 1)
                if line.key is not None and _split_key(line.key) == (base, False)]

    def assignment_lines(self, key):
        """1-based numbers of the lines that assign ``key`` (an alias or its ``extra-`` form included)."""
        base, _appends = _split_key(key)
        return [number for number, line in enumerate(self._lines, 1)
                if line.key is not None and _split_key(line.key)[0] == base]

    def meaning(self):
        """What Nix reads from the file, in order: ``(key, value)`` per assignment and ``(optional, path)``
        per include; comments, blank lines and spacing left out."""
        return [line.include if line.include is not None else (line.key, line.value)
                for line in self._lines if line.key is not None or line.include is not None]

    # -- queries -----------------------------------------------------------

    def _indexes(self, base, appends):
        """Indexes of lines that assign ``base`` itself (appends=False) or append to it (appends=True)."""
        return [index for index, line in enumerate(self._lines)
                if line.key is not None and _split_key(line.key) == (base, appends)]

    def _effective_extras(self, base):
        base_lines = self._indexes(base, False)
        last_base = base_lines[-1] if base_lines else -1
        return [index for index in self._indexes(base, True) if index > last_base]

    def _joined(self, indexes):
        return " ".join(self._lines[index].value for index in indexes if self._lines[index].value)

    def get(self, key):
        """Return the effective value of ``key`` in this file (see the class docstring), or None."""
        base, appends = _split_key(key)
        extras = self._effective_extras(base) if base in LIST_SETTINGS else []
        if appends:
            return self._joined(extras) if extras else None
        base_lines = self._indexes(base, False)
        if not base_lines and not extras:
            return None
        parts = ([self._lines[base_lines[-1]].value] if base_lines else []) + [self._lines[index].value for index in extras]
        return " ".join(part for part in parts if part)

    # -- edits -------------------------------------------------------------

    def _check_key(self, key):
        if not isinstance(key, str) or not key or _tokenize(key) != [key] or "#" in key or "\n" in key or key == "=":
            raise NixConfError("invalid setting name %r: it must be one word without whitespace or '#'" % (key,), source=self.source)
        if key in _INCLUDE_KEYWORDS:
            raise NixConfError("%r is not a setting; include lines are not managed by set/unset" % key, source=self.source)

    def _check_appendable(self, key):
        canonical = canonical_key(key)
        if not canonical.startswith(_EXTRA) or canonical in LIST_SETTINGS or _split_key(canonical)[1]:
            return
        base = canonical[len(_EXTRA):]
        if base == "builders":
            raise NixConfError("refusing to write %r: 'builders' is a string setting, not a list, so Nix has no 'extra-builders' "
                               "(it ignores the line with an \"unknown setting\" warning); set 'builders' itself, or list the "
                               "machines in the machines file it points to" % key, source=self.source)
        raise NixConfError("refusing to write %r: %r is not a list setting, so Nix does not append with 'extra-%s' "
                           "(it would ignore the line as an unknown setting); set %r itself" % (key, base, base, base),
                           source=self.source)

    def _new_line(self, key, value):
        return _Line(_assignment_text(key, value) + ("\r" if self._eol_cr else ""), key=key, value=value)

    def _append_index(self):
        # A text ending in "\n" splits into a final empty string; new lines go before it.
        if self._lines and self._lines[-1].raw == "":
            return len(self._lines) - 1
        return len(self._lines)

    def _rewrite(self, index, key, value):
        """Replace the assignment on line ``index``, keeping indentation, trailing whitespace and comment."""
        line = self._lines[index]
        content, hash_mark, comment = line.raw.partition("#")
        body = content.lstrip(_WHITESPACE)
        indent = content[:len(content) - len(body)]
        stripped = body.rstrip(_WHITESPACE)
        trailing = body[len(stripped):]
        raw = indent + _assignment_text(key, value) + trailing + hash_mark + comment
        self._lines[index] = _Line(raw, key=key, value=value)

    def set(self, key, value):
        """Assign ``value`` (str, or anything ``to_nix_value`` accepts) to ``key``; return True if the text changed."""
        self._check_key(key)
        self._check_appendable(key)
        try:
            value = " ".join(_tokenize(to_nix_value(value)))
        except ValueError as exc:
            raise NixConfError("setting %r: %s" % (key, exc), source=self.source) from None
        base, appends = _split_key(key)
        if appends:
            extras = self._effective_extras(base)
            if extras and same_value(base, self._joined(extras), value):
                # Already appended (possibly by several lines that add up to it): nothing changes for Nix.
                return False
            if not extras:
                self._lines.insert(self._append_index(), self._new_line(key, value))
                return True
            self._rewrite(extras[-1], key, value)
            for index in reversed(extras[:-1]):
                del self._lines[index]
            return True
        base_lines = self._indexes(base, False)
        if base_lines:
            last = base_lines[-1]
            if same_value(base, self._lines[last].value, value):
                return False
            self._rewrite(last, key, value)
            return True
        appenders = self._indexes(base, True) if base in LIST_SETTINGS else []
        position = appenders[0] if appenders else self._append_index()
        self._lines.insert(position, self._new_line(key, value))
        return True

    def unset(self, key):
        """Remove every line assigning ``key``, its aliases and its ``extra-`` form; return True if the text changed."""
        self._check_key(key)
        base, appends = _split_key(key)
        if appends:
            doomed = set(self._indexes(base, True))
        else:
            doomed = set(self._indexes(base, False)) | set(self._indexes(base, True))
            # extra-NAME for a non-list NAME (e.g. extra-builders) is junk Nix ignores; it goes with NAME.
            doomed |= set(self._indexes(_EXTRA + base, False))
        if not doomed:
            return False
        self._lines = [line for index, line in enumerate(self._lines) if index not in doomed]
        return True

    # -- list items --------------------------------------------------------

    def _list_key(self, key):
        """``(base, appends)`` of a key whose items ``edit_list`` may edit; NixConfError otherwise."""
        self._check_key(key)
        self._check_appendable(key)
        base, appends = _split_key(key)
        if base not in LIST_SETTINGS:
            raise NixConfError("%r is not a list setting, so it has no items to add or remove; set it with 'settings'" % key,
                               source=self.source)
        return base, appends

    def _list_indexes(self, base, appends):
        """Lines whose items make up the value ``edit_list`` works on: for ``extra-NAME`` the effective
        ``extra-`` lines, for ``NAME`` the last ``NAME`` line (an alias included) and the effective
        ``extra-`` lines after it."""
        extras = self._effective_extras(base)
        if appends:
            return extras
        base_lines = self._indexes(base, False)
        return base_lines[-1:] + extras

    def list_value(self, key):
        """The items of ``key`` as Nix reads them from this file (see ``edit_list``), in file order."""
        base, appends = self._list_key(key)
        return [item for index in self._list_indexes(base, appends) for item in _tokenize(self._lines[index].value)]

    def managed_items(self, marker):
        """Every marker comment (``# MARKER manages NAME: ITEM ...``) in the file, as
        ``{canonical NAME: [ITEM, ...]}`` (several comments for one setting are joined)."""
        managed = {}
        for line in self._lines:
            parsed = _parse_marker(line.raw, marker)
            if parsed is not None:
                name = _marker_name(parsed[0])
                managed.setdefault(name, [])
                managed[name].extend(item for item in parsed[1] if item not in managed[name])
        return managed

    def _remove_items(self, index, doomed):
        """Drop the items in ``doomed`` from line ``index`` keeping the rest of the line byte for byte;
        delete the line when no item is left.  Return True if the line changed."""
        line = self._lines[index]
        content, hash_mark, comment = line.raw.partition("#")
        spans = _token_spans(content)
        if not any(content[start:end] in doomed for start, end in spans[2:]):
            return False
        kept = [span for span in spans[2:] if content[span[0]:span[1]] not in doomed]
        if not kept:
            del self._lines[index]
            return True
        pieces = []
        position = 0
        previous_end = spans[1][1]
        for start, end in spans[2:]:
            if content[start:end] in doomed:
                pieces.append(content[position:previous_end])
                position = end
            previous_end = end
        pieces.append(content[position:])
        self._lines[index] = _parse_line("".join(pieces) + hash_mark + comment, 0, self.source)
        return True

    def _append_items(self, index, items):
        """Add ``items`` after the last item of line ``index`` (before its trailing whitespace and comment)."""
        raw = self._lines[index].raw
        content, hash_mark, comment = raw.partition("#")
        end = _token_spans(content)[-1][1]
        line = _parse_line(content[:end] + "".join(" " + item for item in items) + content[end:] + hash_mark + comment,
                           0, self.source)
        self._lines[index] = line
        return line

    def edit_list(self, key, present=(), absent=(), marker=None, adopt=(), keep=()):
        """Make the items in ``present`` part of the list value of ``key`` and drop those in ``absent``.

        The value is what Nix reads from this file: for ``NAME`` (or an alias) the last ``NAME``
        line and the ``extra-NAME`` lines in effect after it, for ``extra-NAME`` the effective
        ``extra-NAME`` lines alone.  Missing items are appended, in the given order, to the last
        ``NAME`` line (to the last effective ``extra-NAME`` line for the ``extra-`` form); when
        there is none a line is added where ``set`` would add it.  Every other item keeps its
        place and spelling, and the rest of each line (indentation, spacing, comment) is kept.  A
        line left without items is removed (for ``NAME`` an earlier ``NAME`` line, or Nix's default,
        then applies, and is edited too when it holds an item to remove).

        With ``marker``, the items this method added are recorded in a comment line
        ``# MARKER manages NAME: ITEM ...`` (NAME canonical, directly above the line they were
        added to; found again wherever it is).  Recorded items that are not in ``present`` any more
        are removed like ``absent`` ones; items the comment does not record are never removed
        unless listed in ``absent``.  The comment is rewritten when the recorded items change and
        removed when none are left.  Items of ``adopt`` (a subset of ``present``) are recorded even
        when the list already had them.  Recorded items that match one of the shell-style patterns
        of ``keep`` (``fnmatch``, case-sensitive) and are in neither ``present`` nor ``absent`` stay in
        the list and in the record: they belong to someone this run knows nothing about.  When the
        recorded items are the same as before, the comment keeps their order.

        Returns ``{"added": [...], "removed": [...], "items": [...], "managed": [...]}``.
        """
        base, appends = self._list_key(key)
        present = _dedupe(_check_items(key, present, "present", self.source))
        absent = _dedupe(_check_items(key, absent, "absent", self.source))
        both = [item for item in present if item in absent]
        if both:
            raise NixConfError("%s: item %r is both in present and absent" % (key, both[0]), source=self.source)
        name = _marker_name(key)
        comments = []
        recorded = []
        if marker is not None:
            check_marker(marker)
            for line in self._lines:
                parsed = _parse_marker(line.raw, marker)
                if parsed is not None and _marker_name(parsed[0]) == name:
                    comments.append(line)
                    recorded.extend(item for item in parsed[1] if item not in recorded)
        before = self.list_value(key)
        kept = [item for item in recorded if item not in present and item not in absent
                if any(fnmatch.fnmatchcase(item, pattern) for pattern in keep)]
        doomed = set(absent) | set(item for item in recorded if item not in present and item not in kept)
        # Removing the last NAME line brings an earlier one into effect: go on until nothing is left to remove.
        while any(self._remove_items(index, doomed) for index in reversed(self._list_indexes(base, appends))):
            pass
        current = self.list_value(key)
        removed = [item for item in _dedupe(before) if item in doomed and item not in current]

        added = [item for item in present if item not in current]
        target = None
        if added:
            indexes = self._indexes(base, False)[-1:] if not appends else self._effective_extras(base)
            if indexes:
                target = self._append_items(indexes[-1], added)
            else:
                target = self._new_line(key, " ".join(added))
                appenders = self._indexes(base, True) if not appends else []
                self._lines.insert(appenders[0] if appenders else self._append_index(), target)
        after = self.list_value(key)

        managed = []
        if marker is not None:
            managed = [item for item in present if item in after and (item in recorded or item in added or item in adopt)]
            managed += [item for item in kept if item in after]
            if set(managed) == set(recorded):
                managed = list(recorded)
            if target is None and managed and not comments:
                # Only adopted items: the comment goes above the last line that holds one of them.
                holders = [index for index in self._list_indexes(base, appends)
                           if any(item in self._lines[index].value.split() for item in managed)]
                target = self._lines[holders[-1]] if holders else None
            self._record(comments, marker, name, managed, target)
        return {"added": added, "removed": removed, "items": after, "managed": managed}

    def _record(self, comments, marker, name, managed, target):
        """Write the marker comment for ``name`` (see ``edit_list``)."""
        if not managed:
            self._lines = [line for line in self._lines if not any(line is comment for comment in comments)]
            return
        text = "# %s manages %s: %s" % (marker, name, " ".join(managed))
        if comments:
            first = comments[0]
            if _parse_marker(first.raw, marker) != (name, managed):
                cr = "\r" if first.raw.endswith("\r") else ""
                index = next(index for index, line in enumerate(self._lines) if line is first)
                indent = first.raw[:len(first.raw) - len(first.raw.lstrip(_WHITESPACE))]
                self._lines[index] = _Line(indent + text + cr)
            self._lines = [line for line in self._lines if not any(line is comment for comment in comments[1:])]
            return
        index = next(index for index, line in enumerate(self._lines) if line is target)
        self._lines.insert(index, _Line(text + ("\r" if self._eol_cr else "")))


def _token_spans(content):
    """``(start, end)`` of each token of ``content`` (text without its comment), split as Nix splits."""
    spans = []
    start = None
    for position, char in enumerate(content):
        if char in _WHITESPACE:
            if start is not None:
                spans.append((start, position))
                start = None
        elif start is None:
            start = position
    if start is not None:
        spans.append((start, len(content)))
    return spans


def _dedupe(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _marker_name(key):
    """The setting name a marker comment uses for ``key``: aliases resolved."""
    base, appends = _split_key(key)
    return _EXTRA + base if appends else base


def check_item(item):
    """Refuse a list item Nix would not read back as one word: not a string, empty, whitespace, '#', NUL."""
    if not isinstance(item, str):
        raise ValueError("item %r is a %s, not a string" % (item, type(item).__name__))
    if not item:
        raise ValueError("an item is empty")
    if "#" in item:
        raise ValueError("item %r contains '#', which starts a comment in nix.conf" % (item,))
    if any(char in _WHITESPACE or char.isspace() for char in item):
        raise ValueError("item %r contains whitespace; nix.conf list items are single words" % (item,))
    _check_text(item)
    return item


def _check_items(key, items, field, source):
    if items is None:
        return []
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise NixConfError("%s.%s must be a list of items, not %r" % (key, field, items), source=source)
    try:
        return [check_item(item) for item in items]
    except ValueError as exc:
        raise NixConfError("%s.%s: %s" % (key, field, exc), source=source) from None


def check_marker(marker):
    """Refuse a marker that would not survive as the text of one comment line."""
    if not isinstance(marker, str) or not marker.strip(_WHITESPACE):
        raise ValueError("managed_marker %r must be a non-empty string" % (marker,))
    if "#" in marker or "\n" in marker or "\r" in marker:
        raise ValueError("managed_marker %r must not contain '#' or a line break" % (marker,))
    if marker != marker.strip(_WHITESPACE) or any(char.isspace() and char != " " for char in marker):
        raise ValueError("managed_marker %r must not start or end with whitespace, nor contain a tab" % (marker,))
    _check_text(marker)
    return marker


def _parse_marker(raw, marker):
    """``(NAME, [ITEM, ...])`` when ``raw`` is the marker comment ``# MARKER manages NAME: ITEM ...``, else None."""
    body = raw.strip(_WHITESPACE)
    if not body.startswith("#"):
        return None
    body = body[1:].lstrip(_WHITESPACE)
    prefix = marker + " manages "
    if not body.startswith(prefix):
        return None
    name, colon, items = body[len(prefix):].partition(":")
    if not colon or not name or _tokenize(name) != [name]:
        return None
    return name, _tokenize(items)
