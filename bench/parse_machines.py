# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark of the machines parser, renderer and editor on a 10,000-entry machines file.

Not a timed test: it prints the figures (best of 5 runs, time.perf_counter) for the notes.
Target: parse + render + document round trip under 0.5 s in total.

    .venv/bin/python bench/parse_machines.py            # 10,000 entries
    .venv/bin/python bench/parse_machines.py --smoke    # 200 entries, one run (CI smoke check)
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION_ROOT = os.path.dirname(HERE)


def collection_on_path():
    """Make `ansible_collections.nix_remote.builders` importable as this checkout, when it is not yet.

    The checkout is the collection root; it is importable only through an
    ansible_collections/nix_remote/builders path (machines.py imports its siblings by it): `make
    collections` links one under .build/collections; without it, one is made in a temporary
    directory.
    """
    try:
        import ansible_collections.nix_remote.builders  # noqa: F401
        return
    except ImportError:
        pass
    built = os.path.join(COLLECTION_ROOT, ".build", "collections")
    if os.path.isdir(os.path.join(built, "ansible_collections", "nix_remote", "builders")):
        sys.path.insert(0, built)
        return
    import tempfile
    base = tempfile.mkdtemp(prefix="nix-remote-bench-")
    link = os.path.join(base, "ansible_collections", "nix_remote", "builders")
    os.makedirs(os.path.dirname(link))
    os.symlink(COLLECTION_ROOT, link)
    sys.path.insert(0, base)


def _import_machines():
    """Import the module_utils by its collection path, from the checkout when run directly."""
    collection_on_path()
    from ansible_collections.nix_remote.builders.plugins.module_utils import machines
    return machines


SYSTEMS = ["x86_64-linux", "aarch64-linux", "i686-linux", "x86_64-linux,i686-linux", "aarch64-linux,armv7l-linux", "-"]
FEATURES = ["-", "kvm", "kvm,big-parallel", "nixos-test,benchmark,big-parallel,kvm", "big-parallel"]
MANDATORY = ["-", "-", "-", "benchmark", "gpu"]
SPEEDS = ["1", "2", "4", "0.5", "1.5", "-"]


def generate(count, seed=2029):
    """A realistic machines file: varied URIs, columns, some comments, blank lines and tabs."""
    rng = random.Random(seed)
    lines = ["# Remote builders (generated for the benchmark)", ""]
    for number in range(count):
        host = "builder-%05d.%s" % (number, rng.choice(["example.org", "lab.internal", "cloud.example.net"]))
        uri = rng.choice([
            "nix@%s" % host,
            "ssh://nix-builder@%s" % host,
            "ssh-ng://nix@%s" % host,
            "ssh-ng://root@%s:2222" % host,
            "ssh-ng://nix@%s?remote-program=/nix/var/nix/profiles/default/bin/nix-daemon" % host,
        ])
        key_line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI%s root@%s\n" % (
            base64.b64encode(rng.getrandbits(256).to_bytes(32, "big")).decode()[:43], host)
        columns = [
            uri,
            rng.choice(SYSTEMS),
            rng.choice(["/root/.ssh/id_ed25519", "/etc/nix/keys/builder", "-"]),
            str(rng.choice([1, 2, 4, 8, 16, 32, 64])),
            rng.choice(SPEEDS),
            rng.choice(FEATURES),
            rng.choice(MANDATORY),
            rng.choice([base64.b64encode(key_line.encode()).decode(), "-"]),
        ]
        # Some users write only the first columns.
        columns = columns[:rng.choice([1, 2, 5, 8, 8, 8])]
        separator = rng.choice([" ", " ", "\t", "  "])
        line = separator.join(columns)
        if rng.random() < 0.05:
            line += "  # rack %d" % rng.randint(1, 40)
        lines.append(line)
        if rng.random() < 0.02:
            lines.append("")
    return "\n".join(lines) + "\n"


def best_of(runs, function):
    best = None
    result = None
    for _run in range(runs):
        start = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="200 entries, one run: a quick check that it works")
    parser.add_argument("--entries", type=int, default=None, help="number of entries (default 10000, or 200 with --smoke)")
    args = parser.parse_args(argv)
    count = args.entries or (200 if args.smoke else 10000)
    runs = 1 if args.smoke else 5
    machines = _import_machines()

    text = generate(count)
    parse_time, parsed = best_of(runs, lambda: machines.parse_machines(text, source="bench"))
    if len(parsed) != count:
        print("error: parsed %d entries, expected %d" % (len(parsed), count), file=sys.stderr)
        return 1
    render_time, rendered = best_of(runs, lambda: [machines.render_machine(machine, "2.31.0") for machine in parsed])
    document_time, round_trip = best_of(runs, lambda: machines.MachinesDocument.parse(text, source="bench").render())
    if round_trip != text:
        print("error: the document round trip changed the text", file=sys.stderr)
        return 1
    if machines.parse_machines("\n".join(rendered)) != parsed:
        print("error: rendered entries do not parse back to the same machines", file=sys.stderr)
        return 1

    total = parse_time + render_time + document_time
    print("entries:                          %d (%d bytes), best of %d" % (count, len(text.encode()), runs))
    print("parse_machines:                   %.4f s" % parse_time)
    print("render_machine (all entries):     %.4f s" % render_time)
    print("MachinesDocument parse + render:  %.4f s" % document_time)
    print("total:                            %.4f s (target < 0.5 s for 10,000 entries)" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
