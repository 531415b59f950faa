"""Faults injected on real testbed hosts (issue 7 items 1, 2 and 4).

Runs in file order after converge: each test leaves the hosts working for the next one.
Hosts: builder-a and builder-b (nix_builders), client (nix_clients), all trixie (Nix 2.26).
A builder is taken down by stopping its sshd and ending its SSH sessions from outside the
container (nsenter into its namespaces), so Ansible and nix-daemon both lose it, then brought
back the same way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fleet import INVENTORY, PROJECT, host_of, machines_entries

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "faults")
BIN = Path(sys.executable).parent
DROPIN = "/etc/systemd/system/nix-daemon.service.d/60-nix-remote-builders.conf"
BB = "/var/tmp/nix-remote-builders-faults-bb"


CLIENT = host_of("client")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def site(*args: str, playbook: str = "site.yml", wait: bool = True):
    """Runs a playbook as an operator would, with the plain default callback and no colors.

    Molecule exports ANSIBLE_FORCE_COLOR=1, which wins over ANSIBLE_NOCOLOR and wraps the
    recap's host names in escape codes, so it is dropped here (and any code left is stripped).
    """
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".testbed" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="1")
    for var in ("ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_FORCE_COLOR", "PY_COLORS"):
        env.pop(var, None)
    argv = [str(BIN / "ansible-playbook"), "-i", INVENTORY, str(PROJECT / "playbooks" / playbook), *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if not wait:
        return proc
    out, _err = proc.communicate(timeout=900)
    return proc.returncode, ANSI.sub("", out)


def per_host(var: str, host: str, value, other) -> str:
    """An extra var that only `host` gets (extra vars are templated per host)."""
    return "@" + _write_vars({var: f"{{{{ {json.dumps(value)} if inventory_hostname == '{host}' else {json.dumps(other)} }}}}"})


def _write_vars(data: dict) -> str:
    path = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / f"faults-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(data))
    return str(path)


def flat(out: str) -> str:
    """The output with each run of white space made one space: the result format may fold long messages."""
    return " ".join(out.split())


def recap(out: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP rows by host; fails loudly if there is no recap at all."""
    rows = {}
    for name, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", out, re.M):
        rows[name] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    assert rows, "no PLAY RECAP in the output: " + out[-3000:]
    return rows


def container_pid(name: str) -> int:
    """The container's init, to enter its namespaces from outside."""
    beds = json.loads(subprocess.check_output([sys.executable, str(PROJECT / "tests/testbed/testbed.py"), "status", "--json"]))
    bed = next(b for b in beds if b["name"] == f"molecule-{SCENARIO}")
    nspawn = next(h["pid"] for h in bed["hosts"] if h["name"] == name)
    return int(subprocess.check_output(["pgrep", "-P", str(nspawn)]).split()[0])


def inside(name: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", "-t", str(container_pid(name)), "-a", "sh", "-c", command],
                          capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture(scope="module", autouse=True)
def root_user_managers_stay_up():
    """Keeps root's systemd user manager running on every host (testbed, not role, setting).

    In these containers, stopping user@0.service (which logind does 10 s after root's last
    session ends, e.g. when Ansible's ControlPersist runs out during a long wait) hangs in
    final-sigkill for minutes, and every new root login waits for it. Lingering keeps it up.
    """
    for name in ("builder-a", "builder-b", "client"):
        assert inside(name, "loginctl enable-linger root").returncode == 0


def take_down(name: str) -> None:
    # Ends the SSH sessions by killing them, not with `loginctl terminate-user`, which would
    # also stop root's user manager (see root_user_managers_stay_up).
    inside(name, "systemctl stop ssh.socket ssh.service 2>/dev/null; "
                 "pkill -KILL -x sshd-session; pkill -KILL -f '^sshd-session'; pkill -KILL -u remotebuild; true")
    # Ansible's multiplexed connection to it must go too.
    subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={Path.home()}/.ansible/cp/%C", name], capture_output=True, check=False)


def bring_back(name: str) -> None:
    inside(name, "systemctl start ssh.service")
    deadline = time.monotonic() + 30
    while host_of(name).run("true").rc != 0 and time.monotonic() < deadline:
        time.sleep(1)


def machines_line(builder: str) -> str:
    address = host_of(builder).ansible.get_variables()["ansible_host"]
    lines = [ln for ln in CLIENT.file("/etc/nix/machines").content_string.splitlines() if f"@{address} " in ln]
    assert len(lines) == 1, lines
    return lines[0]


def nix_build(expression: str, builders: str | None = None, background: bool = False):
    opts = "--max-jobs 0" + (f" --builders {shlex.quote(builders)}" if builders is not None else "")
    cmd = f"NIX_REMOTE=daemon nix-build --no-out-link {opts} -E {shlex.quote(expression)}"
    if background:
        # The previous background build's files go first, or its bg.rc would end the next wait.
        CLIENT.run("rm -f /tmp/bg.out /tmp/bg.err /tmp/bg.rc")
        return CLIENT.run("bash -lc %s", f"nohup sh -c {shlex.quote(cmd + ' > /tmp/bg.out 2> /tmp/bg.err; echo $? > /tmp/bg.rc')} >/dev/null 2>&1 &")
    return CLIENT.run("bash -lc %s", cmd)


def trivial(tag: str) -> str:
    n = f"nix-remote-builders-faults-{tag}-{uuid.uuid4().hex[:10]}"
    return (f'derivation {{ name = "{n}"; system = builtins.currentSystem; builder = "/bin/sh"; '
            f'args = [ "-c" "echo {n} > $out" ]; }}')


def sleeper(tag: str, seconds: int) -> str:
    """Sleeps on the builder (busybox's sleep, brought in as a source path), then writes $out."""
    CLIENT.run(f"mkdir -p {BB} && cp /bin/busybox {BB}/busybox && ln -sf busybox {BB}/sleep")
    n = f"nix-remote-builders-faults-{tag}-{uuid.uuid4().hex[:10]}"
    return (f'derivation {{ name = "{n}"; system = builtins.currentSystem; builder = "/bin/sh"; '
            f'bb = builtins.path {{ path = {BB}; name = "bb"; }}; '
            f'args = [ "-c" "$bb/sleep {seconds}; echo {n} > $out" ]; }}')


def built_on(path: str) -> list[str]:
    """The builders whose store holds `path`; asked from inside, so a builder that is down counts."""
    found = []
    for b in ("builder-a", "builder-b"):
        check = inside(b, f"bash -lc 'nix-store --check-validity {path}'")
        assert check.returncode == 0 or "is not valid" in check.stderr, check.stderr
        if check.returncode == 0:
            found.append(b)
    return found


# Prints every store lock file that some process still holds (empty when none is held).
HELD_LOCKS = "for f in /nix/store/*.lock; do [ -e \"$f\" ] || continue; flock -n -x \"$f\" true || echo \"$f\"; done"


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


# ------------------------------------------------------------------------------------ rollback


def test_invalid_nix_conf_value_is_refused_before_install():
    builder = host_of("builder-a")
    before = builder.file("/etc/nix/nix.conf").content_string
    rc, out = site("-e", per_host("remote_builder_nix_settings", "builder-a", {"max-jobs": "banana"}, {}))
    assert rc != 0
    assert re.search(r"builder-a.*FAILED", out) and "max-jobs" in out, out[-3000:]
    assert builder.file("/etc/nix/nix.conf").content_string == before, "nix.conf changed"
    assert recap(out)["client"]["failed"] == 0


def test_drop_in_that_stops_the_daemon_is_rolled_back():
    builder = host_of("builder-a")
    before = builder.file(DROPIN).content_string
    rc, out = site("-e", per_host("remote_builder_systemd_service_extra", "builder-a", ["ExecStartPre=/bin/false"], []))
    assert rc != 0
    assert "Rolled back " + DROPIN in out and "answers again on the previous configuration" in out, out[-4000:]
    assert "ExecStartPre" not in builder.file(DROPIN).content_string
    assert builder.file(DROPIN).content_string == before
    assert builder.service("nix-daemon").is_running
    backups = builder.run("ls %s.*~", DROPIN).stdout.split()
    assert 1 <= len(backups) <= 3, backups
    build = nix_build(trivial("after-rollback"), machines_line("builder-a"))
    assert build.rc == 0, build.stderr
    assert built_on(build.stdout.strip().splitlines()[-1]) == ["builder-a"]


# ------------------------------------------------------------------------------ concurrency


def test_two_site_runs_at_once_then_nothing_left_to_change():
    # A change for both runs to make, so they really edit the same files at the same time.
    extra = ("-e", "local_client_build_poll_interval=2", "-e", "remote_builder_oom_score_adjust=400")
    first, second = site(*extra, wait=False), site(*extra, wait=False)
    outs = [ANSI.sub("", p.communicate(timeout=900)[0]) for p in (first, second)]
    assert first.returncode == 0, outs[0][-3000:]
    assert second.returncode == 0, outs[1][-3000:]
    conf = CLIENT.file("/etc/nix/nix.conf").content_string
    assert conf.count("\nbuild-poll-interval = 2\n") == 1 and conf.count("builders = @/etc/nix/machines") == 1
    assert len(machines_entries(CLIENT)) == 2
    for b in ("builder-a", "builder-b"):
        h = host_of(b)
        assert "OOMScoreAdjust=400" in h.file(DROPIN).content_string
        assert h.run("bash -lc 'nix --extra-experimental-features nix-command config show >/dev/null'").rc == 0
        assert h.file("/etc/nix/nix.conf").content_string.count("\nmax-jobs = ") == 1
    rc, out = site(*extra)
    assert rc == 0
    assert all(row["changed"] == 0 for row in recap(out).values()), out[-3000:]


# ---------------------------------------------------------------------------- builder down


def test_builder_down_during_site_run_is_named_and_the_rest_configured():
    machines_before = CLIENT.file("/etc/nix/machines").content_string
    take_down("builder-b")
    try:
        rc, out = site()
        assert rc != 0
        rows = recap(out)
        assert rows["builder-b"]["unreachable"] >= 1
        assert rows["builder-a"]["failed"] == 0 and rows["client"]["failed"] == 0
        assert re.search(r"no remote_builder_export from builder-b \(unreachable.*run site\.yml again", flat(out)), out[-3000:]
        assert CLIENT.file("/etc/nix/machines").content_string == machines_before
        # The same run with the variable that makes it fatal.
        rc, out = site("-e", "local_client_unreachable_builders=fail")
        assert rc != 0 and recap(out)["client"]["failed"] == 1
        assert re.search(r"builders builder-b were not configured.*local_client_unreachable_builders", flat(out)), out[-3000:]
    finally:
        bring_back("builder-b")


# ----------------------------------------------------------------------- builder killed


def test_builder_killed_during_a_build_fails_cleanly_and_the_next_build_goes_elsewhere():
    both = machines_line("builder-a") + "\n" + machines_line("builder-b")
    nix_build(sleeper("killed", 60), machines_line("builder-a"), background=True)
    # The build is running once the builder has a nixbld process sleeping for it.
    wait_for(lambda: "sleep 60" in host_of("builder-a").run("ps -eo args").stdout, 60, "the build on builder-a")
    take_down("builder-a")
    inside("builder-a", "pkill -KILL -u remotebuild; true")
    wait_for(lambda: CLIENT.run("cat /tmp/bg.rc").rc == 0, 120, "the client's build to end")
    try:
        assert CLIENT.file("/tmp/bg.rc").content_string.strip() != "0"
        err = CLIENT.file("/tmp/bg.err").content_string
        assert re.search(r"error: .*(unexpected end-of-file|failed|disconnected|Cannot build)", err), err[-2000:]
        # Nothing half-written or locked on the client. Nix keeps the .lock file of an output
        # whose build did not succeed (it only deletes them after a success), so their presence
        # proves nothing; what would block the user's next build is a lock still *held*. Nix
        # takes them with flock(2), so a non-blocking flock on each must succeed once the build
        # has ended (a few seconds' grace for the daemon's worker to exit).
        wait_for(lambda: CLIENT.run(HELD_LOCKS).stdout.strip() == "", 30, "the client's store locks to be released")
        assert len(machines_entries(CLIENT)) == 2
        assert CLIENT.run("bash -lc 'nix-store --verify'").rc == 0
        # The next build, with both builders offered, goes to the one that is left.
        build = nix_build(trivial("next"), both)
        assert build.rc == 0, build.stderr
        assert built_on(build.stdout.strip().splitlines()[-1]) == ["builder-b"]
    finally:
        bring_back("builder-a")


# --------------------------------------------------------- client daemon restarted mid-build


def test_client_daemon_restarted_by_the_role_during_a_remote_build():
    nix_build(sleeper("restart", 20), machines_line("builder-b"), background=True)
    wait_for(lambda: "sleep 20" in host_of("builder-b").run("ps -eo args").stdout, 60, "the build on builder-b")
    pid_before = CLIENT.run("systemctl show -p MainPID --value nix-daemon").stdout.strip()
    rc, out = site("--limit", "client", "-e", "local_client_build_poll_interval=3")
    assert rc == 0, out[-3000:]
    assert "Restart nix-daemon on the client" in out
    assert CLIENT.run("systemctl show -p MainPID --value nix-daemon").stdout.strip() != pid_before
    wait_for(lambda: CLIENT.run("cat /tmp/bg.rc").rc == 0, 120, "the remote build to end")
    assert CLIENT.file("/tmp/bg.rc").content_string.strip() == "0", CLIENT.file("/tmp/bg.err").content_string[-2000:]
    out_path = CLIENT.file("/tmp/bg.out").content_string.strip().splitlines()[-1]
    assert CLIENT.run("bash -lc %s", f"nix-store --check-validity {out_path}").rc == 0


# --------------------------------------------------------------------- host key replaced


def test_replaced_host_key_is_refused_and_verify_says_host_key_mismatch():
    # The real keys are kept aside and put back afterwards, so the scenario can be verified again.
    inside("builder-b", "mkdir -p /root/faults-hostkeys && cp -a /etc/ssh/ssh_host_* /root/faults-hostkeys/ && "
                        "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh.service")
    try:
        # A master opened before the key changed is a connection to the real builder, verified when
        # it was made; it is used until it has been idle for ControlPersist.  What an attacker who
        # takes over the address gets is new connections, so the test starts with none open.
        CLIENT.run("pkill -f 'nix-remote-builders/cm-.*\\[mux\\]'; true")
        line = machines_line("builder-b")
        uri, key = line.split()[0], line.split()[2]
        build = nix_build(trivial("mitm"), line)
        assert build.rc != 0
        # Nix 2.26 drops ssh's own stderr from the build hook: all the user is told is that the
        # builder could not be used, so the build must name it and nothing may have run there.
        assert f"cannot build on '{uri}'" in build.stderr, build.stderr[-2000:]
        assert not re.search(r"^building .* on ", build.stderr, re.M), build.stderr[-2000:]
        # What the user runs next to find out why: root's ssh with the daemon's key and the pinned
        # known_hosts the role wrote refuses the new key.
        # (ssh's 255 is folded into stdout: testinfra takes a 255 for its own connection failing.)
        ssh = CLIENT.run("ssh -o BatchMode=yes -i %s %s true 2>&1; echo exit=$?", key, uri.removeprefix("ssh-ng://")).stdout
        assert "exit=255" in ssh and "Host key verification failed" in ssh, ssh
        rc, out = site(playbook="verify.yml")
        assert rc != 0
        assert re.search(r"client\s+builder-b\s+host key mismatch", out), out[-3000:]
        assert re.search(r"client\s+builder-a\s+OK: ", out), out[-3000:]
    finally:
        inside("builder-b", "cp -a /root/faults-hostkeys/ssh_host_* /etc/ssh/ && rm -rf /root/faults-hostkeys && "
                            "systemctl restart ssh.service")
