# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: stale_entries
short_description: The machines entries and known_hosts names that the last run added and no builder needs now
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Compares the records written on the last run with this run's records
    (both as made by P(nix_remote.builders.builder_records#filter)) and returns what to remove.
  - The filter is pure and reads only its arguments.
positional: _input, records
options:
  _input:
    description: The records of the last run.
    type: list
    elements: dictionary
    required: true
  records:
    description: The records of this run.
    type: list
    elements: dictionary
    required: true
"""

EXAMPLES = r"""
- name: Work out what to remove
  ansible.builtin.set_fact:
    stale: "{{ previous_records | nix_remote.builders.stale_entries(records) }}"
# stale.uris: machines URIs to remove; stale.known_hosts: host names to remove from ssh_known_hosts;
# stale.machines: nix_remote.builders.nix_machines items that remove those entries and their marker comments
"""

RETURN = r"""
_value:
  description: What to remove, each list without duplicates, in the order of the previous records.
  type: dictionary
  contains:
    uris:
      description: Machines URIs of the last run that no record has now.
      type: list
      elements: string
    known_hosts:
      description: Host names (the first field of a known_hosts line) of the last run that no record has now.
      type: list
      elements: string
    machines:
      description:
        - The items for M(nix_remote.builders.nix_machines)'s O(nix_remote.builders.nix_machines#module:builders) that
          remove the entries of C(uris), each with C(uri), C(state=absent) and, when the previous record's C(machine)
          has one, its marker C(comment), so that the comment line above the entry is removed with it.
      type: list
      elements: dictionary
      version_added: 0.2.0
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import stale_entries as _stale_entries


def stale_entries(previous, records):
    """Stale machines URIs and known_hosts names (see DOCUMENTATION)."""
    try:
        return _stale_entries(previous, records)
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("stale_entries: a record without uri or known_hosts (%s)" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"stale_entries": stale_entries}
