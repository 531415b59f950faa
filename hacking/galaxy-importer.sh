#!/usr/bin/env bash
# galaxy-importer's check of the built tarball, as Galaxy and Automation Hub run it on upload:
# the docs of every plugin, flake8 over the Python, ansible-lint over the roles and playbooks.
# Any warning fails: a clean import is what we claim.  The importer pins an older attrs than the
# development venv, so it gets a venv of its own (.build/importer-venv), rebuilt when its pinned
# requirements change.
# Usage: hacking/galaxy-importer.sh TARBALL
set -euo pipefail
cd "$(dirname "$0")/.."
tarball=$(realpath "$1")
venv=.build/importer-venv
requirements=tests/packaging/requirements-importer.txt
if ! cmp -s "$requirements" "$venv/.installed" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.installed"
fi
out=.build/importer
rm -rf "$out" && mkdir -p "$out"
# The importer writes importer_result.json into its working directory and finds ansible-lint on PATH.
(cd "$out" && PATH="$(realpath ../importer-venv/bin):$PATH" \
    GALAXY_IMPORTER_CONFIG="$(realpath ../../tests/packaging/galaxy-importer.cfg)" \
    ../importer-venv/bin/python -m galaxy_importer.main "$tarball") | tee "$out/log"
if grep -E '^(WARNING|ERROR)' "$out/log"; then
    echo "galaxy-importer: the import above has warnings or errors" >&2
    exit 1
fi
grep -q '^Importer processing completed successfully' "$out/log"
