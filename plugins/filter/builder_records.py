# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: builder_records
short_description: Turn the builders' exports into a client's machines entries, known_hosts lines and ssh aliases
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Makes one record per builder a client uses, the way the P(nix_remote.builders.local_client#role) role
    writes them, namely the machines entry, the C(/etc/ssh/ssh_known_hosts) lines that pin the builder's host key,
    an ssh Host alias where one is needed, and the host names the ssh C(Match) block lists.
  - Inventory builders come from their C(remote_builder_export) host variable (set by the
    P(nix_remote.builders.remote_builder#role) role in the same run), merged with their
    C(local_client_builder_overrides). Builders that are withdrawn (C(nix_remote_state=absent)) or whose
    export says C(state=absent) get no record.
  - "A port other than 22 is addressed by an ssh alias (C(ssh-ng://user@nix-builder-NAME), with C(HostKeyAlias),
    known_hosts lines for the alias and C([host]:port), machines column 8 set) or in the URI
    (C(ssh-ng://user@host:port), Nix 2.31 and later, known_hosts line C([host]:port), column 8 empty because Nix
    would pin a plain C(host) line that ssh does not look up for another port). Column 8 is never written for a
    client Nix older than 2.4."
  - Then come the external builders (O(external_builders)), then the previous records (O(previous)) of builders
    in the group that were not configured in this run (see P(nix_remote.builders.unconfigured_builders#filter)),
    so their entries are kept as they were.
  - The filter is pure and reads only its arguments.
positional: _input, hostvars
options:
  _input:
    description: The inventory names of the builders group (for example C(groups['nix_builders'])).
    type: list
    elements: string
    required: true
  hostvars:
    description:
      - The host variables by host (C(hostvars)). Read for each builder are C(remote_builder_export),
        C(local_client_builder_overrides) and C(nix_remote_state).
    type: dictionary
    required: true
  client:
    description: The client's inventory name (C(inventory_hostname)); a host never builds for itself.
    type: string
    required: true
  nix_version:
    description:
      - The client's Nix version, for example C(2.26.3), read through the capability table when
        O(capabilities) is not given.
    type: string
  capabilities:
    description:
      - The client Nix's capability booleans (M(nix_remote.builders.nix_info)'s C(capabilities)); the filter
        reads C(port_in_uri) and C(host_key_column). Takes precedence over O(nix_version). One of the two is
        needed; with neither the client is taken to run Nix 2.4.
    type: dictionary
    version_added: 0.2.0
  key_path:
    description: The private key the client's daemon uses for inventory builders (and external ones without C(ssh_key)).
    type: string
    required: true
  port_style:
    description:
      - How a port other than 22 is addressed. V(uri) puts it in the URI (Nix 2.31 and later), V(alias) in an ssh
        Host alias, V(auto) in the URI on Nix 2.31 and later.
    type: string
    choices: [auto, uri, alias]
    default: auto
  deprecated_external_builders:
    description:
      - The items of the deprecated C(local_client_external_builders), added to O(external_builders) with a
        deprecation warning.
    type: list
    elements: dictionary
    default: []
  external_builders:
    description:
      - Builders outside the inventory, the items of C(local_client_unmanaged_builders) (C(name), C(uri) and
        C(systems) required).
    type: list
    elements: dictionary
    default: []
  previous:
    description:
      - The records written on the last run (from P(nix_remote.builders.managed_records#filter), or the old state file).
        Those of builders not configured in this run are kept as they are, with their C(machine.comment).
    type: list
    elements: dictionary
    default: []
  marker:
    description:
      - What starts the marker comment that each new record's C(machine.comment) holds, followed by the record without
        C(machine) as compact JSON; M(nix_remote.builders.nix_machines) writes it above the entry and
        P(nix_remote.builders.managed_records#filter) reads it back. V(null) leaves C(machine.comment) out.
    type: string
    default: "nix_remote.builders "
    version_added: 0.2.0
  present:
    description: V(false) when the client itself is withdrawn; then there are no records.
    type: boolean
    default: true
  slot_policy:
    description:
      - How many of an inventory builder's slots (its C(max_jobs)) this client takes. V(full) takes all of them, as Nix
        does on its own (N clients may run N times the builder's capacity at once). V(shared) takes an equal part of the
        capacity times O(overcommit) among the clients that use the builder (the export's C(clients)), rounded down and at
        least 1. C(max_jobs) set in C(local_client_builder_overrides) is used as it is.
    type: string
    choices: [full, shared]
    default: full
    version_added: 0.2.0
  overcommit:
    description: With O(slot_policy=shared), the factor on the builder's capacity that the clients share (above 0).
    type: float
    default: 1.0
    version_added: 0.2.0
  exports:
    description:
      - Exports read from the files the builders keep (C(remote_builder_export_file)), by inventory name, for builders
        whose host variables have no C(remote_builder_export) (outside C(--limit) without a fact cache).
    type: dictionary
    default: {}
    version_added: 0.2.0
"""

EXAMPLES = r"""
# nix: the registered result of nix_remote.builders.nix_info on the client.
- name: Work out the builders
  ansible.builtin.set_fact:
    records: >-
      {{ groups['nix_builders'] | nix_remote.builders.builder_records(hostvars,
           client=inventory_hostname, capabilities=nix.capabilities, key_path='/root/.ssh/nix_remote_builders_ed25519') }}

# With builder1 exporting address 192.0.2.10, port 22, user remotebuild, protocol ssh-ng:
#   records[0].uri == 'ssh-ng://remotebuild@192.0.2.10'
#   records[0].known_hosts == ['192.0.2.10 ssh-ed25519 AAAA...']
#   records[0].machine.public_host_key == '<base64 of the host key line>'
"""

RETURN = r"""
_value:
  description:
    - One record per builder, with the keys C(name), C(source) (V(inventory) or V(external)), C(trust)
      (inventory builders only), C(uri), C(alias) (empty, or C(name), C(hostname), C(port), C(user)),
      C(match_hosts), C(known_hosts) and C(machine) (an item for M(nix_remote.builders.nix_machines)'s
      O(nix_remote.builders.nix_machines#module:builders), without C(state), with its marker C(comment)).
  type: list
  elements: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible.utils.display import Display

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import (
    MARKER,
    RecordError,
    builder_records as _builder_records,
)


def builder_records(builders, hostvars, client, nix_version=None, key_path=None, port_style="auto",
                    external_builders=None, previous=None, present=True, capabilities=None, marker=MARKER,
                    slot_policy="full", overcommit=1.0, deprecated_external_builders=None, exports=None):
    """Records of every builder of a client (see DOCUMENTATION)."""
    if not key_path:
        raise AnsibleFilterError("builder_records: key_path is required")
    if deprecated_external_builders:
        Display().deprecated(
            "local_client_external_builders is renamed local_client_unmanaged_builders (Nix 2.32's external builders "
            "are local_client_external_derivation_builders); its items are used as before",
            version="1.0.0", collection_name="nix_remote.builders")
    try:
        return _builder_records(hostvars, builders, client, nix_version=nix_version, key_path=key_path,
                                port_style=port_style,
                                external_builders=list(external_builders or []) + list(deprecated_external_builders or []),
                                previous=previous or [], present=present, capabilities=capabilities,
                                marker=marker, slot_policy=slot_policy, overcommit=overcommit, exports=exports)
    except (RecordError, ValueError) as exc:
        raise AnsibleFilterError("builder_records: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"builder_records": builder_records}
