"""Security checks with real SSH on the testbed (issue 7 item 6), shared by the scenarios.

The build key may only speak the Nix protocol: no shell, no other command, no port or agent
forwarding, no tty.  The build user has no password and no sudo.  Private keys are 0600 root.
A -vvv run of site.yml prints no private key material.  Every builder's host key is pinned
on the clients; nothing in the SSH configuration trusts on first use.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fleet import BUILD_USER, BUILDERS, CLIENTS, INVENTORY, KEY, PAIRS, PROJECT, client_record, host_of


SIGNING_SECRET = "/etc/nix/nix-remote-builders-signing.sec"
MARK = "SECURITY-PROBE-RAN"


def target(client, builder: str) -> list[str]:
    """ssh arguments reaching the builder as nix-daemon does (alias or user@host[:port])."""
    record = client_record(client, builder)
    if record["alias"]:
        return [f"{record['alias']['user']}@{record['alias']['name']}"]
    user, host, port = re.match(r"^[a-z-]+://([^@]+)@([^/?:]+)(?::(\d+))?", record["uri"]).groups()
    return ([f"-p{port}"] if port else []) + [f"{user}@{host}"]


def ssh(client, builder: str, *extra: str, command: list[str] | None = None, timeout: int = 15):
    """Run ssh with the build key as root on the client; never fails the testinfra call itself."""
    argv = ["timeout", str(timeout), "ssh", "-o", "BatchMode=yes", "-i", KEY, "-o", "IdentitiesOnly=yes",
            "-o", "ControlPath=none", *extra, *target(client, builder), *(command or [])]
    return client.run(shlex.join(argv) + " </dev/null; echo rc=$?")


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_build_key_gets_no_shell_and_no_command_of_its_choice(client, builder):
    c = host_of(client)
    for command in (["sh", "-c", f"echo {MARK}"], ["/bin/echo", MARK], [f"echo {MARK}; id"]):
        result = ssh(c, builder, command=command)
        assert MARK not in result.stdout, f"{command} ran on {builder}: {result.stdout}"
    # No command at all would be an interactive shell; the forced command runs instead.
    result = ssh(c, builder, "-T", timeout=5)
    assert MARK not in result.stdout and "$ " not in result.stdout


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_build_key_cannot_allocate_a_tty(client, builder):
    result = ssh(host_of(client), builder, "-tt", command=["echo", MARK])
    assert MARK not in result.stdout
    assert "PTY allocation request failed" in result.stderr


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_build_key_cannot_forward_a_port(client, builder):
    c = host_of(client)
    base = ["ssh", "-o", "BatchMode=yes", "-i", KEY, "-o", "IdentitiesOnly=yes", "-o", "ControlPath=none"]
    # -L: open the tunnel, connect through it; the builder's sshd banner must not come back.
    script = (shlex.join(["timeout", "10", *base, "-N", "-L", "127.0.0.1:47123:127.0.0.1:22", *target(c, builder)])
              + " 2>/tmp/fwd.err & sleep 2; exec 3<>/dev/tcp/127.0.0.1/47123 && timeout 3 head -c 7 <&3;"
              + " sleep 1; kill %1; cat /tmp/fwd.err >&2")
    tunnel = c.run("bash -c %s", script)
    assert "SSH-2.0" not in tunnel.stdout, "the port forwarding reached the builder's port 22"
    assert "prohibited" in tunnel.stderr, tunnel.stderr
    # -W uses the same kind of channel (direct-tcpip) at once.
    stdio = ssh(c, builder, "-W", "127.0.0.1:22")
    assert "SSH-2.0" not in stdio.stdout and "prohibited" in stdio.stderr, stdio.stderr


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_build_key_options_refuse_an_agent(client, builder):
    """Our forced command cannot report what it got, so a probe key with exactly our options
    and a command that prints SSH_AUTH_SOCK is added for the test and removed afterwards."""
    c, b = host_of(client), host_of(builder)
    keys = "/var/lib/remotebuild/.ssh/authorized_keys"
    ours = [ln for ln in b.file(keys).content_string.splitlines() if ln.startswith("restrict,")][0]
    options = ours[:ours.index(" ssh-")]
    c.run("rm -f /tmp/probe /tmp/probe.pub; ssh-keygen -q -t ed25519 -N '' -f /tmp/probe")
    probe = c.file("/tmp/probe.pub").content_string.strip()
    line = re.sub(r'command="[^"]*"', 'command="echo AGENT=${SSH_AUTH_SOCK:-none}"', options) + " " + probe
    b.run("cp -p %s /tmp/authorized_keys.saved && echo %s >> %s", keys, line, keys)
    try:
        inner = shlex.join(["ssh", "-A", "-o", "BatchMode=yes", "-i", "/tmp/probe", "-o", "IdentitiesOnly=yes",
                            "-o", "ControlPath=none", *target(c, builder)])
        result = c.run("timeout 15 ssh-agent sh -c %s </dev/null; true", "ssh-add -q /tmp/probe; " + inner)
    finally:
        b.run("cp -p /tmp/authorized_keys.saved %s", keys)
    assert "AGENT=none" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("name", BUILDERS)
def test_build_user_has_no_password_and_no_sudo(name):
    host = host_of(name)
    password = host.run("getent shadow %s", BUILD_USER).stdout.split(":")[1]
    assert password[:1] in ("!", "*"), f"usable password hash for {BUILD_USER}"
    sudo = host.run("sudo -n -l -U %s", BUILD_USER)
    assert "not allowed to run sudo" in sudo.stdout + sudo.stderr


@pytest.mark.parametrize("name", BUILDERS + CLIENTS)
def test_private_keys_are_root_only(name):
    host = host_of(name)
    found = host.run("ls -1 %s %s /etc/nix/nix-remote-builders-signing.sec 2>/dev/null; true",
                     KEY, "/etc/ssh/ssh_host_ed25519_key").stdout.split()
    assert found, "no private key found at all"
    for path in found:
        key = host.file(path)
        assert key.user == "root" and key.mode == 0o600, f"{path}: {key.user} {oct(key.mode)}"


def test_no_private_key_material_in_a_verbose_run():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".testbed" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1")
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i", INVENTORY,
                          str(PROJECT / "playbooks" / "site.yml")],
                         capture_output=True, text=True, env=env, check=False, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "PRIVATE KEY" not in output
    secrets = []
    for name in CLIENTS:
        host = host_of(name)
        body = "".join(host.file(KEY).content_string.splitlines()[1:-1])
        secrets += [body[i:i + 40] for i in range(0, len(body) - 40, 40)]
        signing = host.run("cat %s 2>/dev/null; true", SIGNING_SECRET).stdout.strip()
        if signing:
            secrets.append(signing.split(":", 1)[1][:40])
    for name in BUILDERS:
        signing = host_of(name).run("cat %s 2>/dev/null; true", SIGNING_SECRET).stdout.strip()
        if signing:
            secrets.append(signing.split(":", 1)[1][:40])
    leaked = [s for s in secrets if s in output]
    assert not leaked, f"{len(leaked)} pieces of private key material in the -vvv output"


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_known_hosts_pins_the_builders_real_key(client, builder):
    c, b = host_of(client), host_of(builder)
    real = b.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[:2]
    record = client_record(c, builder)
    known = c.file("/etc/ssh/ssh_known_hosts").content_string.splitlines()
    assert record["known_hosts"]
    for line in record["known_hosts"]:
        name = line.split()[0]
        pinned = [k.split()[1:3] for k in known if k.split()[:1] == [name]]
        assert pinned == [real], f"{name}: pinned {pinned}, builder presents {real}"


@pytest.mark.parametrize("name", CLIENTS)
def test_no_trust_on_first_use_in_the_ssh_configuration(name):
    host = host_of(name)
    # The role's own file (other files may relax checking for their own hosts, such as
    # systemd's machine/* proxy; what applies to the builders is checked with ssh -G below).
    text = host.file("/etc/ssh/ssh_config.d/60-nix-remote-builders.conf").content_string
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if words and words[0].lower() == "stricthostkeychecking":
            assert words[1].lower() not in ("no", "accept-new", "off"), line
    # What the daemon's ssh actually ends up with for each builder.
    for builder in BUILDERS:
        effective = host.run("ssh -G %s", target(host, builder)[-1]).stdout.lower()
        assert "stricthostkeychecking false" not in effective and "stricthostkeychecking accept-new" not in effective
