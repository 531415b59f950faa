# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_checks
short_description: Plan the checks of playbooks/verify.yml for one client
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - For each builder record the P(nix_remote.builders.local_client#role) role wrote on its last run, finds the
    builder's line in the machines file, the store URI to ask (with the SSH key and the pinned host key as URI
    parameters, as Nix passes them) and a derivation name that no store has seen.
  - The filter is pure and reads only its arguments.
positional: _input, machines, stamp, client
options:
  _input:
    description: The records of the last run (as made by P(nix_remote.builders.builder_records#filter)).
    type: list
    elements: dictionary
    required: true
  machines:
    description: The text of the machines file.
    type: string
    required: true
  stamp:
    description: A time stamp that makes this run's derivation names new.
    type: string
    required: true
  client:
    description: The client's inventory name, hashed with the builder's name into the derivation name.
    type: string
    required: true
"""

EXAMPLES = r"""
- name: Plan the checks
  ansible.builtin.set_fact:
    checks: >-
      {{ records | nix_remote.builders.verify_checks(machines_text, now(utc=true, fmt='%Y%m%d%H%M%S%f'), inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: One check per record.
  type: list
  elements: dictionary
  contains:
    name:
      description: The record's name.
      type: string
    uri:
      description: The record's machines URI.
      type: string
    line:
      description: The machines file line of that URI, empty when there is none.
      type: string
    store:
      description: The store URI for C(nix store info --store), with C(ssh-key) and C(base64-ssh-public-host-key).
      type: string
    systems:
      description: The systems to build for.
      type: list
      elements: string
    trust:
      description: The builder's trust mode (V(trusted) or V(signing)).
      type: string
    nonce:
      description: The derivation name, C(nix-remote-builders-verify-STAMP-HASH).
      type: string
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.verify_report import verify_checks as _verify_checks


def verify_checks(records, machines, stamp, client):
    """The checks of one client (see DOCUMENTATION)."""
    try:
        return _verify_checks(records, machines, stamp, client)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("verify_checks: a record without uri, name or machine (%s)" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"verify_checks": verify_checks}
