# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_cache_rows
short_description: verify.yml's rows for a host against the fleet binary caches
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - One row per cache, the cache answering from the host, Nix substituting from it and trusting its key, each failure
    with what to do; on a builder that uploads, one more row, whether a path built there reached the cache.
  - The filter is pure and reads only its arguments.
positional: _input, caches, answers, substituters, trusted_keys
options:
  _input:
    description: The host's inventory name.
    type: string
    required: true
  caches:
    description: The caches' exports (P(nix_remote.builders.fleet_caches#filter)).
    type: list
    elements: dictionary
    required: true
  answers:
    description: For each cache, the C(ansible.builtin.uri) result of fetching its C(nix-cache-info) with C(return_content).
    type: list
    elements: dictionary
    required: true
  substituters:
    description: For each cache, the result of the command that checks whether Nix's effective C(substituters) list its URL (C(rc) 0 when they do).
    type: list
    elements: dictionary
    required: true
  trusted_keys:
    description: Nix's effective C(trusted-public-keys).
    type: string
    required: true
  upload:
    description: On a builder that uploads, C(path), C(found) and C(seconds) of a path built for the check.
    type: dictionary
"""

EXAMPLES = r"""
- name: Turn the cache checks into rows
  ansible.builtin.set_fact:
    rows: "{{ inventory_hostname | nix_remote.builders.verify_cache_rows(caches, answers, listed, keys) }}"
"""

RETURN = r"""
_value:
  description: Rows (C(client) the host, C(builder) C((cache NAME)), C(ok), C(result), C(kind) C(builder)).
  type: list
  elements: dictionary
"""

from ansible_collections.nix_remote.builders.plugins.module_utils.verify_report import cache_rows


def verify_cache_rows(host, caches, answers, substituters, trusted_keys, upload=None):
    """The host's cache rows (see DOCUMENTATION)."""
    return cache_rows(host, caches, answers, substituters, trusted_keys, upload)


class FilterModule(object):
    def filters(self):
        return {"verify_cache_rows": verify_cache_rows}
