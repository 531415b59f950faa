# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_report
short_description: The verification rows as JSON data or JUnit XML, for CI and monitoring
version_added: 0.2.0
author:
  - nix_remote.builders contributors (@nix_remote)
description:
  - Turns the rows of P(nix_remote.builders.verify_table#filter) into a report other tools read.
  - C(json) gives a dictionary with C(version) (1), C(generated), C(ok), C(pairs), C(failed) and C(rows), each row with
    C(client), C(builder), C(ok), C(result) and C(kind) (C(pair), or C(info) for the row on connection reuse).
  - C(junit) gives JUnit XML text, one testcase per client/builder pair (classname the client, name the builder), with a
    failure element holding the row's result when the pair does not work; informational rows go to system-out.
  - The filter is pure and reads only its arguments.
positional: _input, report_format, generated
options:
  _input:
    description: The rows (C(rows) of P(nix_remote.builders.verify_table#filter)).
    type: list
    elements: dictionary
    required: true
  report_format:
    description: The report's format.
    type: string
    choices: [json, junit]
    required: true
  generated:
    description: When the checks ran, ISO 8601 in UTC.
    type: string
    required: true
"""

EXAMPLES = r"""
- name: Write the JUnit report on the controller
  ansible.builtin.copy:
    content: "{{ rows | nix_remote.builders.verify_report('junit', now(utc=true).isoformat()) }}"
    dest: reports/verify.xml
    mode: "0644"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
_value:
  description: The report, a dictionary for C(json), text for C(junit).
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.module_utils.verify_report import report_json, report_junit


def verify_report(rows, report_format, generated):
    """The report (see DOCUMENTATION)."""
    renderers = {"json": report_json, "junit": report_junit}
    if report_format not in renderers:
        raise AnsibleFilterError("verify_report: the format must be json or junit, not %r" % (report_format,))
    try:
        return renderers[report_format](list(rows), str(generated))
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("verify_report: rows without client, builder, ok or result (%r)" % (exc,)) from exc


class FilterModule(object):
    def filters(self):
        return {"verify_report": verify_report}
