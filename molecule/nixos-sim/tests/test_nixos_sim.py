"""What a NixOS user checks after site.yml on the nixos-sim hosts (Debian underneath, NixOS by
every marker nix_info reads): the generated modules exist, parse and evaluate to the expected
settings, configuration.nix imports them, nixos-rebuild switch ran exactly once per host (the
idempotence run changed nothing, so it did not run again), and /etc/nix was not touched.
"""

from __future__ import annotations

import base64
import json
import re

from fleet import KEY, RUNNER, host_of

BUILDER = sorted(RUNNER.get_hosts("nix_builders"))[0]
CLIENT = sorted(RUNNER.get_hosts("nix_clients"))[0]
ALIAS = f"nix-builder-{BUILDER}"
STUB_ARGS = ('{ config = { }; lib = { mkDefault = x: x; mkForce = x: x; }; '
             'pkgs = { bashInteractive = "/stub/bashInteractive"; }; }')


def evaluate(host, path: str) -> dict:
    """The module applied to stub arguments, evaluated strictly by the host's real Nix."""
    parsed = host.run(f"nix-instantiate --parse {path}")
    assert parsed.rc == 0, parsed.stderr
    result = host.run(f"nix-instantiate --eval --strict --json -E 'import {path} {STUB_ARGS}'")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def imports_of(host) -> list[str]:
    expr = f"map toString (import /etc/nixos/configuration.nix {STUB_ARGS}).imports"
    result = host.run(f"nix-instantiate --eval --strict --json -E '{expr}'")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_nix_info_sees_nixos():
    for name in (BUILDER, CLIENT):
        facts = host_of(name).ansible("nix_remote.builders.nix_info", check=False)
        assert facts["is_nixos"] and facts["service_manager"] == "nixos", (name, facts)


def test_builder_module_has_the_user_keys_trust_and_limits():
    builder, client = host_of(BUILDER), host_of(CLIENT)
    module = evaluate(builder, "/etc/nixos/nix-remote-builder.nix")
    pubkey = client.run(f"ssh-keygen -y -f {KEY}").stdout.split()[1]
    daemon = host_of(BUILDER).ansible("nix_remote.builders.nix_info", check=False)["paths"]["nix_daemon"]
    user = module["users"]["users"]["remotebuild"]
    assert user["isSystemUser"] is True and user["group"] == "remotebuild"
    assert user["shell"] == "/stub/bashInteractive"
    keys = user["openssh"]["authorizedKeys"]["keys"]
    assert len(keys) == 1
    assert keys[0].startswith(f'restrict,command="{daemon} --stdio" ssh-ed25519 {pubkey} ')
    assert module["users"]["groups"] == {"remotebuild": {}}
    settings = module["nix"]["settings"]
    assert settings["trusted-users"] == ["remotebuild"]
    assert settings["max-jobs"] >= 1 and settings["min-free"] == 1073741824 and settings["max-free"] == 5368709120
    assert module["systemd"]["services"]["nix-daemon"]["serviceConfig"] == {
        "MemoryAccounting": True, "MemoryMax": "90%", "OOMScoreAdjust": 500}
    # The build user's sshd settings: the Match block last in sshd_config, MaxStartups global.
    sshd = module["services"]["openssh"]
    assert sshd["settings"] == {"MaxStartups": "100:30:200"}
    assert sshd["extraConfig"].startswith("Match User remotebuild\n")
    assert re.search(r"^    MaxSessions \d+$", sshd["extraConfig"], re.M)
    assert "PermitTTY no" in sshd["extraConfig"] and "DisableForwarding yes" in sshd["extraConfig"]


def test_client_module_has_the_builders_host_keys_and_alias():
    builder, client = host_of(BUILDER), host_of(CLIENT)
    module = evaluate(client, "/etc/nixos/nix-remote-builders.nix")
    host_key = " ".join(builder.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[:2])
    assert module["nix"]["distributedBuilds"] is True
    assert module["nix"]["settings"]["builders-use-substitutes"] is True
    machines = {m["hostName"]: m for m in module["nix"]["buildMachines"]}
    assert sorted(machines) == sorted([ALIAS, "eu.nixbuild.net"])
    # Port 2222 on Nix 2.26: through the ssh alias, with the builder's key pinned (facts P7, 1.4).
    ours = machines[ALIAS]
    assert ours["protocol"] == "ssh-ng" and ours["sshUser"] == "remotebuild" and ours["sshKey"] == KEY
    assert base64.b64decode(ours["publicHostKey"]).decode().strip() == host_key
    external = machines["eu.nixbuild.net"]
    assert external["sshUser"] == "root" and external["mandatoryFeatures"] == ["big-parallel"]
    assert external["supportedFeatures"] == ["benchmark"]  # NixOS appends the mandatory ones itself
    known = module["programs"]["ssh"]["knownHosts"]
    pinned = {name: entry["publicKey"] for entry in known.values() for name in entry["hostNames"]}
    assert pinned[ALIAS] == host_key and pinned[f"[{builder_address()}]:2222"] == host_key
    config = module["programs"]["ssh"]["extraConfig"]
    assert f"Host {ALIAS}\n" in config and "Port 2222" in config and f"IdentityFile {KEY}" in config
    # The NixOS client's Nix (2.26 here) checks for a master first: connection reuse is on.
    assert "ConnectTimeout" in config and "ControlMaster auto" in config and "ControlPersist 60s" in config


def builder_address() -> str:
    return RUNNER.get_variables(BUILDER)["ansible_host"]


def test_configuration_imports_the_generated_modules():
    assert "/etc/nixos/nix-remote-builder.nix" in imports_of(host_of(BUILDER))
    assert "/etc/nixos/nix-remote-builders.nix" in imports_of(host_of(CLIENT))
    for name in (BUILDER, CLIENT):
        # The rest of configuration.nix is as nixos-generate-config wrote it.
        text = host_of(name).file("/etc/nixos/configuration.nix").content_string
        assert "./hardware-configuration.nix" in text and 'system.stateVersion = "24.11";' in text


def test_nixos_rebuild_switch_ran_once_per_host_and_evaluated():
    for name, module in ((BUILDER, "nix-remote-builder.nix"), (CLIENT, "nix-remote-builders.nix")):
        host = host_of(name)
        assert host.file("/var/log/nixos-rebuild.calls").content_string.splitlines() == ["switch"], name
        assert host.file(f"/var/lib/nixos-sim/{module}.json").exists, name


def test_no_rebuild_owed_after_the_successful_switch():
    # The marker nixos_module writes before the module (issue 13 d) is gone once the switch succeeded,
    # so the idempotence run had nothing to retry.
    for name, module in ((BUILDER, "nix-remote-builder.nix"), (CLIENT, "nix-remote-builders.nix")):
        assert not host_of(name).file(f"/etc/nixos/.{module}.rebuild-pending").exists, name


def test_etc_nix_untouched():
    for name in (BUILDER, CLIENT):
        host = host_of(name)
        check = host.run("cd / && sha256sum --check --quiet /var/lib/nixos-sim/etc-nix.before")
        assert check.rc == 0, (name, check.stdout, check.stderr)
        now = host.run("find /etc/nix -type f | sort").stdout.split()
        before = [line.split(None, 1)[1] for line in host.file("/var/lib/nixos-sim/etc-nix.before").content_string.splitlines()]
        assert now == sorted(before), name


def test_client_key_is_roots_and_private():
    key = host_of(CLIENT).file(KEY)
    assert key.user == "root" and key.mode == 0o600
