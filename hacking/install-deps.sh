#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on a fresh Debian 12 machine (as root).
# Idempotent and quick when everything is there already.
set -euo pipefail

# systemd-nspawn and mmdebstrap run the test hosts; nix-bin gives the controller a real Nix
# (2.8) to validate nix.conf candidates and evaluate generated NixOS modules; rsync and git
# lay out the ansible-test tree; nftables drops the packets of a "blackholed" test builder.
packages=(make git rsync python3-venv mmdebstrap systemd-container openssh-client iproute2 uidmap nix-bin nftables)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
