"""A minimal external builder for Nix's `external-builders` (Nix 2.32 and later), for the tests.

Nix runs `run-build [args...] <build.json>` as a build user, with the pty as stdout and stderr, in
the build's temporary directory (src/libstore/unix/build/external-derivation-builder.cc). The
JSON file describes the build: builder, args, env, inputPaths, outputs, system, storeDir and
realStoreDir, tmpDir and tmpDirInSandbox (the path the environment names the temporary directory
by), version 1. This program runs the derivation's builder with its arguments and environment as
they are, outside any sandbox, with the temporary directory's sandbox path replaced by the real
one, and the store's logical path by the real one where they differ.

Before the builder starts it prints "\\2" on a line of its own: Nix reads the build's output until
that line as messages from setting up the build (src/libstore/unix/build/derivation-builder.cc),
as a local build's child prints it before it executes the builder.

The first argument must be `--tag=TEXT`: it is printed into the build log, so a test can tell that
this program built the derivation.

Standard library only. The tests install it with a `#!/usr/bin/python3` line in front (it is kept
here without one, as a module the unit tests import).
"""

import json
import os
import sys


def main(argv):
    if len(argv) != 3 or not argv[1].startswith("--tag="):
        print("usage: run-build --tag=TEXT BUILD_JSON", file=sys.stderr)
        return 2
    tag = argv[1][len("--tag="):]
    with open(argv[2], encoding="utf-8") as handle:
        build = json.load(handle)
    if build.get("version") != 1:
        print("run-build: unknown build description version %r" % build.get("version"), file=sys.stderr)
        return 2

    def real(value):
        value = value.replace(build["tmpDirInSandbox"], build["tmpDir"])
        if build["storeDir"] != build["realStoreDir"]:
            value = value.replace(build["storeDir"], build["realStoreDir"])
        return value

    env = {name: real(value) for name, value in build["env"].items()}
    args = [real(arg) for arg in build["args"]]
    sys.stderr.write("\x02\n")
    sys.stderr.flush()
    outputs = ", ".join(sorted(build["outputs"].values()))
    print("run-build %s: building %s for %s with %s" % (tag, outputs, build["system"], build["builder"]), flush=True)
    os.chdir(build["tmpDir"])
    os.execve(real(build["builder"]), [real(build["builder"])] + args, env)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
