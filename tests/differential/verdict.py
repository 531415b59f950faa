# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare the collection's reading of a case with a real Nix's, and say why they differ.

Every case gets one verdict per release:

* ``agree``: same error-or-not, same machines (URI, systems, max jobs, features) or the same
  effective settings;
* ``legacy``: Nix < 2.29 reads it differently and ``legacy_parse_differences()`` said so;
* ``version``: a documented version difference (facts 1.5) that the collection knows elsewhere:
  before 2.20 the speed factor is an unsigned integer (``render_machine`` refuses to write a
  non-integer one for those versions); before 2.26 the store URI is a plain string, not parsed
  (the collection refuses what 2.26 and later cannot parse); 2.26 refuses an upper-case letter in
  a URL's scheme, which later releases (2.34) read; 2.34 takes any character in the user part of
  an authority whose host is a bracketed IPv6 address without a port (``ü@[::1]``, ``a^@[::1]``),
  which 2.26 refuses like any other character outside RFC 3986 (and the collection with it);
* ``value`` (nix.conf): Nix refuses a value for its setting's type, which the parser leaves to
  nix_validate (the installed Nix reads every candidate before it is written);
* ``stricter``: the collection refuses what Nix takes, on purpose: an ``inf``/``nan`` speed factor,
  or a port that is not a number before 2.34 (which refuses it; ssh cannot use it either);
* ``disagree``: anything else — a bug in the collection, or a Nix oddity to record.

What is observed of each machine is what the build hook prints (realnix.py): URI, systems, max
jobs, supported and mandatory features. Speed factor, SSH key and host key are checked only
for being accepted or rejected.

Two representation differences are normalized, not counted: Nix >= 2.26 prints the store URI
as a parsed StoreReference (query parameters sorted, ``local?x`` as ``local://?x``, ``daemon``
as ``unix://`` (2.34: ``local`` and ``daemon`` stay bare words when they have no parameters), a
path as ``local://`` + path); Nix 2.8 keeps the systems column as a list
(order and duplicates kept) which it only searches, so it is compared as a set.
"""

from __future__ import annotations

import os
import re

from ansible_collections.nix_remote.builders.plugins.module_utils import nix_conf as conf_module
from ansible_collections.nix_remote.builders.plugins.module_utils.machines import (
    MachinesFormatError,
    legacy_parse_differences,
    parse_machines,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import NixConf, NixConfError

from . import realnix

_UNSIGNED = re.compile(r"[0-9]+\Z")
# An authority of user part, "@" and a bracketed IPv6 address without a port: 2.34 does not check the user part.
_IPV6_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#]*@\[[0-9A-Fa-f:.]+\](\?.*)?$")
_BAD_CHAR = re.compile(r"character '(.)' is not allowed in a store URL")


def _ipv6_userinfo_char(message, uris):
    """The character the collection refused sits in the user part of a URI like ``ssh://ü@[::1]``."""
    bad = _BAD_CHAR.search(message)
    return bool(bad) and any(_IPV6_USERINFO.match(uri) and bad.group(1) in uri.partition("://")[2].rpartition("@")[0]
                             for uri in uris)


_NOT_A_PORT = re.compile(r"port '[^']*' is not a number")
_NOT_FINITE = re.compile(r"'[+-]?(inf|infinity|nan)' is not a number", re.I)


# ------------------------------------------------------------------ machines


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def _render_reference(uri, version):
    """How Nix >= 2.26 prints StoreReference::parse(uri) (for the URIs cases.py generates)."""
    scheme = _SCHEME.match(uri)
    rest = uri[scheme.end():] if scheme else uri
    if scheme:
        # parseURL: "scheme://authority/path" or "scheme:path" ("host:22?x=/y" is scheme "host").
        rest = rest[2:] if rest.startswith("//") else rest
    base, _q, query = rest.partition("?")
    params = {}
    for item in query.split("&") if query else ():
        name, _eq, value = item.partition("=")
        params.setdefault(name, value)
    if scheme:
        prefix = scheme.group(1) + "://" + base
    elif base in ("", "auto"):
        prefix = "auto"
    elif base == "daemon":
        # 2.34 keeps the bare word only without parameters: "daemon?x=1" is "unix://?x=1".
        prefix = "daemon" if version >= (2, 34) and not params else "unix://"
    elif base == "local":
        prefix = "local" if version >= (2, 34) and not params else "local://"
    else:
        prefix = "local://" + os.path.abspath(base)
    if params:
        prefix += "?" + "&".join("%s=%s" % (name, params[name]) for name in sorted(params))
    return prefix


def predict_machines(builders, files):
    """The collection's reading: ("error", message) or ("machines", [Machine, ...])."""
    try:
        return "machines", parse_machines(builders, (realnix.SYSTEM,))
    except MachinesFormatError as error:
        return "error", str(error)


def _observed(result, version):
    if result.error is not None:
        return "error"
    machines = []
    for uri, (systems, max_jobs, supported, mandatory) in zip(result.uris, result.rows):
        split = sorted(set(systems.split(", "))) if systems else []
        machines.append((uri, split, max_jobs, supported.split(", ") if supported else [],
                         mandatory.split(", ") if mandatory else []))
    return machines


def _expected(prediction, version):
    kind, value = prediction
    if kind == "error":
        return "error"
    return [(_render_reference(m.store_uri, version) if version >= (2, 26) else m.store_uri, sorted(m.systems),
             str(m.max_jobs), sorted(m.supported_features), sorted(m.mandatory_features)) for m in value]


def _entries(text):
    """Entries as Nix >= 2.29 splits them (for the version rule below)."""
    for line in text.split("\n"):
        for entry in line.split("#", 1)[0].split(";"):
            if entry.strip(" \t\r"):
                yield entry


def _integer_speed_only(texts):
    """False when some entry has a speed factor that Nix < 2.20 cannot read as an unsigned int."""
    for text in texts:
        for entry in _entries(text):
            tokens = entry.split()
            if len(tokens) > 4 and tokens[4] != "-" and not _UNSIGNED.match(tokens[4]):
                return False
    return True


def machines_verdict(release, builders, files, prediction, result):
    """Return (verdict, detail) for one release."""
    observed = _observed(result, release.version)
    expected = _expected(prediction, release.version)
    if observed == expected:
        return "agree", ""
    detail = "collection: %r\nnix %s: %r" % (
        prediction[1] if prediction[0] == "error" else expected, release.version_text,
        result.error if observed == "error" else observed)
    texts = [builders] + list(files.values())
    if release.version < (2, 29):
        warnings = [w for text in texts for w in legacy_parse_differences(text)]
        if warnings:
            return "legacy", detail + "\npredicted: " + "; ".join(warnings)
    if release.version < (2, 20) and not _integer_speed_only(texts) and observed == "error":
        return "version", detail + "\npredicted: speed factor is an unsigned int before Nix 2.20"
    if release.version < (2, 26) and prediction[0] == "error" and "store Nix >= 2.26 can parse" in prediction[1]:
        return "version", detail + "\npredicted: Nix < 2.26 keeps the store URI as an unparsed string"
    if (release.version > (2, 26, 3) and prediction[0] == "error" and "upper-case letter in the scheme" in prediction[1]
            and observed != "error"):
        return "version", detail + "\npredicted: Nix 2.26 refuses an upper-case scheme, later releases read it"
    if (release.version > (2, 26, 3) and prediction[0] == "error" and "is not allowed in a store URL" in prediction[1]
            and observed != "error" and _ipv6_userinfo_char(prediction[1], result.uris)):
        return "version", detail + "\npredicted: Nix 2.34 reads any user part before a bracketed IPv6 host, 2.26 refuses it"
    if prediction[0] == "error" and _NOT_FINITE.search(prediction[1]) and observed != "error":
        return "stricter", detail + "\nby design: the collection refuses an inf/nan speed factor"
    if release.version < (2, 34) and prediction[0] == "error" and _NOT_A_PORT.search(prediction[1]) and observed != "error":
        return "stricter", detail + "\nby design: a port that is not a number (2.34 refuses it, ssh cannot use it)"
    return "disagree", detail


# ------------------------------------------------------------------ nix.conf


class _Missing(Exception):
    pass


def _flatten(files, name, seen=()):
    """nix.conf with its includes expanded in place, as Nix applies them (paths relative to the file)."""
    lines = []
    conf = NixConf.parse(files[name], source=name)
    directory = os.path.dirname(name)
    for line in conf._lines:  # noqa: SLF001 (the parsed lines, includes marked)
        if line.include is None:
            lines.append(line.raw)
            continue
        optional, path = line.include
        target = os.path.normpath(os.path.join(directory, path))
        if target in files and target not in seen:
            lines.append(_flatten(files, target, seen + (name,)))
        elif not optional:
            raise _Missing("%s includes %s, which does not exist" % (name, path))
    return "\n".join(lines)


def predict_conf(files):
    """("error", message) or ("conf", NixConf of the flattened tree)."""
    try:
        return "conf", NixConf.parse(_flatten(files, "nix.conf"))
    except (NixConfError, _Missing) as error:
        return "error", str(error)


def _typed(text, default):
    if isinstance(default, bool):
        return {"true": True, "false": False}.get(text, text)
    if isinstance(default, int):
        return int(text) if text.isdigit() else text
    if isinstance(default, list):
        return text.split()
    return text


def _expected_value(conf, name, default):
    value = conf.get(name)
    if value is None:
        return default
    base_lines = conf._indexes(name, False)  # noqa: SLF001 (whether the base setting is assigned at all)
    if isinstance(default, list) and not base_lines:
        return list(default) + value.split()  # only extra- lines: they append to the default
    return _typed(value, default)


def _keys(conf):
    for line in conf._lines:  # noqa: SLF001
        if line.key is not None:
            yield conf_module._split_key(line.key)[0]  # noqa: SLF001


# Nix checks each value against its setting's type; the collection's parser does not (it keeps
# the text; nix_validate has the installed Nix read a candidate before it is written).
_VALUE_ERRORS = re.compile(r"has invalid value|Cannot parse Nix store|is not a|invalid (?:integer|Boolean)")


def conf_verdict(release, files, prediction, result):
    kind, conf = prediction
    if kind == "error" or result.error is not None:
        if kind == "error" and result.error is not None:
            return "agree", ""
        if kind != "error" and _VALUE_ERRORS.search(result.error.splitlines()[0]):
            return "value", "nix %s: %s" % (release.version_text, result.error.splitlines()[0][:300])
        return "disagree", "collection: %s\nnix %s: %s" % (conf if kind == "error" else "accepted",
                                                           release.version_text, result.error or "accepted")
    differences = []
    for name in sorted(set(_keys(conf))):
        setting = result.settings.get(name)
        if setting is None:
            continue  # a setting this Nix does not know: it warns and ignores it
        expected = _expected_value(conf, name, setting.get("defaultValue"))
        actual = setting["value"]
        if isinstance(actual, list) and isinstance(expected, list) and actual != expected:
            if len(actual) == len(set(actual)) and set(actual) == set(expected):
                continue  # a set-typed setting: Nix orders (2.34: store references by their parts) and de-duplicates
        if actual != expected:
            differences.append("%s: collection %r, nix %s %r" % (name, expected, release.version_text, actual))
    if differences:
        return "disagree", "\n".join(differences)
    return "agree", ""
