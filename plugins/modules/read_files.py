#!/usr/bin/python
# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: read_files
short_description: Read several files in one call, a missing file being an answer rather than an error
version_added: 0.2.0
description:
  - Returns the content of each of O(paths), base64-encoded as M(ansible.builtin.slurp) does, and whether it exists.
  - One module call for what would otherwise be one M(ansible.builtin.slurp) or M(ansible.builtin.stat) per file;
    on a fleet each call costs every host a round trip and a Python start.
  - A file that does not exist (or a broken link) is reported with RV(files[].exists=false). Anything else that stops
    the read - a directory, a permission error - fails the task with a message naming the file.
  - Like M(ansible.builtin.slurp), it returns whatever the files hold; do not point it at secrets, or set C(no_log) on
    the task.
author:
  - nix_remote.builders contributors (@nix_remote)
extends_documentation_fragment:
  - nix_remote.builders.attributes
  - nix_remote.builders.attributes.INFO_MODULE
attributes:
  platform:
    platforms: posix
options:
  paths:
    description:
      - The files to read, in the order the results are returned.
    type: list
    elements: path
    required: true
seealso:
  - module: ansible.builtin.slurp
  - module: ansible.builtin.stat
"""

EXAMPLES = r"""
- name: Read the machines file and an older state file, if there are any
  nix_remote.builders.read_files:
    paths:
      - /etc/nix/machines
      - /etc/nix/nix-remote-builders.json
  register: read

- name: Show the machines file
  ansible.builtin.debug:
    msg: "{{ read.files[0].content | b64decode if read.files[0].exists else 'no machines file' }}"
"""

RETURN = r"""
files:
  description: One entry for each of O(paths), in their order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file, as given.
      type: str
      sample: /etc/nix/machines
    exists:
      description: Whether the file exists.
      type: bool
      sample: true
    content:
      description: The file's bytes, base64-encoded; empty when it does not exist.
      type: str
      sample: c3NoLW5nOi8vcmVtb3RlYnVpbGRAYjEK
    encoding:
      description: The encoding of RV(files[].content), always C(base64).
      type: str
      sample: base64
"""

import base64
import errno

from ansible.module_utils.basic import AnsibleModule


def read(module: AnsibleModule, path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return dict(path=path, exists=False, content="", encoding="base64")
        module.fail_json(msg=f"{path}: cannot be read: {exc.strerror}", path=path)
    return dict(path=path, exists=True, content=base64.b64encode(data).decode("ascii"), encoding="base64")


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(paths=dict(type="list", elements="path", required=True)),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, files=[read(module, path) for path in module.params["paths"]])


if __name__ == "__main__":
    main()
