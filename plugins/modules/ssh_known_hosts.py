#!/usr/bin/python
# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ssh_known_hosts
short_description: Pin or remove host keys in an OpenSSH known_hosts file, under the collection's host lock
version_added: 0.2.0
description:
  - Adds and removes the host keys of named hosts in a known_hosts file, such as the system-wide
    C(/etc/ssh/ssh_known_hosts) that ssh reads for every user.
  - Every line this module does not manage is kept byte for byte, comments, blank lines, C(@cert-authority)
    and C(@revoked) lines, patterns and lines it cannot parse included.
  - A line is a host's when the host is one of its comma-separated names (compared without case, as ssh does)
    or its hashed name (C(|1|salt|hash), as C(ssh-keygen -H) writes it) is the host.
  - The edit runs under this collection's host-wide lock and is written through its safe-write path, as
    M(nix_remote.builders.nix_conf) edits are - a temporary file that gets the content, owner, group and mode
    is renamed over the file; a target that is not a regular file (a FIFO, a device, a directory) is refused.
  - Unlike M(ansible.builtin.known_hosts), no C(ssh-keygen) is needed and all hosts are edited in one write.
author:
  - nix_remote.builders contributors (@nix_remote)
extends_documentation_fragment:
  - ansible.builtin.files
  - nix_remote.builders.attributes
  - nix_remote.builders.attributes.FILES
options:
  path:
    description:
      - The known_hosts file to edit. It is created (mode C(0644) unless O(mode) says otherwise) when a key is to be added.
    type: path
    default: /etc/ssh/ssh_known_hosts
  hosts:
    description:
      - The hosts to manage. A host may be listed more than once with O(hosts[].state=present); its keys are then merged.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The host as its known_hosts line names it, C(host) for port 22 and C([host]:port) for any other port.
          - It cannot hold whitespace or a comma, nor start with C(#), C(@) or C(|).
        type: str
        required: true
      keys:
        description:
          - With O(hosts[].state=present), the host's keys, each C(keytype base64) with an optional comment,
            as in a C(.pub) file or the output of C(ssh-keyscan) without the host name.
          - A key the host has in the file of the same type as one of these, but with other key material, is removed,
            so a replaced host key is no longer accepted. Keys of other types are kept.
          - New lines are written unhashed, C(name keytype base64 [comment]), where the replaced key was or at the end.
        type: list
        elements: str
        default: []
      state:
        description:
          - C(present) pins O(hosts[].keys) for the host; C(absent) removes every line of the host.
          - A line that also names other hosts loses only this host's name; a hashed line of the host is removed.
        type: str
        choices: [present, absent]
        default: present
  follow:
    description:
      - Whether a symlinked O(path) may be followed and the file it points to edited.
      - By default a symlink is refused.
    type: bool
    default: false
  backup:
    description:
      - Create a backup file including the timestamp information so you can get the original file back.
    type: bool
    default: false
notes:
  - Hashing host names (C(HashKnownHosts)) is not supported for the lines this module writes.
seealso:
  - module: ansible.builtin.known_hosts
  - module: nix_remote.builders.file_content
"""

EXAMPLES = r"""
- name: Pin two builders' host keys, one on port 2222, and forget an old builder
  nix_remote.builders.ssh_known_hosts:
    path: /etc/ssh/ssh_known_hosts
    hosts:
      - name: builder1.example.com
        keys:
          - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM
      - name: "[builder2.example.com]:2222"
        keys:
          - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM root@builder2
      - name: old-builder.example.com
        state: absent
    owner: root
    group: root
    mode: "0644"
"""

RETURN = r"""
path:
  description: The file that was (or in check mode would be) written.
  returned: always
  type: str
  sample: /etc/ssh/ssh_known_hosts
added:
  description: The keys added, each C(name keytype).
  returned: always
  type: list
  elements: str
  sample: ["builder1.example.com ssh-ed25519"]
removed:
  description: The keys removed (or the lines that lost the host's name), each C(name keytype).
  returned: always
  type: list
  elements: str
  sample: ["old-builder.example.com ssh-rsa"]
backup_file:
  description: Name of the backup file that was created.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/ssh/ssh_known_hosts.12345.2026-11-25@12:00:00~
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nix_remote.builders.plugins.module_utils.file_edit import (
    ConfigFileError,
    check_symlink,
    file_diff,
    install,
    read_config,
    run_locked,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.known_hosts import KnownHostsError, edit


def wanted(module: AnsibleModule) -> tuple[dict, list]:
    """{name: [keys]} to pin and [names] to remove, from O(hosts); conflicting entries fail."""
    present: dict = {}
    absent: list = []
    for index, host in enumerate(module.params["hosts"]):
        name = host["name"]
        if host["state"] == "absent":
            if host["keys"]:
                module.fail_json(msg=f"hosts[{index}] ({name}): keys are given with state=absent; remove the keys or use state=present")
            if name not in absent:
                absent.append(name)
        else:
            if not host["keys"]:
                module.fail_json(msg=f"hosts[{index}] ({name}): state=present needs at least one key")
            present.setdefault(name, []).extend(k for k in host["keys"] if k not in present.get(name, []))
    lowered = {n.lower() for n in absent}
    both = sorted(n for n in present if n.lower() in lowered)
    if both:
        module.fail_json(msg=f"hosts: {', '.join(both)} listed both present and absent")
    return present, absent


def edit_file(module: AnsibleModule) -> dict:
    present, absent = wanted(module)
    try:
        path = check_symlink(module.params["path"], module.params["follow"])
        before, existed = read_config(path)
        after, added, removed = edit(before, present, absent)
    except (ConfigFileError, KnownHostsError) as exc:
        module.fail_json(msg=f"{module.params['path']}: {exc}" if isinstance(exc, KnownHostsError) else str(exc))
    result = dict(changed=after != before, path=path, added=added, removed=removed)
    if module._diff:
        result["diff"] = file_diff(path, before, after, existed)
    install(module, path, after, existed, result)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/ssh/ssh_known_hosts"),
            hosts=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                keys=dict(type="list", elements="str", default=[], no_log=False),
                state=dict(type="str", choices=["present", "absent"], default="present"),
            )),
            follow=dict(type="bool", default=False),
            backup=dict(type="bool", default=False),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    module.exit_json(**run_locked(module, edit_file))


if __name__ == "__main__":
    main()
