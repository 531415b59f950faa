#!/usr/bin/python
# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ssh_keypair
short_description: Make sure an ed25519 SSH key without a passphrase exists, and return its public half
version_added: 0.2.0
description:
  - Gives a host a private SSH key that a daemon can use unattended (no passphrase), such as the key C(nix-daemon)
    uses to reach remote builders, and returns only its public half.
  - In one step, what would otherwise be four tasks - the key's directory (created when missing, then kept at mode
    C(0700) with O(owner) and O(group)), the key (generated with C(ssh-keygen -t ed25519 -N "") when missing), the
    private key's owner, group and mode C(0600), and the public half read back with C(ssh-keygen -y).
  - An existing key is never replaced. A key that C(ssh-keygen -y -P "") cannot read (it has a passphrase, or it is
    not a private key) fails the task with C(ssh-keygen)'s message, naming the file; nothing is changed.
  - The private key never leaves the host - the module does not read it, and returns no part of it.
author:
  - nix_remote.builders contributors (@nix_remote)
extends_documentation_fragment:
  - nix_remote.builders.attributes
attributes:
  check_mode:
    support: full
    details:
      - A key that does not exist yet is reported as created, with an empty RV(public_key).
      - So is the public half of a key whose owner, group or mode would be fixed first, since C(ssh-keygen) does not
        read a private key that others may read.
  diff_mode:
    support: full
  platform:
    platforms: posix
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
options:
  path:
    description:
      - The private key. The public half is written next to it as C(<path>.pub) by C(ssh-keygen) when the key is created.
    type: path
    required: true
  comment:
    description:
      - The comment of a key this module creates. An existing key keeps its own.
    type: str
    default: ""
  owner:
    description:
      - The owner of the key and of its directory.
    type: str
    default: root
  group:
    description:
      - The group of the key and of its directory.
    type: str
    default: root
  ssh_keygen:
    description:
      - The C(ssh-keygen) to run. By default it is looked up on E(PATH) and in the system's usual directories.
    type: path
seealso:
  - module: nix_remote.builders.nix_info
"""

EXAMPLES = r"""
- name: Create root's key for nix-daemon and publish its public half
  nix_remote.builders.ssh_keypair:
    path: /root/.ssh/nix-remote-builds
    comment: nix-remote-builds@client1
  register: daemon_key

- name: Show the public key
  ansible.builtin.debug:
    msg: "{{ daemon_key.public_key }}"
"""

RETURN = r"""
public_key:
  description:
    - The public key as C(<type> <base64>), without a comment.
    - Empty in check mode when the key does not exist yet, or its owner, group or mode would be fixed first.
  returned: always
  type: str
  sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1X8b3cQ9oN0c3l3Jv2pZ8W7r2Y3Q0rT6yV5uU4eE1
created:
  description: Whether the key was (in check mode, would be) generated.
  returned: always
  type: bool
  sample: false
path:
  description: The private key.
  returned: always
  type: str
  sample: /root/.ssh/nix-remote-builds
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nix_remote.builders.plugins.module_utils.file_edit import ConfigFileError, make_directory

DIRECTORY_MODE = 0o700
KEY_MODE = 0o600


def _make_directories(module: AnsibleModule, path: str, result: dict) -> None:
    """The key's directory, with any missing parents, through file_edit.make_directory (0700, owned like
    the key; owner and group resolved before anything is made). Something else in its place is refused."""
    directory = os.path.dirname(path) or "."
    if os.path.lexists(directory) and not os.path.isdir(directory):
        module.fail_json(msg=f"{directory}: the key's directory is not a directory; nothing was changed")
    if os.path.isdir(directory):
        return
    result["diff"]["before"]["directory"] = f"{directory} absent"
    result["diff"]["after"]["directory"] = f"{directory} {module.params['owner']}:{module.params['group']} {DIRECTORY_MODE:04o}"
    try:
        make_directory(module, path, DIRECTORY_MODE, result)
    except ConfigFileError as exc:
        module.fail_json(msg=str(exc))


def _set_attributes(module: AnsibleModule, path: str, mode: int, result: dict) -> bool:
    """Owner, group and mode as asked; in check mode only reported. Whether they were (would be) changed."""
    if module.check_mode and not os.path.exists(path):
        return False
    changed = module.set_owner_if_different(path, module.params["owner"], False)
    changed = module.set_group_if_different(path, module.params["group"], changed)
    changed = module.set_mode_if_different(path, mode, changed)
    if changed:
        result["changed"] = True
        result["diff"]["before"].setdefault(path, "another owner, group or mode")
        result["diff"]["after"].setdefault(path, f"{module.params['owner']}:{module.params['group']} {mode:04o}")
    return changed


def _keygen(module: AnsibleModule) -> str:
    # Looked up only when needed: check mode on a host whose SSH client is still to be installed needs none.
    return module.params["ssh_keygen"] or module.get_bin_path("ssh-keygen", required=True, opt_dirs=["/usr/bin", "/usr/local/bin"])


def ensure_key(module: AnsibleModule) -> dict:
    path = module.params["path"]
    directory = os.path.dirname(path) or "."
    result = dict(changed=False, created=False, path=path, public_key="", diff=dict(before={}, after={}))

    _make_directories(module, path, result)
    # A linked directory (a home on another disk) is followed, as ansible.builtin.file does.
    _set_attributes(module, os.path.realpath(directory), DIRECTORY_MODE, result)

    # A link is refused rather than followed: the daemon's key is a file the module owns outright.
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        module.fail_json(msg=f"{path}: the key is not a regular file (a link, a directory or another kind); move it away and run again")
    if not os.path.lexists(path):
        result.update(changed=True, created=True)
        result["diff"]["before"]["key"] = "absent"
        result["diff"]["after"]["key"] = f"ed25519 key without passphrase, comment {module.params['comment']!r}"
        if module.check_mode:
            return result
        rc, _out, err = module.run_command([_keygen(module), "-q", "-t", "ed25519", "-N", "", "-C", module.params["comment"], "-f", path])
        if rc != 0:
            module.fail_json(msg=f"{path}: ssh-keygen could not create the key: {err.strip()}", rc=rc)
    if _set_attributes(module, path, KEY_MODE, result) and module.check_mode:
        # ssh-keygen refuses to read a private key that others may read; the real run closes it first.
        module.warn(f"{path}: its owner, group or mode would be fixed first; check mode cannot read its public half before that")
        return result

    # -P "": a key with a passphrase fails here instead of prompting; nix-daemon could never unlock it.
    rc, out, err = module.run_command([_keygen(module), "-y", "-P", "", "-f", path])
    if rc != 0:
        module.fail_json(
            msg=(f"{path} cannot be used by nix-daemon ({err.strip()}). It must be a private key without a passphrase; "
                 "move it away and run again to generate a new one."),
            rc=rc,
        )
    fields = out.split()
    if len(fields) < 2:
        module.fail_json(msg=f"{path}: ssh-keygen -y gave no public key", rc=rc)
    result["public_key"] = " ".join(fields[:2])
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            comment=dict(type="str", default=""),
            owner=dict(type="str", default="root"),
            group=dict(type="str", default="root"),
            ssh_keygen=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    result = ensure_key(module)
    if not module._diff or not result["changed"]:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
