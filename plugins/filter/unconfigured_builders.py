# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: unconfigured_builders
short_description: The builders of the group that were not configured in this run
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Names the builders of the group, other than the client itself and not withdrawn (C(nix_remote_state=absent)),
    that have no C(remote_builder_export), because the P(nix_remote.builders.remote_builder#role) role did not run on them in
    this play (unreachable, failed, or outside C(--limit)) and none in O(exports). The
    P(nix_remote.builders.local_client#role) role keeps their previous entries and warns, or fails when asked to.
  - The filter is pure and reads only its arguments.
positional: _input, hostvars
options:
  _input:
    description: The inventory names of the builders group.
    type: list
    elements: string
    required: true
  hostvars:
    description: The host variables by host (C(hostvars)); C(remote_builder_export) and C(nix_remote_state) are read.
    type: dictionary
    required: true
  client:
    description: The client's inventory name (C(inventory_hostname)).
    type: string
    required: true
  present:
    description: V(false) when the client itself is withdrawn; then the list is empty.
    type: boolean
    default: true
  exports:
    description:
      - Exports read from the files the builders keep (C(remote_builder_export_file)), by inventory name; a builder
        with one here is not unconfigured.
    type: dictionary
    default: {}
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Find the builders remote_builder did not configure in this run
  ansible.builtin.set_fact:
    unconfigured: "{{ groups['nix_builders'] | nix_remote.builders.unconfigured_builders(hostvars, client=inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: Inventory names, sorted.
  type: list
  elements: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import (
    RecordError,
    unconfigured_builders as _unconfigured_builders,
)


def unconfigured_builders(builders, hostvars, client, present=True, exports=None):
    """Builders without remote_builder_export in this run (see DOCUMENTATION)."""
    try:
        return _unconfigured_builders(hostvars, builders, client, present, exports)
    except RecordError as exc:
        raise AnsibleFilterError("unconfigured_builders: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"unconfigured_builders": unconfigured_builders}
