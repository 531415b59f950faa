#!/usr/bin/env bash
# Runs `ansible-test sanity` on a copy of the collection laid out as
# ansible_collections/nix_remote/builders inside a git work tree, as ansible-test requires.
# Usage: hacking/sanity.sh VENV_DIR [ansible-test sanity options, e.g. --test pep8]
set -euo pipefail
venv=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
tree="$repo/.build/sanity/ansible_collections/nix_remote/builders"

# ansible-test looks for the pip bootstrap script here before downloading it.
# The pip version is pinned inside ansible-test (get_venv_packages).
pip_version=$(grep -ho "pip='[0-9.]*'" "$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -n1 | tr -dc '0-9.' | tr . _)
mkdir -p "$HOME/.ansible/test/cache"
cp "$repo/hacking/offline_get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version}.py"

# Rebuild the copy from scratch, but keep ansible-test's delegation venv (tests/output) across runs.
saved="$repo/.build/sanity-output"
rm -rf "$saved"
[ -d "$tree/tests/output" ] && mv "$tree/tests/output" "$saved"
rm -rf "$repo/.build/sanity"
mkdir -p "$tree/tests"
[ -d "$saved" ] && mv "$saved" "$tree/tests/output"
# Tracked and new (not ignored) files: what the next commit would hold.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
done) | (cd "$repo" && xargs -0 cp --parents -P -t "$tree")
cd "$tree"
git init -q
git add -A
git -c user.name=sanity -c user.email=sanity@localhost commit -qm sanity

py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
shift
exec "$venv/bin/ansible-test" sanity --venv --python "$py" --color no "$@"
