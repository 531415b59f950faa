# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_caches
short_description: The fleet binary caches a host substitutes from and uploads to
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - The C(binary_cache_export) of every host in the caches group that has one and is present, sorted by name.
    A cache outside this run (C(--limit)) is found through a fact cache (the export is cacheable).
  - With O(list_items=true), the nix_conf list items instead, C(extra-substituters) (the URLs) and
    C(extra-trusted-public-keys) (the keys), which add the caches to what the host already has.
  - With O(unknown=true), the names of the present cache hosts that have no export in this run (outside a C(--limit)
    without a fact cache, or their play failed); the roles then leave the cache settings as they are.
  - The filter is pure and reads only its arguments.
positional: _input, hostvars
options:
  _input:
    description: The inventory names of the caches group.
    type: list
    elements: string
    required: true
  hostvars:
    description: The host variables by host (C(hostvars)).
    type: dictionary
    required: true
  list_items:
    description: Return nix_conf list items rather than the exports.
    type: boolean
    default: false
  unknown:
    description: Return the names of the cache hosts without an export instead.
    type: boolean
    default: false
"""

EXAMPLES = r"""
- name: Find the fleet caches
  ansible.builtin.set_fact:
    caches: "{{ groups['nix_caches'] | default([]) | nix_remote.builders.fleet_caches(hostvars) }}"
"""

RETURN = r"""
_value:
  description: The exports (see P(nix_remote.builders.binary_cache_export#filter)), the list items, or the names.
  type: raw
"""

from ansible_collections.nix_remote.builders.plugins.module_utils.binary_cache import (
    fleet_caches as _fleet_caches,
    substituter_items,
    unknown_caches,
)


def fleet_caches(names, hostvars, list_items=False, unknown=False):
    """The caches' exports, their list items, or the caches without an export (see DOCUMENTATION)."""
    if unknown:
        return unknown_caches(names, hostvars)
    caches = _fleet_caches(names, hostvars)
    return substituter_items(caches) if list_items else caches


class FilterModule(object):
    def filters(self):
        return {"fleet_caches": fleet_caches}
