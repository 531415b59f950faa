#!/usr/bin/env bash
# make demo: a bookworm builder and client on local test hosts, configured by site.yml,
# proven by verify.yml and by the tutorial's own test (nix-build --max-jobs 0 on the client).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bin="$repo/.venv/bin"
inventory=.testbed/demo/inventory.yml
export ANSIBLE_CONFIG="$repo/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$repo/.build/collections"

# A demo left running from an earlier `make demo` is replaced.
python3 tests/testbed/testbed.py down --name demo >/dev/null
python3 tests/testbed/testbed.py up --name demo builder1=bookworm client1=bookworm \
    --group nix_builders=builder1 --group nix_clients=client1

"$bin/ansible-playbook" -i "$inventory" playbooks/site.yml
"$bin/ansible-playbook" -i "$inventory" playbooks/verify.yml

# The tutorial's test: a derivation nobody has built before, built with no local slots.
nonce=$(date +%s%N)
expr="derivation { name = \"demo-$nonce\"; system = builtins.currentSystem; builder = \"/bin/sh\"; args = [ \"-c\" \"echo hello from the remote builder > \$out\" ]; }"
out=$(ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=ansible.posix.json \
    "$bin/ansible" -i "$inventory" client1 -m ansible.builtin.command -a "nix-build --max-jobs 0 --no-out-link -E '$expr'" |
    "$bin/python" -c 'import json, sys; print(json.load(sys.stdin)["plays"][0]["tasks"][0]["hosts"]["client1"].get("stdout", ""))')
if [ -z "$out" ]; then
    echo "demo: the build on client1 produced no output path" >&2
    exit 1
fi
if "$bin/ansible" -i "$inventory" builder1 -m ansible.builtin.command -a "test -e $out" >/dev/null; then
    echo
    echo "demo: client1 ran 'nix-build --max-jobs 0'; the build ran on builder1: $out is in builder1's store."
    echo "demo: 'make demo-clean' stops the test hosts."
else
    echo "demo: $out is not in builder1's store" >&2
    exit 1
fi
