# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: binary_cache_plan
short_description: The upload command and nix-cache-info of a fleet binary cache
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - The forced command of every upload key, C(nix-store --store 'file://DIR?secret-key=KEY&compression=C' --serve --write),
    which makes the cache sign each path as it writes it, and the text of C(nix-cache-info).
  - Refuses, naming the variable, a key name, directory, compression or priority that Nix or sshd would not take.
  - The filter is pure and reads only its arguments.
positional: _input, directory, secret_key_file, compression
options:
  _input:
    description: The absolute path of C(nix-store) on the cache host.
    type: string
    required: true
  directory:
    description: The cache directory (C(binary_cache_dir)).
    type: string
    required: true
  secret_key_file:
    description: The cache's secret key file.
    type: string
    required: true
  compression:
    description: How NAR files are compressed.
    type: string
    choices: [zstd, xz, bzip2, none]
    default: zstd
  key_name:
    description: The signing key's name (C(binary_cache_key_name)).
    type: string
    required: true
  priority:
    description: The priority published in C(nix-cache-info).
    type: integer
    default: 30
"""

EXAMPLES = r"""
- name: Plan the cache
  ansible.builtin.set_fact:
    plan: "{{ '/usr/bin/nix-store' | nix_remote.builders.binary_cache_plan('/var/cache/nix-fleet-cache', '/etc/nix/cache.sec', key_name='cache-1') }}"
"""

RETURN = r"""
_value:
  description: C(command) (the forced command) and C(cache_info) (the file's text).
  type: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.binary_cache import (
    CacheError,
    cache_info,
    key_name as _key_name,
    upload_command,
)


def binary_cache_plan(nix_store, directory, secret_key_file, compression="zstd", key_name=None, priority=30):
    """The cache's upload command and nix-cache-info (see DOCUMENTATION)."""
    try:
        _key_name(key_name)
        return {"command": upload_command(nix_store, directory, secret_key_file, compression),
                "cache_info": cache_info(priority)}
    except CacheError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule(object):
    def filters(self):
        return {"binary_cache_plan": binary_cache_plan}
