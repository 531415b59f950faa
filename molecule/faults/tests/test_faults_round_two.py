"""Faults, round two (issue 13 item 5), on the real testbed hosts of the faults scenario.

Runs after test_faults.py (file order) and leaves the hosts as it found them:
- the client's /etc/nix on a full file system while nix.conf is written: the old file stays;
- the module killed with SIGKILL while it runs, 100 times, half at a random moment of its run and
  half the instant its temporary file appears (kills that find it done are not counted): the file is always the old or the new
  content, the host lock is free after every kill, and the next run removes what a kill left;
- two controllers (separate ANSIBLE_HOME: their own SSH connections, temporary files and caches)
  running site.yml on the fleet at once, each followed by an operator's own nix.conf edits: no
  edit is lost, and a third run changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
from fleet import INVENTORY, PROJECT, host_of, machines_entries
from test_faults import ANSI, BIN, CLIENT, DROPIN, container_pid, flat, recap, site

TEMP_MARK = ".nix-remote-builders-tmp-"  # plugins/module_utils/file_edit.py TEMP_MARK


def inside_long(name: str, argv: list[str], stdin: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """A command in the container's namespaces with a clean environment (not the controller's)."""
    env = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
    return subprocess.run(["nsenter", "-t", str(container_pid(name)), "-a", *env, *argv], input=stdin,
                          capture_output=True, text=True, check=False, timeout=timeout)


def sh(name: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return inside_long(name, ["sh", "-c", command], timeout=timeout)


def leftovers(name: str, directory: str = "/etc/nix") -> list[str]:
    return sorted(e for e in sh(name, f"ls -A {directory}").stdout.split() if TEMP_MARK in e)


# ------------------------------------------------------------------------------- disk full


@pytest.fixture()
def full_etc_nix():
    """The client's /etc/nix as a 1 MiB tmpfs holding a copy of it, filled to the last page."""
    setup = ("set -e; copy=$(mktemp -d /run/faults-etc-nix.XXXXXX); cp -a /etc/nix/. $copy/; "
             "mount -t tmpfs -o size=1m,mode=0755 faults-disk-full /etc/nix; cp -a $copy/. /etc/nix/; rm -rf $copy; "
             "dd if=/dev/zero of=/etc/nix/.faults-filler bs=4096 2>/dev/null || true; "
             "dd if=/dev/zero of=/etc/nix/.faults-filler2 bs=1 2>/dev/null || true")
    done = sh("client", setup)
    try:
        assert done.returncode == 0, done.stderr
        assert sh("client", "stat -f -c %a /etc/nix").stdout.strip() == "0", "the tmpfs still has free blocks"
        yield
    finally:
        # The file system under the tmpfs still holds the configuration from before; the daemon
        # is restarted on it so that it does not keep what it read from the tmpfs.
        undone = sh("client", "umount /etc/nix && systemctl restart nix-daemon")
    assert undone.returncode == 0, undone.stderr


def test_disk_full_while_nix_conf_is_written_keeps_the_old_file(full_etc_nix):
    before = sh("client", "sha256sum /etc/nix/nix.conf").stdout
    # 7: a value no earlier test of the scenario left (test_faults.py sets 2 and 3).
    change = ("--limit", "client", "-e", "local_client_build_poll_interval=7")
    files = sh("client", "ls -A /etc/nix").stdout
    rc, out = site(*change)
    assert rc != 0, out[-3000:]
    text = flat(out)
    # The backup (made first) or the write itself, whichever meets the full disk.
    assert re.search(r"/etc/nix/nix\.conf: cannot (back up before writing|write)", text), out[-3000:]
    assert "No space left on device" in text and "the file was left as it was" in text, out[-3000:]
    assert sh("client", "sha256sum /etc/nix/nix.conf").stdout == before
    # No temporary file, no truncated backup (ansible-core's backup_local left one).
    assert sh("client", "ls -A /etc/nix").stdout == files
    assert sh("client", "systemctl is-active nix-daemon").stdout.strip() == "active"
    # Space again: the same run goes through (no lock or temporary file left in the way).
    assert sh("client", "rm /etc/nix/.faults-filler /etc/nix/.faults-filler2").returncode == 0
    rc, out = site(*change)
    assert rc == 0, out[-3000:]
    assert "\nbuild-poll-interval = 7\n" in CLIENT.file("/etc/nix/nix.conf").content_string
    assert leftovers("client") == []


# --------------------------------------------------------------------------- SIGKILL x 100

KILLS = 100
FAULTS_FILE = "/etc/nix/machines.faults"  # read by no Nix: the writes themselves are the test
DRIVER = textwrap.dedent(r'''
    import fcntl, hashlib, json, os, random, signal, subprocess, sys, time
    target, kills, lock = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    payloads = sys.argv[4:6]
    directory, prefix = os.path.dirname(target), "." + os.path.basename(target) + sys.argv[6]
    env = dict(os.environ, TMPDIR=sys.argv[7])

    def digest():
        with open(target, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def run(payload):
        return subprocess.Popen([sys.executable, payload], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def temporaries():
        return [e for e in os.listdir(directory) if e.startswith(prefix)]

    # Each payload writes its own content (exclusive): one clean run of each gives the two
    # contents and how long a run takes.
    sums, took = [], []
    for payload in payloads:
        start = time.monotonic()
        assert run(payload).wait() == 0, payload
        took.append(time.monotonic() - start)
        sums.append(digest())
    # Kills are aimed within the shorter run; one that finds the module already done is not counted.
    window = 0.8 * min(took)
    rows = []
    random.seed(13)
    for i in range(3 * kills):
        if sum(row["killed"] for row in rows) >= kills:
            break
        old = digest()
        new_index = 0 if old == sums[1] else 1
        child = run(payloads[new_index])
        how = "timer" if i % 2 else "temporary file"
        if how == "timer":
            time.sleep(random.uniform(0.0, window))
        else:
            while child.poll() is None and not temporaries():
                pass
        alive = child.poll() is None
        child.send_signal(signal.SIGKILL)
        rc = child.wait()
        after = digest()
        state = {old: "old", sums[new_index]: "new"}.get(after, "partial")
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock_free = True
            except BlockingIOError:
                lock_free = False
        rows.append({"how": how, "killed": alive and rc == -signal.SIGKILL, "state": state,
                     "lock_free": lock_free, "temporaries": len(temporaries())})
    # The next run, not killed: succeeds and leaves no temporary file.
    final = run(payloads[0]).wait()
    print(json.dumps({"rows": rows, "window": window, "final_rc": final, "final_state": digest() == sums[0],
                      "temporaries_after": temporaries()}))
''')


def _payload(tag: str, entries: int) -> str:
    """A kept AnsiballZ payload of nix_machines writing `entries` entries to FAULTS_FILE: the
    module exactly as Ansible runs it on the host, rerun there without the controller."""
    remote_tmp = f"/var/tmp/faults-ansiballz-{tag}"
    builders = [{"uri": f"ssh-ng://faults-{tag}-{i:05d}.invalid", "systems": ["x86_64-linux"], "max_jobs": 1,
                 "comment": "a longer file gives the kills a longer write to land in"} for i in range(entries)]
    play = [{"hosts": "client", "gather_facts": False, "tasks": [{
        "name": "Write the faults file", "nix_remote.builders.nix_machines": {
            "path": FAULTS_FILE, "exclusive": True, "builders": builders}}]}]
    playbook = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / f"faults-payload-{tag}.yml"
    playbook.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".testbed" / "collections"), ANSIBLE_PIPELINING="False",
               ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=remote_tmp, ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_FORCE_COLOR", None)
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", INVENTORY, str(playbook)], capture_output=True, text=True,
                          env=env, check=False, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    found = sh("client", f"ls {remote_tmp}/ansible-tmp-*/AnsiballZ_nix_machines.py").stdout.split()
    assert len(found) == 1, found
    return found[0]


def test_module_killed_mid_write_100_times_leaves_old_or_new_never_partial():
    payloads = [_payload("a", 400), _payload("b", 300)]
    scratch = "/var/tmp/faults-kill-tmp"
    assert sh("client", f"rm -rf {scratch} && mkdir -p {scratch}").returncode == 0
    try:
        done = inside_long("client", ["python3", "-c", DRIVER, FAULTS_FILE, str(KILLS), "/run/nix-remote-builders.lock",
                                      *payloads, TEMP_MARK, scratch])
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
    finally:
        sh("client", f"rm -rf {scratch} /var/tmp/faults-ansiballz-a /var/tmp/faults-ansiballz-b")
    rows = report["rows"]
    states = {state: sum(r["state"] == state for r in rows) for state in ("old", "new", "partial")}
    print(f"SIGKILL x {len(rows)}: {states}, killed while running {sum(r['killed'] for r in rows)}, "
          f"temporary files left by a kill {sum(r['temporaries'] > 0 for r in rows)}, kill window {report['window']:.2f} s")
    assert states["partial"] == 0, [r for r in rows if r["state"] == "partial"]
    # 100 kills landed inside the module's run, a good part inside the write itself (a temporary
    # file was left that no cleanup code of the killed process removed).
    assert sum(r["killed"] for r in rows) == KILLS, rows
    assert sum(r["temporaries"] > 0 for r in rows) >= KILLS // 4, rows
    assert all(r["lock_free"] for r in rows), "a killed module left the host lock held"
    assert report["final_rc"] == 0 and report["final_state"], report
    assert report["temporaries_after"] == [], report
    assert sh("client", f"rm -f {FAULTS_FILE}").returncode == 0


# ------------------------------------------------------------------------- two controllers

# An operator's own settings, one nix_conf task each, valid for Nix 2.26 and harmless: each task is
# a read-modify-write of the nix.conf that the other controller's site.yml edits at the same time.
OWN_SETTINGS = {
    "a": {"log-lines": 31, "tarball-ttl": 3601, "download-attempts": 6, "http-connections": 24, "keep-build-log": True,
          "narinfo-cache-negative-ttl": 3599},
    "b": {"stalled-download-timeout": 301, "warn-dirty": True, "show-trace": False, "fallback": False,
          "narinfo-cache-positive-ttl": 2592001, "connect-timeout": 6},
}


def _controller(tag: str, home: Path):
    own = [{"name": f"Operator {tag} sets {name}", "nix_remote.builders.nix_conf": {"settings": {name: value}}}
           for name, value in OWN_SETTINGS[tag].items()]
    playbook = home / "controller.yml"
    playbook.write_text(json.dumps([
        {"ansible.builtin.import_playbook": "nix_remote.builders.site"},
        {"hosts": "client", "gather_facts": False, "become": True, "tasks": own},
    ]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".testbed" / "collections"), ANSIBLE_HOME=str(home),
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(home / "cp"), ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="1")
    for var in ("ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_FORCE_COLOR", "PY_COLORS"):
        env.pop(var, None)
    argv = [str(BIN / "ansible-playbook"), "-i", INVENTORY, str(playbook),
            "-e", "local_client_build_poll_interval=2", "-e", "remote_builder_oom_score_adjust=350"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_two_controllers_at_once_lose_no_edit(tmp_path):
    # Short paths: OpenSSH's control sockets must fit in a sun_path (108 bytes).
    homes = {tag: Path(tempfile.mkdtemp(prefix=f"nrb-{tag}-", dir="/tmp")) for tag in OWN_SETTINGS}
    try:
        _two_controllers(tmp_path, homes)
    finally:
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)


def _two_controllers(tmp_path, homes):
    runs = {tag: _controller(tag, home) for tag, home in homes.items()}
    outs = {tag: ANSI.sub("", run.communicate(timeout=900)[0]) for tag, run in runs.items()}
    for tag, run in runs.items():
        assert run.returncode == 0, outs[tag][-3000:]
        assert (homes[tag] / "cp").is_dir(), "the controller did not use its own connections"
    conf = CLIENT.file("/etc/nix/nix.conf").content_string
    lines = conf.splitlines()
    for settings in OWN_SETTINGS.values():
        for name, value in settings.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            assert lines.count(f"{name} = {text}") == 1, f"{name} lost or doubled:\n{conf}"
    assert lines.count("build-poll-interval = 2") == 1 and lines.count("builders = @/etc/nix/machines") == 1, conf
    assert len(machines_entries(CLIENT)) == 2
    for b in ("builder-a", "builder-b"):
        assert "OOMScoreAdjust=350" in host_of(b).file(DROPIN).content_string
    assert CLIENT.run("bash -lc 'nix --extra-experimental-features nix-command config show >/dev/null'").rc == 0
    rc, out = site("-e", "local_client_build_poll_interval=2", "-e", "remote_builder_oom_score_adjust=350")
    assert rc == 0 and all(row["changed"] == 0 for row in recap(out).values()), out[-3000:]
    # Back to the scenario's configuration for whatever runs next.
    absent = sorted(name for settings in OWN_SETTINGS.values() for name in settings)
    cleanup = tmp_path / "cleanup.yml"
    cleanup.write_text(json.dumps([{"hosts": "client", "gather_facts": False, "tasks": [
        {"name": "Remove the operators' settings", "nix_remote.builders.nix_conf": {"absent": absent}}]}]))
    rc, out = site(playbook=str(cleanup))
    assert rc == 0, out[-3000:]
    names = {line.split("=")[0].strip() for line in CLIENT.file("/etc/nix/nix.conf").content_string.splitlines()}
    assert not names & set(absent)
