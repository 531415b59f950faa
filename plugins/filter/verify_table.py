# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_table
short_description: Gather every client's verification rows into one table
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Collects the rows (P(nix_remote.builders.verify_rows#filter)) each host set as a fact, in the order of the hosts.
    A host without rows failed before its checks and gets a failed row that says so.
  - Formats them as a table with the columns CLIENT, BUILDER and RESULT.
  - The filter is pure and reads only its arguments.
positional: _input, hostvars
options:
  _input:
    description: The hosts of the play (C(ansible_play_hosts_all)).
    type: list
    elements: string
    required: true
  hostvars:
    description: The host variables by host (C(hostvars)).
    type: dictionary
    required: true
  fact:
    description: The name of the fact that holds each host's rows.
    type: string
    default: __local_client_verify_rows
  builders:
    description:
      - Builders whose own checks (P(nix_remote.builders.verify_builder_rows#filter)) come first in the table; a
        builder without them is left out (its play failed or did not run on it, which the play's recap shows).
    type: list
    elements: string
    default: []
    version_added: 0.2.0
  builder_fact:
    description: The name of the fact that holds each builder's rows.
    type: string
    default: __remote_builder_verify_rows
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Print the verification table
  run_once: true
  ansible.builtin.debug:
    msg: "{{ (ansible_play_hosts_all | nix_remote.builders.verify_table(hostvars)).lines }}"
"""

RETURN = r"""
_value:
  description: The rows and the table.
  type: dictionary
  contains:
    rows:
      description: Every row, with the keys C(client), C(builder), C(ok) and C(result).
      type: list
      elements: dictionary
    lines:
      description: The table's lines, a header first, the columns padded to the widest value.
      type: list
      elements: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.verify_report import verify_table as _verify_table


def verify_table(hosts, hostvars, fact="__local_client_verify_rows", builders=(), builder_fact="__remote_builder_verify_rows"):
    """Every host's rows and the table (see DOCUMENTATION)."""
    try:
        return _verify_table(hosts, hostvars, fact, builders, builder_fact)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("verify_table: rows without client, builder or result (%r)" % (exc,)) from exc


class FilterModule(object):
    def filters(self):
        return {"verify_table": verify_table}
