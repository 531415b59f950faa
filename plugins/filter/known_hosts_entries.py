# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: known_hosts_entries
short_description: A client's builder host keys as the hosts of ssh_known_hosts
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - One entry per host name with its keys, from the records' C(known_hosts) lines (a C(name1,name2 keytype base64)
    line gives each name the key; the keys of a name are merged), then C(state=absent) for each stale name that no
    record pins any more.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: The client's builder records (P(nix_remote.builders.builder_records#filter)).
    type: list
    elements: dictionary
    required: true
  stale:
    description: The known_hosts names of the last run no record has now (C(known_hosts) of P(nix_remote.builders.stale_entries#filter)).
    type: list
    elements: string
    default: []
"""

EXAMPLES = r"""
- name: Pin the builders' host keys
  nix_remote.builders.ssh_known_hosts:
    path: /etc/ssh/ssh_known_hosts
    hosts: "{{ records | nix_remote.builders.known_hosts_entries(stale=stale.known_hosts) }}"
"""

RETURN = r"""
_value:
  description: Items for the O(nix_remote.builders.ssh_known_hosts#module:hosts) option, C(name) with C(keys) or C(state=absent).
  type: list
  elements: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import (
    known_hosts_entries as _known_hosts_entries,
)


def known_hosts_entries(records, stale=None):
    """The hosts of ssh_known_hosts for the records (see DOCUMENTATION)."""
    try:
        return _known_hosts_entries(records, stale or [])
    except (ValueError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("known_hosts_entries: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"known_hosts_entries": known_hosts_entries}
