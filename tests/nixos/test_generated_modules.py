"""Generated NixOS modules, read and evaluated by a real Nix (nix-instantiate).

Run with: .venv/bin/pytest -m nix tests/nixos
On Debian, `apt-get install -y nix-bin` provides nix-instantiate (Nix 2.8 on bookworm). These tests
fail, not skip, without it: a green run must mean the modules were really evaluated.

The modules are functions of { config, lib, pkgs, ... }; they are applied to stub arguments, so
what is checked is the attribute set each module contributes, before the NixOS module system
merges it. The builder and client modules describe one inventory: a builder behind port 2222
(reached through an ssh_config Host alias, facts P7) and an external builder on port 22.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.machines import Machine, parse_machines
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_detect import NIX_BIN_DIRS
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_expr import NixRaw, add_import, render_module

pytestmark = pytest.mark.nix

STUB_ARGS = '{ config = { }; lib = { mkDefault = x: x; mkForce = x: x; }; pkgs = { bashInteractive = "/stub/bash"; }; }'


@pytest.fixture(scope="module")
def nix_instantiate():
    found = shutil.which("nix-instantiate") or next(
        (os.path.join(d, "nix-instantiate") for d in NIX_BIN_DIRS if os.access(os.path.join(d, "nix-instantiate"), os.X_OK)), None)
    if not found:
        pytest.fail("nix-instantiate is not installed: these tests need a real Nix (Debian: apt-get install -y nix-bin)")
    return found


def run_nix(nix_instantiate, *argv):
    proc = subprocess.run([nix_instantiate, *argv], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"nix-instantiate {' '.join(argv)} failed: {proc.stderr}"
    return proc.stdout


def nix_path(path) -> str:
    """An absolute path as a Nix expression, whatever characters the temporary directory has."""
    return f'(/. + "{os.fspath(path)}")'


def evaluate_module(nix_instantiate, path) -> dict:
    run_nix(nix_instantiate, "--parse", os.fspath(path))
    return json.loads(run_nix(nix_instantiate, "--eval", "--strict", "--json", "-E", f"import {nix_path(path)} {STUB_ARGS}"))


# --- the inventory ---------------------------------------------------------------------------

CLIENT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGv7m2d3qjR1y2F3d9oWm3Hk1o6jQ4tqz6GJ0m2bH1sY root@client"
FORCED = 'restrict,command="/run/current-system/sw/bin/nix-daemon --stdio" '
B1_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8ZtT7aJYl2i6oJ3Y1v5m4rOQm5b2c7d8e9f0a1b2c3"
EXT_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
KEY_PATH = "/root/.ssh/nix_builder_ed25519"
FEATURES = ["benchmark", "big-parallel", "kvm", "nixos-test"]


def host_key_base64(public_key: str) -> str:
    """Machines column 8 / publicHostKey: base64 -w0 of the .pub line (facts 3.1)."""
    return base64.b64encode((public_key + "\n").encode()).decode()


BUILDER_CONTENT = {
    "users": {
        "users": {
            "remotebuild": {
                "isSystemUser": True,
                "group": "remotebuild",
                "description": "Nix remote builds",
                "shell": NixRaw("pkgs.bashInteractive"),
                "openssh": {"authorizedKeys": {"keys": [FORCED + CLIENT_KEY]}},
            },
        },
        "groups": {"remotebuild": {}},
    },
    "nix": {
        "settings": {
            # A NixOS list option: merged with the default [ "root" ], not replacing it.
            "trusted-users": ["remotebuild"],
            "max-jobs": 4,
            "cores": 0,
            "min-free": 1073741824,
            "max-free": 4294967296,
            "system-features": FEATURES,
        },
    },
    "systemd": {
        "services": {
            "nix-daemon": {"serviceConfig": {"MemoryAccounting": True, "MemoryMax": "90%", "OOMScoreAdjust": 500}},
        },
    },
}

BUILDER_EXPECTED = {
    "users": {
        "users": {
            "remotebuild": {
                "isSystemUser": True,
                "group": "remotebuild",
                "description": "Nix remote builds",
                "shell": "/stub/bash",
                "openssh": {"authorizedKeys": {"keys": [
                    'restrict,command="/run/current-system/sw/bin/nix-daemon --stdio" ' + CLIENT_KEY,
                ]}},
            },
        },
        "groups": {"remotebuild": {}},
    },
    "nix": {"settings": {
        "trusted-users": ["remotebuild"], "max-jobs": 4, "cores": 0, "min-free": 1073741824, "max-free": 4294967296,
        "system-features": ["benchmark", "big-parallel", "kvm", "nixos-test"],
    }},
    "systemd": {"services": {"nix-daemon": {"serviceConfig": {"MemoryAccounting": True, "MemoryMax": "90%", "OOMScoreAdjust": 500}}}},
}

B1_ALIAS = "nix-builder-b1"
B1_SSH_CONFIG = (
    f"Host {B1_ALIAS}\n"
    "  HostName 127.0.0.2\n"
    "  Port 2222\n"
    "  User remotebuild\n"
    f"  HostKeyAlias {B1_ALIAS}\n"
    f"  IdentityFile {KEY_PATH}\n"
    "  IdentitiesOnly yes\n"
)

BUILD_MACHINES = [
    {
        # Port 2222 through the ssh alias: works on every Nix version, and HostKeyAlias makes the
        # pinned publicHostKey line up with the alias (facts 1.4, P7).
        "hostName": B1_ALIAS,
        "protocol": "ssh-ng",
        "sshUser": "remotebuild",
        "sshKey": KEY_PATH,
        "systems": ["x86_64-linux", "i686-linux"],
        "maxJobs": 4,
        "speedFactor": 2,
        "supportedFeatures": FEATURES,
        "mandatoryFeatures": [],
        "publicHostKey": host_key_base64(B1_HOST_KEY),
    },
    {
        "hostName": "eu.nixbuild.net",
        "protocol": "ssh-ng",
        "sshUser": "root",
        "sshKey": KEY_PATH,
        "systems": ["aarch64-linux"],
        "maxJobs": 100,
        "speedFactor": 1,
        "supportedFeatures": ["benchmark"],
        "mandatoryFeatures": ["big-parallel"],
        "publicHostKey": host_key_base64(EXT_HOST_KEY),
    },
]

CLIENT_CONTENT = {
    "nix": {
        "distributedBuilds": True,
        "buildMachines": BUILD_MACHINES,
        "settings": {"builders-use-substitutes": True},
    },
    "programs": {
        "ssh": {
            "knownHosts": {
                B1_ALIAS: {"hostNames": [B1_ALIAS, "[127.0.0.2]:2222"], "publicKey": B1_HOST_KEY},
                "eu.nixbuild.net": {"hostNames": ["eu.nixbuild.net"], "publicKey": EXT_HOST_KEY},
            },
            "extraConfig": B1_SSH_CONFIG,
        },
    },
}

# What the Debian path writes to /etc/nix/machines for the same two builders.
DEBIAN_MACHINES = [
    Machine(
        store_uri=f"ssh-ng://remotebuild@{B1_ALIAS}", systems=("x86_64-linux", "i686-linux"), ssh_key=KEY_PATH,
        max_jobs=4, speed_factor=2.0, supported_features=tuple(FEATURES), mandatory_features=(),
        public_host_key=host_key_base64(B1_HOST_KEY),
    ),
    Machine(
        store_uri="ssh-ng://root@eu.nixbuild.net", systems=("aarch64-linux",), ssh_key=KEY_PATH,
        max_jobs=100, speed_factor=1.0, supported_features=("benchmark", "big-parallel"), mandatory_features=("big-parallel",),
        public_host_key=host_key_base64(EXT_HOST_KEY),
    ),
]

# NixOS's rendering of nix.buildMachines into /etc/nix/machines (nixos/modules/config/nix-remote-build.nix,
# facts 3.1), with the submodule's defaults, for a Nix >= 2.4 (column 8 written).
NIXOS_MACHINES_RULE = """
machines:
let
  defaults = { protocol = "ssh"; system = null; systems = [ ]; sshUser = null; sshKey = null; maxJobs = 1;
               speedFactor = 1; supportedFeatures = [ ]; mandatoryFeatures = [ ]; publicHostKey = null; };
  orDash = list: if list == [ ] then "-" else builtins.concatStringsSep "," list;
  line = given: let m = defaults // given; in builtins.concatStringsSep " " [
    "${if m.protocol != null then "${m.protocol}://" else ""}${if m.sshUser != null then "${m.sshUser}@" else ""}${m.hostName}"
    (if m.system != null then m.system else orDash m.systems)
    (if m.sshKey != null then m.sshKey else "-")
    (toString m.maxJobs)
    (toString m.speedFactor)
    (orDash (m.supportedFeatures ++ m.mandatoryFeatures))
    (orDash m.mandatoryFeatures)
    (if m.publicHostKey != null then m.publicHostKey else "-")
  ] + "\\n";
in builtins.concatStringsSep "" (map line machines)
"""


# --- tests -----------------------------------------------------------------------------------

def test_builder_module_evaluates_to_the_expected_settings(nix_instantiate, tmp_path):
    path = tmp_path / "remote-builder.nix"
    path.write_text(render_module(BUILDER_CONTENT, "Generated by Ansible (nix_remote.builders)."))
    assert evaluate_module(nix_instantiate, path) == BUILDER_EXPECTED


def test_client_module_evaluates_to_the_expected_settings(nix_instantiate, tmp_path):
    path = tmp_path / "distributed-builds.nix"
    path.write_text(render_module(CLIENT_CONTENT, "Generated by Ansible (nix_remote.builders)."))
    value = evaluate_module(nix_instantiate, path)
    assert value["nix"]["distributedBuilds"] is True
    assert value["nix"]["settings"] == {"builders-use-substitutes": True}
    assert value["nix"]["buildMachines"] == BUILD_MACHINES
    assert value["programs"]["ssh"]["knownHosts"] == {
        B1_ALIAS: {"hostNames": [B1_ALIAS, "[127.0.0.2]:2222"], "publicKey": B1_HOST_KEY},
        "eu.nixbuild.net": {"hostNames": ["eu.nixbuild.net"], "publicKey": EXT_HOST_KEY},
    }
    assert value["programs"]["ssh"]["extraConfig"] == B1_SSH_CONFIG


def test_build_machines_round_trip_to_the_machines_the_debian_path_writes(nix_instantiate, tmp_path):
    path = tmp_path / "distributed-builds.nix"
    path.write_text(render_module(CLIENT_CONTENT, ""))
    rule = tmp_path / "machines-rule.nix"
    rule.write_text(NIXOS_MACHINES_RULE)
    expression = f"import {nix_path(rule)} (import {nix_path(path)} {STUB_ARGS}).nix.buildMachines"
    machines_text = json.loads(run_nix(nix_instantiate, "--eval", "--strict", "--json", "-E", expression))
    assert machines_text.count("\n") == 2 and machines_text.endswith("\n")
    assert parse_machines(machines_text, source="/etc/nix/machines (NixOS)") == DEBIAN_MACHINES


def test_generated_configuration_with_added_import_parses_and_lists_the_module(nix_instantiate, tmp_path):
    configuration = (
        "# Edit this configuration file to define what should be installed on\n"
        "{ config, pkgs, ... }:\n\n"
        "{\n"
        "  imports =\n"
        "    [ # Include the results of the hardware scan.\n"
        "      ./hardware-configuration.nix\n"
        "    ];\n\n"
        '  system.stateVersion = "24.05"; # Did you read the comment?\n'
        "}\n"
    )
    path = tmp_path / "configuration.nix"
    path.write_text(add_import(configuration, "./remote-builder.nix"))
    run_nix(nix_instantiate, "--parse", os.fspath(path))
    imports = json.loads(run_nix(
        nix_instantiate, "--eval", "--strict", "--json", "-E",
        f"map toString (import {nix_path(path)} {STUB_ARGS}).imports",
    ))
    assert imports == [str(tmp_path / "hardware-configuration.nix"), str(tmp_path / "remote-builder.nix")]


TRICKY_VALUES = {
    "quotes": 'say "hi" \\ back',
    "interpolation": "${pkgs.evil} and $${x} and ${",
    "dollar": "$5 {x} $",
    "multiline": "Host a\n  Port 22\r\n\tend\n",
    "unicode": "\u2018nixos-help\u2019 \u2713",
    "[127.0.0.1]:2222": "key needing quotes",
    "a.b": "a dotted key is one attribute",
    "in": "a keyword as a key",
    "${x}": "an interpolation-looking key",
    "": "the empty key",
    "numbers": [0, -1, 2 ** 63 - 1, -(2 ** 63) + 1, 1.5, -0.25, 1e20, 2.0],
    "empty": {"list": [], "set": {}},
    "nothing": None,
    "flags": [True, False],
}


def test_tricky_values_evaluate_back_to_the_same_data(nix_instantiate, tmp_path):
    path = tmp_path / "tricky.nix"
    path.write_text(render_module(TRICKY_VALUES, "escaping", args=()))
    value = evaluate_module(nix_instantiate, path)
    assert value == TRICKY_VALUES
