# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_rows
short_description: Turn the results of playbooks/verify.yml's checks into table rows that say what is wrong
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Reads, for each check of P(nix_remote.builders.verify_checks#filter), whether the builder's store answered and
    trusts the client, whether a new derivation was built there for each of its systems, and whether the output is
    in the builder's store.
  - A failure is explained from Nix's or ssh's error output (a host key mismatch, a key the builder refuses, the
    daemon socket's permission, a missing C(nix-daemon), no trust, an unreachable builder, a missing C(ssh), a
    missing system feature, no builder taking the build), or as a timeout, or by the last line of the error.
  - The filter is pure and reads only its arguments.
positional: _input, ping, build, found, client, reuse, plain, nix
options:
  _input:
    description: The checks (P(nix_remote.builders.verify_checks#filter)).
    type: list
    elements: dictionary
    required: true
  ping:
    description: The C(results) of the store check, one per check in the same order.
    type: list
    elements: dictionary
    required: true
  build:
    description: The C(results) of the builds, whose items are C([check, system]).
    type: list
    elements: dictionary
    required: true
  found:
    description: The C(results) of the output look-ups, whose items are the build results.
    type: list
    elements: dictionary
    required: true
  client:
    description: The client's inventory name.
    type: string
    required: true
  reuse:
    description:
      - The client's ssh connection reuse, C(configured) (the ssh settings on the client have C(ControlMaster)),
        C(safe) and C(reason) (nix_info C(capabilities.ssh_reuse) and C(capabilities.ssh_reuse_reason)).
      - When given, and there are checks, one more row says whether reuse is on and why (never a failure).
    type: dictionary
  plain:
    description:
      - A plain C(nix-build) of a new derivation (no C(--max-jobs 0), no C(--builders)) as C(build), its result, and the
        C(results) of looking for its output in each builder's store as C(found) (items the checks).
      - When given, a row V((local)) says where that build ran; Nix builds locally while the client has a free slot
        (NixOS/nix#2457). Never a failure.
    type: dictionary
    version_added: 0.2.0
  nix:
    description:
      - The client's P(nix_remote.builders.nix_info#module) result. When given, a row V((features)) names the systems
        and features the client's Nix has that no builder offers. Never a failure.
    type: dictionary
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Turn the results into table rows
  ansible.builtin.set_fact:
    rows: >-
      {{ checks | nix_remote.builders.verify_rows(ping.results, build.results, found.results, inventory_hostname) }}
# rows[0] == {'client': 'client1', 'builder': 'builder1', 'ok': false,
#             'result': 'builder unreachable: nothing listens for SSH at its address and port'}
"""

RETURN = r"""
_value:
  description: One row per check, or one row saying that the role configured no builder on this client.
  type: list
  elements: dictionary
  contains:
    client:
      description: The client.
      type: string
    builder:
      description:
        - The builder's record name, V(-) when there is none, V((ssh)) for the connection reuse row, V((local)) for
          where a plain build ran, V((features)) for the features no builder offers.
      type: string
    ok:
      description: Whether the client builds on the builder.
      type: boolean
    result:
      description: What was found, and what to do about a failure.
      type: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.verify_report import verify_rows as _verify_rows


def verify_rows(checks, ping, build, found, client, reuse=None, plain=None, nix=None):
    """The table rows of one client (see DOCUMENTATION)."""
    try:
        return _verify_rows(checks, ping, build, found, client, reuse, plain, nix)
    except (KeyError, IndexError, TypeError) as exc:
        raise AnsibleFilterError("verify_rows: results that do not belong to these checks (%r)" % (exc,)) from exc


class FilterModule(object):
    def filters(self):
        return {"verify_rows": verify_rows}
