# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The builder's cache uploader: drains the queue the post-build hook fills into the fleet cache.

Nix runs ``post-build-hook`` synchronously, inside the build: a hook that uploads makes every
build wait for the cache, and a hook that fails fails the build (Nix's manual, "Using the
post-build-hook").  So the role's hook only writes the output paths into a file of the queue
directory and exits 0, and this service copies them, with their closure, to every cache:

    nix-copy-closure --to <user>@<cache> <paths>

over SSH with the upload key, the cache's pinned host key and batch mode.  The cache's sshd
runs its forced command (``nix-store --serve --write`` into the cache directory, signing with the
cache's key) whatever nix-copy-closure asks for.  A queue file is removed only after every cache
took its paths; an unreachable cache leaves the queue as it is, and the next round (after
``--retry`` seconds) tries again, so the queue drains when the cache is back.  Paths collected
since they were queued are skipped.

The same file is the program the service runs (``python3 cache_uploader.py --queue ...``): it uses
the standard library only, so it runs under any Python 3.7 or later on the host.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

# The hook writes "<queue>/.in.XXXXXXXX" and renames it when complete: dot files are unfinished.
BATCH_LIMIT = 500


def parse_target(text):
    """(user, host, port) of user@host:port (an IPv6 host in brackets)."""
    user, at, rest = text.rpartition("@")
    if not at or not user:
        raise ValueError(f"--to {text!r}: expected user@host:port")
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit() or not host:
        raise ValueError(f"--to {text!r}: expected user@host:port")
    return user, host.strip("[]"), int(port)


def ssh_options(port, key, known_hosts, connect_timeout=10):
    """NIX_SSHOPTS for one cache: its port, the upload key only, its pinned host key, no prompt."""
    return " ".join([
        "-p", str(port), "-i", key, "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3",
    ])


def queued(queue):
    """The complete queue files, oldest first (their names start with the time they were written)."""
    try:
        names = os.listdir(queue)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(queue, n) for n in names if not n.startswith("."))


def read_paths(files, exists=os.path.exists):
    """The store paths the files name, once each, in order; paths no longer there are skipped."""
    seen, paths = set(), []
    for name in files:
        try:
            with open(name, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().split()
        except FileNotFoundError:
            continue
        for path in lines:
            if path.startswith("/") and path not in seen and exists(path):
                seen.add(path)
                paths.append(path)
    return paths


def copy_command(nix_copy_closure, target, paths):
    user, host, _port = parse_target(target)
    host = f"[{host}]" if ":" in host else host
    return [nix_copy_closure, "--to", f"{user}@{host}", *paths]


def say(line):
    """One line to the journal (the service's stdout), at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def upload_round(args, run=subprocess.run, log=say):
    """One pass over the queue. Returns (files done, paths uploaded, failures)."""
    files = queued(args.queue)[:BATCH_LIMIT]
    if not files:
        return 0, 0, 0
    paths = read_paths(files)
    failures = 0
    if paths:
        for target in args.to:
            _user, _host, port = parse_target(target)
            env = dict(os.environ, NIX_SSHOPTS=ssh_options(port, args.key, args.known_hosts, args.connect_timeout))
            try:
                # A service of its own, not a module: there is no AnsibleModule.run_command to call here.
                command = copy_command(args.nix_copy_closure, target, paths)
                result = run(command, env=env, capture_output=True, text=True, timeout=args.timeout, check=False)  # pylint: disable=ansible-bad-function
                rc, err = result.returncode, result.stderr
            except subprocess.TimeoutExpired:
                rc, err = "timeout", f"no answer within {args.timeout} s"
            if rc != 0:
                failures += 1
                tail = " | ".join(line for line in (err or "").strip().splitlines()[-3:])
                log(f"{target}: upload of {len(paths)} paths failed ({rc}): {tail}; they stay queued")
            else:
                log(f"{target}: uploaded {len(paths)} paths")
    if failures:
        return 0, 0, failures
    for name in files:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
    return len(files), len(paths), 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--queue", required=True, help="the directory the post-build hook writes")
    parser.add_argument("--to", action="append", required=True, help="a cache's upload user@host:port (repeatable)")
    parser.add_argument("--key", required=True, help="the upload key")
    parser.add_argument("--known-hosts", required=True, help="the caches' pinned host keys")
    parser.add_argument("--nix-copy-closure", default="nix-copy-closure")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between looks at an empty queue")
    parser.add_argument("--retry", type=float, default=10.0, help="seconds before a failed upload is tried again")
    parser.add_argument("--connect-timeout", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one upload may take")
    parser.add_argument("--once", action="store_true", help="one pass, exit 1 when an upload failed")
    args = parser.parse_args(argv)
    for target in args.to:
        try:
            parse_target(target)
        except ValueError as error:
            parser.error(str(error))
    if args.once:
        return 1 if upload_round(args)[2] else 0
    while True:
        done, _uploaded, failures = upload_round(args)
        if failures:
            time.sleep(args.retry)
        elif not done:
            time.sleep(args.interval)


if __name__ == "__main__":
    raise SystemExit(main())
