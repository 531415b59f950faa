# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: builder_export
short_description: The remote_builder_export fact that clients read, from nix_info and the role's options
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Makes a present builder's C(remote_builder_export), everything a client needs to reach and use it (read by
    P(nix_remote.builders.builder_records#filter)).
  - C(remote_program) is set only when the program the client runs (C(nix-daemon) for ssh-ng, C(nix-store) for ssh)
    is not in C(/usr/bin), C(/bin) or C(/usr/local/bin), the PATH of a non-interactive ssh session.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: The builder's M(nix_remote.builders.nix_info) result.
    type: dictionary
    required: true
  host:
    description: The address used when O(address) is V(null) (C(ansible_host), or the inventory name).
    type: string
    required: true
  address:
    description: C(remote_builder_address).
    type: string
  port:
    description: C(remote_builder_port).
    type: integer
  host_port:
    description: The port used when O(port) is V(null) (C(ansible_port)).
    type: integer
    default: 22
  user:
    description: C(remote_builder_user).
    type: string
    required: true
  protocol:
    description: C(remote_builder_protocol).
    type: string
    choices: [ssh-ng, ssh]
    required: true
  trust:
    description: C(remote_builder_trust).
    type: string
    choices: [trusted, signing]
    required: true
  max_jobs:
    description: max-jobs (from P(nix_remote.builders.builder_capacity#filter)).
    type: integer
    required: true
  speed_factor:
    description: The speed factor (from P(nix_remote.builders.builder_capacity#filter)).
    type: integer
    required: true
  extra_system_features:
    description: C(remote_builder_extra_system_features).
    type: list
    elements: string
    default: []
  mandatory_features:
    description: C(remote_builder_mandatory_features).
    type: list
    elements: string
    default: []
  clients:
    description:
      - The inventory names of the clients that use this builder (the clients group without the builder itself). The
        export's C(clients) counts those that O(hostvars) does not show withdrawn, for the clients' slot policy.
    type: list
    elements: string
    default: []
  hostvars:
    description: The host variables by host (C(hostvars)), for the clients' C(nix_remote_state).
    type: dictionary
    default: {}
  emulated_systems:
    description:
      - Systems the builder builds through emulation (P(nix_remote.builders.emulation_plan#filter)'s C(systems)),
        advertised after nix_info's C(systems) even when this run only just added them to C(extra-platforms).
    type: list
    elements: string
    default: []
"""

EXAMPLES = r"""
- name: Export the builder
  ansible.builtin.set_fact:
    remote_builder_export: >-
      {{ nix | nix_remote.builders.builder_export(host=ansible_host | default(inventory_hostname),
           user='remotebuild', protocol='ssh-ng', trust='trusted', max_jobs=4, speed_factor=4) }}
"""

RETURN = r"""
_value:
  description:
    - The export, with the keys C(version) (the schema's version, V(1); a client refuses a newer one), C(state)
      (V(present)), C(address), C(port), C(user), C(protocol), C(host_key), C(host_key_base64), C(systems),
      C(supported_features) (the system features, extra and mandatory features, sorted), C(mandatory_features),
      C(max_jobs), C(speed_factor), C(trust) and C(remote_program). The client reads every one of them.
  type: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    ExportError,
    builder_export as _builder_export,
)


def builder_export(nix, host, user, protocol, trust, max_jobs, speed_factor, address=None, port=None, host_port=22,
                   extra_system_features=None, mandatory_features=None, clients=None, hostvars=None, emulated_systems=None):
    """A builder's remote_builder_export (see DOCUMENTATION)."""
    try:
        return _builder_export(nix, host=host, user=user, protocol=protocol, trust=trust, max_jobs=max_jobs,
                               speed_factor=speed_factor, address=address, port=port, host_port=host_port,
                               extra_system_features=extra_system_features or [],
                               mandatory_features=mandatory_features or [], clients=clients or [],
                               hostvars=hostvars or {}, emulated_systems=emulated_systems or [])
    except (ExportError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("builder_export: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"builder_export": builder_export}
