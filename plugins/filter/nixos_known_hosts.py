# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: nixos_known_hosts
short_description: Turn builder records into NixOS programs.ssh.knownHosts
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Groups the C(known_hosts) lines of each record made by P(nix_remote.builders.builder_records#filter) by key,
    giving one C(programs.ssh.knownHosts) entry per record and key that lists every host name the key is pinned for.
  - An entry is named after the record, or C(NAME-1), C(NAME-2) (in the keys' sort order) when one record has
    lines with different keys. A key's comment is left out.
  - The filter is pure and reads only its arguments.
options:
  _input:
    description: The builder records.
    type: list
    elements: dictionary
    required: true
"""

EXAMPLES = r"""
- name: Pin the builders' host keys on NixOS
  ansible.builtin.set_fact:
    known_hosts: "{{ records | nix_remote.builders.nixos_known_hosts }}"
# A record b1 with known_hosts ['nix-builder-b1 ssh-ed25519 AAAA', '[192.0.2.10]:2222 ssh-ed25519 AAAA'] gives
#   {b1: {hostNames: [nix-builder-b1, '[192.0.2.10]:2222'], publicKey: ssh-ed25519 AAAA}}
"""

RETURN = r"""
_value:
  description: C(programs.ssh.knownHosts), entries with C(hostNames) and C(publicKey) by name.
  type: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import (
    RecordError,
    nixos_known_hosts as _nixos_known_hosts,
)


def nixos_known_hosts(records):
    """programs.ssh.knownHosts (see DOCUMENTATION)."""
    try:
        return _nixos_known_hosts(records)
    except RecordError as exc:
        raise AnsibleFilterError("nixos_known_hosts: %s" % exc) from exc
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("nixos_known_hosts: a record without a name (%r)" % (exc,)) from exc


class FilterModule(object):
    def filters(self):
        return {"nixos_known_hosts": nixos_known_hosts}
