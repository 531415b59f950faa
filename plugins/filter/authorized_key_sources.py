# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: authorized_key_sources
short_description: The keys a builder authorizes, each with where it came from
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - The C(local_client_public_key) of each client in the group (sorted by name) that is not withdrawn
    (C(nix_remote_state=absent)) and has a key, then the extra keys, each trimmed.
  - The filter is pure and reads only its arguments.
positional: _input, hostvars
options:
  _input:
    description: The inventory names of the clients group.
    type: list
    elements: string
    required: true
  hostvars:
    description: The host variables by host (C(hostvars)); C(local_client_public_key) and C(nix_remote_state) are read.
    type: dictionary
    required: true
  extra_keys:
    description: C(remote_builder_extra_authorized_keys).
    type: list
    elements: string
    default: []
  key_fact:
    description: The fact that holds each host's public key; C(remote_builder_upload_public_key) for a cache's upload user.
    type: string
    default: local_client_public_key
"""

EXAMPLES = r"""
- name: Collect the keys
  ansible.builtin.set_fact:
    keys: "{{ groups['nix_clients'] | nix_remote.builders.authorized_key_sources(hostvars, extra_keys=[]) }}"
# keys == [{'source': 'client1', 'key': 'ssh-ed25519 AAAA... nix-remote-builds@client1'}]
"""

RETURN = r"""
_value:
  description: One C(source), C(key) dictionary per key; the source of an extra key is C(remote_builder_extra_authorized_keys[i]).
  type: list
  elements: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    authorized_key_sources as _authorized_key_sources,
)


def authorized_key_sources(clients, hostvars, extra_keys=None, key_fact="local_client_public_key"):
    """The keys to authorize (see DOCUMENTATION)."""
    try:
        return _authorized_key_sources(clients, hostvars, extra_keys or [], key_fact)
    except (AttributeError, TypeError) as exc:
        raise AnsibleFilterError("authorized_key_sources: a key that is not a string (%s)" % exc) from exc
    except ValueError as exc:  # ExportError: a key that is not one public key line
        raise AnsibleFilterError("authorized_key_sources: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"authorized_key_sources": authorized_key_sources}
