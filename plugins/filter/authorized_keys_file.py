# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: authorized_keys_file
short_description: The build user's authorized_keys file
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Every key locked to the forced command (C(restrict,command="...")), each after a C(# source:) line naming
    where it came from; then, for the clients whose key is unknown in this run, the line they had in the previous
    file (found by its C(# source:) line), so a client outside this run keeps its access.
  - The filter is pure and reads only its arguments.
positional: _input, command
options:
  _input:
    description: The keys (from P(nix_remote.builders.authorized_key_sources#filter)).
    type: list
    elements: dictionary
    required: true
  command:
    description: The forced command, for example C(/usr/bin/nix-daemon --stdio).
    type: string
    required: true
  keyless:
    description: The clients whose key is unknown (from P(nix_remote.builders.keyless_clients#filter)).
    type: list
    elements: string
    default: []
  previous:
    description: The text of the file the last run wrote (empty when there is none).
    type: string
    default: ''
  role:
    description: The role named in the file's header comment.
    type: string
    default: remote_builder
"""

EXAMPLES = r"""
- name: Write the authorized_keys file
  ansible.builtin.copy:
    dest: /var/lib/remotebuild/.ssh/authorized_keys
    content: "{{ keys | nix_remote.builders.authorized_keys_file('/usr/bin/nix-daemon --stdio') }}"
    mode: "0600"
"""

RETURN = r"""
_value:
  description: The file's text, ending with a newline.
  type: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    authorized_keys_file as _authorized_keys_file,
)


def authorized_keys_file(keys, command, keyless=None, previous="", role="remote_builder"):
    """The authorized_keys text (see DOCUMENTATION)."""
    try:
        return _authorized_keys_file(keys, command, keyless or [], previous or "", role)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("authorized_keys_file: a key without source or key (%s)" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"authorized_keys_file": authorized_keys_file}
