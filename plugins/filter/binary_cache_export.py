# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: binary_cache_export
short_description: What builders and clients need of a fleet binary cache
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - The cache host's export, read by the remote_builder and local_client roles through
    C(hostvars[cache].binary_cache_export). It holds no secret, only the URL, the public key and
    the SSH details of the upload user.
  - Refuses a URL that is not http or https and a public key that is not Nix's C(name:base64), naming the field.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: The cache's public key, as C(nix-store --generate-binary-cache-key) wrote it.
    type: string
    required: true
  name:
    description: The cache host's inventory name.
    type: string
    required: true
  url:
    description: The URL hosts substitute from.
    type: string
    required: true
  ssh_host:
    description: The address builders upload to.
    type: string
    required: true
  ssh_port:
    description: The cache host's SSH port.
    type: integer
    default: 22
  user:
    description: The upload user.
    type: string
    required: true
  host_key:
    description: The cache host's SSH host key (C(keytype base64)), which builders pin.
    type: string
    required: true
  priority:
    description: The priority the cache publishes.
    type: integer
    default: 30
"""

EXAMPLES = r"""
- name: Export the cache
  ansible.builtin.set_fact:
    binary_cache_export: >-
      {{ public_key_text | nix_remote.builders.binary_cache_export(name=inventory_hostname,
           url='http://cache.example.org:5000', ssh_host='cache.example.org', user='nix-cache',
           host_key='ssh-ed25519 AAAA...') }}
"""

RETURN = r"""
_value:
  description: C(name), C(state) (present), C(url), C(public_key), C(priority), C(ssh_host), C(ssh_port), C(user), C(host_key), C(known_hosts_line).
  type: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.binary_cache import CacheError, cache_export


def binary_cache_export(public_key_text, name, url, ssh_host, user, host_key, ssh_port=22, priority=30):
    """The cache's export (see DOCUMENTATION)."""
    try:
        return cache_export(name=name, url=url, public_key_text=public_key_text, ssh_host=ssh_host,
                            ssh_port=ssh_port, user=user, host_key=host_key, priority=priority)
    except CacheError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule(object):
    def filters(self):
        return {"binary_cache_export": binary_cache_export}
