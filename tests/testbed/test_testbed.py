"""Testbed self-test: one host of each release, reached as Ansible reaches a server, then nothing left.

Needs root, mmdebstrap and systemd-container; images are built on first use and cached.
Run: .venv/bin/pytest -m testbed tests/testbed
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import testbed

pytestmark = pytest.mark.testbed

SCRIPT = Path(testbed.__file__)
VENV_BIN = Path(sys.executable).parent
HOSTS = {"b": "bookworm", "c": "trixie", "d": "sid", "e": "trixie-upstream"}
NIX = {"bookworm": "2.8.", "trixie": "2.26.", "sid": "2.34.", "trixie-upstream": "2.26."}


def run_testbed(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def leftovers(name: str) -> tuple[list[int], list[str]]:
    """Processes and mounts of testbed NAME still on the machine."""
    runtime = testbed.runtime_dir(name)
    nspawns, inits = testbed._testbed_processes(runtime, set())
    return nspawns + inits, testbed._mounts_below(runtime)


def assert_gone(name: str) -> None:
    processes, mounts = leftovers(name)
    assert processes == [], f"testbed {name}: processes left: {processes}"
    assert mounts == [], f"testbed {name}: mounts left: {mounts}"
    assert not testbed.runtime_dir(name).exists()
    assert not testbed.state_dir(name).exists()


BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Whether this machine had binfmt_misc mounted before the self-test: `down` must leave it so.
BINFMT_MOUNTED_BEFORE = (BINFMT / "register").exists()


@pytest.fixture(scope="module")
def bed(request):
    name = f"selftest-{os.getpid()}"
    request.addfinalizer(lambda: (testbed.teardown(name), assert_gone(name)))
    specs = [testbed.parse_host_spec(f"{host}={release}") for host, release in HOSTS.items()]
    specs[1].port = 2222
    return testbed.up(name, specs, {"nix_builders": ["b", "c", "e"], "nix_clients": ["d"]}, timeout=180,
                      emulate={"e": ["aarch64-linux"]})


def ssh(bed, host_name: str, command: str) -> subprocess.CompletedProcess:
    host = next(host for host in bed.hosts if host.name == host_name)
    local = Path(bed.state_dir)
    return subprocess.run(testbed._ssh_base(local / "id_ed25519", local / "known_hosts", host) + [command],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", HOSTS)
def test_system_reaches_running(bed, name):
    state = ssh(bed, name, "systemctl is-system-running").stdout.strip()
    # sid's hugepages and fuse mounts fail in a container: harmless.
    assert state in ({"running", "degraded"} if HOSTS[name] == "sid" else {"running"})


@pytest.mark.parametrize("name", HOSTS)
def test_ssh_as_root_with_the_testbed_key_and_pinned_host_key(bed, name):
    result = ssh(bed, name, "id -un; hostname; cat /etc/machine-id")
    assert result.returncode == 0, result.stderr
    user, hostname, _machine_id = result.stdout.split()
    assert (user, hostname) == ("root", name)


def test_hosts_have_their_own_identity(bed):
    ids = {name: ssh(bed, name, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub").stdout for name in HOSTS}
    assert len(set(ids.values())) == len(HOSTS)


def test_ansible_ping_over_the_inventory(bed):
    inventory = Path(bed.state_dir) / "inventory.yml"
    result = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(inventory), "all", "-m", "ansible.builtin.ping",
                             "-o"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(line.split()[0] for line in result.stdout.splitlines() if "SUCCESS" in line) == sorted(HOSTS)
    groups = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(inventory), "nix_builders", "--list-hosts"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert sorted(groups.split()[2:]) == ["b", "c", "e"]


@pytest.mark.parametrize("name", HOSTS)
def test_nix_daemon_answers_a_store_query(bed, name):
    probe = "/nix/store/00000000000000000000000000000000-selftest"
    result = ssh(bed, name, f"bash -lc 'nix-store --store daemon --check-validity --print-invalid {probe}"
                            " && nix-store --version'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == probe
    version = result.stdout.split()[-1]
    assert version.startswith(NIX[HOSTS[name]])
    assert next(h for h in bed.hosts if h.name == name).nix_version == version


@pytest.mark.parametrize("name", HOSTS)
def test_test_host_setup_only(bed, name):
    """No binary cache to wait for; nothing of the collection's job done in advance."""
    nix_conf = ssh(bed, name, "cat /etc/nix/nix.conf").stdout
    assert "substituters =" in nix_conf.splitlines()
    assert ssh(bed, name, "test -e /etc/nix/machines || getent passwd remotebuild").returncode != 0
    assert ssh(bed, name, "test -e /root/.ssh/id_ed25519").returncode != 0


def test_upstream_layout_hides_nix_from_non_login_shells(bed):
    assert ssh(bed, "e", "nix-store --version").returncode == 127
    login = ssh(bed, "e", "bash -lc 'nix-store --version; command -v nix-daemon'")
    assert login.returncode == 0, login.stderr
    assert login.stdout.split()[-1] == "/nix/var/nix/profiles/default/bin/nix-daemon"
    unit = ssh(bed, "e", "systemctl show -p ExecStart nix-daemon.service").stdout
    assert "path=/nix/var/nix/profiles/default/bin/nix-daemon" in unit
    assert ssh(bed, "c", "nix-store --version").returncode == 0


def test_a_name_in_use_is_refused_and_the_running_testbed_untouched(bed):
    result = run_testbed("up", "--name", bed.name, "x=bookworm")
    assert result.returncode == 1
    assert f"testbed name '{bed.name}' is already in use" in result.stderr
    assert ssh(bed, "b", "true").returncode == 0


def test_not_root_is_refused():
    # A real process under a real non-root uid. The checkout may sit where that user cannot
    # read it (root's clone under /root, mode 0700), and so may the venv's Python and pytest's
    # tmp_path (/tmp/pytest-of-root is 0700): run a copy of the script and its helper module (they
    # need only the standard library) with the system Python, from a directory of its own under /tmp.
    with tempfile.TemporaryDirectory(prefix="testbed-notroot-", dir="/tmp") as top:
        runner = Path(top)
        (runner / "tests" / "testbed").mkdir(parents=True)
        copy = runner / "tests" / "testbed" / "testbed.py"
        copy.write_bytes(SCRIPT.read_bytes())
        helper = copy.parent / "binfmt_host.py"  # the module testbed.py imports
        helper.write_bytes((SCRIPT.parent / "binfmt_host.py").read_bytes())
        for path in (runner, runner / "tests", copy.parent):
            path.chmod(0o755)
        copy.chmod(0o644)
        helper.chmod(0o644)
        result = _run_as_nobody(runner, copy)
        made = (runner / ".testbed").exists()
    assert result.returncode == 1, result.stderr
    assert "must run as root" in result.stderr
    assert not made  # refused before it made anything


def _run_as_nobody(runner: Path, copy: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             testbed.PYTHON, str(copy), "up", "--name", "notroot", "b=bookworm"],
                            capture_output=True, text=True, timeout=60, check=False, cwd=runner,
                            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})
    return result


def test_a_host_not_ready_in_time_shows_its_console_and_leaves_nothing():
    name = f"timeout-{os.getpid()}"
    result = run_testbed("up", "--name", name, "--timeout", "0", "t=bookworm")
    assert result.returncode == 1
    assert "host t: not ready within the timeout" in result.stderr
    assert "Spawning container" in result.stderr  # the console tail
    assert_gone(name)


def test_interrupting_up_leaves_nothing():
    name = f"interrupt-{os.getpid()}"
    process = subprocess.Popen([sys.executable, str(SCRIPT), "up", "--name", name, "i=trixie", "j=sid"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupt once a container runs: the worst moment (processes and mounts exist).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not leftovers(name)[0]:
        time.sleep(0.05)
    assert leftovers(name)[0], "no container started"
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert_gone(name)


def test_emulation_is_registered_on_the_machine_and_shown_only_to_its_host(bed):
    entry = BINFMT / f"testbed-{bed.name}-aarch64"
    text = entry.read_text()
    assert text.startswith("enabled\n") and "\nflags: F\n" in text, text
    assert "magic 7f454c460201010000000000000000000200b700" in text
    inside = ssh(bed, "e", f"cat /proc/sys/fs/binfmt_misc/{entry.name} && ! touch /proc/sys/fs/binfmt_misc/status")
    assert inside.returncode == 0 and inside.stdout == text, inside.stderr
    assert ssh(bed, "b", f"test -e /proc/sys/fs/binfmt_misc/{entry.name}").returncode != 0


def test_down_leaves_no_process_and_no_mount(bed):
    result = run_testbed("down", "--name", bed.name)
    assert result.returncode == 0, result.stderr
    assert_gone(bed.name)
    assert not (BINFMT / f"testbed-{bed.name}-aarch64").exists()
    others = [p.name for p in BINFMT.glob("*") if p.name not in ("register", "status")]
    if not others:  # a registration of someone else keeps binfmt_misc mounted
        assert (BINFMT / "register").exists() == BINFMT_MOUNTED_BEFORE
    assert "selftest" not in run_testbed("status").stdout
