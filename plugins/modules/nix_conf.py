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
  list_items:
    description:
      - Items to add to or remove from list settings, as a dictionary of setting name to a dictionary with
        C(present) and/or C(absent), each a list of items (strings, compared as written).
      - The list is the value of the setting as Nix reads it from the edited file. For C(NAME) (or an alias)
        that is the last C(NAME) line and the C(extra-NAME) lines after it; for C(extra-NAME) it is the
        C(extra-NAME) lines in effect only (what they append), so an item of the plain C(NAME) line does
        not count for C(extra-NAME).
      - Items in C(present) that the list lacks are appended, in the given order and without duplicates, to
        the last C(NAME) line (for C(extra-NAME) the last C(extra-NAME) line in effect). When there is none,
        a line is added where O(settings) would add it (an C(extra-) line after its base setting).
      - Items in C(absent) are removed from every line that makes up the list. A line left without items
        is removed; for a plain C(NAME) Nix then uses an earlier C(NAME) line or its default.
      - Every other item keeps its place and spelling, and the rest of the line (indentation, spacing,
        comment, the setting name or alias as written) is kept.
      - Items are single words. An item with whitespace, C(#) or a NUL character is refused, and so is an
        item in both C(present) and C(absent).
      - C(adopt) (with O(managed_marker) only) lists items of C(present) to record as the module's own even when the
        list already has them, so that a later run removes them once they leave C(present). It takes over items an
        earlier tool recorded elsewhere, such as the state file of this collection before 0.2.0; without it an
        item that was already in the list is never recorded.
      - C(keep) (with O(managed_marker) only) lists shell-style patterns (C(fnmatch), case-sensitive). Recorded items
        that match one and are in neither C(present) nor C(absent) stay in the list and in the record instead of
        being removed. A run that knows only part of what it manages uses it for the rest, such as the signing keys
        of hosts that a C(--limit) left out.
      - Only list settings (such as C(trusted-users), C(trusted-public-keys), C(substituters),
        C(system-features)) and their C(extra-) forms are accepted.
      - A setting named here may not be in O(settings) or O(absent) as well (nor twice, under an alias).
      - Items of C(access-tokens) and C(impure-env) are masked in the result and the diff, like O(settings).
    type: dict
    default: {}
    version_added: 0.2.0
  managed_marker:
    description:
      - Record the items this module added through O(list_items) in a comment line, so that a later run
        can remove them when they are no longer in C(present), without a state file.
      - 'The comment reads C(# <managed_marker> manages <NAME>: <item> <item> ...), with C(NAME) the setting
        as named in O(list_items) with aliases resolved. It is written directly above the line the items
        were added to, and found again wherever it is in the file. Nix ignores it like any comment.'
      - Items the comment records that are not in C(present) any more are removed, in addition to C(absent).
        Items the comment does not record (added by an administrator) are never removed unless they are in
        C(absent); an item that was already in the list is not recorded.
      - The comment is rewritten when the recorded items change, and removed when none are left.
      - Changing only the comment is a change, but not one that needs a daemon restart (RV(restart_required)).
      - Must not contain C(#), a line break or a tab, nor start or end with whitespace.
    type: str
    version_added: 0.2.0
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

- name: Trust the client and builder signing keys, drop an old key, and forget keys an earlier run added but no longer lists
  nix_remote.builders.nix_conf:
    list_items:
      extra-trusted-public-keys:
        present:
          - "client1:8ewtNRKnTcH0OLBP9XVSEr1CxNKS2nkDNCxy8HZ1YjU="
          - "builder1:f9c1Jd0KRvdNhM8+j7hq1b0yGgbNKqAaOO2GTZbOryI="
        absent:
          - "old-client:WfGZOtu5t4nJsfzQhqWSiBZ6u9FiJ6WKQ3lZ8V3TZlA="
      extra-trusted-users:
        absent: [remotebuild]
    managed_marker: nix_remote.builders

- name: Old Nix (before 2.4) has no extra-trusted-users; add the build user to trusted-users itself
  nix_remote.builders.nix_conf:
    list_items:
      trusted-users:
        present: [root, remotebuild]

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
list_items:
  description:
    - For each setting of O(list_items), what changed and the result.
    - C(added) and C(removed) are the items this run added and removed, C(items) the list as Nix reads it from
      the file afterwards, and C(managed) the items the O(managed_marker) comment records (empty without a marker).
    - Items of C(access-tokens) and C(impure-env) are masked.
  returned: always
  type: dict
  sample:
    extra-trusted-users:
      added: [remotebuild]
      removed: []
      items: [alice, remotebuild]
      managed: [remotebuild]
  version_added: 0.2.0
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
    check_item,
    check_marker,
    split_key,
    to_nix_value,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_detect import custom_conf_target
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_secrets import secret_values
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_validate import check_candidate


def apply_changes(module: AnsibleModule, conf: NixConf, path: str) -> dict:
    """Apply O(settings), O(absent) then O(list_items) to conf, failing with the offending key named;
    returns what O(list_items) changed, per setting."""
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
    lists = {}
    for key, spec in (module.params.get("list_items") or {}).items():
        try:
            lists[key] = conf.edit_list(key, spec["present"], spec["absent"], marker=module.params.get("managed_marker"),
                                        adopt=spec.get("adopt", ()), keep=spec.get("keep", ()))
        except NixConfError as exc:
            module.fail_json(msg=f"{path}: list_items.{key}: {exc.detail}")
    return lists


def check_list_items(module: AnsibleModule) -> None:
    """Normalize O(list_items) to {name: {present: [...], absent: [...]}} and refuse what cannot be
    written (before any file is read, naming the setting and the item)."""
    marker = module.params["managed_marker"]
    if marker is not None:
        try:
            check_marker(marker)
        except ValueError as exc:
            module.fail_json(msg=f"managed_marker: {exc}")
    normalized = {}
    for key, spec in module.params["list_items"].items():
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            module.fail_json(msg=f"list_items.{key}: expected a dictionary with present and/or absent, not {spec!r}")
        unknown = sorted(set(spec) - {"present", "absent", "adopt", "keep"})
        if unknown:
            module.fail_json(msg=f"list_items.{key}: unknown key {unknown[0]!r}; only present, absent, adopt and keep are accepted")
        lists = {}
        for field in ("present", "absent", "adopt", "keep"):
            items = spec.get(field)
            if items is None:
                items = []
            if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
                module.fail_json(msg=f"list_items.{key}.{field}: expected a list of items, not {items!r}")
            for item in items:
                try:
                    check_item(item)
                except ValueError as exc:
                    module.fail_json(msg=f"list_items.{key}.{field}: {exc}")
            lists[field] = list(items)
        both = [item for item in lists["present"] if item in lists["absent"]]
        if both:
            module.fail_json(msg=f"list_items.{key}: item {both[0]!r} is both in present and absent")
        stray = [item for item in lists["adopt"] if item not in lists["present"]]
        if stray:
            module.fail_json(msg=f"list_items.{key}.adopt: item {stray[0]!r} is not in present; only items kept present can be adopted")
        for field in ("adopt", "keep"):
            if lists[field] and marker is None:
                module.fail_json(msg=f"list_items.{key}.{field}: {field} needs managed_marker, whose record it reads")
        normalized[key] = lists
    module.params["list_items"] = normalized
    refuse_conflicts(module)


def _setting(key: str) -> tuple[str, bool]:
    """(base name, whether it is the extra- form), aliases resolved."""
    return split_key(key) if isinstance(key, str) else (key, False)


def refuse_conflicts(module: AnsibleModule) -> None:
    """A list_items setting may not be managed by settings or absent too, nor twice under two spellings."""
    seen = {}
    for key in module.params["list_items"]:
        if _setting(key) in seen:
            module.fail_json(msg=f"list_items.{key}: the same setting as list_items.{seen[_setting(key)]} (an alias); name it once")
        seen[_setting(key)] = key
    for key in module.params["settings"]:
        if _setting(key) in seen:
            module.fail_json(msg=f"settings.{key}: also in list_items (as {seen[_setting(key)]}); a setting is managed either "
                                 "as a whole value (settings) or item by item (list_items), not both")
    for key in module.params["absent"]:
        base, appends = _setting(key)
        clash = seen.get((base, appends)) or (None if appends else seen.get((base, True)))
        if clash:
            module.fail_json(msg=f"absent: {key}: removes the lines of list_items.{clash}; a setting is either removed "
                                 "(absent) or edited item by item (list_items), not both")


def load(module: AnsibleModule, path: str) -> tuple[str, bool, NixConf]:
    try:
        text, existed = read_config(path)
        mask_secrets(module, text)
        conf = NixConf.parse(text, source=path)
    except (ConfigFileError, NixConfError) as exc:
        module.fail_json(msg=str(exc))
    if module.params["managed_marker"] is not None:
        # Items a marker comment records for access-tokens and the like are credentials as well.
        module.no_log_values.update(secret_values((), conf.managed_items(module.params["managed_marker"])))
    return text, existed, conf


def mask_secrets(module: AnsibleModule, *texts: str) -> None:
    """Register the credentials for Ansible's no_log masking (result, invocation and diff): see nix_secrets."""
    module.no_log_values.update(secret_values(texts, module.params["settings"]))
    items = {}
    for key, spec in module.params["list_items"].items():
        if isinstance(spec, dict):
            items[key] = [str(item) for field in ("present", "absent", "adopt") if isinstance(spec.get(field), (list, tuple))
                          for item in spec[field]]
    module.no_log_values.update(secret_values((), items))


def refuse_overridden(module: AnsibleModule, main: NixConf, path: str, custom: str, include_line: int) -> None:
    """A setting that path assigns after including custom would override what the task writes there."""
    for key in list(module.params["settings"]) + list(module.params["absent"]) + list(module.params["list_items"]):
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
            list_items=dict(type="dict", default={}),
            managed_marker=dict(type="str"),
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
    check_list_items(module)
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

    before_meaning = conf.meaning()
    lists = apply_changes(module, conf, path)
    after = conf.render()
    mask_secrets(module, after)
    changed = after != before

    # Our own output must read back as what we meant; never install what fails that.
    try:
        reread = NixConf.parse(after, source=path)
    except NixConfError as exc:
        module.fail_json(msg=f"internal error: the edited {path} does not parse: {exc}")
    effective = {key: reread.get(key) for key in module.params["settings"]}

    # A marker comment alone changes nothing Nix reads.
    restart_required = changed and reread.meaning() != before_meaning
    result = dict(changed=changed, path=path, restart_required=restart_required, settings=effective, list_items=lists)
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
