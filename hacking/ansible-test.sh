#!/usr/bin/env bash
# Runs ansible-test (sanity or units) from VENV_DIR on a copy of the collection laid out as
# ansible_collections/nix_remote/builders inside a git work tree, as ansible-test requires.
# Usage: hacking/ansible-test.sh VENV_DIR sanity|units [ansible-test options]
# Each venv gets its own copy, so several ansible-core versions can be tested side by side.
set -euo pipefail
venv=$(realpath "$1")
command=$2
shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$venv" = "$repo/.venv" ]; then
    work="$repo/.build/sanity"
else
    work="$repo/.build/ansible-test/$(basename "$venv")"
fi
tree="$work/ansible_collections/nix_remote/builders"

# ansible-test looks for the pip bootstrap script here before downloading it.
# The pip version is pinned inside ansible-test (get_venv_packages).
pip_version=$(grep -ho "pip='[0-9.]*'" "$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -n1 | tr -dc '0-9.' | tr . _)
# ansible-test strips the environment of the venvs it makes down to HOME, PATH and LC_ALL, so
# neither PIP_* variables nor anything else reach pip there; only files do. A HOME of its own
# under .build carries both files (pip's user config and the bootstrap script), so nothing
# outside the checkout is written or read from an earlier run.
export HOME="$repo/.build/sanity-home"
mkdir -p "$HOME/.ansible/test/cache" "$HOME/.config/pip"
cp "$repo/hacking/offline_get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version}.py"
{
    echo "[global]"
    echo "cert = ${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
    [ -n "${PIP_FIND_LINKS:-}" ] && echo "find-links = $PIP_FIND_LINKS"
    [ -n "${PIP_INDEX_URL:-}" ] && echo "index-url = $PIP_INDEX_URL"
    [ -n "${PIP_DEFAULT_TIMEOUT:-}" ] && echo "timeout = $PIP_DEFAULT_TIMEOUT"
    true
} > "$HOME/.config/pip/pip.conf"

# Rebuild the copy from scratch, but keep ansible-test's delegation venv (tests/output) across runs.
saved="$work.output"
rm -rf "$saved"
[ -d "$tree/tests/output" ] && mv "$tree/tests/output" "$saved"
rm -rf "$work"
mkdir -p "$tree/tests"
[ -d "$saved" ] && mv "$saved" "$tree/tests/output"
# Tracked and new (not ignored) files: what the next commit would hold.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
done) | (cd "$repo" && xargs -0 cp --parents -P -t "$tree")
cd "$tree"
git init -q
git add -A
git -c user.name=ansible-test -c user.email=ansible-test@localhost commit -qm ansible-test

exec "$venv/bin/ansible-test" "$command" --venv --color no "$@"
