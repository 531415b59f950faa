#!/usr/bin/env bash
# Runs `ansible-test sanity` with VENV_DIR's ansible-core on the controller Python of that venv.
# Usage: hacking/sanity.sh VENV_DIR [ansible-test sanity options, e.g. --test pep8]
set -euo pipefail
venv=$1
shift
py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
exec "$(dirname "$0")/ansible-test.sh" "$venv" sanity --python "$py" "$@"
