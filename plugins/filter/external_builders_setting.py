# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: external_builders_setting
short_description: Nix's external-builders setting from a list of programs
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Renders C(local_client_external_derivation_builders) as the value of nix.conf's C(external-builders) (Nix 2.32
    and later), a JSON list of objects with C(systems), C(program) and C(args), all three present, as Nix's
    C(ExternalBuilder) requires (src/libstore/build/derivation-builder.cc).
  - The JSON is compact and on one line. nix.conf splits a value into words and joins them with one space, so a value
    without runs of spaces reads back as written. A value Nix would read differently is refused, naming the item and field.
  - Returns an empty string for an empty list.
positional: _input
options:
  _input:
    description: The programs, each a dictionary with C(systems) (list), C(program) (absolute path) and C(args) (list, optional).
    type: list
    elements: dictionary
    required: true
"""

EXAMPLES = r"""
- name: The setting
  ansible.builtin.debug:
    msg: "{{ [{'systems': ['aarch64-linux'], 'program': '/usr/local/bin/determinate-nixd', 'args': ['builder']}]
             | nix_remote.builders.external_builders_setting }}"
# [{"systems":["aarch64-linux"],"program":"/usr/local/bin/determinate-nixd","args":["builder"]}]
"""

RETURN = r"""
_value:
  description: The JSON text, or an empty string.
  type: string
"""

import json
import re

from ansible.errors import AnsibleFilterError

_BAD_TEXT = re.compile(r"[#\n\r\t\x00]|  ")


def _text(value, where):
    if not isinstance(value, str) or not value:
        raise AnsibleFilterError("external_builders_setting: %s is %r, not a non-empty string" % (where, value))
    if _BAD_TEXT.search(value) or value != value.strip():
        raise AnsibleFilterError("external_builders_setting: %s is %r: nix.conf cannot hold '#', a line break, a tab, "
                                 "a NUL, leading or trailing spaces or several spaces in a row" % (where, value))
    return value


def external_builders_setting(items):
    """The external-builders value (see DOCUMENTATION)."""
    if not items:
        return ""
    if not isinstance(items, list):
        raise AnsibleFilterError("external_builders_setting: expected a list, got %r" % (items,))
    rendered = []
    for index, item in enumerate(items, 1):
        where = "local_client_external_derivation_builders item %d" % index
        if not isinstance(item, dict):
            raise AnsibleFilterError("external_builders_setting: %s is %r, not a dictionary" % (where, item))
        unknown = sorted(set(item) - {"systems", "program", "args"})
        if unknown:
            raise AnsibleFilterError("external_builders_setting: %s has unknown keys %s" % (where, ", ".join(unknown)))
        systems = item.get("systems")
        if not isinstance(systems, list) or not systems:
            raise AnsibleFilterError("external_builders_setting: %s field systems is %r, not a non-empty list"
                                     % (where, systems))
        for system in systems:
            if not isinstance(system, str) or not re.match(r"^[a-z0-9_]+-[a-z0-9]+$", system):
                raise AnsibleFilterError("external_builders_setting: %s field systems has %r, not a Nix system such as "
                                         "aarch64-linux" % (where, system))
        program = _text(item.get("program"), where + " field program")
        if not program.startswith("/") or " " in program:
            raise AnsibleFilterError("external_builders_setting: %s field program is %r, not an absolute path "
                                     "without spaces" % (where, program))
        args = item.get("args") if item.get("args") is not None else []
        if not isinstance(args, list):
            raise AnsibleFilterError("external_builders_setting: %s field args is %r, not a list" % (where, args))
        args = [_text(arg, "%s field args item %d" % (where, number)) for number, arg in enumerate(args, 1)]
        rendered.append({"systems": list(systems), "program": program, "args": args})
    return json.dumps(rendered, separators=(",", ":"))


class FilterModule(object):
    def filters(self):
        return {"external_builders_setting": external_builders_setting}
