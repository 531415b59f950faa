# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: signing_trust_settings
short_description: The nix.conf lists of a builder in signing mode
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - C(extra-trusted-public-keys) keeps the administrator's keys first, in their order, then adds the role's keys
    sorted (a set filter would not keep an order, and the line would be rewritten on every run); a key the role
    trusted on the last run that is not one of its keys now is dropped.
  - C(extra-secret-key-files) is the builder's own secret key; C(extra-trusted-users), when nix.conf sets it, loses
    the build user (signing mode does not trust it).
  - The filter is pure and reads only its arguments.
positional: _input, conf_lists
options:
  _input:
    description: The keys the role trusts now (from P(nix_remote.builders.signing_keys#filter)).
    type: list
    elements: string
    required: true
  conf_lists:
    description: The list settings nix.conf has now, by name.
    type: dictionary
    required: true
  previous:
    description: The keys the role trusted on the last run.
    type: list
    elements: string
    default: []
  secret_key_file:
    description: The builder's secret signing key.
    type: path
    required: true
  user:
    description: The build user (C(remote_builder_user)).
    type: string
    required: true
"""

EXAMPLES = r"""
- name: Work out the trust settings
  ansible.builtin.set_fact:
    settings: >-
      {{ ours | nix_remote.builders.signing_trust_settings(conf_lists, previous=previous,
           secret_key_file='/etc/nix/builder-signing.sec', user='remotebuild') }}
"""

RETURN = r"""
_value:
  description: Settings for M(nix_remote.builders.nix_conf), each a list.
  type: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    signing_trust_settings as _signing_trust_settings,
)


def signing_trust_settings(ours, conf_lists, previous=None, secret_key_file=None, user=None):
    """A signing builder's nix.conf lists (see DOCUMENTATION)."""
    if not secret_key_file or not user:
        raise AnsibleFilterError("signing_trust_settings: secret_key_file and user are required")
    try:
        return _signing_trust_settings(ours, conf_lists, previous or [], secret_key_file, user)
    except (AttributeError, TypeError) as exc:
        raise AnsibleFilterError("signing_trust_settings: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"signing_trust_settings": signing_trust_settings}
