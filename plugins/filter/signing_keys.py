# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: signing_keys
short_description: The signing keys a builder in signing mode trusts
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - The clients' C(local_client_signing_public_key) and the builders' C(remote_builder_signing_public_key),
    those that are set and not empty, without duplicates, sorted.
  - The filter is pure and reads only its arguments.
positional: _input, builders, hostvars
options:
  _input:
    description: The inventory names of the clients group.
    type: list
    elements: string
    required: true
  builders:
    description: The builders of this play (C(ansible_play_hosts)).
    type: list
    elements: string
    required: true
  hostvars:
    description: The host variables by host (C(hostvars)).
    type: dictionary
    required: true
"""

EXAMPLES = r"""
- name: Collect the signing keys
  ansible.builtin.set_fact:
    ours: "{{ groups['nix_clients'] | nix_remote.builders.signing_keys(ansible_play_hosts, hostvars) }}"
"""

RETURN = r"""
_value:
  description: Public keys such as C(client1-1:AAAA...).
  type: list
  elements: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    signing_keys as _signing_keys,
)


def signing_keys(clients, builders, hostvars):
    """The signing keys to trust (see DOCUMENTATION)."""
    try:
        return _signing_keys(clients, builders, hostvars)
    except TypeError as exc:
        raise AnsibleFilterError("signing_keys: a key that is not a string (%s)" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"signing_keys": signing_keys}
