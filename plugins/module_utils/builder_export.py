# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a builder derives and publishes: its capacity, its export, the authorized_keys file, the
signing keys it trusts, and the daemon handler's rollback list.

Pure functions over plain data (nix_info's result, the role's options, other hosts' variables),
used by the remote_builder role (and, for the rollback list, local_client) through the filter
plugins ``builder_capacity``, ``builder_export``, ``authorized_key_sources``,
``authorized_keys_file``, ``signing_keys``, ``trust_list_items`` and ``rollback_list``.

``remote_builder_export``, read by clients through module_utils/builder_records.py::

    {'version': 1, 'state': 'present', 'address': str, 'port': int, 'user': str,
     'protocol': 'ssh-ng' | 'ssh', 'host_key': 'ssh-ed25519 AAAA...', 'host_key_base64': str,
     'systems': [str], 'supported_features': [str], 'mandatory_features': [str], 'max_jobs': int,
     'speed_factor': int, 'trust': 'trusted' | 'signing', 'remote_program': str, 'clients': int}

``clients`` (added in 0.2.0 without a version change: a client that does not find it shares no
slots) is the number of present clients that use the builder, for the clients' slot policy.

A withdrawn builder exports ``{'version': 1, 'state': 'absent'}``.  ``version`` (EXPORT_VERSION)
changes when a field changes meaning or goes; a client refuses an export newer than it reads.
Every field is read by the client's records (builder_records.inventory_record).
"""

from __future__ import annotations

import posixpath
import re

# Directories on the PATH a non-interactive ssh session gets (facts P1): a Nix binary there needs
# no remote-program in the client's URI.
SSH_PATH_DIRS = ("/usr/bin", "/bin", "/usr/local/bin")

MARKER = "# source: "
HEADER = "# Managed by nix_remote.builders (remote_builder role); rewritten on every run."


class ExportError(ValueError):
    """Values no capacity, export or key list can be made from."""


def _int(value, what):
    """Jinja's ``int`` filter on the values it gets here, but refusing what is not a number."""
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        pass
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise ExportError("%s is %r, not a number" % (what, value)) from None


def _get(mapping, key, default=None):
    try:
        return mapping[key]
    except (KeyError, TypeError):
        return default


def capacity(cores, memory_bytes, memory_per_job_bytes, max_jobs=None, build_cores=None, speed_factor=None):
    """max-jobs, cores and speed factor of a builder (nix_info's cores and memory, the options).

    Unset options (None) are derived: max-jobs is the smaller of the CPU count and the jobs the
    memory holds (each at least 1; unknown memory counts as room for one job), cores divides the
    CPUs among the jobs (at least 1), the speed factor is the CPU count. Given options are kept.
    """
    cpus = max(_int(cores or 0, "cores"), 1)
    per_job = _int(memory_per_job_bytes, "remote_builder_memory_per_job_bytes")
    if per_job <= 0:
        raise ExportError("remote_builder_memory_per_job_bytes is %r; it must be at least 1" % (memory_per_job_bytes,))
    by_memory = max(_int(memory_bytes or 0, "memory_bytes") // per_job, 1)
    jobs = _int(max_jobs, "remote_builder_max_jobs") if max_jobs is not None else min(cpus, by_memory)
    result = {
        "max_jobs": jobs,
        "cores": _int(build_cores, "remote_builder_cores") if build_cores is not None else max(cpus // max(jobs, 1), 1),
        "speed_factor": _int(speed_factor, "remote_builder_speed_factor") if speed_factor is not None else cpus,
    }
    # Nix reads max-jobs 0 as "build nothing locally", which would refuse every remote build.
    for key, least, option in (("max_jobs", 1, "remote_builder_max_jobs"), ("cores", 0, "remote_builder_cores"),
                               ("speed_factor", 1, "remote_builder_speed_factor")):
        if result[key] < least:
            raise ExportError("%s is %d; it must be at least %d" % (option, result[key], least))
    return result


def forced_command(nix, protocol):
    """The command every authorized key is locked to: the daemon (ssh-ng) or nix-store --serve."""
    paths = _get(nix, "paths", {}) or {}
    if protocol == "ssh-ng":
        return "%s --stdio" % _get(paths, "nix_daemon", "")
    return "%s --serve --write" % _get(paths, "nix_store", "")


EXPORT_VERSION = 1


def builder_export(nix, *, host, user, protocol, trust, max_jobs, speed_factor, address=None, port=None,
                   host_port=22, extra_system_features=(), mandatory_features=(), clients=(), hostvars=None,
                   emulated_systems=()):
    """``remote_builder_export`` of a present builder (see the module docstring).

    ADDRESS and PORT are the role options (None: HOST, that is ansible_host or the inventory name,
    and HOST_PORT, that is ansible_port or 22). remote_program is set only when the program the
    client runs is not on a non-interactive ssh session's PATH (P1).  CLIENTS are the inventory
    names of the clients that use this builder (the clients group without the builder itself);
    those HOSTVARS does not show withdrawn are counted.  EMULATED_SYSTEMS (the emulation plan's
    systems, which this run may have only just added to extra-platforms) follow nix_info's systems.
    """
    paths = _get(nix, "paths", {}) or {}
    keys = _get(nix, "ssh_host_keys") or []
    if not keys:
        raise ExportError("nix_info found no SSH host key to export")
    program = _get(paths, "nix_daemon") if protocol == "ssh-ng" else _get(paths, "nix_store")
    mandatory = sorted(set(mandatory_features or []))
    return {
        "version": EXPORT_VERSION,
        "state": "present",
        "address": address if address is not None else host,
        "port": _int(port if port is not None else host_port, "port"),
        "user": user,
        "protocol": protocol,
        "host_key": keys[0]["public_key"],
        "host_key_base64": keys[0]["base64"],
        "systems": _systems(list(_get(nix, "systems") or []), emulated_systems),
        "supported_features": sorted(set(list(_get(nix, "system_features") or [])).union(
            extra_system_features or [], mandatory)),
        "mandatory_features": mandatory,
        "max_jobs": _int(max_jobs, "max_jobs"),
        "speed_factor": _int(speed_factor, "speed_factor"),
        "trust": trust,
        "remote_program": "" if posixpath.dirname(program or "") in SSH_PATH_DIRS else program,
        "clients": len([c for c in sorted(set(clients or ())) if _present(_get(hostvars, c, {}))]),
    }


def _systems(nix_systems, emulated_systems):
    """The builder's own system first, then every other one sorted: the order of extra-platforms in
    nix.conf (which the emulation plan may only just have written) never changes the export."""
    native = nix_systems[:1]
    return native + sorted(set(nix_systems[1:]).union(emulated_systems or ()).difference(native))


def _present(host_vars):
    return _get(host_vars, "nix_remote_state", "present") == "present"


# One OpenSSH public key line: type, base64, optional comment; no options, no second line.
_PUBLIC_KEY_LINE = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-nistp[0-9]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*( [^\n]*)?$")


def authorized_key_sources(clients, hostvars, extra_keys=(), key_fact="local_client_public_key"):
    """The keys to authorize, as ``{'source', 'key'}``: the present clients' KEY_FACT (local_client_public_key;
    remote_builder_upload_public_key for a cache's upload user), sorted by name, empty ones skipped, then the
    extra keys (source ``remote_builder_extra_authorized_keys[i]``)."""
    keys = []
    for client in sorted(clients or []):
        hv = _get(hostvars, client, {})
        key = _get(hv, key_fact) or ""
        if _present(hv) and len(key) > 0:
            keys.append({"source": client, "key": key.strip()})
    for index, key in enumerate(extra_keys or []):
        keys.append({"source": "remote_builder_extra_authorized_keys[%d]" % index, "key": key.strip()})
    for item in keys:
        if not _PUBLIC_KEY_LINE.match(item["key"]):
            # Not echoed: a private key pasted by mistake must not reach the log.
            raise ExportError('the key from %s is not an OpenSSH public key line ("ssh-ed25519 AAAA... comment", '
                              "without options; the value is not shown)" % item["source"])
    return keys


_UNSET = object()


def keyless_clients(clients, hostvars, key_fact="local_client_public_key"):
    """Present clients without a KEY_FACT fact (their key play did not run)."""
    return [c for c in sorted(clients or [])
            if _present(_get(hostvars, c, {})) and _get(_get(hostvars, c, {}), key_fact, _UNSET) is _UNSET]


def previous_lines(text):
    """Each source's key line in an authorized_keys file this role wrote: the line after ``# source: X``."""
    lines = (text or "").splitlines()
    return {line[len(MARKER):]: lines[i + 1] for i, line in enumerate(lines[:-1]) if line.startswith(MARKER)}


def authorized_keys_file(keys, command, keyless=(), previous_text="", role="remote_builder"):
    """The build user's authorized_keys: every key locked to COMMAND (restrict, forced command),
    each after a ``# source:`` line; then the lines the keyless clients had in PREVIOUS_TEXT."""
    out = [HEADER.replace("remote_builder", role)]
    for k in keys or []:
        out += [MARKER + k["source"], 'restrict,command="%s" %s' % (command, k["key"])]
    previous = previous_lines(previous_text)
    for client in keyless or []:
        if client in previous:
            out += [MARKER + client, previous[client]]
    return "\n".join(out) + "\n"


def signing_keys(clients, builders, hostvars):
    """The signing keys a builder trusts: the clients' local_client_signing_public_key and the
    builders' remote_builder_signing_public_key (empty ones skipped), unique and sorted."""
    found = [_get(_get(hostvars, c, {}), "local_client_signing_public_key") for c in sorted(clients or [])]
    found += [_get(_get(hostvars, b, {}), "remote_builder_signing_public_key") for b in sorted(builders or [])]
    return sorted(set(k for k in found if k))


# The list settings trust_list_items manages, which remote_builder_nix_settings may also name.
TRUST_LIST_SETTINGS = ("extra-trusted-users", "extra-trusted-public-keys", "extra-secret-key-files")


def _words(value, what):
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [w for v in value for w in v.split()]
    raise ValueError("%s must be a list of strings or a string, not %r" % (what, value))


def trust_list_items(trust, *, user, modern=True, keys=(), retired_keys=(), secret_key_file=None, state="present",
                     keep_secret_key=False, settings=None, keep_hosts=()):
    """The list items a builder's nix.conf gets for its trust mode, for nix_conf's ``list_items``.

    nix_conf with ``managed_marker`` records what it added and removes what the role no longer
    lists, and keeps every item an administrator wrote, so only the role's own items are named:

    - trusted: the build user in extra-trusted-users (trusted-users with root kept on Nix < 2.4,
      which has no extra- settings: MODERN false); no signing keys or secret key of the role.
    - signing: KEYS (the clients' and builders' signing keys, sorted) in extra-trusted-public-keys,
      the builder's SECRET_KEY_FILE in extra-secret-key-files, and the build user out of
      extra-trusted-users. RETIRED_KEYS are keys an older version recorded in a state file: the
      ones that are not KEYS any more are removed, the others are adopted (recorded as ours).
    - STATE absent (the builder is withdrawn): the build user out of the trusted users, every
      key the role recorded or RETIRED_KEYS lists, and SECRET_KEY_FILE (its file is deleted)
      removed, whatever the mode.
    - KEEP_SECRET_KEY: this host signs as a client too (local_client uses the same key pair and
      the same marker), so SECRET_KEY_FILE stays in extra-secret-key-files in every mode and state.
    - KEEP_HOSTS: hosts whose signing key this run does not know (a --limit or --tags left their
      key play out, or it failed): the keys recorded under their key names (``HOST-1:``) stay
      (nix_conf's ``keep`` patterns), so a partial run never withdraws their trust.
    """
    items = _trust_list_items(trust, user=user, modern=modern, keys=keys, retired_keys=retired_keys,
                              secret_key_file=secret_key_file, state=state, keep_secret_key=keep_secret_key)
    patterns = [_key_name_pattern(host) for host in sorted(set(keep_hosts or ()))]
    if patterns and state == "present" and trust == "signing" and modern:
        items["extra-trusted-public-keys"]["keep"] = patterns
    # Values the administrator gives through remote_builder_nix_settings for these settings join
    # the role's (0.1.0 merged them into the same line); they are recorded like the role's.
    for name in TRUST_LIST_SETTINGS:
        if state != "present" or name not in (settings or {}):
            continue
        wanted = _words(settings[name], "remote_builder_nix_settings[%r]" % name)
        entry = items.setdefault(name, {"present": []})
        clash = [w for w in wanted if w in entry.get("absent", [])]
        if clash:
            raise ValueError("remote_builder_nix_settings[%r] holds %s, which remote_builder_trust: %s takes out"
                             % (name, clash[0], trust))
        entry["present"] = entry.get("present", []) + [w for w in wanted if w not in entry.get("present", [])]
    return items


def _key_name_pattern(host):
    """The fnmatch pattern of the keys named after HOST (signing_key names them ``HOST-1``)."""
    if not isinstance(host, str) or not host:
        raise ValueError("keep_hosts must be host names, not %r" % (host,))
    return "".join("[%s]" % c if c in "*?[" else c for c in host) + "-1:*"


def _trust_list_items(trust, *, user, modern, keys, retired_keys, secret_key_file, state, keep_secret_key):
    if trust not in ("trusted", "signing"):
        raise ValueError("trust must be 'trusted' or 'signing', not %r" % (trust,))
    if not user:
        raise ValueError("the build user is required")
    if state not in ("present", "absent"):
        raise ValueError("state must be 'present' or 'absent', not %r" % (state,))
    retired = sorted(set(k for k in retired_keys or () if k))
    if state == "absent":
        if not modern:
            return {"trusted-users": {"absent": [user]}}
        items = {"extra-trusted-users": {"absent": [user]}, "extra-trusted-public-keys": {"present": []}}
        if retired:
            items["extra-trusted-public-keys"]["absent"] = retired
        if not keep_secret_key:
            items["extra-secret-key-files"] = {"present": []}
            if secret_key_file:
                items["extra-secret-key-files"]["absent"] = [secret_key_file]
        return items
    keys = sorted(set(k for k in keys or () if k))
    if not modern:
        if trust == "signing":
            raise ValueError("signing mode needs extra- settings (Nix 2.4 and later)")
        return {"trusted-users": {"present": ["root", user]}}
    shared_key = [secret_key_file] if keep_secret_key and secret_key_file else []
    if trust == "trusted":
        # A builder that was in signing mode under 0.1.0 has a state file of the keys it trusted
        # (RETIRED_KEYS) and its own secret key in extra-secret-key-files, neither recorded by a marker.
        items = {
            "extra-trusted-users": {"present": [user]},
            "extra-trusted-public-keys": {"present": []},
            "extra-secret-key-files": {"present": shared_key},
        }
        if retired:
            items["extra-trusted-public-keys"]["absent"] = retired
            if secret_key_file and not shared_key:
                items["extra-secret-key-files"]["absent"] = [secret_key_file]
        return items
    if not secret_key_file:
        raise ValueError("signing mode needs the builder's secret key file")
    keys_items = {"present": keys}
    if retired:
        keys_items["absent"] = [k for k in retired if k not in keys]
        keys_items["adopt"] = [k for k in retired if k in keys]
    return {
        "extra-trusted-public-keys": keys_items,
        "extra-secret-key-files": {"present": [secret_key_file]},
        "extra-trusted-users": {"absent": [user]},
    }


def _changed(result):
    """Ansible's ``changed`` test for the results handed in here."""
    if "changed" in result:
        return bool(result["changed"])
    items = result.get("results")
    return bool(items) and isinstance(items, list) and any(isinstance(r, dict) and r.get("changed") for r in items)


def rollback_list(results):
    """nix_daemon's ``rollback``: ``{'path', 'backup'}`` of each changed file result.

    nix_conf and nix_machines return ``path``, template and copy ``dest``; in check mode a
    template on a new file returns neither (path ''). ``backup`` is None when no backup was made
    (the file was new). Undefined or empty results (a task that did not run) are skipped.
    """
    out = []
    for result in results or []:
        if not isinstance(result, dict) or not _changed(result):
            continue
        path = result["path"] if "path" in result else result.get("dest", "")
        out.append({"path": path, "backup": result.get("backup_file")})
    return out
