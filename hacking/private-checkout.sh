#!/usr/bin/env bash
# Runs the checks that once depended on where the checkout lives from a copy inside a private
# (0700) directory under another name, as a root user's clone under /root is: the unit tests,
# the testbed's not-root refusal (a real process under uid 65534, which cannot enter that
# directory) and a syntax check of the playbooks through the copy's own collection link.
# Usage: hacking/private-checkout.sh VENV_DIR
set -euo pipefail
venv=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
top=$(mktemp -d)  # mode 0700, like /root
trap 'rm -rf "$top"' EXIT
copy="$top/private clone"  # a name unlike the checkout's, with a space in it
mkdir "$copy"
# Tracked and new (not ignored) files: what the next commit would hold.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
done) | (cd "$repo" && xargs -0 cp --parents -P -t "$copy")
test "$(stat -c %a "$top")" = 700
cd "$copy"
mkdir -p .build/collections/ansible_collections/nix_remote
ln -s ../../../.. .build/collections/ansible_collections/nix_remote/builders
export ANSIBLE_COLLECTIONS_PATH="$copy/.build/collections" ANSIBLE_CONFIG="$copy/ansible.cfg"
export ANSIBLE_HOME="$copy/.build/ansible-home"
"$venv/bin/pytest" -q -p no:cacheprovider tests/unit/plugins \
    "tests/testbed/test_testbed.py::test_not_root_is_refused"
for playbook in playbooks/site.yml playbooks/verify.yml; do
    "$venv/bin/ansible-playbook" -i inventory/example/hosts.yml --syntax-check "$playbook" >/dev/null
done
echo "private-checkout: passed from $copy"
