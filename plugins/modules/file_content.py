#!/usr/bin/python
# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_content
short_description: Write a whole text file under the collection's host lock, through its safe-write path
version_added: 0.2.0
description:
  - Makes a file hold exactly O(content), for files whose whole text a role computes, such as the build user's
    C(authorized_keys).
  - The write runs under this collection's host-wide lock and goes through its safe-write path, as the edits of
    M(nix_remote.builders.nix_conf) do - a temporary file in the same directory gets the content, owner, group,
    mode and SELinux context, then is renamed over the file, so a failure at any step leaves the file as it was.
  - A target that is not a regular file (a FIFO, a device, a directory) is refused before the lock is taken, and
    a symlink unless O(follow=true).
  - The text must be valid UTF-8 without NUL characters.
author:
  - nix_remote.builders contributors (@nix_remote)
extends_documentation_fragment:
  - ansible.builtin.files
  - nix_remote.builders.attributes
  - nix_remote.builders.attributes.FILES
options:
  path:
    description:
      - The file to write. It is created (mode C(0644) unless O(mode) says otherwise) when missing; its directory must exist
        unless O(directory_mode) is set.
    type: path
    required: true
  content:
    description:
      - The whole text of the file.
    type: str
    required: true
  follow:
    description:
      - Whether a symlinked O(path) may be followed and the file it points to written.
      - By default a symlink is refused, so that a link planted in a directory another user owns is never followed.
    type: bool
    default: false
  backup:
    description:
      - Create a backup file including the timestamp information so you can get the original file back.
    type: bool
    default: false
  keep_backups:
    description:
      - With O(backup=true), keep only this many of the newest backups of the file; older backups are removed.
      - By default every backup is kept.
    type: int
    version_added: 0.2.0
  directory_mode:
    description:
      - When set and the directory of O(path) is missing, it is created with any missing parents, each with this mode
        and with O(owner) and O(group), before the file is written. An existing directory is left as it is.
      - Without it, a missing directory fails the task.
    type: raw
    version_added: 0.2.0
  validate:
    description:
      - A command that checks the new content before it is installed, as the O(ansible.builtin.copy#module:validate)
        option of M(ansible.builtin.copy) and M(ansible.builtin.template) does.
      - It must contain C(%s), which is replaced by the path of a temporary file holding the new content, with the
        owner, group and mode the file would get. A literal C(%) is written C(%%).
      - The temporary file lies in a private temporary directory, not next to O(path); the command gets nothing else
        of the new content, and the temporary file is removed afterwards.
      - The command is split into words and run without a shell, so shell features such as expansion and pipes do not
        work; wrap it in C(sh -c '...') to have them.
      - When it exits with a non-zero status, the task fails with its output (standard error, else standard output) in
        the message, and O(path) is left as it was.
      - It runs only when the content would change, and unlike with M(ansible.builtin.copy) also in check mode, so that
        check mode reports the refusal a real run would meet. It must therefore only read the file it is given.
    type: str
    version_added: 0.2.0
seealso:
  - module: ansible.builtin.copy
  - module: nix_remote.builders.ssh_known_hosts
"""

EXAMPLES = r"""
- name: Authorize one client for building only
  nix_remote.builders.file_content:
    path: /var/lib/remotebuild/.ssh/authorized_keys
    content: |
      # source: client1
      restrict,command="/nix/var/nix/profiles/default/bin/nix-daemon --stdio" ssh-ed25519 AAAAC3Nza... root@client1
    owner: remotebuild
    group: remotebuild
    mode: "0600"

- name: Install a sudoers drop-in only when visudo accepts it, keeping the three newest backups
  nix_remote.builders.file_content:
    path: /etc/sudoers.d/remotebuild
    content: |
      remotebuild ALL=(root) NOPASSWD: /run/current-system/sw/bin/nix-store --gc
    owner: root
    group: root
    mode: "0440"
    validate: /usr/sbin/visudo -csf %s
    backup: true
    keep_backups: 3
"""

RETURN = r"""
path:
  description: The file that was (or in check mode would be) written.
  returned: always
  type: str
  sample: /var/lib/remotebuild/.ssh/authorized_keys
backup_file:
  description: Name of the backup file that was created.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /var/lib/remotebuild/.ssh/authorized_keys.12345.2026-11-25@12:00:00~
exit_status:
  description: Exit status of the O(validate) command, when it refused the new content.
  returned: failure of O(validate)
  type: int
  sample: 1
  version_added: 0.2.0
stdout:
  description: Standard output of the O(validate) command, when it refused the new content.
  returned: failure of O(validate)
  type: str
  sample: ""
  version_added: 0.2.0
stderr:
  description: Standard error of the O(validate) command, when it refused the new content.
  returned: failure of O(validate)
  type: str
  sample: "/tmp/validate-abc/remotebuild:1:13: syntax error"
  version_added: 0.2.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nix_remote.builders.plugins.module_utils.file_edit import (
    ConfigFileError,
    ValidationFailed,
    check_symlink,
    check_validate_command,
    file_diff,
    install,
    make_directory,
    read_config,
    run_locked,
    validate_candidate,
)


def edit_file(module: AnsibleModule) -> dict:
    after = module.params["content"]
    try:
        path = check_symlink(module.params["path"], module.params["follow"])
        before, existed = read_config(path)
    except ConfigFileError as exc:
        module.fail_json(msg=str(exc))
    if "\x00" in after:
        module.fail_json(msg=f"{path}: content holds a NUL character, which a text file cannot; nothing was written")
    result = dict(changed=after != before or not existed, path=path)
    if module._diff:
        result["diff"] = file_diff(path, before, after, existed)
    if result["changed"] and module.params["validate"]:
        # Also in check mode: the command gets only a temporary copy, and check mode must report
        # the refusal the real run would meet.
        try:
            validate_candidate(module, path, after, existed, module.params["validate"])
        except ValidationFailed as exc:
            module.fail_json(msg=str(exc), exit_status=exc.rc, stdout=exc.stdout, stderr=exc.stderr, **result)
    if module.params["directory_mode"] is not None:
        try:
            make_directory(module, path, module.params["directory_mode"], result)
        except ConfigFileError as exc:
            module.fail_json(msg=str(exc))
    install(module, path, after, existed, result)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            content=dict(type="str", required=True),
            follow=dict(type="bool", default=False),
            backup=dict(type="bool", default=False),
            keep_backups=dict(type="int"),
            validate=dict(type="str"),
            directory_mode=dict(type="raw"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if module.params["validate"] is not None:
        try:
            check_validate_command(module.params["validate"])
        except ConfigFileError as exc:
            module.fail_json(msg=str(exc))
    module.exit_json(**run_locked(module, edit_file))


if __name__ == "__main__":
    main()
