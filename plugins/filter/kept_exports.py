# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: kept_exports
short_description: The exports builders kept on disk, from a delegated read of their export files
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Turns the results of a looped M(ansible.builtin.slurp) of each builder's C(remote_builder_export_file) (delegated to
    the builder, one item per builder) into a mapping of builder to export, for the O(exports) option of
    P(nix_remote.builders.builder_records#filter) and P(nix_remote.builders.unconfigured_builders#filter).
  - A result without content (the builder did not answer, or kept no file) gives no export.
  - A file that is not a JSON object (edited by hand) fails, naming the builder, the file, and the line and column.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: The C(results) of the looped slurp.
    type: list
    elements: dictionary
    required: true
  loop_var:
    description: The loop variable that names the builder in each result.
    type: string
    default: __local_client_builder
"""

EXAMPLES = r"""
- name: Parse the kept exports
  ansible.builtin.set_fact:
    exports: "{{ read_exports.results | nix_remote.builders.kept_exports(loop_var='builder') }}"
"""

RETURN = r"""
_value:
  description: Builder (inventory name) to its C(remote_builder_export).
  type: dictionary
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import (
    RecordError,
    kept_exports as _kept_exports,
)


def kept_exports(results, loop_var="__local_client_builder"):
    """Builder -> export from the read files (see DOCUMENTATION)."""
    try:
        return _kept_exports(results, loop_var=loop_var)
    except RecordError as exc:
        raise AnsibleFilterError("kept_exports: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"kept_exports": kept_exports}
