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


def verify_rows(checks, ping_results, build_results, found_results, client, reuse=None):
    """The table rows of one client: one per check, or one saying that there is nothing to check,
    then one on connection reuse when ``reuse`` is given (see reuse_row).

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
    elif reuse is not None:
        rows.append(reuse_row(client, reuse))
    return rows


def verify_table(hosts, hostvars, fact="__local_client_verify_rows"):
    """Every host's rows (a failed row for a host that has none) and the table's text lines."""
    rows = []
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


# Rows that inform (connection reuse) rather than check a client/builder pair.
INFO_BUILDERS = ("(ssh)",)
REPORT_VERSION = 1


def report_json(rows, generated):
    """verify.yml's result for other tools: every row, the pairs checked and the counts.

    ``generated`` is the time of the run (ISO 8601, UTC).  Rows of INFO_BUILDERS are informational:
    they are listed but are not pairs and never count as failures.
    """
    pairs = [r for r in rows if r["builder"] not in INFO_BUILDERS]
    failed = [r for r in pairs if not r["ok"]]
    return {
        "version": REPORT_VERSION,
        "generated": generated,
        "ok": not failed,
        "pairs": len(pairs),
        "failed": len(failed),
        "rows": [{"client": r["client"], "builder": r["builder"], "ok": bool(r["ok"]), "result": r["result"],
                  "kind": "info" if r["builder"] in INFO_BUILDERS else "pair"} for r in rows],
    }


def report_junit(rows, generated):
    """The same as JUnit XML: one testcase per client/builder pair (classname the client, name the
    builder), a failure element with the row's result when it does not work; informational rows go
    to the client's system-out."""
    pairs = [r for r in rows if r["builder"] not in INFO_BUILDERS]
    failed = [r for r in pairs if not r["ok"]]
    suite = ElementTree.Element("testsuite", {
        "name": "nix_remote.builders verify", "tests": str(len(pairs)), "failures": str(len(failed)),
        "errors": "0", "skipped": "0", "timestamp": generated})
    for row in pairs:
        case = ElementTree.SubElement(suite, "testcase", {"classname": row["client"], "name": row["builder"]})
        if row["ok"]:
            ElementTree.SubElement(case, "system-out").text = row["result"]
        else:
            ElementTree.SubElement(case, "failure", {"message": row["result"], "type": "verify"}).text = row["result"]
    info = ["%s %s: %s" % (r["client"], r["builder"], r["result"]) for r in rows if r["builder"] in INFO_BUILDERS]
    if info:
        ElementTree.SubElement(suite, "system-out").text = "\n".join(info)
    suites = ElementTree.Element("testsuites", {"tests": str(len(pairs)), "failures": str(len(failed))})
    suites.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"
