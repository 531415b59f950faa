# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: rollback_list
short_description: What nix_daemon puts back when the daemon does not come up after a restart
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - For each changed file result, the file and the backup made of it, for M(nix_remote.builders.nix_daemon)'s
    O(nix_remote.builders.nix_daemon#module:rollback).
  - M(nix_remote.builders.nix_conf) and M(nix_remote.builders.nix_machines) return C(path), M(ansible.builtin.template)
    and M(ansible.builtin.copy) C(dest); in check mode a template on a new file returns neither (the path is then
    empty). Results that are not changed, or not dictionaries (a task that did not run), are skipped.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: Registered task results.
    type: list
    elements: raw
    required: true
"""

EXAMPLES = r"""
- name: Restart the daemon
  nix_remote.builders.nix_daemon:
    state: restarted
    rollback: "{{ [conf_result | default({}), dropin_result | default({})] | nix_remote.builders.rollback_list }}"
"""

RETURN = r"""
_value:
  description: One C(path), C(backup) dictionary per changed file; C(backup) is V(null) when the file was new.
  type: list
  elements: dictionary
"""

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    rollback_list as _rollback_list,
)


def rollback_list(results):
    """nix_daemon's rollback list (see DOCUMENTATION)."""
    return _rollback_list(results)


class FilterModule(object):
    def filters(self):
        return {"rollback_list": rollback_list}
