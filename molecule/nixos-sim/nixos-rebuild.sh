#!/bin/sh
# nixos-rebuild stand-in for the nixos-sim scenario (installed by prepare.yml).
# It records its arguments, then does what the real one would fail on first: every .nix file
# in /etc/nixos must parse, configuration.nix's imports must name each generated module, and
# each generated module, applied to stub { config, lib, pkgs } arguments, must evaluate
# strictly.  The results are kept in /var/lib/nixos-sim/<module>.json for the verifier.
# Nothing is built or switched: the host stays Debian underneath.
set -eu
echo "$*" >> /var/log/nixos-rebuild.calls
[ "${1:-}" = switch ] || { echo "nixos-rebuild stand-in: only 'switch' is expected" >&2; exit 2; }

args='{ config = { }; lib = { mkDefault = x: x; mkForce = x: x; }; pkgs = { bashInteractive = "/stub/bashInteractive"; }; modulesPath = "/stub/modules"; }'
mkdir -p /var/lib/nixos-sim
for file in /etc/nixos/*.nix; do
    nix-instantiate --parse "$file" > /dev/null
done
imports=$(nix-instantiate --eval --strict --json -E "map toString (import /etc/nixos/configuration.nix $args).imports")
for module in nix-remote-builder.nix nix-remote-builders.nix; do
    [ -e "/etc/nixos/$module" ] || continue
    case "$imports" in
        *"/etc/nixos/$module\""*) ;;
        *) echo "nixos-rebuild stand-in: configuration.nix does not import ./$module ($imports)" >&2; exit 1 ;;
    esac
    nix-instantiate --eval --strict --json -E "import /etc/nixos/$module $args" > "/var/lib/nixos-sim/$module.json"
done
echo "nixos-rebuild stand-in: evaluated; nothing switched"
