# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fails when noxfile.py's Python table for an ansible-core minor differs from ansible-test's own.

Usage: python check_core_pythons.py CONTROLLER_VERSIONS TARGET_VERSIONS (comma-separated),
run with the Python of a venv that has the ansible-core in question installed.
"""

from __future__ import annotations

import sys

from ansible_test._internal.constants import CONTROLLER_PYTHON_VERSIONS, SUPPORTED_PYTHON_VERSIONS

# Managed-node Pythons this collection does not claim (nor tests).
UNCLAIMED = {"2.7", "3.5", "3.6"}


def main(controller: str, targets: str) -> int:
    errors = []
    if tuple(controller.split(",")) != tuple(CONTROLLER_PYTHON_VERSIONS):
        errors.append(f"controller Pythons: noxfile.py says {controller}, ansible-test says {','.join(CONTROLLER_PYTHON_VERSIONS)}")
    supported = tuple(v for v in SUPPORTED_PYTHON_VERSIONS if v not in UNCLAIMED)
    if tuple(targets.split(",")) != supported:
        errors.append(f"managed-node Pythons: noxfile.py says {targets}, ansible-test says {','.join(supported)}")
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
