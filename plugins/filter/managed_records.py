# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: managed_records
short_description: The builder records a machines file marks as managed by nix_remote.builders
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Reads back the records of the last run from the machines file itself, in the shape
    P(nix_remote.builders.builder_records#filter) makes them.
  - An entry is managed when the line directly above it is its marker comment, which
    M(nix_remote.builders.nix_machines) writes from the record's C(machine.comment), namely
    C(# nix_remote.builders ) followed by the record without C(machine) as compact JSON (sorted keys,
    ASCII only, C(;) written as C(\u003b), so that the line holds no C(;), which Nix before 2.29 and Lix
    would split the comment on).
  - Each record is the marker's JSON with C(machine) read from the entry below it (C(uri) as the marker has it,
    C(systems), C(ssh_key), C(max_jobs), C(speed_factor), C(supported_features), C(mandatory_features),
    C(public_host_key), and C(comment), the marker comment as written).
  - Comments without the marker and entries without a marker comment are ignored.
  - A marker that cannot be trusted fails the filter, naming the file and line, namely JSON that does not parse or is no object,
    no C(name) or C(uri), no entry alone on the line below it, an entry for another URI, or a name marked twice.
    Such a line was edited by hand; deleting it leaves the entry below unmanaged (it is then kept as it is).
  - With O(legacy), the records of the old state file (C(/etc/nix/nix-remote-builders.json), its C(builders))
    are merged in; a marked record wins over a legacy one of the same name, and a legacy record's C(machine) gets
    its marker comment so that an entry kept as it was is marked when it is written again.
  - With O(kind=nixos_module) the text is the client's generated NixOS module, whose header comment holds one
    marker line per record with its C(machine) (P(nix_remote.builders.nixos_module_comment#filter) writes them), since
    NixOS generates the machines file from C(nix.buildMachines), which has no room for comments.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: The text of the machines file; empty or V(null) when there is none.
    type: string
    required: true
  marker:
    description: What starts the marker comment (after C(# )). It must not be empty nor hold C(;), a newline or NUL.
    type: string
    default: "nix_remote.builders "
  path:
    description: The file the text was read from, named in error messages.
    type: string
    default: <machines>
  kind:
    description: What the text is, a machines file or the client's generated NixOS module.
    type: string
    default: machines
    choices: [machines, nixos_module]
  legacy:
    description: The records of the old state file (its C(builders) list), to merge in.
    type: list
    elements: dictionary
    default: []
"""

EXAMPLES = r"""
- name: Read the machines file
  ansible.builtin.slurp:
    path: /etc/nix/machines
  register: machines_raw
  failed_when: false

- name: Find what the last run wrote
  ansible.builtin.set_fact:
    previous: >-
      {{ (machines_raw.content | default('') | b64decode)
         | nix_remote.builders.managed_records(path='/etc/nix/machines') }}
# previous[0].name == 'builder1'; previous[0].machine can go to nix_remote.builders.nix_machines
# as it is: its comment keeps the marker.
"""

RETURN = r"""
_value:
  description:
    - One record per marked entry, in file order (the legacy records first with O(legacy)), with the keys the marker
      holds (C(name), C(source), C(trust), C(uri), C(alias), C(match_hosts), C(known_hosts)) and C(machine).
  type: list
  elements: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import (
    MARKER,
    managed_records as _managed_records,
    merge_previous,
    nixos_module_records,
)


def managed_records(text, marker=MARKER, path="<machines>", legacy=None, kind="machines"):
    """The records of the marked entries of a machines file (see DOCUMENTATION)."""
    if text is not None and not isinstance(text, str):
        raise AnsibleFilterError("managed_records: the input is %r, not the text of a machines file" % (text,))
    try:
        if kind == "machines":
            marked = _managed_records(text, marker, source=path)
        elif kind == "nixos_module":
            marked = nixos_module_records(text, marker, source=path)
        else:
            raise ValueError("kind must be machines or nixos_module, not %r" % (kind,))
        return merge_previous(legacy, marked, marker) if legacy else marked
    except ValueError as exc:  # RecordError, and MachinesFormatError for an entry that does not parse
        raise AnsibleFilterError("managed_records: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"managed_records": managed_records}
