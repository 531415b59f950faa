"""What a user checks after site.yml: files, modes, owners, services, the build key's limits,
and real offloaded builds whose outputs are found in the builder's store.

Shared by the default and fleet scenarios (fleet's verifier adds these files).
Hosts come from molecule's inventory groups nix_builders and nix_clients.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fleet import (
    BUILD_USER, BUILDERS, CLIENTS, INVENTORY, KEY, PAIRS, PROJECT, RUNNER, builders_setting, client_record, client_records, host_of, login,
)


def machines_line(client, uri: str) -> str:
    lines = [ln for ln in client.file("/etc/nix/machines").content_string.splitlines()
             if ln.split(" ", 1)[0] == uri]
    assert len(lines) == 1, f"{uri}: {len(lines)} lines in /etc/nix/machines"
    return lines[0]


def ssh_target(record: dict) -> list[str]:
    """ssh arguments reaching the builder exactly as nix-daemon does (alias or user@host[:port])."""
    if record["alias"]:
        return [f"{record['alias']['user']}@{record['alias']['name']}"]
    match = re.match(r"^[a-z-]+://([^@]+)@([^/?:]+)(?::(\d+))?", record["uri"])
    assert match, record["uri"]
    user, host, port = match.groups()
    return ([f"-p{port}"] if port else []) + [f"{user}@{host}"]


def derivation(tag: str, system: str = "builtins.currentSystem") -> str:
    nonce = f"nix-remote-builders-molecule-{tag}-{uuid.uuid4().hex[:12]}"
    return (f'derivation {{ name = "{nonce}"; system = {system}; builder = "/bin/sh"; '
            f'args = [ "-c" "echo {nonce} > $out" ]; }}')


# ---------------------------------------------------------------- builders


@pytest.mark.parametrize("name", BUILDERS)
def test_builder_collects_garbage_on_a_timer_with_a_random_delay(name):
    """remote_builder_gc_schedule (issue 14 item 5): the timer is enabled with the role's delay,
    and its service really collects: a path no root holds is gone after it ran."""
    host = host_of(name)
    shown = host.run("systemctl show nix-remote-builders-gc.timer -p ActiveState -p UnitFileState -p RandomizedDelayUSec").stdout
    assert {"ActiveState=active", "UnitFileState=enabled", "RandomizedDelayUSec=1h"} <= set(shown.split()), shown
    added = login(host, f"f=$(mktemp) && echo {uuid.uuid4().hex} > $f && nix-store --add $f && rm $f")
    assert added.rc == 0, added.stderr
    garbage = added.stdout.strip().splitlines()[-1]
    assert host.run("systemctl start nix-remote-builders-gc.service").rc == 0
    assert host.run("systemctl show nix-remote-builders-gc.service -p Result").stdout.strip() == "Result=success"
    assert not host.file(garbage).exists, f"{garbage} survived the collection"


@pytest.mark.parametrize("name", BUILDERS)
def test_build_user_is_a_locked_system_account_with_a_real_shell(name):
    host = host_of(name)
    user = host.user(BUILD_USER)
    assert user.exists
    assert user.shell == "/bin/sh"
    assert user.home == "/var/lib/remotebuild"
    assert user.uid < 1000
    shadow = host.run("getent shadow %s", BUILD_USER).stdout.split(":")
    assert shadow[1].startswith("!"), "the build user must have no usable password"
    socket_group = host.file("/nix/var/nix/daemon-socket").group
    if socket_group != "root":
        assert socket_group in user.groups, "the build user must reach the daemon socket"


@pytest.mark.parametrize("name", BUILDERS)
def test_build_user_has_no_sudo(name):
    result = host_of(name).run("sudo -n -l -U %s", BUILD_USER)
    assert "not allowed to run sudo" in result.stdout + result.stderr


@pytest.mark.parametrize("name", BUILDERS)
def test_authorized_keys_are_exactly_the_clients_keys_locked_to_the_daemon(name):
    host = host_of(name)
    home = host.file("/var/lib/remotebuild")
    assert home.user == BUILD_USER and home.mode == 0o750
    ssh_dir = host.file("/var/lib/remotebuild/.ssh")
    assert ssh_dir.user == BUILD_USER and ssh_dir.mode == 0o700
    keys = host.file("/var/lib/remotebuild/.ssh/authorized_keys")
    assert keys.user == BUILD_USER and keys.mode == 0o600
    lines = [ln for ln in keys.content_string.splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == len(CLIENTS)
    for line in lines:
        assert re.match(r'^restrict,command="/[^"]+/nix-daemon --stdio" ssh-ed25519 \S+ ', line), line
    for client in CLIENTS:
        public = host_of(client).check_output("ssh-keygen -y -P '' -f %s", KEY).split()[1]
        assert sum(public in line for line in lines) == 1


@pytest.mark.parametrize("name", BUILDERS)
def test_build_user_is_trusted_and_daemon_tuned(name):
    host = host_of(name)
    conf = host.file("/etc/nix/nix.conf").content_string
    assert re.search(rf"^(extra-)?trusted-users = .*\b{BUILD_USER}\b", conf, re.M), conf
    jobs = int(re.search(r"^max-jobs = (\d+)$", conf, re.M).group(1))
    assert jobs >= 1
    assert re.search(r"^min-free = \d+$", conf, re.M)
    members = host.run("getent group nixbld").stdout.strip().split(":")[3].split(",")
    assert len([m for m in members if m]) >= jobs


@pytest.mark.parametrize("name", BUILDERS)
def test_nix_daemon_runs_with_the_drop_in(name):
    host = host_of(name)
    dropin = host.file("/etc/systemd/system/nix-daemon.service.d/60-nix-remote-builders.conf")
    assert dropin.user == "root" and dropin.mode == 0o644
    assert "OOMScoreAdjust=500" in dropin.content_string
    assert host.service("nix-daemon").is_running
    props = host.service("nix-daemon").systemd_properties
    assert props["OOMScoreAdjust"] == "500"
    assert props["DropInPaths"].count("60-nix-remote-builders.conf") == 1


# ---------------------------------------------------------------- clients


@pytest.mark.parametrize("name", CLIENTS)
def test_client_key_is_root_only_without_passphrase(name):
    host = host_of(name)
    assert host.file("/root/.ssh").mode == 0o700
    key = host.file(KEY)
    assert key.user == "root" and key.group == "root" and key.mode == 0o600
    assert host.run("ssh-keygen -y -P '' -f %s", KEY).rc == 0


@pytest.mark.parametrize("name", CLIENTS)
def test_client_nix_conf_and_machines_file(name):
    host = host_of(name)
    conf = host.file("/etc/nix/nix.conf").content_string
    assert re.search(rf"^builders = {re.escape(builders_setting(name))}$", conf, re.M)
    assert re.search(r"^builders-use-substitutes = true$", conf, re.M)
    machines = host.file("/etc/nix/machines")
    assert machines.user == "root" and machines.mode == 0o644
    lines = machines.content_string.splitlines()
    # One entry per builder, each directly under the comment that records it as the role's.
    entries = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    assert len(entries) == len(BUILDERS), lines
    assert all(lines[i - 1].startswith("# nix_remote.builders {") for i in entries), lines
    assert sorted(r["name"] for r in client_records(host)) == BUILDERS
    ssh_config = host.file("/etc/ssh/ssh_config.d/60-nix-remote-builders.conf").content_string
    # Timeouts for root's connections to the builders, whatever the reuse policy.
    assert re.search(r"^\s+ConnectTimeout \d+$", ssh_config, re.M)
    assert re.search(r"^build-poll-interval = 0$", conf, re.M)
    assert host.service("nix-daemon").is_running


def reuse_expected(version: str) -> bool:
    """The reuse policy, stated here on its own (the role takes it from nix_info's capability
    table): Nix 2.15 and 2.16 wait for ssh's `started` line, which a session over an existing
    master never prints (NixOS/nix#8329); every other release works with a persisting master."""
    minor = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", version).groups())
    return not (2, 15) <= minor < (2, 17)


@pytest.mark.parametrize("name", CLIENTS)
def test_client_reuses_connections_where_its_nix_allows_it(name):
    host = host_of(name)
    version = login(host, "nix-store --version").stdout.split()[-1]
    ssh_config = host.file("/etc/ssh/ssh_config.d/60-nix-remote-builders.conf").content_string
    control = host.file("/root/.ssh/nix-remote-builders")
    if not reuse_expected(version):
        assert "ControlMaster" not in ssh_config and not control.exists
        return
    # Never a master without a persist: the first build's ssh would take every session down with it.
    assert re.search(r"^\s+ControlMaster auto$", ssh_config, re.M), ssh_config
    assert re.search(r"^\s+ControlPersist 60s$", ssh_config, re.M), ssh_config
    assert re.search(r"^\s+ControlPath /root/\.ssh/nix-remote-builders/cm-%C$", ssh_config, re.M), ssh_config
    assert control.is_directory and control.user == "root" and control.mode == 0o700
    # A build leaves a master behind for the next one: a socket per builder used.
    build = login(host, "NIX_REMOTE=daemon nix-build --no-out-link --max-jobs 0 -E " + shlex.quote(derivation("reuse")))
    assert build.rc == 0, build.stderr
    sockets = host.run("find /root/.ssh/nix-remote-builders -type s").stdout.split()
    assert sockets, f"Nix {version}: no master socket after a remote build"


@pytest.mark.parametrize("name", BUILDERS)
def test_builder_sshd_is_sized_for_bursts_for_the_build_user_only(name):
    host = host_of(name)
    dropin = host.file("/etc/ssh/sshd_config.d/60-nix-remote-builder.conf")
    assert dropin.user == "root" and dropin.mode == 0o644
    jobs = int(re.search(r"^max-jobs = (\d+)$", host.file("/etc/nix/nix.conf").content_string, re.M).group(1))
    effective = dict(line.lower().split(" ", 1) for line in host.check_output(
        "sshd -T -C user=%s,host=client.example,addr=192.0.2.1", BUILD_USER).splitlines() if " " in line)
    assert int(effective["maxsessions"]) >= max(10, 2 * jobs)
    assert effective["permittty"] == "no" and effective["disableforwarding"] == "yes"
    assert effective["maxstartups"] == "100:30:200"
    # The Match block ends with the drop-in: other users keep the main file's settings.
    root = dict(line.lower().split(" ", 1) for line in host.check_output(
        "sshd -T -C user=root,host=client.example,addr=192.0.2.1").splitlines() if " " in line)
    assert root["permittty"] == "yes"
    # sshd was reloaded, not restarted: the running daemon is older than the drop-in.
    pid = host.check_output("systemctl show -p MainPID --value ssh.service")
    age = int(host.check_output("echo $(( $(date +%%s) - $(stat -c %%Y %s) ))", dropin.path))
    assert int(host.check_output("ps -o etimes= -p %s", pid)) > age
    assert "Reloaded" in host.run("journalctl -q -u ssh.service --no-pager").stdout


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_builder_host_key_is_pinned_system_wide(client, builder):
    c, b = host_of(client), host_of(builder)
    record = client_record(c, builder)
    builder_key = b.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
    known = c.file("/etc/ssh/ssh_known_hosts").content_string.splitlines()
    for line in record["known_hosts"]:
        name = line.split()[0]
        assert f"{name} ssh-ed25519 {builder_key}" in known, name
    port = b.ansible.get_variables().get("ansible_port", 22)
    if int(port) != 22:
        assert any(line.startswith("[") and f"]:{port} " in line for line in record["known_hosts"])


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_build_key_cannot_open_a_shell(client, builder):
    c = host_of(client)
    target = ssh_target(client_record(c, builder))
    base = ["ssh", "-o", "BatchMode=yes", "-i", KEY, "-o", "IdentitiesOnly=yes", "-o", "ControlPath=none"]
    # `|| true`: ssh exits 255 when the server refuses, which testinfra reports as a crash.
    shell = c.run(shlex.join(base + target + ["echo", "SHELL-OPENED"]) + " </dev/null || true")
    assert "SHELL-OPENED" not in shell.stdout, "the build key ran a command of the client's choice"
    tty = c.run(shlex.join(base + ["-tt"] + target + ["echo", "SHELL-OPENED"]) + " </dev/null || true")
    assert "SHELL-OPENED" not in tty.stdout
    assert "PTY allocation request failed" in tty.stderr


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_offloaded_build_lands_in_that_builders_store(client, builder):
    c, b = host_of(client), host_of(builder)
    line = machines_line(c, client_record(c, builder)["uri"])
    build = login(c, "NIX_REMOTE=daemon nix-build --no-out-link --max-jobs 0 --builders "
                  + shlex.quote(line) + " -E " + shlex.quote(derivation(builder)))
    assert build.rc == 0, build.stderr
    out = build.stdout.strip().splitlines()[-1]
    assert login(b, f"nix-store --check-validity {out}").rc == 0, f"{out} not in {builder}'s store"


@pytest.mark.parametrize("client", CLIENTS)
def test_build_through_the_machines_file_runs_on_a_builder(client):
    c = host_of(client)
    build = login(c, "NIX_REMOTE=daemon nix-build --no-out-link --max-jobs 0 -E "
                  + shlex.quote(derivation("machines")))
    assert build.rc == 0, build.stderr
    out = build.stdout.strip().splitlines()[-1]
    found = [b for b in BUILDERS if login(host_of(b), f"nix-store --check-validity {out}").rc == 0]
    assert len(found) == 1, f"{out} found in {found}"


def test_verify_playbook_prints_an_ok_row_per_pair(tmp_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".testbed" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", INVENTORY, str(PROJECT / "playbooks" / "verify.yml"),
         "-e", f"local_client_verify_report_dir={tmp_path}"],
        capture_output=True, text=True, env=env, check=False, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The same rows for other tools: JSON, and JUnit with one test case per pair.
    report = json.loads((tmp_path / "verify.json").read_text())
    assert report["ok"] and report["pairs"] == len(PAIRS) and report["failed"] == 0
    assert sorted((r["client"], r["builder"]) for r in report["rows"] if r["kind"] == "pair") == sorted(PAIRS)
    suite = ElementTree.parse(tmp_path / "verify.junit.xml").getroot().find("testsuite")
    assert sorted((c.get("classname"), c.get("name")) for c in suite.findall("testcase")) == sorted(PAIRS)
    assert suite.get("failures") == "0"
    for client, builder in PAIRS:
        assert re.search(rf"{re.escape(client)}\s+{re.escape(builder)}\s+OK: ", result.stdout), result.stdout[-4000:]
    # With a fleet binary cache (molecule/fleet), every host's row says it answers and its key is trusted,
    # and every builder's that a path built there reached it.
    for cache in sorted(RUNNER.get_hosts("nix_caches")):
        for host in CLIENTS + BUILDERS:
            assert re.search(rf"{re.escape(host)}\s+\(cache {re.escape(cache)}\)\s+http://\S+ answers and its key "
                             rf"\S+ is trusted", result.stdout), result.stdout[-4000:]
        for builder in BUILDERS:
            assert re.search(rf"{re.escape(builder)}\s+\(cache {re.escape(cache)}\)\s+a path built here reached the cache in",
                             result.stdout), result.stdout[-4000:]
        assert report["builder_checks_failed"] == 0
    # One more row per client says whether the daemon reuses its connections, and why.
    for client in CLIENTS:
        version = login(host_of(client), "nix-store --version").stdout.split()[-1]
        state = "on" if reuse_expected(version) else "off"
        assert re.search(rf"{re.escape(client)}\s+\(ssh\)\s+ssh connection reuse {state}\b.*{re.escape(version)}",
                         result.stdout), result.stdout[-4000:]


def _site(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".testbed" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_FORCE_COLOR", None)
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", INVENTORY,
                           str(PROJECT / "playbooks" / "site.yml"), *args],
                          capture_output=True, text=True, env=env, check=False, timeout=900)


def test_builders_switched_off_and_on_keep_their_configuration():
    """local_client_builders_enabled: false (NixOS/nix#1118): Nix gets no builders, the files stay."""
    kept = ("/etc/nix/machines", "/etc/ssh/ssh_known_hosts")
    before = {c: {path: host_of(c).file(path).content_string for path in kept} for c in CLIENTS}
    limit = ("--limit", ",".join(CLIENTS), "--tags", "nix_remote_files")
    run = _site(*limit, "-e", "local_client_builders_enabled=false")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for c in CLIENTS:
        h = host_of(c)
        assert {path: h.file(path).content_string for path in kept} == before[c]
        assert re.search(r"^builders = *$", h.file("/etc/nix/nix.conf").content_string, re.M)
        build = login(h, "NIX_REMOTE=daemon nix-build --no-out-link --max-jobs 0 -E " + shlex.quote(derivation("off")))
        assert build.rc != 0 and "max-jobs" in build.stderr, build.stderr
    run = _site(*limit)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for c in CLIENTS:
        h = host_of(c)
        assert f"\nbuilders = {builders_setting(c)}\n" in "\n" + h.file("/etc/nix/nix.conf").content_string
        build = login(h, "NIX_REMOTE=daemon nix-build --no-out-link --max-jobs 0 -E " + shlex.quote(derivation("on")))
        assert build.rc == 0, build.stderr
