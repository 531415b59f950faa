#!/usr/bin/python
# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nix_conf
short_description: Manage settings in a Nix C(nix.conf) without disturbing the rest of the file
version_added: 0.1.0
description:
  - Sets and removes settings in a Nix configuration file, parsing it exactly as Nix does
    (no line continuations, C(#) comments anywhere, C( = ) as its own token, last assignment wins).
  - Every line that is not a managed setting is kept byte for byte; an edit touches only the lines of its key.
  - Aliases are the same setting, so O(settings) with C(max-jobs) replaces an existing C(build-max-jobs) line.
  - A new C(extra-*) line always lands after the line of its base setting, because a plain assignment
    after it would discard it (Nix issue 9487).
  - When the file holds C(!include nix.custom.conf), as the Determinate and newer official installers write it,
    changes go to C(nix.custom.conf) (see O(follow_custom_conf)).
  - When Nix is installed on the host, the candidate file is read by Nix itself (C(nix show-config) or
    C(nix config show) with C(NIX_CONF_DIR) pointing at a temporary copy) before it is installed.
  - The daemon reads C(nix.conf) when it starts; the module reports RV(restart_required) and leaves the restart
    to M(nix_remote.builders.nix_daemon).
author:
  - nix_remote.builders contributors (@nix_remote)
extends_documentation_fragment:
  - ansible.builtin.files
  - nix_remote.builders.attributes
  - nix_remote.builders.attributes.FILES
options:
  path:
    description:
      - The C(nix.conf) to edit. It is created when missing.
    type: path
    default: /etc/nix/nix.conf
  settings:
    description:
      - Settings to make effective, as a dictionary of setting name to value.
      - Booleans are written C(true)/C(false), lists are joined with spaces, integers as plain numbers.
      - Values cannot contain C(#) or a newline, since Nix would cut them there, nor a NUL character.
      - A string value is refused when Nix would read it differently from how it is written, that is with leading or
        trailing whitespace, a tab, or several spaces in a row (Nix splits a value into words and joins them with one space).
      - Credentials are masked in the result, the diff and the invocation. They are the values of C(access-tokens) and
        C(impure-env) (and their C(extra-) forms), and the password of every C(scheme://user:password@) URL in any setting.
      - C(extra-builders) is refused, because C(builders) is a string setting that Nix cannot append to.
    type: dict
    default: {}
  absent:
    description:
      - Settings to remove. Every line assigning the setting, one of its aliases, or its C(extra-) form is removed.
    type: list
    elements: str
    default: []
  follow_custom_conf:
    description:
      - When O(path) includes C(nix.custom.conf) (C(include) or C(!include)), edit that file instead.
      - A managed setting that O(path) assigns after that include would override the edit; that is refused, naming the line.
    type: bool
    default: true
  follow:
    description:
      - Whether a symlinked O(path) may be followed and the file it points to edited.
      - By default a symlink is refused, so that a link into a generated or shared location is never rewritten by accident.
    type: bool
    default: false
  validate:
    description:
      - Have the installed Nix read the candidate before it is installed, and fail without writing when it rejects it.
      - Without Nix on the host there is nothing to ask, and only this module's own parser checks the candidate.
    type: bool
    default: true
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
notes:
  - Integer suffixes such as C(1G) are accepted by Nix in C(nix.conf) only from 2.23; write plain byte counts for
    C(min-free) and C(max-free) to stay portable.
seealso:
  - module: nix_remote.builders.nix_machines
  - module: nix_remote.builders.nix_daemon
"""

EXAMPLES = r"""
- name: Let the build user use the daemon as a trusted user and tune the builder
  nix_remote.builders.nix_conf:
    settings:
      extra-trusted-users: [remotebuild]
      max-jobs: 4
      cores: 0
      min-free: 1073741824
  register: builder_conf

- name: Offload builds, and let builders fetch from binary caches themselves
  nix_remote.builders.nix_conf:
    settings:
      builders: "@/etc/nix/machines"
      builders-use-substitutes: true

- name: Drop a setting this collection used to manage
  nix_remote.builders.nix_conf:
    absent:
      - build-poll-interval
"""

RETURN = r"""
path:
  description: The file that was (or in check mode would be) written, after following C(nix.custom.conf).
  returned: always
  type: str
  sample: /etc/nix/nix.conf
restart_required:
  description: Whether an effective setting changed; nix-daemon reads C(nix.conf) only when it starts.
  returned: always
  type: bool
  sample: true
settings:
  description: The effective value of each managed setting after the change, as Nix computes it from this file.
  returned: always
  type: dict
  sample: {"builders-use-substitutes": "true"}
backup_file:
  description: Name of the backup file that was created.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/nix/nix.conf.12345.2026-11-25@12:00:00~
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
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import (
    NixConf,
    NixConfError,
    to_nix_value,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_detect import custom_conf_target
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_secrets import secret_values
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_validate import check_candidate


def apply_changes(module: AnsibleModule, conf: NixConf, path: str) -> None:
    """Apply O(settings) then O(absent) to conf, failing with the offending key named."""
    for key, value in module.params["settings"].items():
        try:
            conf.set(key, to_nix_value(value))
        except (ValueError, TypeError) as exc:
            module.fail_json(msg=f"{path}: settings.{key}: {exc}")
    for key in module.params["absent"]:
        try:
            conf.unset(key)
        except ValueError as exc:
            module.fail_json(msg=f"{path}: absent: {key}: {exc}")


def load(module: AnsibleModule, path: str) -> tuple[str, bool, NixConf]:
    try:
        text, existed = read_config(path)
        mask_secrets(module, text)
        return text, existed, NixConf.parse(text, source=path)
    except (ConfigFileError, NixConfError) as exc:
        module.fail_json(msg=str(exc))


def mask_secrets(module: AnsibleModule, *texts: str) -> None:
    """Register the credentials for Ansible's no_log masking (result, invocation and diff): see nix_secrets."""
    module.no_log_values.update(secret_values(texts, module.params["settings"]))


def refuse_overridden(module: AnsibleModule, main: NixConf, path: str, custom: str, include_line: int) -> None:
    """A setting that path assigns after including custom would override what the task writes there."""
    for key in list(module.params["settings"]) + list(module.params["absent"]):
        try:
            later = [number for number in main.overriding_lines(key) if number > include_line]
        except (ValueError, TypeError):
            continue  # a bad key is reported by apply_changes, naming it
        if later:
            module.fail_json(msg=f"{path}, line {later[-1]}: {key} is set after the include of {custom} (line {include_line}), "
                                 "so it overrides what this task would write there; move that line above the include, "
                                 "or set follow_custom_conf=false to edit it in place")


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/nix/nix.conf"),
            settings=dict(type="dict", default={}),
            absent=dict(type="list", elements="str", default=[]),
            follow_custom_conf=dict(type="bool", default=True),
            follow=dict(type="bool", default=False),
            validate=dict(type="bool", default=True),
            backup=dict(type="bool", default=False),
            keep_backups=dict(type="int"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    module.exit_json(**run_locked(module, edit))


def edit(module: AnsibleModule) -> dict:
    """Read, change, validate and install the file; returns the module result."""
    try:
        path = check_symlink(module.params["path"], module.params["follow"])
    except ConfigFileError as exc:
        module.fail_json(msg=str(exc))
    mask_secrets(module)
    before, existed, conf = load(module, path)
    # The path as the task names it: Nix reads NIX_CONF_DIR/nix.conf even when that is a symlink, and
    # resolves relative includes from there.
    requested = module.params["path"]

    if module.params["follow_custom_conf"]:
        custom = custom_conf_target(path, conf.include_lines())
        if custom:
            custom, include_line = custom
            refuse_overridden(module, conf, path, custom, include_line)
            try:
                path = check_symlink(custom, module.params["follow"])
            except ConfigFileError as exc:
                module.fail_json(msg=str(exc))
            before, existed, conf = load(module, path)

    apply_changes(module, conf, path)
    after = conf.render()
    mask_secrets(module, after)
    changed = after != before

    # Our own output must read back as what we meant; never install what fails that.
    try:
        reread = NixConf.parse(after, source=path)
    except NixConfError as exc:
        module.fail_json(msg=f"internal error: the edited {path} does not parse: {exc}")
    effective = {key: reread.get(key) for key in module.params["settings"]}

    result = dict(changed=changed, path=path, restart_required=changed, settings=effective)
    if module._diff:
        result["diff"] = file_diff(path, before, after, existed)

    if changed and module.params["validate"]:
        # Checked where Nix reads it: as part of the nix.conf that includes it, with the rest of its tree.
        ok, message = check_candidate(module, requested, path, after)
        if not ok:
            module.fail_json(msg=f"{path}: the edited file was not installed: {message}", **result)

    install(module, path, after, existed, result)
    return result


if __name__ == "__main__":
    main()
