# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: keyless_clients
short_description: The clients whose key is unknown in this run
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - The clients in the group (sorted) that are not withdrawn and have no C(local_client_public_key) fact, because
    their key play did not run (C(--limit)) or failed. A builder keeps the lines they had (see
    P(nix_remote.builders.authorized_keys_file#filter)).
  - The filter is pure and reads only its arguments.
positional: _input, hostvars
options:
  _input:
    description: The inventory names of the clients group.
    type: list
    elements: string
    required: true
  hostvars:
    description: The host variables by host (C(hostvars)).
    type: dictionary
    required: true
  key_fact:
    description: The fact that holds each host's public key; C(remote_builder_upload_public_key) for a cache's upload user.
    type: string
    default: local_client_public_key
"""

EXAMPLES = r"""
- name: Find the clients without a key
  ansible.builtin.set_fact:
    keyless: "{{ groups['nix_clients'] | nix_remote.builders.keyless_clients(hostvars) }}"
"""

RETURN = r"""
_value:
  description: Inventory names.
  type: list
  elements: string
"""

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    keyless_clients as _keyless_clients,
)


def keyless_clients(clients, hostvars, key_fact="local_client_public_key"):
    """Clients without a key fact (see DOCUMENTATION)."""
    return _keyless_clients(clients, hostvars, key_fact)


class FilterModule(object):
    def filters(self):
        return {"keyless_clients": keyless_clients}
