# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: emulation_plan
short_description: What a builder sets up to build for other architectures through binfmt_misc
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Turns M(nix_remote.builders.nix_info)'s binfmt facts and the P(nix_remote.builders.remote_builder#role) role's
    C(remote_builder_emulated_systems) into the systems the builder advertises, the C(extra-platforms) items Nix needs
    to accept them, the interpreters Nix's sandbox must see (registrations without the C(F) flag), the binfmt.d
    override files that add C(F), and the requested systems the kernel cannot run.
  - The filter is pure and reads only its arguments.
positional: _input
options:
  _input:
    description: The builder's M(nix_remote.builders.nix_info) result.
    type: dictionary
    required: true
  systems:
    description: The systems to emulate (C(remote_builder_emulated_systems)).
    type: list
    elements: string
    default: []
  detect:
    description: Also advertise the systems the kernel already runs through a registration with the C(F) flag.
    type: boolean
    default: true
"""

EXAMPLES = r"""
- name: Plan emulation
  ansible.builtin.set_fact:
    plan: "{{ nix | nix_remote.builders.emulation_plan(systems=['aarch64-linux']) }}"
# With Debian's qemu-user-static registered: plan.systems == ['aarch64-linux'],
# plan.extra_platforms == ['i686-linux', 'aarch64-linux'], plan.missing == []
"""

RETURN = r"""
_value:
  description: The plan.
  type: dictionary
  contains:
    systems:
      description: The emulated systems the builder builds for and advertises.
      type: list
      elements: string
    extra_platforms:
      description: The items of C(extra-platforms) (Nix's current ones kept); empty when nothing is emulated.
      type: list
      elements: string
    sandbox_paths:
      description: Interpreters to add to C(extra-sandbox-paths).
      type: list
      elements: string
    overrides:
      description: C({path, content, name}) of binfmt.d files in C(/etc/binfmt.d) that add the C(F) flag.
      type: list
      elements: dictionary
    missing:
      description: C({system, reason}) for requested systems the kernel cannot run.
      type: list
      elements: dictionary
"""

from ansible_collections.nix_remote.builders.plugins.module_utils.binfmt import plan as _plan


def emulation_plan(nix, systems=None, detect=True):
    """The emulation plan (see DOCUMENTATION)."""
    return _plan(nix or {}, systems or [], detect=bool(detect))


class FilterModule(object):
    def filters(self):
        return {"emulation_plan": emulation_plan}
