# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the kernel can run through binfmt_misc, as Nix system types.

A registration (a file under ``/proc/sys/fs/binfmt_misc`` other than ``register`` and ``status``)
reads like this (Linux's ``fs/binfmt_misc.c``, ``entry_status``)::

    enabled
    interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
    flags: POCF
    offset 0
    magic 7f454c460201010000000000000000000200b700
    mask ffffffffffffff00fffffffffffffffffeffffff

An ``M`` (magic) registration of an ELF header names the class (byte 4), the byte order (byte 5)
and the machine (bytes 18-19): that is what it interprets, whatever the entry is called.
Registrations by extension (``E``) say nothing about a system and are left out.

The ``F`` (fix-binary) flag makes the kernel open the interpreter when it is registered, so
that a process in a sandbox that cannot see the interpreter's path (Nix's build sandbox) still
runs it; without ``F`` the interpreter must be inside the sandbox (``extra-sandbox-paths``).

Pure functions; nix_info reads the directory.
"""

from __future__ import annotations

import os

CONTROL_FILES = ("register", "status")

# (ELF class, byte order, e_machine) -> Nix system.  Class: 1 = 32-bit, 2 = 64-bit; order:
# 1 = little, 2 = big endian.  Machine numbers from elf.h (EM_*).
ELF_SYSTEMS = {
    (2, 1, 183): "aarch64-linux",      # EM_AARCH64
    (1, 1, 40): "armv7l-linux",        # EM_ARM
    (2, 1, 243): "riscv64-linux",      # EM_RISCV
    (2, 1, 62): "x86_64-linux",        # EM_X86_64
    (1, 1, 3): "i686-linux",           # EM_386
    (2, 1, 21): "powerpc64le-linux",   # EM_PPC64, little endian
    (2, 2, 21): "powerpc64-linux",     # EM_PPC64, big endian
    (2, 2, 22): "s390x-linux",         # EM_S390
    (2, 1, 258): "loongarch64-linux",  # EM_LOONGARCH
    (2, 1, 8): "mips64el-linux",       # EM_MIPS, 64-bit little endian
}

ELF_MAGIC = b"\x7fELF"


def parse_entry(name, text):
    """One registration file's text as a dict (name, enabled, interpreter, flags, offset, magic,
    mask, fix_binary, system); None for text that is not a registration."""
    lines = text.splitlines()
    if not lines or lines[0] not in ("enabled", "disabled"):
        return None
    entry = {"name": name, "enabled": lines[0] == "enabled", "interpreter": None, "flags": "",
             "offset": 0, "magic": None, "mask": None, "extension": None}
    for line in lines[1:]:
        key, _sep, value = line.partition(" ")
        if key == "interpreter":
            entry["interpreter"] = value
        elif key == "flags:":
            entry["flags"] = value
        elif key == "offset":
            entry["offset"] = int(value) if value.isdigit() else 0
        elif key in ("magic", "mask"):
            try:
                entry[key] = bytes.fromhex(value)
            except ValueError:
                entry[key] = None
        elif key == "extension":
            entry["extension"] = value
    entry["fix_binary"] = "F" in entry["flags"]
    entry["system"] = elf_system(entry["magic"], entry["mask"], entry["offset"])
    entry["magic"] = entry["magic"].hex() if entry["magic"] is not None else None
    entry["mask"] = entry["mask"].hex() if entry["mask"] is not None else None
    return entry


def _masked(magic, mask, index):
    byte = magic[index]
    return byte & mask[index] if mask is not None and index < len(mask) else byte


def elf_system(magic, mask=None, offset=0):
    """The Nix system of the ELF files a magic (bytes, from ``offset``) matches, or None."""
    if magic is None or offset != 0 or len(magic) < 20:
        return None
    if bytes(_masked(magic, mask, i) for i in range(4)) != ELF_MAGIC:
        return None
    elf_class, order = magic[4], magic[5]
    low, high = magic[18], magic[19]
    machine = low | high << 8 if order == 1 else high | low << 8
    return ELF_SYSTEMS.get((elf_class, order, machine))


def read_entries(directory):
    """The registrations under DIRECTORY (``/proc/sys/fs/binfmt_misc``), sorted by name; empty
    when binfmt_misc is not mounted there or cannot be read."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    entries = []
    for name in names:
        if name in CONTROL_FILES:
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        entry = parse_entry(name, text)
        if entry is not None:
            entries.append(entry)
    return entries


def emulated_systems(entries, native=()):
    """The systems enabled registrations interpret, in name order, without the NATIVE ones."""
    found = []
    for entry in entries:
        system = entry.get("system")
        if entry.get("enabled") and system and system not in native and system not in found:
            found.append(system)
    return found


def sandbox_interpreters(entries, systems):
    """Interpreters that Nix's sandbox must see for SYSTEMS: those of enabled registrations
    without the fix-binary flag, for systems that no registration with it serves."""
    fixed = {e["system"] for e in entries if e.get("enabled") and e.get("fix_binary")}
    paths = []
    for entry in entries:
        wanted = entry.get("enabled") and entry.get("system") in systems and entry["system"] not in fixed
        if wanted and entry.get("interpreter") and entry["interpreter"] not in paths:
            paths.append(entry["interpreter"])
    return paths


# systemd-binfmt's directories, earliest first in precedence: a file of the same name in an
# earlier directory replaces the later ones (binfmt.d(5)).  Debian's qemu packages ship theirs
# in /usr/lib/binfmt.d.
CONF_DIRS = ("/etc/binfmt.d", "/run/binfmt.d", "/usr/lib/binfmt.d")
OVERRIDE_DIR = "/etc/binfmt.d"


def _unescape(text):
    """binfmt_misc's register syntax: \\xNN escapes, other characters as they are."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("\\x", i) and i + 4 <= len(text):
            try:
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.extend(text[i].encode("latin-1", "replace"))
        i += 1
    return bytes(out)


def parse_register_line(line):
    """A ``:name:type:offset:magic:mask:interpreter:flags`` line (binfmt.d, the register file) as a
    dict (name, kind, interpreter, flags, fix_binary, system); None for anything else."""
    line = line.strip()
    if not line or line[0] in "#;" or len(line) < 2:
        return None
    delimiter = line[0]
    fields = line[1:].split(delimiter)
    if len(fields) < 6:
        return None
    name, kind, offset, magic, mask, interpreter = fields[:6]
    flags = fields[6] if len(fields) > 6 else ""
    system = None
    if kind == "M":
        system = elf_system(_unescape(magic), _unescape(mask) if mask else None, int(offset) if offset.isdigit() else 0)
    return {"name": name, "kind": kind, "interpreter": interpreter, "flags": flags, "fix_binary": "F" in flags,
            "system": system}


def with_fix_binary(line):
    """LINE with the F flag added (the same registration, for an override file)."""
    line = line.strip()
    delimiter = line[0]
    fields = line[1:].split(delimiter)
    while len(fields) < 7:
        fields.append("")
    if "F" not in fields[6]:
        fields[6] += "F"
    return delimiter + delimiter.join(fields)


def plan(nix, requested=(), detect=True):
    """What a builder does for emulated systems, from nix_info's result NIX (``system``,
    ``extra_platforms``, ``binfmt``, ``binfmt_configs``) and the role's options.

    Returns a dict:

    - ``systems``: the emulated systems the builder builds for and advertises: REQUESTED, plus (with
      DETECT) those the kernel already runs through a registration with the F flag.
    - ``extra_platforms``: the items nix.conf's ``extra-platforms`` must hold (empty when there are
      no emulated systems, so that Nix's default stays untouched); Nix's current value is kept,
      since a written ``extra-platforms`` replaces the default (``i686-linux`` on x86_64).
    - ``sandbox_paths``: interpreters of registrations without F that must be in the sandbox.
    - ``overrides``: ``{path, content, name}`` files for /etc/binfmt.d that add F to a packaged
      registration of a requested system that lacks it.
    - ``missing``: ``{system, reason}`` for requested systems the kernel cannot run (yet).
    """
    native = [nix.get("system")] if nix.get("system") else []
    entries = nix.get("binfmt") or []
    configs = nix.get("binfmt_configs") or []
    requested = [s for s in dict.fromkeys(requested or ()) if s not in native]
    running = emulated_systems(entries, native)
    fixed = [e["system"] for e in entries if e.get("enabled") and e.get("fix_binary") and e.get("system")]
    systems = list(requested)
    if detect:
        systems += [s for s in running if s in fixed and s not in systems]
    overrides = []
    for config in configs:
        if config.get("system") in requested and not config.get("fix_binary") and config.get("line"):
            overrides.append({"name": config["name"], "path": "%s/%s" % (OVERRIDE_DIR, config["file"]),
                              "content": with_fix_binary(config["line"]) + "\n"})
    missing = []
    for system in requested:
        if system in running:
            continue
        if not entries:
            reason = ("the kernel has no binfmt_misc registrations to read (/proc/sys/fs/binfmt_misc is empty or not "
                      "mounted; in a container the host must register the emulator)")
        else:
            reason = "no enabled binfmt_misc registration runs %s binaries" % system
        if not any(c.get("system") == system for c in configs):
            reason += "; no binfmt.d file registers it (install the emulator package: qemu-user-static on Debian)"
        missing.append({"system": system, "reason": reason})
    current = [p for p in (nix.get("extra_platforms") or []) if p not in native]
    extra_platforms = list(dict.fromkeys(current + systems)) if systems else []
    return {"systems": systems, "extra_platforms": extra_platforms,
            "sandbox_paths": sandbox_interpreters(entries, systems), "overrides": overrides, "missing": missing}


def read_configs(path_of, dirs=CONF_DIRS):
    """The binfmt.d registration files as systemd-binfmt applies them (one per file name, the
    earliest directory winning), each line a dict of parse_register_line plus ``file`` (its
    name), ``path`` and ``line``.  PATH_OF maps a host path to where to read it."""
    seen = set()
    configs = []
    for directory in dirs:
        try:
            names = sorted(os.listdir(path_of(directory)))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".conf") or name in seen:
                continue
            seen.add(name)
            try:
                with open(path_of("%s/%s" % (directory, name)), encoding="utf-8", errors="replace") as handle:
                    lines = handle.read().splitlines()
            except OSError:
                continue
            for line in lines:
                entry = parse_register_line(line)
                if entry is not None:
                    entry.update(file=name, path="%s/%s" % (directory, name), line=line.strip())
                    configs.append(entry)
    return configs
