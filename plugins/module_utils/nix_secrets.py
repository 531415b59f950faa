# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credentials in nix.conf and builders text, found so that Ansible can mask them (no_log_values).

Which settings carry a credential was read in Nix's own settings (NixOS/nix 2.34.0, every
``Setting<...>`` in src/): only ``access-tokens`` (src/libfetchers/include/nix/fetchers/fetch-settings.hh,
a StringMap of ``host=token`` pairs) holds one outright. ``impure-env``
(src/libstore/include/nix/store/local-settings.hh, a StringMap of ``NAME=value`` environment
variables for fixed-output derivations) is how proxy credentials and fetchers' passwords such as
``NIX_GITHUB_PRIVATE_PASSWORD`` reach a build, so its values are treated as credentials too.
``netrc-file``, ``secret-key-files``, ``ssl-cert-file`` and the store settings ``secret-key``,
``secret-keys`` and ``ssh-key`` are paths to secrets, not secrets, and are shown as they are.

Any setting whose value holds URLs (``substituters``, ``trusted-substituters``, ``builders``,
``nix-path``, ``flake-registry``, ``hashed-mirrors``, ``allowed-uris`` ...) can embed a password as
``scheme://user:password@host``; the password part of every such URL, anywhere in the text, is a
credential as well.
"""

from __future__ import annotations

import re

# Strings shorter than this are not registered for masking: Ansible masks every occurrence of a
# registered string anywhere in the output, so a one-letter item would garble every path and
# message (and a credential that short protects nothing).
MIN_MASKED_LENGTH = 4

# Settings whose whole value is made of credentials (with their extra- forms).
SECRET_SETTINGS = ("access-tokens", "impure-env")
SECRET_KEYS = frozenset(name for base in SECRET_SETTINGS for name in (base, "extra-" + base))

# scheme://user:password@ : the password is everything between the first ':' of the user info
# and the '@' that ends it (no '/', '?', '#' or whitespace in between).
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:([^\s/?#@]+)@")
_SPACE = re.compile(r"[ \t\r\n]+")


def url_passwords(text):
    """The passwords of every ``scheme://user:password@`` URL in ``text`` (any length: ``redact`` replaces them in place)."""
    return {match.group(1) for match in _URL_PASSWORD.finditer(text)}


def _value_pieces(value):
    """The value itself, each whitespace-separated item and the part of each item after '='."""
    pieces = set()
    stripped = value.strip(" \t\r\n")
    if stripped:
        pieces.add(stripped)
    for item in _SPACE.split(stripped):
        if item:
            pieces.add(item)
            token = item.partition("=")[2]
            if token:
                pieces.add(token)
    return pieces


def _secret_line_value(line):
    """For a line assigning a secret setting (however badly spelled: ``access-tokens=x`` is a
    syntax error whose message would quote the line), the text after the name, else None."""
    body = line.lstrip(" \t\r")
    for key in SECRET_KEYS:
        if body.startswith(key):
            rest = body[len(key):]
            if rest[:1] in ("", " ", "\t", "\r", "="):
                rest = rest.lstrip(" \t\r")
                return rest[1:] if rest.startswith("=") else rest
    return None


def secret_values(texts=(), settings=None):
    """Every credential string in the given nix.conf (or builders) texts and a task's settings dict.

    The strings are whole values, each item and each token after '=' (``host=token``), the text
    after a '#' on a secret line (a token Nix would cut there), and the password of every URL.
    """
    values = set()
    for text in texts:
        if not text:
            continue
        values |= url_passwords(text)
        for line in text.split("\n"):
            rest = _secret_line_value(line)
            if rest is None:
                continue
            value, _hash, comment = rest.partition("#")
            values |= _value_pieces(value)
            words = _SPACE.split(value.strip(" \t\r"))
            after = _SPACE.split(comment.strip(" \t\r"))
            if _hash and words[-1] and after[0] and not value[-1:].isspace() and not comment[:1].isspace():
                # Nix cuts a value at '#': the rest of a token glued to it is still part of the credential.
                values |= _value_pieces(words[-1] + "#" + after[0])
                values.add(after[0])
    for key, value in (settings or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            text = " ".join(str(item) for item in value)
        elif isinstance(value, dict):
            text = " ".join("%s=%s" % item for item in value.items())
        else:
            text = str(value)
        values |= url_passwords(text)
        if key in SECRET_KEYS:
            values |= _value_pieces(text)
            if isinstance(value, (list, tuple)):
                for item in value:
                    values |= _value_pieces(str(item))
    return {value for value in values if len(value) >= MIN_MASKED_LENGTH}


def redact(line):
    """``line`` as it may be quoted in a message: the value of a secret setting and every URL
    password replaced by ``********``."""
    for password in sorted(url_passwords(line), key=len, reverse=True):
        line = line.replace(password, "********")
    rest = _secret_line_value(line)
    if rest is not None and rest.strip(" \t\r"):
        line = line[:len(line) - len(rest)] + (" " if rest[:1] in (" ", "\t") else "") + "********"
    return line


# In a Nix expression (a NixOS module): `access-tokens = "..."`, `= [ "..." ... ]` or `= { A = "..."; }`.
_NIX_SECRET = re.compile(r'(?:"?(?:extra-)?(?:access-tokens|impure-env)"?)\s*=\s*(\[[^\]]*\]|\{[^}]*\}|"(?:[^"\\]|\\.)*")')
_NIX_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def nix_expression_secrets(text):
    """Credentials in a Nix expression as nixos_module writes it: the strings assigned to
    access-tokens or impure-env (and their extra- forms), and every URL password."""
    values = set(url_passwords(text))
    for match in _NIX_SECRET.finditer(text):
        for string in _NIX_STRING.findall(match.group(1)):
            values |= _value_pieces(string)
    return {value for value in values if len(value) >= MIN_MASKED_LENGTH}
