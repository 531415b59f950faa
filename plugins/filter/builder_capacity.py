# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: builder_capacity
short_description: A builder's max-jobs, cores and speed factor, from nix_info and the role's options
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Derives what the P(nix_remote.builders.remote_builder#role) role does not get as options. max-jobs is
    the smaller of the CPU count and the number of jobs the memory holds (each at least 1; unknown memory counts
    as room for one job); cores divides the CPUs among the jobs (at least 1); the speed factor is the CPU count.
    Options that are set (not V(null)) are kept.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: The builder's M(nix_remote.builders.nix_info) result; C(cores) and C(memory_bytes) are read.
    type: dictionary
    required: true
  memory_per_job_bytes:
    description: Memory one job needs (C(remote_builder_memory_per_job_bytes)).
    type: integer
    required: true
  max_jobs:
    description: C(remote_builder_max_jobs); V(null) derives it.
    type: integer
  cores:
    description: C(remote_builder_cores); V(null) derives it.
    type: integer
  speed_factor:
    description: C(remote_builder_speed_factor); V(null) derives it.
    type: integer
"""

EXAMPLES = r"""
- name: Derive the capacity
  ansible.builtin.set_fact:
    capacity: "{{ nix | nix_remote.builders.builder_capacity(memory_per_job_bytes=2147483648) }}"
# With 4 CPUs and 8 GiB: capacity == {'max_jobs': 4, 'cores': 1, 'speed_factor': 4}
"""

RETURN = r"""
_value:
  description: The capacity.
  type: dictionary
  contains:
    max_jobs:
      description: max-jobs of the builder's daemon (and in its export).
      type: integer
    cores:
      description: cores per build.
      type: integer
    speed_factor:
      description: The speed factor clients write for it.
      type: integer
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import (
    ExportError,
    capacity as _capacity,
)


def builder_capacity(nix, memory_per_job_bytes, max_jobs=None, cores=None, speed_factor=None):
    """A builder's capacity (see DOCUMENTATION)."""
    try:
        return _capacity((nix or {}).get("cores"), (nix or {}).get("memory_bytes"), memory_per_job_bytes,
                         max_jobs=max_jobs, build_cores=cores, speed_factor=speed_factor)
    except ExportError as exc:
        raise AnsibleFilterError("builder_capacity: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"builder_capacity": builder_capacity}
