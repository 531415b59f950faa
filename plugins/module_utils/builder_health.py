# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client's builder health service: a live machines file without the builders that do not answer.

Nix retries an unreachable builder for every derivation (NixOS/nix#13513): with a builder whose
packets are dropped each build waits for the connect timeout before it goes elsewhere.  This
service probes each builder the role manages and writes a second machines file that Nix reads
(nix.conf ``builders = @<live file>``), in which the entries of builders that did not answer are
commented out.  The machines file the role writes stays the source of truth and is only read:
Ansible's idempotence never sees the live file.

The live file is the machines file byte for byte except for the lines of unreachable builders,
which get ``DOWN_PREFIX`` in front (so a builder that answers again is back in the file within one
probe interval).  Entries the role does not manage (no marker comment above them), external
builders (their address may live in an ssh_config this service does not read) and anything it
cannot understand stay listed: the service only ever removes what it proved unreachable.

A probe is a TCP connection to the builder's ssh port and the first bytes of the server's
banner (``SSH-``): cheap for the builder (no login), and it tells a dropped, refused or hung
connection from a live sshd.

The same file is the program the service runs (``python3 builder_health.py --machines ...``):
it uses the standard library only, so it runs under any Python 3.7 or later on the host.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time

# builder_records.MARKER: the comment nix_machines writes above each entry of the role.
MARKER = "nix_remote.builders "
DOWN_PREFIX = "# down (nix-remote-builders-health): "
# No ';' in anything this file adds: Nix before 2.29 (and Lix) split lines on ';' before they
# remove comments, so a ';' in a comment makes its tail an entry (facts 1.2).
HEADER = (
    "# Written by nix-remote-builders-health from %s every %s s: the builders that answered.\n"
    "# Do not edit it: edit the file named here (or the inventory) instead.\n"
)


def _uri_address(uri):
    """(host, port) of an ssh:// or ssh-ng:// store URI, or None for any other kind."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in ("ssh", "ssh-ng"):
        return None
    authority = rest.split("?", 1)[0].split("/", 1)[0].rpartition("@")[2]
    port = 22
    if authority.startswith("["):
        host, _bracket, tail = authority[1:].partition("]")
        if tail.startswith(":"):
            port = tail[1:]
    else:
        host, colon, port_text = authority.partition(":")
        if colon:
            port = port_text
    try:
        port = int(port)
    except ValueError:
        return None
    if not host or not 0 < port < 65536:
        return None
    return host, port


def targets(text):
    """The builders to probe in a machines file's TEXT: a list of dicts with ``line`` (the
    0-based index of the entry's line), ``name``, ``host`` and ``port``.

    An entry counts when the line directly above it is the role's marker comment for an inventory
    builder and the marker's URI is the entry's first field.  Anything else is not probed, so it
    stays listed."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines[:-1]):
        comment = line.strip()
        if not comment.startswith("#"):
            continue
        comment = comment[1:].strip()
        if not comment.startswith(MARKER):
            continue
        try:
            record = json.loads(comment[len(MARKER):])
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("source", "inventory") != "inventory":
            continue
        entry = lines[index + 1].split("#", 1)[0].split()
        uri = record.get("uri")
        if not entry or not isinstance(uri, str) or entry[0] != uri:
            continue
        alias = record.get("alias") or {}
        if isinstance(alias, dict) and alias.get("hostname") and alias.get("port"):
            address = (str(alias["hostname"]), int(alias["port"]))
        else:
            address = _uri_address(uri)
        if address is None:
            continue
        found.append({"line": index + 1, "name": str(record.get("name", uri)),
                      "host": address[0], "port": address[1]})
    return found


def live_text(text, down, source, interval):
    """The live machines file: HEADER, then TEXT with the lines whose index is in DOWN commented out."""
    lines = text.splitlines(True)
    for index in down:
        lines[index] = DOWN_PREFIX + lines[index]
    return HEADER % (source, interval) + "".join(lines)


def probe(host, port, timeout):
    """None when an sshd answers at host:port within TIMEOUT seconds, else the reason it did not."""
    deadline = time.monotonic() + timeout
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        return "cannot resolve %s: %s" % (host, exc.strerror or exc)
    except socket.timeout:
        return "no connection within %s s" % timeout
    except OSError as exc:
        return exc.strerror or str(exc)
    banner = b""
    with connection:
        try:
            while b"\n" not in banner and len(banner) < 256:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                connection.settimeout(left)
                chunk = connection.recv(256)
                if not chunk:
                    break
                banner += chunk
        except socket.timeout:
            return "connected, but no ssh banner within %s s" % timeout
        except OSError as exc:
            return "connected, then %s" % (exc.strerror or exc)
    if not banner.startswith(b"SSH-"):
        return "connected, but no ssh banner (%r)" % banner[:40]
    return None


def probe_all(found, timeout, prober=probe):
    """{name: reason or None} for every target, probed at once (one dead builder delays no other)."""
    results = {}

    def run(target):
        results[target["name"]] = prober(target["host"], target["port"], timeout)

    threads = [threading.Thread(target=run, args=(target,), daemon=True) for target in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 5)
    return {target["name"]: results.get(target["name"], "probe did not finish") for target in found}


def write_if_changed(path, text):
    """Replace PATH with TEXT atomically (mode 0644) unless it holds TEXT already; True if written."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return True


def run_once(machines, live, timeout, interval, prober=probe):
    """Probe the builders of MACHINES and write LIVE; returns {name: reason or None}."""
    try:
        with open(machines, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    found = targets(text)
    states = probe_all(found, timeout, prober)
    down = [target["line"] for target in found if states[target["name"]] is not None]
    write_if_changed(live, live_text(text, down, machines, interval))
    return states


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--machines", default="/etc/nix/machines", help="the machines file the role writes")
    parser.add_argument("--live", required=True, help="the machines file Nix reads")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds a probe may take")
    parser.add_argument("--once", action="store_true", help="probe once, write the live file and exit")
    args = parser.parse_args(argv)
    interval = int(args.interval) if args.interval.is_integer() else args.interval
    last = {}
    while True:
        started = time.monotonic()
        states = run_once(args.machines, args.live, args.timeout, interval)
        for name in sorted(states):
            if name not in last or states[name] != last[name]:
                sys.stdout.write("%s: %s\n" % (name, "up" if states[name] is None else "down: " + states[name]))
                sys.stdout.flush()
        last = states
        if args.once:
            return 0
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


if __name__ == "__main__":
    raise SystemExit(main())
