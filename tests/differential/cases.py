# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hypothesis strategies for machines texts and nix.conf trees, nasty corners included.

Machines: comments (with ';' and entry-like text in them), '#' glued to tokens, tabs, CR,
trailing backslashes, blank and whitespace-only lines and entries, ';' separators, 1 to 10
columns, ports, query parameters, special store words, local paths, `-` placeholders, float and
out-of-range numbers, comma lists with empty items, base64 host keys (good, unpadded, URL-safe,
garbage after '='), `@file` references (nested, indented, missing, with a space after '@'),
very long lines, non-ASCII.

nix.conf: settings of every type, aliases, `extra-` forms (of list settings, of non-list
settings, `extra-extra-platforms`), unknown settings, comments and '#' inside values, tabs, CR,
trailing backslashes, blank lines, `include`/`!include` (relative, in a subdirectory, missing),
the syntax errors Nix reports, very long values, non-ASCII.
"""

from __future__ import annotations

import base64

from hypothesis import strategies as st

# ------------------------------------------------------------------ machines

SPACE = st.sampled_from([" ", " ", " ", "\t", "  ", " \t ", "\t\t"])
PAD = st.sampled_from(["", "", "", " ", "\t", "  ", " \r"])

_USERS = ["", "", "nix@", "root@", "build-user@", "u_1@", "ü@"]
_HOSTS = ["builder", "b1.example.com", "127.0.0.1", "[::1]", "x86_64-linux", "hóst", "h-2", "BUILDER"]
_PORTS = ["", "", "", ":22", ":2222", ":ssh"]
_QUERIES = ["", "", "", "?remote-program=/nix/var/nix/profiles/default/bin/nix-daemon",
            "?compress=true", "?max-connections=4&compress=true", "?remote-store=/tmp/x"]
_SCHEMES = ["", "", "ssh://", "ssh-ng://"]
_SPECIAL_STORES = ["auto", "daemon", "local", "local?root=/tmp/diff-root", "/tmp/diff-store", "?x=1",
                   "auto?x=1", "x86_64-linux"]


@st.composite
def store_uri(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(_SPECIAL_STORES))
    uri = draw(st.sampled_from(_SCHEMES)) + draw(st.sampled_from(_USERS)) + draw(st.sampled_from(_HOSTS))
    uri += draw(st.sampled_from(_PORTS)) + draw(st.sampled_from(_QUERIES))
    if draw(st.integers(0, 19)) == 0:
        uri += "\\"  # a trailing backslash is no line continuation
    return uri


def _comma_list(pool):
    item = st.sampled_from(pool)
    return st.lists(item, min_size=1, max_size=4).map(",".join)


SYSTEMS = st.one_of(st.just("-"), _comma_list(["x86_64-linux", "aarch64-linux", "i686-linux", "builtin", "",
                                               "x86_64-linux"]))
FEATURES = st.one_of(st.just("-"), _comma_list(["kvm", "big-parallel", "benchmark", "nixos-test", "uid-range",
                                                "", "fé"]))
SSH_KEY = st.sampled_from(["-", "-", "/root/.ssh/id_ed25519", "/etc/nix/builder key"[:17], "relative/key"])
MAX_JOBS = st.sampled_from(["-", "1", "4", "0", "08", "+3", "-1", "4294967295", "4294967296", "eight", "1.5",
                            "18446744073709551616"])
SPEED = st.sampled_from(["-", "1", "2", "0", "1.5", "0.0", "-3", "-0", ".5", "1.", "1e3", "1e50", "1e-50",
                         "inf", "nan", "+2", "0x10", "3.40282347e+38", "4e38", "three"])


@st.composite
def host_key(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return "-"
    if kind <= 5:
        data = draw(st.binary(min_size=1, max_size=40))
        text = base64.b64encode(data).decode()
        return text.rstrip("=") if draw(st.booleans()) else text
    return draw(st.sampled_from(["QUJD", "QUJD=", "QUJD==junk-_", "QU-D", "BAD_BASE64", "Q", "QQ", "QQ==", "c3No+/8="]))


@st.composite
def machine_entry(draw):
    columns = (store_uri(), SYSTEMS, SSH_KEY, MAX_JOBS, SPEED, FEATURES, FEATURES, host_key())
    # The column count first: only the columns written are drawn (a long run draws millions).
    tokens = [draw(column) for column in columns[:draw(st.integers(1, 8))]]
    if len(tokens) == 8 and draw(st.integers(0, 9)) == 0:
        tokens += ["extra", "columns"]
    text = ""
    for index, token in enumerate(tokens):
        text += (draw(SPACE) if index else "") + token
    return draw(PAD) + text + draw(PAD)


def file_reference(paths):
    return st.builds(lambda spacing, path: "@" + spacing + path, st.sampled_from(["", "", " "]), st.sampled_from(paths))


_COMMENTS = ["# a comment", "#", "# note ; nix@hidden", "#; ; ", "# x86_64-linux ; @/etc/nix/machines",
             "# ünïcode", "#" + "long comment " * 40]


@st.composite
def machines_line(draw, references=()):
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return ""
    if kind == 1:
        return draw(st.sampled_from([" ", "\t", "  \t", "\r", " ; ", ";;;", " ; ; "]))
    pieces = []
    for _piece in range(draw(st.integers(1, 3)) if kind != 2 else 60):
        if references and draw(st.integers(0, 5)) == 0:
            pieces.append(draw(PAD) + draw(file_reference(references)) + draw(PAD))
        else:
            pieces.append(draw(machine_entry()))
        if draw(st.integers(0, 9)) == 0:
            pieces.append(draw(st.sampled_from(["", " ", "\t"])))  # blank entry between ';'
    line = ";".join(pieces)
    if draw(st.integers(0, 3)) == 0:
        line += draw(st.sampled_from(["", " ", "\t"])) + draw(st.sampled_from(_COMMENTS))
    elif draw(st.integers(0, 9)) == 0:
        line = draw(PAD) + draw(st.sampled_from(_COMMENTS))
    if draw(st.integers(0, 9)) == 0:
        line += "\r"
    return line


@st.composite
def machines_text(draw, references=()):
    lines = draw(st.lists(machines_line(references), min_size=0, max_size=5))
    text = "\n".join(lines)
    if lines and draw(st.booleans()):
        text += "\n"
    return text


@st.composite
def machines_case(draw, directory):
    """(builders value, {absolute path: text}) with up to two machines files in `directory`.

    File 1 may reference file 2 (never the other way: Nix has no cycle check and would
    overflow its stack); `missing` is never written.
    """
    first, second, missing = (directory + "/" + name for name in ("machines-1", "machines-2", "missing"))
    files = {}
    if draw(st.booleans()):
        files[second] = draw(machines_text())
        files[first] = draw(machines_text(references=(second, missing)))
    references = tuple(sorted(files)) + (missing,)
    return draw(machines_text(references=references)), files


# ------------------------------------------------------------------ nix.conf

INT_SETTINGS = ["max-jobs", "cores", "max-silent-time", "timeout", "connect-timeout", "build-max-jobs", "build-cores",
                "build-timeout", "build-max-silent-time"]
BOOL_SETTINGS = ["builders-use-substitutes", "keep-outputs", "keep-derivations", "fallback", "require-sigs",
                 "build-use-substitutes", "gc-keep-outputs", "gc-keep-derivations", "build-fallback", "substitute"]
STRING_SETTINGS = ["builders", "build-users-group"]
LIST_SETTINGS = ["trusted-users", "allowed-users", "substituters", "trusted-substituters", "trusted-public-keys",
                 "system-features", "extra-platforms", "secret-key-files", "binary-caches", "binary-cache-public-keys",
                 "trusted-binary-caches", "hashed-mirrors", "allowed-uris"]
OTHER_KEYS = ["no-such-setting", "extra-builders", "extra-max-jobs", "extra-extra-platforms", "extra-binary-caches",
              "extra-no-such-setting"]

_WORDS = ["root", "@wheel", "nix", "bob", "https://cache.example.org", "cache:AAAA+/=", "x86_64-linux", "kvm",
          "/var/keys/k", "ünï", "a\\", "*"]


_STORE_WORDS = ["https://cache.example.org", "https://c2.example.org/x?priority=10", "file:///tmp/cache", "daemon"]
_STORE_SETTINGS = ("substituters", "trusted-substituters", "binary-caches", "trusted-binary-caches")


def _value_for(key):
    base = key[len("extra-"):] if key.startswith("extra-") and key[len("extra-"):] in LIST_SETTINGS else key
    if base in _STORE_SETTINGS:
        return st.lists(st.sampled_from(_STORE_WORDS), max_size=3).map(" ".join)
    if base in INT_SETTINGS:
        return st.sampled_from(["0", "1", "4", "16", "007", "3600"])
    if base in BOOL_SETTINGS:
        return st.sampled_from(["true", "false"])
    if base == "builders":
        return st.sampled_from(["", "@/etc/nix/machines", "nix@b x86_64-linux - 4 1 ; ssh-ng://c",
                                "nix@b\tx86_64-linux", "a\\"])
    if base in STRING_SETTINGS:
        return st.sampled_from(["nixbld", "", "nix bld"])
    return st.lists(st.sampled_from(_WORDS), max_size=4).map(" ".join)


@st.composite
def conf_assignment(draw):
    key = draw(st.sampled_from(INT_SETTINGS + BOOL_SETTINGS + STRING_SETTINGS + LIST_SETTINGS + OTHER_KEYS
                               + ["extra-" + name for name in LIST_SETTINGS]))
    value = draw(_value_for(key))
    value = value.replace(" ", draw(SPACE))
    eq = draw(st.sampled_from([" = ", " = ", "\t=\t", "  =  ", " =\t"]))
    line = draw(PAD) + key + eq + value
    if not value and draw(st.booleans()):
        line = line.rstrip(" \t")
    if draw(st.integers(0, 4)) == 0:
        line += draw(st.sampled_from([" # comment", "# glued", "#x = y", " # ünï ; x"]))
    if draw(st.integers(0, 29)) == 0 and (key in OTHER_KEYS or key in ("builders", "trusted-users", "allowed-users")):
        line += " " + "w" * 3000  # very long value (where any word is a valid value)
    return line


_BAD_LINES = ["max-jobs=4", "max-jobs =4", "lonely", "include a b", "= 4", "!include"]


@st.composite
def conf_line(draw, includes):
    kind = draw(st.integers(0, 29))
    if kind == 0:
        line = ""
    elif kind == 1:
        line = draw(st.sampled_from([" ", "\t", "# only a comment", "  # indented comment", "\r"]))
    elif kind == 2 and includes:
        line = draw(st.sampled_from(["include", "!include"])) + draw(SPACE) + draw(st.sampled_from(includes))
    elif kind == 3 and draw(st.integers(0, 3)) == 0:
        line = draw(st.sampled_from(_BAD_LINES))
    else:
        line = draw(conf_assignment())
    if draw(st.integers(0, 9)) == 0:
        line += "\r"
    return line


@st.composite
def conf_text(draw, includes=()):
    lines = draw(st.lists(conf_line(includes), max_size=8))
    text = "\n".join(lines)
    if lines and draw(st.booleans()):
        text += "\n"
    return text


@st.composite
def conf_case(draw):
    """{path relative to the conf dir: text}: nix.conf, maybe an included file and one in conf.d/.

    Includes go one way (nix.conf -> extra.conf -> conf.d/inner.conf): a cycle makes Nix
    overflow its stack. conf.d/inner.conf names its include relative to its own directory.
    """
    files = {}
    if draw(st.booleans()):
        files["conf.d/inner.conf"] = draw(conf_text())
        files["extra.conf"] = draw(conf_text(includes=("conf.d/inner.conf", "missing.conf")))
    files["nix.conf"] = draw(conf_text(includes=tuple(name for name in files) + ("missing.conf",)))
    return files
