#!/usr/bin/python
# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nix_machines
short_description: Manage Nix remote builder entries in a machines file or the C(builders) setting
version_added: 0.1.0
description:
  - Adds, replaces and removes remote builder entries in the Nix machines format, either in a machines file
    (O(path), by default C(/etc/nix/machines)) or in the C(builders) setting of a C(nix.conf) (O(nix_conf_path)).
  - The existing file is parsed as Nix 2.29 and later parse it; entries are matched by their normalized store URI
    (C(nix@host) and C(ssh://nix@host) are the same builder). Every other line, comment and blank line is kept byte for byte.
  - Entries are written in the portable form that every Nix (and Lix) version reads the same way
    - one entry per line, all eight columns, C(-) for unset ones, an integer speed factor before Nix 2.20,
    and the host key column only from Nix 2.4.
  - The candidate is parsed again before it is installed, and written atomically. Its C(@file) references are followed
    as Nix follows them; a reference cycle, a directory or a malformed entry in a referenced file fails the task,
    naming the file and line.
  - Nix re-reads the machines file for every build, so changing it needs no daemon restart; a change to the
    C(builders) setting of a C(nix.conf) does.
author:
  - nix_remote.builders contributors (@nix_remote)
extends_documentation_fragment:
  - ansible.builtin.files
  - nix_remote.builders.attributes
  - nix_remote.builders.attributes.FILES
options:
  path:
    description:
      - The machines file to edit. It is created when missing.
      - Mutually exclusive with O(nix_conf_path).
    type: path
    default: /etc/nix/machines
  nix_conf_path:
    description:
      - Edit the C(builders) setting of this C(nix.conf) instead of a machines file. Entries are joined with C( ; ).
      - When the file has no C(builders) setting yet, Nix's default C(@<directory>/machines) is kept as the first entry,
        so that adding an entry never silently disables the machines file.
      - C(@file) references in the value are kept as they are.
      - When the file includes C(nix.custom.conf), the C(builders) setting is edited there (see O(follow_custom_conf)).
    type: path
  follow_custom_conf:
    description:
      - With O(nix_conf_path), when that file includes C(nix.custom.conf) (C(include) or C(!include)), edit the
        C(builders) setting in C(nix.custom.conf), where Nix reads it last, as M(nix_remote.builders.nix_conf) does.
      - When C(nix.custom.conf) has no C(builders) setting yet, it starts from the value in effect in O(nix_conf_path)
        (or Nix's default C(@<directory>/machines)).
      - A C(builders) line in O(nix_conf_path) after that include would override the edit; that is refused.
    type: bool
    default: true
  builders:
    description:
      - The builder entries to manage.
    type: list
    elements: dict
    default: []
    suboptions:
      uri:
        description:
          - Store URI of the builder, such as C(ssh-ng://remotebuild@builder1) or C(nix@host) (which Nix reads as C(ssh://nix@host)).
          - Leading or trailing whitespace is refused. A password in the URI (C(scheme://user:password@host)) is masked in the output.
        type: str
        required: true
      systems:
        description:
          - System types the builder builds for. Empty means the client's own system.
          - An empty name, or one with whitespace, C(,), C(#) or C(;), is refused (Nix would read it differently).
        type: list
        elements: str
        default: []
      ssh_key:
        description: Absolute path of the SSH private key on the client (Nix 2.34 and later reject relative paths).
        type: str
      max_jobs:
        description: How many builds Nix runs on this builder at once.
        type: int
        default: 1
      speed_factor:
        description:
          - Relative speed; Nix prefers faster builders. Must be a whole number for Nix older than 2.20.
        type: float
        default: 1.0
      supported_features:
        description: System features the builder supports, such as C(kvm) or C(big-parallel).
        type: list
        elements: str
        default: []
      mandatory_features:
        description: Features a derivation must require to be built on this builder.
        type: list
        elements: str
        default: []
      public_host_key:
        description:
          - The base64 encoding of the builder's OpenSSH public host key line (C(base64 -w0 /etc/ssh/ssh_host_ed25519_key.pub)).
        type: str
      comment:
        description:
          - A comment for the entry, written as the line C(# <comment>) directly above it.
          - A whole-line comment directly above an entry (that is alone on its line) is that entry's comment. It is
            replaced when it reads differently, so keep other comments apart from managed entries, for example by a blank line.
            An entry that shares its line with other entries (C(a ; b)) is moved to a line of its own, below that line.
          - When an entry is removed, its comment line goes with it if it reads C(# <comment>) (with
            O(builders[].state=absent)); O(exclusive=true) removes the comment line directly above every entry it removes when O(builders[].comment)
            could have written it.
          - Without O(builders[].comment) the comments around the entry are left as they are.
          - A newline, carriage return, NUL or C(;) is refused. Nix older than 2.29 and Lix split a line on C(;) before
            they remove the comment, so the text after a C(;) in a comment would be read as a builder there.
          - Not with O(nix_conf_path); a C(builders) setting is one line and has no room for a comment line.
        type: str
        version_added: 0.2.0
      state:
        description: Whether the entry should be present or absent.
        type: str
        choices: [present, absent]
        default: present
  exclusive:
    description:
      - Remove every machine entry not listed in O(builders) with O(builders[].state=present). C(@file) references are kept.
      - The comment line directly above a removed entry is removed with it when O(builders[].comment) could have written it
        (C(# ) in the first column, no C(;)); other comments are kept.
    type: bool
    default: false
  nix_version:
    description:
      - The Nix version of the client that reads the file, for portable rendering.
      - Below 2.29, Nix (and Lix, versions 2.90 and later) split entries on C(;) before removing C(#) comments and do not trim them. Lines they
        read differently from newer Nix (a C(;) in a comment, blank entries, an indented C(@file)) are reported
        with a warning naming the file and line, and refused with O(exclusive=true), which could not remove them.
    type: str
    default: "2.4"
  follow:
    description:
      - Whether a symlinked file may be followed and the file it points to edited. By default a symlink is refused.
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
seealso:
  - module: nix_remote.builders.nix_conf
"""

EXAMPLES = r"""
- name: Offload to a builder over ssh-ng with a pinned host key
  nix_remote.builders.nix_machines:
    builders:
      - uri: ssh-ng://remotebuild@builder1.example.org
        systems: [x86_64-linux, i686-linux]
        ssh_key: /root/.ssh/nix_remote_builders_ed25519
        max_jobs: 8
        speed_factor: 2
        supported_features: [benchmark, big-parallel, kvm, nixos-test]
        public_host_key: c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUUxTlhVZHVsdW5URGZyZTQ5dFhKRnBOUFdoVVlHVUdOcWlZQ1ZYRHA5TFg=

- name: Label a builder with a comment line above its entry
  nix_remote.builders.nix_machines:
    builders:
      - uri: ssh-ng://remotebuild@builder2.example.org
        systems: [aarch64-linux]
        comment: managed by Ansible, see inventory host builder2

- name: Remove a decommissioned builder
  nix_remote.builders.nix_machines:
    builders:
      - uri: ssh-ng://remotebuild@old-builder.example.org
        state: absent

- name: Keep a builder in the builders setting of nix.conf itself
  nix_remote.builders.nix_machines:
    nix_conf_path: /etc/nix/nix.conf
    builders:
      - uri: eu.nixbuild.net
        systems: [x86_64-linux]
        max_jobs: 100
        supported_features: [benchmark, big-parallel]
"""

RETURN = r"""
path:
  description: The file that was edited.
  returned: always
  type: str
  sample: /etc/nix/machines
machines:
  description: The machine entries written directly in the file after the change (C(@file) references not expanded).
  returned: always
  type: list
  elements: dict
  sample:
    - store_uri: ssh-ng://remotebuild@builder1
      systems: [x86_64-linux]
      ssh_key: /root/.ssh/nix_remote_builders_ed25519
      max_jobs: 4
      speed_factor: 1.0
      supported_features: [benchmark, big-parallel]
      mandatory_features: []
      public_host_key: ""
restart_required:
  description: Whether nix-daemon must be restarted to see the change (true only when a C(nix.conf) changed).
  returned: always
  type: bool
  sample: false
backup_file:
  description: Name of the backup file that was created.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/nix/machines.12345.2026-11-25@12:00:00~
"""

import dataclasses
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nix_remote.builders.plugins.module_utils.file_edit import (
    ConfigFileError,
    check_symlink,
    file_diff,
    install,
    read_config,
    run_locked,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.machines import (
    Machine,
    MachinesDocument,
    MachinesFormatError,
    check_comment,
    check_file_references,
    legacy_parse_differences,
    normalize_store_uri,
    parse_machines,
    parse_nix_version,
    render_machine,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import guess_implementation, supports
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import NixConf, NixConfError
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_detect import custom_conf_target
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_secrets import secret_values
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_validate import check_candidate

BUILDER_SPEC = dict(
    uri=dict(type="str", required=True),
    systems=dict(type="list", elements="str", default=[]),
    ssh_key=dict(type="str", no_log=False),
    max_jobs=dict(type="int", default=1),
    speed_factor=dict(type="float", default=1.0),
    supported_features=dict(type="list", elements="str", default=[]),
    mandatory_features=dict(type="list", elements="str", default=[]),
    public_host_key=dict(type="str", no_log=False),
    comment=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


# Store types a builder can be reached as; anything else is most likely a typo such as
# `shh-ng://`, which Nix would only report when a build tries that builder.
BUILDER_SCHEMES = ("ssh-ng", "ssh", "mounted-ssh-ng", "unix", "local", "daemon", "auto", "file")


def check_uri(where: str, uri: str) -> None:
    """Refuse store URIs Nix cannot use as a builder: empty, `-`, no host, unknown scheme."""
    stripped = uri.strip()
    if stripped in ("", "-"):
        raise ValueError(f"{where}.uri: {uri!r} is not a store URI (Nix reads '-' or nothing in column 1 as a missing URI)")
    if stripped != uri:
        raise ValueError(f"{where}.uri: {uri!r} has leading or trailing whitespace, which would not be written")
    normalized = normalize_store_uri(stripped)
    scheme, sep, rest = normalized.partition("://")
    if not sep:
        return  # a local store path or auto/daemon/local, kept as written by Nix's rule
    if scheme not in BUILDER_SCHEMES:
        raise ValueError(f"{where}.uri: unknown store scheme {scheme + '://'!r} in {uri!r}; builders use ssh-ng:// or ssh://")
    authority = rest.split("?", 1)[0].rsplit("@", 1)[-1]
    if (scheme in ("ssh-ng", "ssh", "mounted-ssh-ng") and authority in ("", "-")) or authority.startswith("-"):
        raise ValueError(f"{where}.uri: {uri!r} names no host")


def machine_from_params(index: int, spec: dict, nix_version: str) -> Machine:
    """Build a Machine from one builders[] item, checking it the way Nix will read it."""
    where = f"builders[{index}]"
    check_uri(where, spec["uri"])
    if spec["ssh_key"] and not os.path.isabs(spec["ssh_key"]):
        raise ValueError(f"{where}.ssh_key: {spec['ssh_key']!r} is not an absolute path (Nix 2.34 and later require one)")
    for field in ("systems", "supported_features", "mandatory_features"):
        for position, item in enumerate(spec[field]):
            if not item or not item.strip():
                # An empty name would silently vanish from the machines file (Nix drops empty set items).
                raise ValueError(f"{where}.{field}[{position}]: {item!r} is empty; a system or feature needs a name")
    if spec["max_jobs"] < 0:
        raise ValueError(f"{where}.max_jobs: {spec['max_jobs']} is negative; Nix reads it as an unsigned integer")
    if spec["speed_factor"] < 0:
        raise ValueError(f"{where}.speed_factor: {spec['speed_factor']} is negative; Nix requires >= 0")
    try:
        machine = Machine(
            store_uri=normalize_store_uri(spec["uri"]),
            systems=tuple(sorted(set(spec["systems"]))),
            ssh_key=spec["ssh_key"] or None,
            max_jobs=spec["max_jobs"],
            speed_factor=spec["speed_factor"] if spec["speed_factor"] != 0 else 1.0,
            supported_features=tuple(sorted(set(spec["supported_features"]))),
            mandatory_features=tuple(sorted(set(spec["mandatory_features"]))),
            public_host_key=spec["public_host_key"] or "",
        )
        # Round-trip through Nix's own rules: this catches whitespace or separators inside a field,
        # bad base64 host keys and speed factors older Nix cannot read.
        line = render_machine(machine, nix_version)
        [reread] = parse_machines(line, source=where)
    except ValueError as exc:  # MachinesFormatError is a ValueError too
        raise ValueError(f"{where}: {exc}") from None
    if normalize_store_uri(reread.store_uri) != machine.store_uri:
        raise ValueError(f"{where}.uri: {spec['uri']!r} is not a single store URI")
    return machine


def machine_as_dict(machine: Machine) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(machine).items()}


def apply_edits(doc: MachinesDocument, machines: list, absent: list, exclusive: bool, nix_version: str,
                comments: dict | None = None) -> None:
    """Upsert MACHINES, remove the ABSENT URIs, then (EXCLUSIVE) every other entry.

    COMMENTS maps a normalized URI (present or absent) to its comment (see upsert and remove).
    """
    comments = comments or {}
    for machine in machines:
        doc.upsert(machine, nix_version=nix_version, comment=comments.get(machine.store_uri))
    for uri in absent:
        doc.remove(uri, comment=comments.get(uri))
    if exclusive:
        wanted = {m.store_uri for m in machines}
        for existing in doc.machines():
            if normalize_store_uri(existing.store_uri) not in wanted:
                doc.remove(existing.store_uri, any_comment=True)


def check_comment_param(where: str, comment, in_nix_conf: bool) -> None:
    """Refuse a comment that cannot be written: in a nix.conf value, or with a newline, NUL or ';'."""
    if comment is None:
        return
    if in_nix_conf:
        raise ValueError(f"{where}.comment: the builders setting of a nix.conf is one line and has no room for a comment "
                         "line; drop comment, or manage the entry in a machines file (path)")
    try:
        check_comment(comment)
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from None


def mask_secrets(module: AnsibleModule, *texts: str) -> None:
    """Register credentials (URL passwords, and access-tokens in a nix.conf) for Ansible's masking."""
    module.no_log_values.update(secret_values(texts))


def follow_custom(module: AnsibleModule, main_path: str, main_conf: NixConf, value):
    """Move the edit to the nix.custom.conf that main_path includes, if any.

    Returns None when it includes none, else (path, before, existed, conf, value) of the file to
    edit; value is the builders value to start from: that file's own, else the one in effect in
    main_path (None: Nix's default).
    """
    custom = custom_conf_target(main_path, main_conf.include_lines())
    if custom is None:
        return None
    custom_path, include_line = custom
    later = [number for number in main_conf.overriding_lines("builders") if number > include_line]
    if later:
        module.fail_json(msg=f"{main_path}, line {later[-1]}: builders is set after the include of {custom_path} "
                             f"(line {include_line}), so it overrides what this task would write there; move that line "
                             "above the include, or set follow_custom_conf=false to edit it in place")
    path = check_symlink(custom_path, module.params["follow"])
    before, existed = read_config(path)
    mask_secrets(module, before)
    conf = NixConf.parse(before, source=path)
    own = conf.get("builders")
    return path, before, existed, conf, own if own is not None else value


def check_legacy(module: AnsibleModule, text: str, where: str, exclusive: bool, nix_version: str, inline: bool) -> None:
    """Report what a client Nix below 2.29 (or Lix) reads differently from the rule we parse by."""
    version = parse_nix_version(nix_version)
    # Lix numbers its releases 2.90 and up and still splits the old way (nix_capabilities).
    if supports("machines_comments_first", version, guess_implementation(version)):
        return
    marker = "\x00source\x00"
    found = legacy_parse_differences(text, source=marker)
    if inline:
        # A nix.conf value is one line: name the nix.conf line instead of line 1 of the value.
        found = [message.replace(marker + ": line 1: ", where + ": ") for message in found]
    else:
        found = [message.replace(marker, where) for message in found]
    if not found:
        return
    if exclusive:
        module.fail_json(msg=f"exclusive=true, but the client's Nix {nix_version} (below 2.29, or Lix) reads entries here that "
                             f"this module cannot see as entries, so they would stay: {'; '.join(found)}"
                             ". Rewrite those lines (no ';' in comments, no blank or indented entries), "
                             "or set nix_version to the client's version if it is 2.29 or later")
    for message in found:
        module.warn(message)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/nix/machines"),
            nix_conf_path=dict(type="path"),
            builders=dict(type="list", elements="dict", default=[], options=BUILDER_SPEC),
            follow_custom_conf=dict(type="bool", default=True),
            exclusive=dict(type="bool", default=False),
            nix_version=dict(type="str", default="2.4"),
            follow=dict(type="bool", default=False),
            backup=dict(type="bool", default=False),
            keep_backups=dict(type="int"),
        ),
        add_file_common_args=True,
        # The builders setting and a machines file are two places; an edit goes to one of them.
        mutually_exclusive=[("path", "nix_conf_path")],
        supports_check_mode=True,
    )
    module.exit_json(**run_locked(module, edit_file))


def edit_file(module: AnsibleModule) -> dict:
    """Read, change, re-check and install the file; returns the module result."""
    params = module.params
    nix_version = params["nix_version"]
    mask_secrets(module, *(spec["uri"] for spec in params["builders"]))
    in_nix_conf = params["nix_conf_path"] is not None
    present, absent, comments = [], [], {}
    try:
        for index, spec in enumerate(params["builders"]):
            if spec["state"] == "absent":
                check_uri(f"builders[{index}]", spec["uri"])
                absent.append(normalize_store_uri(spec["uri"]))
            else:
                present.append(machine_from_params(index, spec, nix_version))
            check_comment_param(f"builders[{index}]", spec["comment"], in_nix_conf)
            if spec["comment"] is not None:
                comments[absent[-1] if spec["state"] == "absent" else present[-1].store_uri] = spec["comment"]
    except ValueError as exc:
        # The file the entry was meant for, then the field: builders[N].field.
        module.fail_json(msg=f"{params['nix_conf_path'] or params['path']}: {exc}")
    uris = [m.store_uri for m in present]
    duplicates = sorted({u for u in uris if uris.count(u) > 1})
    if duplicates:
        module.fail_json(msg=f"builders: {', '.join(duplicates)} listed more than once")

    try:
        path = check_symlink(params["nix_conf_path"] if in_nix_conf else params["path"], params["follow"])
        before, existed = read_config(path)
        mask_secrets(module, before)
        if in_nix_conf:
            main_path, conf = path, NixConf.parse(before, source=path)
            value = conf.get("builders")
            followed = follow_custom(module, main_path, conf, value) if params["follow_custom_conf"] else None
            if followed:
                path, before, existed, conf, value = followed
            if value is None:
                value = "@" + os.path.join(os.path.dirname(main_path), "machines")
            doc = MachinesDocument.parse(value, source=f"{path}: builders", inline=True)
        else:
            doc = MachinesDocument.parse(before, source=path)
        apply_edits(doc, present, absent, params["exclusive"], nix_version, comments)
        if in_nix_conf:
            conf.set("builders", doc.render())
            after = conf.render()
            reread = NixConf.parse(after, source=path)
            value = reread.get("builders") or ""
            lines = reread.assignment_lines("builders")
            where = f"{path}, line {lines[-1]} (builders)" if lines else f"{path} (builders)"
            MachinesDocument.parse(value, source=path, inline=True)
            check_file_references(value, source=where)
            check_legacy(module, value, where, params["exclusive"], nix_version, inline=True)
        else:
            after = doc.render()
            MachinesDocument.parse(after, source=path)
            check_file_references(after, path, source=path)
            check_legacy(module, after, path, params["exclusive"], nix_version, inline=False)
    except (ConfigFileError, MachinesFormatError, NixConfError) as exc:
        module.fail_json(msg=str(exc))
    except ValueError as exc:
        module.fail_json(msg=f"{path}: {exc}")

    for machine in doc.machines():
        if machine.ssh_key and not os.path.isabs(machine.ssh_key):
            module.warn(f"{path}: the entry for {machine.store_uri} has the relative SSH key path {machine.ssh_key!r}, "
                        "which Nix 2.34 and later reject; use an absolute path")
    mask_secrets(module, after)
    changed = after != before
    if in_nix_conf and changed:
        # Read as Nix reads it: within the include tree of the nix.conf (cycles, missing includes, bad lines).
        ok, message = check_candidate(module, params["nix_conf_path"], path, after, validate_with_nix=False)
        if not ok:
            module.fail_json(msg=f"{path}: the edited file was not installed: {message}")
    result = dict(
        changed=changed,
        path=path,
        restart_required=changed and in_nix_conf,
        machines=[machine_as_dict(m) for m in doc.machines()],
    )
    if module._diff:
        result["diff"] = file_diff(path, before, after, existed)
    install(module, path, after, existed, result)
    return result


if __name__ == "__main__":
    main()
