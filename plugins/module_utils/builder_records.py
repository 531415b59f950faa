# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a client does with its builders: one record per builder, and the entries to remove.

Pure functions over plain data (the builders' ``remote_builder_export`` dicts, the client's
role options and its Nix version), used by the local_client role through the filter plugins
``builder_records``, ``unconfigured_builders`` and ``stale_entries``.

A record::

    {'name': 'builder1',                  # inventory name, or 'external:<name>'
     'source': 'inventory',               # or 'external'
     'trust': 'trusted',                  # inventory builders only: 'trusted' or 'signing'
     'uri': 'ssh-ng://remotebuild@host',  # machines column 1
     'alias': {},                         # or {'name', 'hostname', 'port', 'user'}: ssh Host alias
     'match_hosts': ['host'],             # names the ssh_config Match block lists
     'known_hosts': ['host ssh-ed25519 AAAA...'],
     'machine': {...}}                    # nix_machines' builders item (without state), with
                                          # 'comment': the marker comment (managed_comment)

The machines file itself says which entries are the role's (managed_records): the line directly
above each of them is the comment nix_machines writes from ``machine.comment``::

    # nix_remote.builders {"alias":{},"known_hosts":[...],"match_hosts":[...],"name":"builder1",...}
    ssh-ng://remotebuild@host x86_64-linux /root/.ssh/nix_remote_builders_ed25519 2 4 kvm - c3No...

that is the marker (MARKER) and the record without ``machine`` as compact JSON with sorted keys,
ASCII only and ``;`` written as ``\u003b``, so the line holds no ``;`` (Nix before 2.29 and Lix split
lines on ``;`` before they remove comments) and no newline.  The machine fields are read back
from the entry below it.

How a port is addressed (facts 1.4 and P7):

=============  ==========================  ==================================  ==============
port           machines URI                known_hosts names                   column 8
=============  ==========================  ==================================  ==============
22             ``ssh-ng://user@host``      ``host``                            set
other, alias   ``ssh-ng://user@<alias>``   ``<alias>`` (HostKeyAlias) and      set
                                           ``[host]:port``
other, uri     ``ssh-ng://user@host:port`` ``[host]:port``                     empty
=============  ==========================  ==================================  ==============

With the port in the URI Nix would write column 8 as a plain ``host`` line, which ssh never
looks up for another port, so the pin lives in /etc/ssh/ssh_known_hosts only.  Column 8 is
never written for a client Nix older than 2.4, which ignores it.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping

from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import EXPORT_VERSION
from ansible_collections.nix_remote.builders.plugins.module_utils.machines import (
    MachinesDocument,
    check_comment,
    normalize_store_uri,
    parse_nix_version,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_capabilities import capabilities as nix_capabilities

PORT_STYLES = ("auto", "uri", "alias")
# What starts the comment above an entry the role manages; the record's JSON follows it.
MARKER = "nix_remote.builders "

_ALIAS_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
# scheme://[user@]host: the host of an external builder's URI, IPv6 literals in brackets.
_URI_HOST = re.compile(r"^[A-Za-z0-9+.-]+://([^@/?]*@)?(\[[^]]+\]|[^:/?@]+)(?=$|[:/?])")
_EXPORT_FIELDS = ("address", "port", "user", "protocol", "host_key", "host_key_base64", "systems",
                  "supported_features", "mandatory_features", "max_jobs", "speed_factor")


class RecordError(ValueError):
    """A builder's export, override or external entry that no record can be made from."""


def _present(host_vars):
    """A builder not withdrawn (nix_remote_state present, the default)."""
    return _get(host_vars, "nix_remote_state", "present") == "present"


def _integer(value, what):
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise RecordError("%s is %r, not a whole number" % (what, value))
    try:
        return int(value)
    except (TypeError, ValueError):
        pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordError("%s is %r, not a whole number" % (what, value)) from None
    if not number.is_integer():
        raise RecordError("%s is %r, not a whole number" % (what, value))
    return int(number)


def _host_vars(hostvars, host):
    try:
        return hostvars[host]
    except KeyError:
        raise RecordError("builder %s is in the builders group but has no host variables" % host) from None


def _get(mapping, key, default=None):
    """mapping[key], or DEFAULT when the key is missing (Jinja's default())."""
    try:
        return mapping[key]
    except KeyError:
        return default


def _candidates(builders, client, present):
    """The builders of the group this client considers: sorted, never itself."""
    if not present:
        return []
    return sorted(b for b in (builders or []) if b != client)


def client_capabilities(nix_version=None, capabilities=None):
    """The client Nix's capability table: CAPABILITIES (nix_info's) when given, else the table
    for NIX_VERSION (None is taken as 2.4, the oldest format written; ValueError for text that
    is no version)."""
    if capabilities is not None:
        return capabilities
    return nix_capabilities(parse_nix_version(nix_version))


def uri_ports(nix_version, port_style="auto", capabilities=None):
    """True when a port other than 22 goes into the builder URI (user@host:port)."""
    if port_style not in PORT_STYLES:
        raise RecordError("local_client_port_style is %r; it must be one of %s" % (port_style, ", ".join(PORT_STYLES)))
    return port_style == "uri" or (
        port_style == "auto" and bool(client_capabilities(nix_version, capabilities).get("port_in_uri")))


def host_key_column(nix_version, capabilities=None):
    """True when the client's Nix reads machines column 8 (the builder's host key)."""
    return bool(client_capabilities(nix_version, capabilities).get("host_key_column"))


def alias_name(builder):
    """The ssh Host alias of an inventory builder: nix-builder-<name, unsafe characters as '-'>."""
    return "nix-builder-" + _ALIAS_UNSAFE.sub("-", builder)


SLOT_POLICIES = ("full", "shared")


def client_slots(capacity, clients, policy="full", overcommit=1.0):
    """This client's max-jobs on a builder of CAPACITY slots that CLIENTS clients use.

    ``full``: every client gets the whole capacity (Nix's own view; N clients may run N times
    the capacity at once).  ``shared``: each gets an equal part of CAPACITY x OVERCOMMIT, rounded
    down, at least 1 (so with more clients than slots the sum still exceeds the capacity).  A
    builder whose export has no client count (before 0.2.0), or a capacity of 0, stays as it is.
    """
    if policy not in SLOT_POLICIES:
        raise RecordError("local_client_slot_policy is %r; it must be one of %s" % (policy, ", ".join(SLOT_POLICIES)))
    try:
        overcommit = float(overcommit)
    except (TypeError, ValueError):
        raise RecordError("local_client_slot_overcommit is %r, not a number" % (overcommit,)) from None
    if not overcommit > 0 or overcommit == float("inf"):
        raise RecordError("local_client_slot_overcommit is %r; it must be a number above 0" % (overcommit,))
    if policy == "full" or not clients or capacity <= 0:
        return capacity
    return max(1, int(math.floor(capacity * overcommit / clients + 1e-9)))


def inventory_record(name, export, overrides=None, *, key_path, nix_version=None, port_style="auto",
                     capabilities=None, slot_policy="full", overcommit=1.0):
    """The record of one inventory builder from its remote_builder_export and overrides.

    The machine's max_jobs is client_slots() of the export's max_jobs and clients, unless the
    overrides set max_jobs themselves."""
    e = dict(export)
    version = e.get("version", 1)  # 0.1.0's export had no version; its fields are version 1's
    if not isinstance(version, int) or isinstance(version, bool) or version > EXPORT_VERSION:
        raise RecordError("builder %s: remote_builder_export version %r is newer than this collection reads (%d); "
                          "run the same nix_remote.builders version on builders and clients" % (name, version, EXPORT_VERSION))
    e.update(overrides or {})
    missing = [f for f in _EXPORT_FIELDS if f not in e]
    if missing:
        raise RecordError("builder %s: remote_builder_export has no %s (did remote_builder run on it?)"
                          % (name, ", ".join(missing)))
    address = str(e["address"])
    if not address:
        raise RecordError("builder %s: address is empty" % name)
    port = _integer(e["port"], "builder %s: port" % name)
    host = "[" + address + "]" if ":" in address else address
    caps = client_capabilities(nix_version, capabilities)
    use_alias = port != 22 and not uri_ports(nix_version, port_style, caps)
    column_8 = host_key_column(nix_version, caps)
    alias = alias_name(name)
    authority = "%s@%s" % (e["user"], alias if use_alias else host)
    if port != 22 and not use_alias:
        authority += ":%d" % port
    uri = "%s://%s" % (e["protocol"], authority)
    if e.get("remote_program"):
        uri += "?remote-program=" + e["remote_program"]
    port_name = host if port == 22 else "[%s]:%d" % (address, port)
    names = ([alias] if use_alias else []) + [port_name]
    return {
        "name": name,
        "source": "inventory",
        "trust": e.get("trust", "trusted"),
        "uri": uri,
        "alias": {"name": alias, "hostname": address, "port": port, "user": e["user"]} if use_alias else {},
        "match_hosts": ([alias] if use_alias else []) + [address],
        "known_hosts": ["%s %s" % (n, e["host_key"]) for n in names],
        "machine": {
            "uri": uri,
            "systems": e["systems"],
            "ssh_key": key_path,
            "max_jobs": _integer(e["max_jobs"], "builder %s: max_jobs" % name) if "max_jobs" in (overrides or {})
            else client_slots(_integer(e["max_jobs"], "builder %s: max_jobs" % name),
                              _integer(e.get("clients", 0), "builder %s: clients" % name), slot_policy, overcommit),
            "speed_factor": e["speed_factor"],
            "supported_features": e["supported_features"],
            "mandatory_features": e["mandatory_features"],
            "public_host_key": e["host_key_base64"] if column_8 and (port == 22 or use_alias) else "",
        },
    }


def uri_host(uri):
    """The host of a scheme://[user@]host... URI without IPv6 brackets, or None."""
    match = _URI_HOST.search(uri)
    if not match:
        return None
    return re.sub(r"[][]", "", match.group(2))


def _or_default(entry, key, default):
    value = entry.get(key)
    return default if value is None else value


def external_record(entry, *, key_path):
    """The record of a builder outside the inventory (an item of local_client_unmanaged_builders)."""
    if not isinstance(entry, dict):
        raise RecordError("local_client_unmanaged_builders: %r is not a dict" % (entry,))
    for key in ("name", "uri", "systems"):
        if not entry.get(key):
            raise RecordError("local_client_unmanaged_builders: an entry has no %s: %r" % (key, entry))
    uri = entry["uri"]
    if not isinstance(uri, str):
        raise RecordError("local_client_unmanaged_builders %s: uri %r is not a string" % (entry["name"], uri))
    host = uri_host(uri)
    return {
        "name": "external:%s" % entry["name"],
        "source": "external",
        "uri": uri,
        "alias": {},
        "match_hosts": [host] if host else [],
        "known_hosts": list(_or_default(entry, "known_hosts", [])),
        "machine": {
            "uri": uri,
            "systems": entry["systems"],
            "ssh_key": entry.get("ssh_key") or key_path,
            "max_jobs": _integer(_or_default(entry, "max_jobs", 1), "external builder %s: max_jobs" % entry["name"]),
            "speed_factor": _or_default(entry, "speed_factor", 1),
            "supported_features": _or_default(entry, "supported_features", []),
            "mandatory_features": _or_default(entry, "mandatory_features", []),
            "public_host_key": _or_default(entry, "public_host_key", ""),
        },
    }


def _export(hostvars, host, exports):
    """A builder's remote_builder_export: the host variable (set in this run, or by a fact cache),
    else the one read from the export file the builder kept (EXPORTS, by inventory name), else None."""
    export = _get(_host_vars(hostvars, host), "remote_builder_export")
    if export is None and exports:
        export = _get(exports, host)
    if export is not None and not isinstance(export, Mapping):
        raise RecordError("builder %s: remote_builder_export is a %s, not a mapping" % (host, type(export).__name__))
    return export


def kept_exports(results, loop_var="__local_client_builder"):
    """The exports read from the builders' kept files: the results of a looped, delegated slurp
    (one per builder, LOOP_VAR naming it) -> {builder: export}. A result without content (the
    builder did not answer, or kept no file) is no export. A file that is not a JSON object (edited
    by hand) is refused naming the builder, the file, and the line and column where it went wrong."""
    exports = {}
    for result in results or []:
        if not isinstance(result, Mapping) or "content" not in result:
            continue
        builder = result.get(loop_var, "?")
        where = "builder %s: %s" % (builder, result.get("source") or "its kept export file")
        try:
            text = base64.b64decode(result["content"]).decode("utf-8")
        except (ValueError, TypeError) as exc:
            raise RecordError("%s: not UTF-8 text (%s); remove the file on the builder and run site.yml on it again" % (where, exc)) from None
        try:
            export = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError("%s: line %s, column %s: not valid JSON (%s); remove the file on the builder and run site.yml "
                              "on it again" % (where, exc.lineno, exc.colno, exc.msg)) from None
        if not isinstance(export, Mapping):
            raise RecordError("%s: line 1: holds a JSON %s, not the export object; remove the file on the builder and run "
                              "site.yml on it again" % (where, type(export).__name__))
        exports[builder] = export
    return exports


def unconfigured_builders(hostvars, builders, client, present=True, exports=None):
    """Builders in the group, not withdrawn, that have no remote_builder_export in this run.

    remote_builder did not run on them (unreachable, failed, or --limit) and no export file was
    read from them (EXPORTS): their previous entries are kept as they were.
    """
    out = []
    for b in _candidates(builders, client, present):
        hv = _host_vars(hostvars, b)
        if _present(hv) and _export(hostvars, b, exports) is None:
            out.append(b)
    return out


def builder_records(hostvars, builders, client, *, nix_version=None, key_path, port_style="auto",
                    external_builders=(), previous=(), present=True, capabilities=None, marker=MARKER,
                    slot_policy="full", overcommit=1.0, exports=None):
    """Every record of this client, in the role's order.

    The inventory builders (sorted, with remote_builder_export state present, not withdrawn),
    then the external builders, then the previous records of the builders that were not
    configured in this run (as they are).  Nothing at all when the client itself is withdrawn
    (present false).  The new records' machine carries its marker comment (managed_comment with
    MARKER); marker None leaves it out.  EXPORTS (by inventory name) are exports read from the
    files builders keep, used for builders whose host variables have none.
    """
    # The client's capabilities (nix_info's, or the table's for nix_version); refuses an unknown
    # port style or version before any builder is read.
    capabilities = client_capabilities(nix_version, capabilities)
    uri_ports(nix_version, port_style, capabilities)
    client_slots(1, 1, slot_policy, overcommit)  # refuses a bad policy before any builder is read
    records = []
    for b in _candidates(builders, client, present):
        hv = _host_vars(hostvars, b)
        export = _export(hostvars, b, exports) or {}
        if not _present(hv) or export.get("state", "") != "present":
            continue
        records.append(inventory_record(b, export, _get(hv, "local_client_builder_overrides") or {},
                                        key_path=key_path, port_style=port_style, capabilities=capabilities,
                                        slot_policy=slot_policy, overcommit=overcommit))
    if present:
        records.extend(external_record(x, key_path=key_path) for x in external_builders or [])
    if marker is not None:
        for record in records:
            record["machine"]["comment"] = managed_comment(record, marker)
    for r in records:
        machine = r["machine"]
        if not machine.get("systems") or machine["max_jobs"] < 0:
            raise RecordError("builder %s has no systems or a negative max_jobs (check its local_client_builder_overrides "
                              "or local_client_unmanaged_builders entry)" % r["name"])
    unconfigured = unconfigured_builders(hostvars, builders, client, present, exports)
    records.extend(r for r in previous or [] if r.get("name") in unconfigured)
    return records


def _check_marker(marker):
    if not isinstance(marker, str) or not marker.strip():
        raise RecordError("marker %r is not a non-empty string" % (marker,))
    try:
        check_comment(marker)
    except ValueError as exc:
        raise RecordError("marker: %s" % exc) from None


def managed_comment(record, marker=MARKER):
    """The comment nix_machines writes above a record's entry: MARKER and the record without
    ``machine`` as compact JSON (sorted keys, ASCII only, ``;`` escaped as ``\u003b``)."""
    _check_marker(marker)
    data = {key: value for key, value in record.items() if key != "machine"}
    for key in ("name", "uri"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise RecordError("a record without %s: %r" % (key, data))
    # ';' can only stand inside a JSON string, where \u003b means the same character.
    text = marker + json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).replace(";", "\\u003b")
    check_comment(text)  # ASCII JSON holds no newline, NUL or ';': this cannot fail
    return text


def _number(value):
    return int(value) if float(value).is_integer() else value


def managed_records(text, marker=MARKER, *, source="<machines>"):
    """The records of the entries a machines file marks as managed (see managed_comment), in
    file order: the marker's record, with ``machine`` read from the entry directly below it
    (``uri`` as the marker has it, ``comment`` the comment as written).

    TEXT may be empty or None (no file).  Comments without the marker, and entries without a
    marker comment, are ignored.  A marker that cannot be trusted raises RecordError naming
    SOURCE and the line: JSON that does not parse or is no object, no ``name`` or ``uri``, no
    entry alone on the line below it, an entry for another URI, or a name marked twice.  Such a
    line was edited by hand; deleting it leaves the entry below unmanaged.  The entries must
    parse (MachinesFormatError, a ValueError, names the line otherwise).
    """
    _check_marker(marker)
    document = MachinesDocument.parse(text or "", source=source)
    records, lines = [], {}
    for number, comment, machine in document.comments():
        if not comment.startswith(marker):
            continue
        where = "%s: line %d: the marker comment of nix_remote.builders" % (source, number)
        fix = "; delete the line to leave the entry below it unmanaged, or restore it"
        try:
            data = json.loads(comment[len(marker):])
        except ValueError as exc:
            raise RecordError("%s is not valid JSON (%s)%s" % (where, exc, fix)) from None
        if not isinstance(data, dict):
            raise RecordError("%s is not a JSON object%s" % (where, fix))
        for key in ("name", "uri"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise RecordError("%s has no %s%s" % (where, key, fix))
        if machine is None:
            raise RecordError("%s (%s) is not directly above a machine entry alone on its line%s"
                              % (where, data["name"], fix))
        if normalize_store_uri(data["uri"]) != normalize_store_uri(machine.store_uri):
            raise RecordError("%s names %s for %s, but the entry below it is %s%s"
                              % (where, data["uri"], data["name"], machine.store_uri, fix))
        if data["name"] in lines:
            raise RecordError("%s marks %s again (first on line %d)%s" % (where, data["name"], lines[data["name"]], fix))
        lines[data["name"]] = number
        data.pop("machine", None)
        data["machine"] = {
            "uri": data["uri"],
            "systems": list(machine.systems),
            "ssh_key": machine.ssh_key,
            "max_jobs": machine.max_jobs,
            "speed_factor": _number(machine.speed_factor),
            "supported_features": list(machine.supported_features),
            "mandatory_features": list(machine.mandatory_features),
            "public_host_key": machine.public_host_key,
            "comment": comment,
        }
        records.append(data)
    return records


def nixos_module_comment(records, comment, marker=MARKER):
    """The header comment of the client's generated NixOS module: COMMENT, then one line per
    record, MARKER and the whole record (with ``machine``) as compact JSON.  NixOS generates the
    machines file from nix.buildMachines, which has no room for comments, so the records of the
    last run live here (nixos_module_records reads them back)."""
    _check_marker(marker)
    lines = [comment] if comment else []
    for record in records or []:
        data = {key: value for key, value in record.items() if key != "machine"}
        for key in ("name", "uri"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise RecordError("a record without %s: %r" % (key, data))
        data["machine"] = {key: value for key, value in (record.get("machine") or {}).items() if key != "comment"}
        lines.append(marker + json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True))
    return "\n".join(lines)


def nixos_module_records(text, marker=MARKER, *, source="<NixOS module>"):
    """The records nixos_module_comment wrote into a generated module's header (its leading
    ``#`` lines), in order.  TEXT may be empty or None (no module yet).  A marker line that does
    not hold a record (JSON object with name, uri and machine) raises RecordError naming SOURCE
    and the line."""
    _check_marker(marker)
    records, names = [], {}
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.startswith("#"):
            break  # the header ends at the module's first line of code
        comment = line[1:].strip()
        if not comment.startswith(marker):
            continue
        where = "%s: line %d: the marker comment of nix_remote.builders" % (source, number)
        try:
            data = json.loads(comment[len(marker):])
        except ValueError as exc:
            raise RecordError("%s is not valid JSON (%s)" % (where, exc)) from None
        if not isinstance(data, dict) or not isinstance(data.get("machine"), dict):
            raise RecordError("%s is not a record with a machine" % where)
        for key in ("name", "uri"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise RecordError("%s has no %s" % (where, key))
        if data["name"] in names:
            raise RecordError("%s marks %s again (first on line %d)" % (where, data["name"], names[data["name"]]))
        names[data["name"]] = number
        records.append(data)
    return records


def merge_previous(legacy, marked, marker=MARKER):
    """The previous records from the old state file (LEGACY, its ``builders`` list) and from the
    machines file (MARKED, managed_records): a marked record wins over a legacy one of the same
    name.  A legacy record's machine gets its marker comment, so that an entry kept as it was
    is marked when it is written again.  Legacy order, then the marked records not in it."""
    _check_marker(marker)
    by_name = {r["name"]: r for r in marked or []}
    out = []
    for record in legacy or []:
        if not isinstance(record, dict) or not isinstance(record.get("machine"), dict):
            raise RecordError("a previous record from the state file is not a record with a machine: %r" % (record,))
        if record.get("name") in by_name:
            out.append(by_name.pop(record["name"]))
            continue
        record = dict(record, machine=dict(record["machine"]))
        record["machine"].setdefault("comment", managed_comment(record, marker))
        out.append(record)
    out.extend(r for r in marked or [] if r["name"] in by_name)
    return out


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _known_host_names(records):
    return [line.split(" ")[0] for r in records for line in r.get("known_hosts", [])]


def stale_entries(previous, records):
    """What the last run added that no current record has: machines URIs and known_hosts names,
    and ``machines``, the nix_machines items that remove those entries (``state: absent``, with
    the record's marker comment when it has one, so that the comment line goes too)."""
    uris = [r["uri"] for r in records]
    names = _known_host_names(records)
    stale = _unique(r["uri"] for r in previous or [] if r["uri"] not in uris)
    items = []
    for uri in stale:
        item = {"uri": uri, "state": "absent"}
        comments = [(r.get("machine") or {}).get("comment") for r in previous if r["uri"] == uri]
        comment = next((text for text in comments if text), None)
        if comment:
            item["comment"] = comment
        items.append(item)
    return {
        "uris": stale,
        "known_hosts": _unique(n for n in _known_host_names(previous or []) if n not in names),
        "machines": items,
    }


def known_hosts_entries(records, stale_names=()):
    """The ``hosts`` of ssh_known_hosts for a client: one entry a name with its keys (a
    ``name1,name2 keytype base64`` line gives each name the key; a name's keys are merged), then
    ``state: absent`` for the STALE_NAMES no record has."""
    entries, order = {}, []
    for record in records or []:
        for line in record.get("known_hosts", []):
            field, _sep, key = line.partition(" ")
            if not key:
                raise RecordError("builder %s: known_hosts line %r has no key" % (record.get("name"), line))
            for name in field.split(","):
                if name not in entries:
                    entries[name] = []
                    order.append(name)
                if key not in entries[name]:
                    entries[name].append(key)
    out = [{"name": name, "keys": entries[name]} for name in order]
    gone = _unique(name for field in stale_names or [] for name in field.split(",") if name not in entries)
    out.extend({"name": name, "state": "absent"} for name in gone)
    return out


# NixOS: nix.buildMachines takes protocol, user and host apart (ssh:// and ssh-ng:// only).
_NIXOS_URI = re.compile(r"^(ssh|ssh-ng)://(?:([^@/?]+)@)?(.+)$")


def _whole_or_float(value, what):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordError("%s is %r, not a number" % (what, value)) from None
    return int(number) if number.is_integer() else number


def nixos_build_machine(machine):
    """One nix.buildMachines item from a record's machine.

    protocol is None for a URI that is not ssh:// or ssh-ng:// (hostName is then the whole URI),
    which nix.buildMachines cannot express.  The query (?remote-program=...) stays in hostName,
    which NixOS puts into the URI as it is.
    """
    match = _NIXOS_URI.search(machine["uri"])
    mandatory = list(machine["mandatory_features"] or [])
    entry = {
        "protocol": match.group(1) if match else None,
        "sshUser": (match.group(2) or None) if match else None,
        "hostName": match.group(3) if match else machine["uri"],
        "systems": machine["systems"],
        "sshKey": machine["ssh_key"],
        "maxJobs": _integer(machine["max_jobs"], "max_jobs of %s" % machine["uri"]),
        "speedFactor": _whole_or_float(machine["speed_factor"], "speed_factor of %s" % machine["uri"]),
        "supportedFeatures": sorted(set(machine["supported_features"] or []) - set(mandatory)),
        "mandatoryFeatures": sorted(mandatory),
    }
    if machine.get("public_host_key"):
        entry["publicHostKey"] = machine["public_host_key"]
    return entry


def nixos_known_hosts(records):
    """programs.ssh.knownHosts from the records' known_hosts lines.

    One entry per record and key, named after the record (``<name>-1``, ``<name>-2``... when a
    record has lines with different keys, numbered in the keys' sort order), listing every host
    name that key is pinned for.
    """
    out = {}
    for r in records:
        by_key = {}
        for line in r.get("known_hosts") or []:
            fields = line.split(" ")
            if len(fields) < 3:
                raise RecordError("%s: known_hosts line %r is not 'host keytype key'" % (r["name"], line))
            by_key.setdefault(fields[1] + " " + fields[2], []).append(fields[0])
        keys = sorted(by_key)
        for index, key in enumerate(keys, 1):
            name = r["name"] if len(keys) == 1 else "%s-%d" % (r["name"], index)
            out[name] = {"hostNames": by_key[key], "publicKey": key}
    return out
