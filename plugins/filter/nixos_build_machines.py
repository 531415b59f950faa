# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: nixos_build_machines
short_description: Turn builder records into NixOS nix.buildMachines items
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Reshapes the C(machine) of each record made by P(nix_remote.builders.builder_records#filter) into an item of the
    NixOS option C(nix.buildMachines), which renders the same machines line the other platforms write.
  - The URI is taken apart into C(protocol), C(sshUser) and C(hostName); a query such as C(?remote-program=...) stays
    in C(hostName). A URI that is not C(ssh://) or C(ssh-ng://) gets C(protocol=null) and the whole URI as
    C(hostName), since C(nix.buildMachines) cannot express it; the role refuses such an item.
  - Mandatory features are left out of C(supportedFeatures) (NixOS adds them back), both lists are sorted, a whole
    speed factor is an integer, and C(publicHostKey) is set only when the record pins one.
  - The filter is pure and reads only its arguments.
options:
  _input:
    description: The builder records.
    type: list
    elements: dictionary
    required: true
"""

EXAMPLES = r"""
- name: Describe the builders as NixOS module data
  ansible.builtin.set_fact:
    build_machines: "{{ records | nix_remote.builders.nixos_build_machines }}"
# A record with uri ssh-ng://remotebuild@192.0.2.10 gives
#   {protocol: ssh-ng, sshUser: remotebuild, hostName: 192.0.2.10, systems: [...], sshKey: ..., maxJobs: 2, ...}
"""

RETURN = r"""
_value:
  description: One C(nix.buildMachines) item per record, with the keys C(protocol), C(sshUser), C(hostName),
    C(systems), C(sshKey), C(maxJobs), C(speedFactor), C(supportedFeatures), C(mandatoryFeatures) and
    C(publicHostKey) (only when set).
  type: list
  elements: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import (
    RecordError,
    nixos_build_machine,
)


def nixos_build_machines(records):
    """nix.buildMachines items (see DOCUMENTATION)."""
    try:
        return [nixos_build_machine(r["machine"]) for r in records]
    except RecordError as exc:
        raise AnsibleFilterError("nixos_build_machines: %s" % exc) from exc
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("nixos_build_machines: a record without a complete machine (%r)" % (exc,)) from exc


class FilterModule(object):
    def filters(self):
        return {"nixos_build_machines": nixos_build_machines}
