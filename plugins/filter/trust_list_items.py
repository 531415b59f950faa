# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: trust_list_items
short_description: The nix.conf list items of a builder's trust mode, for nix_conf's list_items
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Names only the role's own items; M(nix_remote.builders.nix_conf) with O(nix_remote.builders.nix_conf#module:managed_marker)
    records what it added, removes what the role no longer lists, and keeps every item an administrator wrote.
  - C(trusted) puts the build user in C(extra-trusted-users) (C(trusted-users) with root kept on Nix before 2.4,
    which has no C(extra-) settings) and lists no signing key of the role.
  - C(signing) trusts the given signing keys in C(extra-trusted-public-keys), sets the builder's own secret key in
    C(extra-secret-key-files), and takes the build user out of C(extra-trusted-users).
  - With O(state=absent) the builder is withdrawn; the keys of O(retired_keys) and O(secret_key_file) (whose file is
    deleted) are removed too.
  - Keys a version before 0.2.0 recorded in its state file are removed when they are not trusted any more, and
    adopted (recorded as the role's) otherwise.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: The trust mode, C(trusted) or C(signing).
    type: string
    required: true
  user:
    description: The build user (C(remote_builder_user)).
    type: string
    required: true
  modern:
    description: Whether the builder's Nix has C(extra-) settings (nix_info's C(capabilities.extra_settings)).
    type: boolean
    default: true
  keys:
    description: The signing keys to trust (P(nix_remote.builders.signing_keys#filter)).
    type: list
    elements: string
    default: []
  retired_keys:
    description: The keys the state file of an older version lists (C(/etc/nix/nix-remote-builders-trust.json)).
    type: list
    elements: string
    default: []
  secret_key_file:
    description: The builder's secret signing key (signing mode).
    type: path
  settings:
    description:
      - C(remote_builder_nix_settings). Its values for C(extra-trusted-users), C(extra-trusted-public-keys) and
        C(extra-secret-key-files) (a list, or a string of words) join the role's present items, so the role can
        pass the rest of it as M(nix_remote.builders.nix_conf) O(nix_remote.builders.nix_conf#module:settings).
    type: dictionary
    default: {}
  keep_secret_key:
    description:
      - This host signs as a client too (local_client uses the same key pair and the same marker), so the secret key
        file stays in C(extra-secret-key-files) in every mode, and a withdrawn builder leaves it as it is.
    type: boolean
    default: false
  keep_hosts:
    description:
      - Hosts whose signing key this run does not know (a C(--limit) or C(--tags) left their key play out, or it
        failed). In signing mode the keys recorded under their key names (C(HOST-1:...)) stay trusted and recorded
        (nix_conf's C(keep) patterns) instead of being removed.
    type: list
    elements: string
    default: []
  state:
    description:
      - C(absent) when the builder is withdrawn; the build user leaves the trusted users and every key and secret
        key file the role recorded is removed, whatever the mode.
    type: string
    default: present
    choices: [present, absent]
"""

EXAMPLES = r"""
- name: Trust the fleet's signing keys
  nix_remote.builders.nix_conf:
    list_items: >-
      {{ 'signing' | nix_remote.builders.trust_list_items(user='remotebuild', keys=keys,
           secret_key_file='/etc/nix/nix-remote-builders-signing.sec') }}
    managed_marker: nix_remote.builders
"""

RETURN = r"""
_value:
  description: Setting name to C(present), C(absent) (and C(adopt)) item lists, for nix_conf's O(nix_remote.builders.nix_conf#module:list_items).
  type: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    trust_list_items as _trust_list_items,
)


def trust_list_items(trust, user=None, modern=True, keys=None, retired_keys=None, secret_key_file=None, state="present",
                     keep_secret_key=False, settings=None, keep_hosts=None):
    """A builder's trust list items (see DOCUMENTATION)."""
    try:
        return _trust_list_items(trust, user=user, modern=modern, keys=keys or [], retired_keys=retired_keys or [],
                                 secret_key_file=secret_key_file, state=state,
                                 keep_secret_key=keep_secret_key, settings=settings or {}, keep_hosts=keep_hosts or [])
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("trust_list_items: %s" % exc) from exc


class FilterModule:
    def filters(self):
        return {"trust_list_items": trust_list_items}
