# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The verification of playbooks/verify.yml: which checks to run, and what their results mean.

Pure functions over plain data, used by the local_client role's tasks/verify.yml through the
filter plugins ``verify_checks``, ``verify_rows`` and ``verify_table``.  The results are those
``register`` gives for a ``loop`` of ansible.builtin.command (``.results``: one dict per item,
with ``item``, ``rc``, ``stdout``, ``stderr``, ``stdout_lines``, or ``skipped``).
"""

from __future__ import annotations

import hashlib
import re
from xml.etree import ElementTree

_SOCKET_HINT = ("socket permission: the build user cannot open nix-daemon's socket on the builder; it must be in the "
                "socket's group (run site.yml, then let old ssh sessions end)")

# Lower-case text in Nix's or ssh's error output -> what it means and what to do; the first
# that matches wins, so the more specific texts come first.
HINTS = (
    ("host key verification failed",
     "host key mismatch: the builder does not present the key pinned in /etc/ssh/ssh_known_hosts (and machines "
     "column 8); if its key changed on purpose, run site.yml again"),
    ("remote host identification has changed",
     "host key mismatch: the builder does not present the key pinned in /etc/ssh/ssh_known_hosts; if its key "
     "changed on purpose, run site.yml again"),
    ("permission denied (publickey",
     "permission denied: the builder does not accept this client's key; run site.yml so remote_builder authorizes it"),
    # Nix quotes the path: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Permission denied
    ("daemon-socket/socket': permission denied", _SOCKET_HINT),
    ("daemon-socket/socket: permission denied", _SOCKET_HINT),
    ("command not found",
     "nix-daemon not found on the builder: its forced command or remote-program must name the absolute path (run site.yml)"),
    ("nix-daemon: not found",
     "nix-daemon not found on the builder: its forced command or remote-program must name the absolute path (run site.yml)"),
    ("nix-store: not found",
     "nix-store not found on the builder: its forced command or remote-program must name the absolute path (run site.yml)"),
    ("lacks a signature",
     "not trusted: the builder refuses unsigned paths; its build user must be in trusted-users (run site.yml)"),
    ("lacks a valid signature",
     "not trusted: the builder refuses unsigned paths; its build user must be in trusted-users (run site.yml)"),
    ("not privileged",
     "not trusted: the builder does not let the build user build; it must be in trusted-users (run site.yml)"),
    ("connection refused", "builder unreachable: nothing listens for SSH at its address and port"),
    ("connection timed out", "builder unreachable: SSH connection timed out"),
    ("no route to host", "builder unreachable: no route to host"),
    ("could not resolve hostname", "builder unreachable: its host name does not resolve"),
    ("executable 'ssh'", "ssh missing on the client: install openssh-client"),
    ("unable to execute 'ssh'", "ssh missing on the client: install openssh-client"),
    ("required system feature",
     "missing system feature: the builder does not offer a feature the derivation requires"),
    ("is required to build",
     "missing system feature: the builder does not offer a feature the derivation requires"),
    ("unable to start any build",
     "no builder took the build: its system or features do not match, or it was unreachable (run with -v for Nix's log)"),
    ("failed to find a machine", "no builder took the build: its system or features do not match"),
)

TIMED_OUT = "timed out: the builder did not answer within the time limit"
NOT_TRUSTED = "not trusted: the builder does not trust the build user; add it to trusted-users (run site.yml)"
NO_BUILDERS = "no builders configured by the role on this client: run site.yml"
HOST_FAILED = "not verified: this host failed before the checks (see its error above)"
# `timeout` exits 124 when the time limit ended the command.
TIMEOUT_RC = 124

_TRUSTED = re.compile(r"Trusted: *([01])")


def truncate(text, length=160, end="...", leeway=5):
    """Jinja's truncate(length): whole words, '...' appended, texts up to length + 5 kept whole."""
    if len(text) <= length + leeway:
        return text
    return text[:length - len(end)].rsplit(" ", 1)[0] + end


def diagnose(stderr, rc):
    """What a failed command's error output says, for a person: a hint, a timeout, or its last line."""
    text = stderr or ""
    low = text.lower()
    for needle, hint in HINTS:
        if needle in low:
            return hint
    if rc == TIMEOUT_RC:
        return TIMED_OUT
    lines = [line for line in text.strip().splitlines() if line != ""]
    return "failed: " + truncate(lines[-1] if lines else "exit code %s" % (rc,))


def nonce(stamp, client, builder):
    """A derivation name no store has seen: the run's time stamp and a hash of client and builder."""
    digest = hashlib.sha1(("%s-%s" % (client, builder)).encode("utf-8")).hexdigest()
    return "nix-remote-builders-verify-%s-%s" % (stamp, digest[:12])


def _machines_line(lines, uri):
    pattern = re.compile(re.escape(uri) + r"\s")
    return next((line for line in lines if pattern.match(line)), "")


def verify_checks(records, machines_text, stamp, client):
    """One check per record the role wrote: the machines line, the store URI to ask, the nonce."""
    lines = (machines_text or "").splitlines()
    checks = []
    for r in records:
        m = r["machine"]
        params = ["ssh-key=" + m["ssh_key"]]
        if m.get("public_host_key"):
            params.append("base64-ssh-public-host-key=" + m["public_host_key"])
        uri = r["uri"]
        checks.append({
            "name": r["name"],
            "uri": uri,
            "line": _machines_line(lines, uri),
            "store": uri + ("&" if "?" in uri else "?") + "&".join(params),
            "systems": m["systems"],
            "features": sorted(set(m.get("supported_features") or []) | set(m.get("mandatory_features") or [])),
            "mandatory": sorted(set(m.get("mandatory_features") or [])),
            "trust": r.get("trust", "trusted"),
            "nonce": nonce(stamp, client, r["name"]),
        })
    return checks


def _last(lines):
    return lines[-1] if lines else ""


def _row(check, ping, builds, founds):
    if not check["line"]:
        return False, "no entry for %s in /etc/nix/machines: run site.yml" % check["uri"]
    if ping.get("rc") != 0:
        return False, diagnose(ping.get("stderr"), ping.get("rc"))
    match = _TRUSTED.search((ping.get("stdout") or "") + (ping.get("stderr") or ""))
    trusted = match.group(1) if match else None
    # A builder in signing mode does not trust the build user by design.
    if trusted == "0" and check["trust"] != "signing":
        return False, NOT_TRUSTED
    failed = [b for b in builds if "skipped" not in b and b.get("rc") != 0]
    if failed:
        return False, "%s: %s" % (failed[0]["item"][1], diagnose(failed[0].get("stderr"), failed[0].get("rc")))
    missing = [f for f in founds if f.get("rc") != 0]
    if missing:
        return False, "built, but %s is not in the builder's store: the build ran elsewhere" % _last(
            missing[0]["item"]["stdout_lines"])
    how = ""
    if trusted is not None:
        how = ", untrusted, signed uploads" if trusted == "0" else ", trusted"
    output = _last(founds[0]["item"]["stdout_lines"]) if founds else ""
    return True, "OK: %s built there%s (%s)" % (",".join(check["systems"]), how, output)


def reuse_row(client, reuse):
    """An informational row on the client's ssh connection reuse: on or off, and why.

    ``reuse`` is ``{"configured": bool, "safe": bool, "reason": str}``: whether the ssh settings on
    the client have ControlMaster, whether nix_info's capability table allows reuse for its Nix,
    and that table's reason.  Never a failure: reuse is speed, not correctness.
    """
    configured, safe, reason = bool(reuse.get("configured")), bool(reuse.get("safe")), reuse.get("reason") or ""
    if configured and safe:
        text = "ssh connection reuse on: %s" % reason
    elif configured:
        text = "ssh connection reuse on although %s (forced by local_client_ssh_multiplexing)" % reason
    elif safe:
        text = "ssh connection reuse off (local_client_ssh_multiplexing: false), although %s" % reason
    else:
        text = "ssh connection reuse off: %s" % reason
    return {"client": client, "builder": "(ssh)", "ok": True, "result": text}


def _int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def local_row(client, plain_build, found, max_jobs):
    """Where a plain build goes (no --max-jobs 0, no --builders): an informational row.

    ``plain_build`` is the result of that nix-build, ``found`` the results of looking for its output in
    each builder's store (items: checks), ``max_jobs`` the client's effective max-jobs.  Nix builds
    locally while the client has a free local slot and never weighs local against remote
    (NixOS/nix#2457), so with max-jobs above 0 a plain build silently stays on the client.
    """
    if plain_build.get("rc") != 0:
        return {"client": client, "builder": "(local)", "ok": True,
                "result": "a plain nix-build failed: %s" % diagnose(plain_build.get("stderr"), plain_build.get("rc"))}
    on = [f["item"]["name"] for f in found if f.get("rc") == 0]
    if on:
        text = "a plain nix-build ran on %s (max-jobs %s on this client)" % (", ".join(on), max_jobs)
    else:
        text = ("a plain nix-build stayed on this client: its max-jobs is %s, and Nix builds locally while it has a "
                "free slot (NixOS/nix#2457); local_client_max_jobs: 0 sends every build to the builders" % max_jobs)
    return {"client": client, "builder": "(local)", "ok": True, "result": text}


def features_row(client, systems, features, max_jobs, checks):
    """The (system, feature) pairs the client's Nix offers locally that no builder offers: builds that
    need one run only on the client, and fail with max-jobs 0.  An informational row."""
    offered = set()
    for check in checks:
        # Nix gives a machine a derivation that requires no more than the machine's features and every
        # one of its mandatory features.
        mandatory = set(check.get("mandatory") or ())
        for system in check["systems"]:
            if not mandatory:
                offered.add((system, None))
            offered.update((system, f) for f in check.get("features", ()) if mandatory <= {f})
    missing = ["%s%s" % (system, "" if feature is None else " with " + feature)
               for system in systems for feature in [None] + sorted(features) if (system, feature) not in offered]
    if not missing:
        text = "every system and feature of this client is offered by a builder (%s)" % ", ".join(systems)
    elif _int(max_jobs) == 0:
        text = ("no builder offers %s: with max-jobs 0 builds that need it fail; add a builder that has it, "
                "or give this client local slots (local_client_max_jobs)" % ", ".join(missing))
    else:
        text = "no builder offers %s: builds that need it run on this client" % ", ".join(missing)
    return {"client": client, "builder": "(features)", "ok": True, "result": text}


def verify_rows(checks, ping_results, build_results, found_results, client, reuse=None, plain=None, nix=None):
    """The table rows of one client: one per check, or one saying that there is nothing to check,
    then informational rows: connection reuse when ``reuse`` is given (see reuse_row), where a plain
    build goes when ``plain`` (``{"build": result, "found": results}``) is given, and the features
    no builder offers when ``nix`` (nix_info's result) is given.

    ping_results are aligned with checks; build results carry [check, system] as their item, and
    the found results carry the build result as theirs.
    """
    rows = []
    for index, check in enumerate(checks):
        builds = [b for b in build_results if b["item"][0]["name"] == check["name"]]
        founds = [f for f in found_results if f["item"]["item"][0]["name"] == check["name"]]
        ok, result = _row(check, ping_results[index], builds, founds)
        rows.append({"client": client, "builder": check["name"], "ok": ok, "result": result})
    if not checks:
        rows.append({"client": client, "builder": "-", "ok": False, "result": NO_BUILDERS})
        return rows
    max_jobs = ((nix or {}).get("settings") or {}).get("max-jobs", "?")
    if reuse is not None:
        rows.append(reuse_row(client, reuse))
    if plain is not None and "skipped" not in plain["build"]:
        rows.append(local_row(client, plain["build"], plain.get("found") or [], max_jobs))
    if nix is not None:
        rows.append(features_row(client, nix.get("systems") or [], nix.get("system_features") or [], max_jobs, checks))
    return rows


def _gib(value):
    return "%.1f GiB" % (value / 1024.0 ** 3)


def _sshd_settings(text):
    return dict(line.lower().split(" ", 1) for line in (text or "").splitlines() if " " in line)


def builder_rows(builder, daemon, disk, sshd, nix, clients, user):
    """The checks of one builder, a failing row saying what to do for each that does not hold.

    ``daemon``: the result of asking the builder's nix-daemon for a store path's validity; ``disk``:
    of ``df -Pk`` on /nix/store; ``sshd``: of ``sshd -T`` for the build user; ``nix``: nix_info's
    result (its ``settings``: min-free, max-jobs); ``clients``: how many clients use the builder.
    """
    rows = []

    def row(check, ok, text):
        rows.append({"client": builder, "builder": "(%s)" % check, "ok": ok, "result": text, "kind": "builder"})

    if daemon.get("rc") == 0:
        row("daemon", True, "nix-daemon answers (Nix %s)" % nix.get("version"))
    else:
        row("daemon", False, "nix-daemon does not answer (%s): check `systemctl status nix-daemon` (macOS: "
            "`launchctl print system/org.nixos.nix-daemon`) on the builder, then run site.yml"
            % diagnose(daemon.get("stderr"), daemon.get("rc")))
    settings = nix.get("settings") or {}
    min_free = _int(settings.get("min-free"))
    fields = (disk.get("stdout_lines") or [""])[-1].split()
    available = _int(fields[3]) * 1024 if disk.get("rc") == 0 and len(fields) >= 4 and _int(fields[3]) is not None else None
    if available is None:
        row("disk", False, "free space of /nix/store unknown: %s" % diagnose(disk.get("stderr"), disk.get("rc")))
    elif min_free is not None and available < min_free:
        row("disk", False, "%s free for /nix/store, below min-free (%s): Nix collects garbage before builds and "
            "large builds fail for space; free disk space or lower remote_builder_min_free" % (_gib(available), _gib(min_free)))
    else:
        row("disk", True, "%s free for /nix/store%s" % (
            _gib(available), "" if min_free is None else ", min-free %s" % _gib(min_free)))
    effective = _sshd_settings(sshd.get("stdout"))
    sessions, startups = _int(effective.get("maxsessions")), effective.get("maxstartups")
    jobs = _int(settings.get("max-jobs"))
    first = _int((startups or "").split(":")[0])
    if sshd.get("rc") != 0 or sessions is None or first is None:
        row("sshd", False, "sshd's settings for %s unknown: %s" % (user, diagnose(sshd.get("stderr"), sshd.get("rc"))))
    elif jobs is not None and sessions < jobs:
        row("sshd", False, "MaxSessions %d for %s is below max-jobs %d: a client's multiplexed builds beyond it are "
            "refused; raise remote_builder_sshd_max_sessions (or leave it null)" % (sessions, user, jobs))
    elif first < clients:
        row("sshd", False, "MaxStartups %s lets fewer unauthenticated connections in at once than the %d clients "
            "open: some see 'failed to start SSH connection'; raise remote_builder_sshd_max_startups" % (startups, clients))
    else:
        row("sshd", True, "MaxSessions %d for %s, MaxStartups %s, for %d clients" % (sessions, user, startups, clients))
    return rows


def verify_table(hosts, hostvars, fact="__local_client_verify_rows", builders=(), builder_fact="__remote_builder_verify_rows"):
    """The rows of the BUILDERS' own checks (builder_rows, those that have them), then every host's rows
    (a failed row for a host that has none), and the table's text lines."""
    rows = []
    for host in builders:
        try:
            rows.extend(hostvars[host][builder_fact] or [])
        except KeyError:
            pass
    for host in hosts:
        try:
            own = hostvars[host][fact]
        except KeyError:
            own = None
        if own is None:
            own = [{"client": host, "builder": "-", "ok": False, "result": HOST_FAILED}]
        rows.extend(own)
    width_client = max([6] + [len(r["client"]) for r in rows])
    width_builder = max([7] + [len(r["builder"]) for r in rows])
    lines = ["%-*s  %-*s  %s" % (width_client, "CLIENT", width_builder, "BUILDER", "RESULT")]
    lines.extend("%-*s  %-*s  %s" % (width_client, r["client"], width_builder, r["builder"], r["result"]) for r in rows)
    return {"rows": rows, "lines": lines}


# Rows that inform (connection reuse, where a plain build goes, features no builder offers) rather
# than check a client/builder pair; builder rows (kind "builder") check a builder on its own.
INFO_BUILDERS = ("(ssh)", "(local)", "(features)")


def row_kind(row):
    return row.get("kind") or ("info" if row["builder"] in INFO_BUILDERS else "pair")


REPORT_VERSION = 1


def report_json(rows, generated):
    """verify.yml's result for other tools: every row, the pairs checked and the counts.

    ``generated`` is the time of the run (ISO 8601, UTC).  Rows of INFO_BUILDERS are informational:
    they are listed but are not pairs and never count as failures.
    """
    pairs = [r for r in rows if row_kind(r) == "pair"]
    failed = [r for r in pairs if not r["ok"]]
    checks = [r for r in rows if row_kind(r) == "builder"]
    checks_failed = [r for r in checks if not r["ok"]]
    return {
        "version": REPORT_VERSION,
        "generated": generated,
        "ok": not failed and not checks_failed,
        "pairs": len(pairs),
        "failed": len(failed),
        "builder_checks": len(checks),
        "builder_checks_failed": len(checks_failed),
        "rows": [{"client": r["client"], "builder": r["builder"], "ok": bool(r["ok"]), "result": r["result"],
                  "kind": row_kind(r)} for r in rows],
    }


def report_junit(rows, generated):
    """The same as JUnit XML: one testcase per client/builder pair (classname the client, name the
    builder), a failure element with the row's result when it does not work; informational rows go
    to the client's system-out."""
    suites = ElementTree.Element("testsuites")
    tests = failures = 0
    for name, kind in (("nix_remote.builders verify", "pair"), ("nix_remote.builders builder checks", "builder")):
        cases = [r for r in rows if row_kind(r) == kind]
        if kind == "builder" and not cases:
            continue
        failed = [r for r in cases if not r["ok"]]
        tests, failures = tests + len(cases), failures + len(failed)
        suite = ElementTree.SubElement(suites, "testsuite", {
            "name": name, "tests": str(len(cases)), "failures": str(len(failed)),
            "errors": "0", "skipped": "0", "timestamp": generated})
        for row in cases:
            case = ElementTree.SubElement(suite, "testcase", {"classname": row["client"], "name": row["builder"]})
            if row["ok"]:
                ElementTree.SubElement(case, "system-out").text = row["result"]
            else:
                ElementTree.SubElement(case, "failure", {"message": row["result"], "type": "verify"}).text = row["result"]
        info = ["%s %s: %s" % (r["client"], r["builder"], r["result"]) for r in rows if row_kind(r) == "info"]
        if kind == "pair" and info:
            ElementTree.SubElement(suite, "system-out").text = "\n".join(info)
    suites.set("tests", str(tests))
    suites.set("failures", str(failures))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"


def cache_rows(host, caches, answers, substituters, trusted_keys, upload=None):
    """The checks of a host against each fleet binary cache (kind ``builder``: a host's own checks).

    ``caches``: the caches' exports; ``answers``: for each, the result of fetching its nix-cache-info
    from this host (``status``, ``content`` or ``msg``); ``substituters``: for each, the result of the
    check whether Nix's effective ``substituters`` list it (listed when its ``rc`` is 0); ``trusted_keys``: Nix's effective
    ``trusted-public-keys`` (a string).  ``upload``, on a builder that uploads: ``{"path", "found",
    "seconds"}`` for a path built there for the check.
    """
    rows = []

    def row(cache, ok, text):
        rows.append({"client": host, "builder": "(cache %s)" % cache, "ok": ok, "result": text, "kind": "builder"})

    keys = (trusted_keys or "").split()
    for cache, answer, listed in zip(caches, answers, substituters):
        name, url = cache["name"], cache["url"]
        if answer.get("status") != 200 or "StoreDir:" not in (answer.get("content") or ""):
            row(name, False, "%s/nix-cache-info does not answer from here (%s): check nginx on %s (`systemctl status "
                "nginx`) and the network between them" % (url, truncate(str(answer.get("msg") or answer.get("status"))), name))
        elif (listed or {}).get("rc") != 0:
            row(name, False, "Nix does not substitute from %s: its effective substituters lack it; run site.yml for this "
                "host (or see local_client_nix_settings overriding extra-substituters)" % url)
        elif cache["public_key"] not in keys:
            row(name, False, "Nix does not trust %s's key (%s): paths from it would be refused; run site.yml for this host"
                % (name, cache["public_key"].split(":", 1)[0]))
        else:
            row(name, True, "%s answers and its key %s is trusted" % (url, cache["public_key"].split(":", 1)[0]))
    if upload is not None and caches:
        if upload.get("found"):
            row(caches[0]["name"], True, "a path built here reached the cache in %.0f s" % upload.get("seconds", 0))
        else:
            row(caches[0]["name"], False, "a path built here (%s) did not reach the cache: see `journalctl -u "
                "nix-fleet-cache-uploader` on this builder" % upload.get("path", "?"))
    return rows
