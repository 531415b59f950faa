# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_builder_rows
short_description: The rows of playbooks/verify.yml's checks of one builder (daemon, disk, sshd)
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - One row per check of a builder on its own, each failing row saying what to do.
  - V((daemon)) whether the builder's C(nix-daemon) answers a store query.
  - V((disk)) whether the free space of the file system of C(/nix/store) is at least C(min-free).
  - V((sshd)) whether sshd's effective C(MaxSessions) for the build user is at least the builder's C(max-jobs) (a
    client's multiplexed builds share one connection), and the first number of C(MaxStartups) at least the number of
    clients (unauthenticated connections at once).
  - The filter is pure and reads only its arguments.
positional: _input, daemon, disk, sshd, nix, clients, user
options:
  _input:
    description: The builder's inventory name.
    type: string
    required: true
  daemon:
    description: The result of asking the builder's daemon for a store path's validity (C(rc), C(stderr)).
    type: dictionary
    required: true
  disk:
    description: The result of C(df -Pk /nix/store) (C(rc), C(stdout_lines), C(stderr)).
    type: dictionary
    required: true
  sshd:
    description: The result of C(sshd -T -C user=<build user>,...) (C(rc), C(stdout), C(stderr)).
    type: dictionary
    required: true
  nix:
    description: The builder's P(nix_remote.builders.nix_info#module) result (C(version), C(settings)).
    type: dictionary
    required: true
  clients:
    description: How many clients use the builder.
    type: integer
    required: true
  user:
    description: The build user.
    type: string
    required: true
"""

EXAMPLES = r"""
- name: Turn the builder's results into rows
  ansible.builtin.set_fact:
    rows: "{{ inventory_hostname | nix_remote.builders.verify_builder_rows(daemon, disk, sshd, nix, 3, 'remotebuild') }}"
"""

RETURN = r"""
_value:
  description: Three rows, V((daemon)), V((disk)) and V((sshd)).
  type: list
  elements: dictionary
  contains:
    client:
      description: The builder (the table's first column).
      type: string
    builder:
      description: The check, V((daemon)), V((disk)) or V((sshd)).
      type: string
    ok:
      description: Whether the check holds.
      type: boolean
    result:
      description: What was found, and what to do when it does not hold.
      type: string
    kind:
      description: V(builder).
      type: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.verify_report import builder_rows


def verify_builder_rows(builder, daemon, disk, sshd, nix, clients, user):
    """The rows of one builder (see DOCUMENTATION)."""
    try:
        return builder_rows(builder, daemon, disk, sshd, nix, int(clients), user)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise AnsibleFilterError("verify_builder_rows: results that are not those of the builder checks (%r)" % (exc,)) from exc


class FilterModule(object):
    def filters(self):
        return {"verify_builder_rows": verify_builder_rows}
