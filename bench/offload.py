# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Offloading throughput: the nix.dev tutorial's configuration against the collection's site.yml.

For each release, one client and two builders of that release are started on the testbed
(tests/testbed/testbed.py, needs root).  The same hosts are configured twice:

  (a) tutorial:   what the nix.dev "Setting up distributed builds" tutorial has a non-NixOS user do
                  (build user `remotebuild` with root's new key, `trusted-users`, one manual ssh
                  that fills root's known_hosts, and its two nix.conf lines: the builders line
                  with `- -` (1 job, speed factor 1) and `builders-use-substitutes = true`);
  (b) collection: `ansible-playbook -i inventory playbooks/site.yml`, run over (a).  site.yml
                  rewrites the client's `builders` setting to `@/etc/nix/machines`; the script
                  checks that exactly one `builders` line is left and records it.

Workloads, each one expression of independent derivations built at once on the client as root
through the daemon (`nix-build --max-jobs 0 --no-out-link`), unique per run through a nonce:
  trivial20    20 derivations that only write their output (ideal: 0 s);
  sleep16x1s   16 derivations that sleep 1 s (busybox `sleep`, see the testbed recipe);
  copy4x50MB   4 derivations, each with its own fresh 50 MiB random file (builtins.path) that
               must be copied to the builder (ideal: the time one ssh stream takes to carry
               50 MiB from the client to a builder, measured on the same hosts, per round).
The ideal is ceil(jobs / slots) x duration, slots being the sum of the builders' max-jobs as
configured (tutorial: 1 + 1; collection: what the builders export).  Per-derivation overhead is
(wall - ideal) / jobs.  Each workload runs --runs times (default 3), the median is reported.

    .venv/bin/python bench/offload.py                        # bookworm, trixie, sid
    .venv/bin/python bench/offload.py --releases trixie,sid
    .venv/bin/python bench/offload.py --smoke                # bookworm, 1 run, tiny workloads,
                                                             # writes .build/bench-smoke/ only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TESTBED = os.path.join(REPO, "tests", "testbed", "testbed.py")
RESULTS = os.path.join(HERE, "results")
SMOKE_RESULTS = os.path.join(REPO, ".build", "bench-smoke")
LOGS = os.path.join(REPO, ".build", "bench-logs")  # playbook output, for when a figure looks odd
RELEASES = ("bookworm", "trixie", "sid")

# Where the bench keeps its files on the client (busybox copy, expressions, input files).
CLIENT_DIR = "/root/bench"
TUTORIAL_USER = "remotebuild"
TUTORIAL_KEY = "/root/.ssh/remotebuild"
# The tutorial's third column is `$(nix-instantiate --eval -E builtins.currentSystem)`, which
# prints the string with its quotes; a reader writes the bare system name, as here.
TUTORIAL_SYSTEM = "x86_64-linux"
TUTORIAL_FEATURES = "nixos-test,big-parallel,kvm"

MIB = 1024 * 1024


class Workload:
    """A set of independent derivations that each take `duration` seconds (or a copy)."""

    def __init__(self, name, jobs, kind, sleep_s=0, copy_bytes=0):
        self.name, self.jobs, self.kind = name, jobs, kind
        self.sleep_s, self.copy_bytes = sleep_s, copy_bytes


FULL_WORKLOADS = (
    Workload("trivial20", 20, "trivial"),
    Workload("sleep16x1s", 16, "sleep", sleep_s=1),
    Workload("copy4x50MB", 4, "copy", copy_bytes=50 * MIB),
    # Like sleep16x1s, but each build logs a line every 10 ms: with build-poll-interval = 0 every
    # event wakes the builds waiting for a slot, so this is where a busy loop would show (CPU).
    Workload("chatty16x1s", 16, "chatty", sleep_s=1),
)
SMOKE_WORKLOADS = (
    Workload("trivial2", 2, "trivial"),
    Workload("sleep2x1s", 2, "sleep", sleep_s=1),
    Workload("copy1x1MB", 1, "copy", copy_bytes=1 * MIB),
)


# --------------------------------------------------------------------------- interrupts

class Interrupted(Exception):
    """SIGINT/SIGTERM: unwind through every `finally` so the testbed is torn down."""


def _raise_interrupted(signum, _frame):
    raise Interrupted(f"signal {signum}")


def install_signal_handlers():
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)


# --------------------------------------------------------------------------- testbed

def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tool(name):
    """A tool of the virtual environment this runs in (ansible-playbook), else from PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else name


# The collection is copied once per benchmark run, so every host and release is measured with
# the same roles even while the working tree is being edited.
SNAPSHOT = {"root": None}
SNAPSHOT_PARTS = ("galaxy.yml", "meta", "plugins", "roles", "playbooks")


def snapshot_collection():
    """Copy the checkout's collection to .build/bench-snapshot-PID/; return a description."""
    root = os.path.join(REPO, ".build", f"bench-snapshot-{os.getpid()}")
    target = os.path.join(root, "ansible_collections", "nix_remote", "builders")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(target)
    for part in SNAPSHOT_PARTS:
        source = os.path.join(REPO, part)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(target, part), ignore=shutil.ignore_patterns("__pycache__"))
        elif os.path.exists(source):
            shutil.copy2(source, target)
    SNAPSHOT["root"] = root
    git = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False).stdout.strip()
    return git or "unknown"


def drop_snapshot():
    if SNAPSHOT["root"]:
        shutil.rmtree(SNAPSHOT["root"], ignore_errors=True)
        SNAPSHOT["root"] = None


def collection_dir():
    if SNAPSHOT["root"] is None:
        raise RuntimeError("snapshot_collection() first")
    return os.path.join(SNAPSHOT["root"], "ansible_collections", "nix_remote", "builders")


def ansible_env():
    """nix_remote.builders from the snapshot; the checkout's ansible.cfg otherwise."""
    env = dict(os.environ)
    if SNAPSHOT["root"]:
        env["ANSIBLE_COLLECTIONS_PATH"] = SNAPSHOT["root"]
    env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    return env


class Testbed:
    """Hosts from testbed.py; `with` always brings them down again."""

    def __init__(self, name, hosts, groups, emulate=None):
        self.name, self.hosts, self.groups = name, hosts, groups
        self.emulate = emulate or {}
        self.inventory = os.path.join(REPO, ".testbed", name, "inventory.yml")
        self.vars = {}
        self._started = False

    def __enter__(self):
        command = [sys.executable, TESTBED, "up", "--name", self.name]
        command += [f"{host}={release}" for host, release in self.hosts.items()]
        for group, members in self.groups.items():
            command += ["--group", f"{group}={','.join(members)}"]
        for host, systems in self.emulate.items():
            command += ["--emulate", f"{host}={','.join(systems)}"]
        log(f"testbed up {self.name}: {' '.join(command[4:])}")
        self._started = True  # `up` cleans up after itself, `down` is harmless if it did
        subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        self.vars = read_inventory(self.inventory)
        # Test-host workaround: in these containers (sid, trixie) a login that arrives while logind
        # stops the user's systemd manager hangs for minutes; lingering keeps root's manager up.
        for host in self.hosts:
            self.sh(host, "loginctl enable-linger root")
        return self

    def __exit__(self, *_exc):
        if not self._started:
            return
        # Ignore a second signal while tearing down: leaving containers behind is worse.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            log(f"testbed down {self.name}")
            subprocess.run([sys.executable, TESTBED, "down", "--name", self.name], cwd=REPO,
                           stdout=subprocess.DEVNULL, check=False)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def ssh_argv(self, host, command):
        hv = self.vars[host]
        return ["ssh", "-q", "-i", hv["ansible_ssh_private_key_file"], "-p", str(hv["ansible_port"]),
                *shlex.split(hv["ansible_ssh_common_args"]), "-o", "BatchMode=yes",
                f"root@{hv['ansible_host']}", command]

    def sh(self, host, command, check=True, input_bytes=None):
        """Run a shell command on a host as root; return its stdout as text."""
        result = subprocess.run(self.ssh_argv(host, command), input=input_bytes,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{host}: `{command}` failed ({result.returncode}):\n"
                               f"{result.stderr.decode(errors='replace')[-3000:]}")
        return result.stdout.decode(errors="replace")

    def address(self, host):
        return self.vars[host]["ansible_host"]

    def playbook(self, playbook, json_output=False, log_path=None, extra_vars=None):
        """Run a playbook over this testbed; return (seconds, stdout)."""
        env = ansible_env()
        if json_output:
            env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
        command = [tool("ansible-playbook"), "-i", self.inventory, os.path.join(collection_dir(), playbook)]
        if extra_vars:
            command += ["-e", json.dumps(extra_vars)]
        start = time.monotonic()
        result = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        seconds = time.monotonic() - start
        output = result.stdout.decode(errors="replace")
        if log_path:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            with open(log_path, "w", encoding="utf-8") as handle:
                handle.write(output + result.stderr.decode(errors="replace"))
        if result.returncode != 0:
            raise RuntimeError(f"{playbook} failed ({result.returncode}) on {self.name}:\n"
                               f"{output[-4000:]}{result.stderr.decode(errors='replace')[-2000:]}")
        return seconds, output


def read_inventory(path):
    import yaml  # PyYAML comes with ansible-core in the dev venv

    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["all"]["hosts"]


def testbed_name(prefix):
    # testbed names: [a-z0-9-], at most 31 characters, unique among running testbeds
    return f"{prefix}-{os.getpid() % 100000}"[:31]


# --------------------------------------------------------------------------- workloads

def expression(workload, nonce, input_files):
    """One Nix expression (a list) holding every derivation of the workload."""
    lines = [
        "let",
        f'  bb = builtins.path {{ path = {CLIENT_DIR}/bb; name = "bb"; }};',
        "  mk = i: extra: script: derivation ({",
        f'    name = "bench-{workload.name}-${{toString i}}";',
        "    system = builtins.currentSystem;",
        '    builder = "/bin/sh";',
        '    args = [ "-c" script ];',
        f'    nonce = "{nonce}-${{toString i}}";',
        "  } // extra);",
        "in [",
    ]
    for index in range(workload.jobs):
        if workload.kind == "trivial":
            lines.append(f'  (mk {index} {{}} "echo $nonce > $out")')
        elif workload.kind == "chatty":
            lines.append(f'  (mk {index} {{ inherit bb; }} "i=0; while [ $i -lt 100 ]; do echo log line $i; '
                         f'$bb/sleep 0.01; i=$((i+1)); done; echo $nonce > $out")')
        elif workload.kind == "sleep":
            # busybox picks the applet from the name it is called by: call the `sleep` symlink.
            lines.append(f'  (mk {index} {{ inherit bb; }} "$bb/sleep {workload.sleep_s}; echo $nonce > $out")')
        else:
            src = f'builtins.path {{ path = {input_files[index]}; name = "bench-input-{index}"; }}'
            lines.append(f'  (mk {index} {{ src = {src}; }} "echo $nonce $src > $out")')
    lines.append("]")
    return "\n".join(lines) + "\n"


def prepare_client(bed, client):
    """busybox with a `sleep` symlink in a directory the expressions bring in (testbed recipe)."""
    bed.sh(client, f"mkdir -p {CLIENT_DIR}/bb && cp /bin/busybox {CLIENT_DIR}/bb/busybox"
                   f" && ln -sf busybox {CLIENT_DIR}/bb/sleep")


# Timed on the client itself, so the controller's ssh handshake is not counted.
TIMER = ("import subprocess, sys, time; t = time.monotonic(); r = subprocess.run(sys.argv[1:]); "
         "print('%.4f' % (time.monotonic() - t)); sys.exit(r.returncode)")


class BuildTimeout(RuntimeError):
    """nix-build did not finish within the time limit (a hang, not a slow build)."""


def run_once(bed, client, workload, timeout_s):
    nonce = uuid.uuid4().hex[:12]
    work = f"{CLIENT_DIR}/{nonce}"
    inputs = [f"{work}/input-{index}" for index in range(workload.jobs)] if workload.kind == "copy" else []
    setup = [f"mkdir -p {work}"]
    for path in inputs:  # fresh random bytes: never already on a builder, not compressible
        setup.append(f"head -c {workload.copy_bytes} /dev/urandom > {path}")
    bed.sh(client, " && ".join(setup))
    bed.sh(client, f"cat > {work}/workload.nix", input_bytes=expression(workload, nonce, inputs).encode())
    # NIX_REMOTE=daemon: root goes through nix-daemon like every other user, so the daemon's
    # configuration (the one both set-ups write and restart) is what is measured.
    command = (f"cd {work} && NIX_REMOTE=daemon python3 -c {shlex.quote(TIMER)} "
               f"timeout -k 10 {int(timeout_s)} nix-build --max-jobs 0 --no-out-link {work}/workload.nix"
               f" > {work}/out 2> {work}/err;"
               f" rc=$?; cat {work}/out; exit $rc")
    cpu_before = daemon_cpu_us(bed, client)
    try:
        output = bed.sh(client, command)
    except RuntimeError as exc:
        err = bed.sh(client, f"tail -c 3000 {work}/err", check=False)
        if "failed (124)" in str(exc):
            raise BuildTimeout(f"{workload.name}: nix-build still running after {timeout_s} s on {client}:\n{err}") from None
        raise RuntimeError(f"{workload.name}: nix-build failed on {client}:\n{err}") from None
    lines = output.strip().splitlines()
    seconds = float(lines[-1])
    built = [line for line in lines[:-1] if line.startswith("/nix/store/")]
    if len(built) != workload.jobs:
        raise RuntimeError(f"{workload.name}: expected {workload.jobs} outputs, got {len(built)}")
    cpu_after = daemon_cpu_us(bed, client)
    remote = int(bed.sh(client, f"grep -c 'building .* on ' {work}/err || true").strip() or 0)
    bed.sh(client, f"rm -rf {work}", check=False)
    cpu_s = (cpu_after - cpu_before) / 1e6 if cpu_before is not None and cpu_after is not None else None
    return seconds, remote, cpu_s


DAEMON_CGROUP = "/sys/fs/cgroup/system.slice/nix-daemon.service/cpu.stat"


def daemon_cpu_us(bed, client):
    """CPU microseconds used so far by the client's nix-daemon.service cgroup: the daemon, its
    build hooks and their ssh processes (masters included).  None without cgroup v2."""
    out = bed.sh(client, f"awk '$1 == \"usage_usec\" {{print $2}}' {DAEMON_CGROUP} 2>/dev/null", check=False).strip()
    return int(out) if out.isdigit() else None


def measure_copy_stream(bed, client, builder, nbytes):
    """Seconds one ssh stream needs to carry nbytes from the client to a builder, handshake
    excluded: best of 3 with nbytes minus best of 3 with 0 bytes (same login, same command)."""
    def best(size):
        samples = []
        for _attempt in range(3):
            out = bed.sh(client, f"head -c {size} /dev/urandom > /tmp/bench-stream && python3 -c "
                                 f"{shlex.quote(TIMER)} sh -c 'ssh -i {TUTORIAL_KEY} -o BatchMode=yes "
                                 f"{TUTORIAL_USER}@{bed.address(builder)} \"cat > /dev/null\" < /tmp/bench-stream'"
                                 f" && rm -f /tmp/bench-stream")
            samples.append(float(out.strip().splitlines()[-1]))
        return min(samples)
    return max(best(nbytes) - best(0), 0.0)


def ideal_seconds(workload, slots, stream_s):
    rounds = math.ceil(workload.jobs / slots)
    if workload.kind in ("sleep", "chatty"):
        return rounds * workload.sleep_s
    if workload.kind == "copy":
        return rounds * stream_s
    return 0.0


# --------------------------------------------------------------------------- the two set-ups

def configure_tutorial(bed, client, builders):
    """The nix.dev tutorial, as a non-NixOS reader does it.  Returns the builder slots (1 each)."""
    # Create an SSH key pair (as root, on the local machine).
    bed.sh(client, f"test -f {TUTORIAL_KEY} || ssh-keygen -q -N '' -f {TUTORIAL_KEY}")
    public = bed.sh(client, f"cat {TUTORIAL_KEY}.pub").strip()
    for builder in builders:
        # users.users.remotebuild (isSystemUser, own group, default shell, the key) and
        # nix.settings.trusted-users = [ "remotebuild" ].  Debian-only addition: its
        # nix-daemon socket is group nix-users (0770), without which nothing works at all.
        bed.sh(builder, " && ".join([
            f"(id {TUTORIAL_USER} >/dev/null 2>&1 || useradd --system --user-group --create-home"
            f" --home-dir /home/{TUTORIAL_USER} --shell /bin/bash {TUTORIAL_USER})",
            f"(getent group nix-users >/dev/null && usermod -aG nix-users {TUTORIAL_USER} || true)",
            f"install -d -m 0700 -o {TUTORIAL_USER} -g {TUTORIAL_USER} /home/{TUTORIAL_USER}/.ssh",
            f"printf '%s\\n' {shlex.quote(public)} > /home/{TUTORIAL_USER}/.ssh/authorized_keys",
            f"chown {TUTORIAL_USER}: /home/{TUTORIAL_USER}/.ssh/authorized_keys",
            f"echo 'trusted-users = root {TUTORIAL_USER}' >> /etc/nix/nix.conf",
            # Test-host workaround, not part of the tutorial (the collection reuses the same user,
            # so both set-ups get it): in these containers a login that arrives while logind stops
            # the user's systemd manager (10 s after its last session) hangs for minutes
            # ("ssh-agent.socket: Failed to spawn executor"); lingering keeps the manager running.
            f"loginctl enable-linger {TUTORIAL_USER}",
            "systemctl restart nix-daemon",
        ]))
    for builder in builders:
        # "Test authentication": the manual login also puts the host key into root's known_hosts.
        hello = bed.sh(client, f"ssh -i {TUTORIAL_KEY} -o StrictHostKeyChecking=accept-new "
                               f"{TUTORIAL_USER}@{bed.address(builder)} 'echo hello'").strip()
        if hello != "hello":
            raise RuntimeError(f"tutorial ssh test to {builder} printed {hello!r}")
    entries = " ; ".join(
        f"ssh-ng://{TUTORIAL_USER}@{bed.address(b)} {TUTORIAL_SYSTEM} {TUTORIAL_KEY} - - {TUTORIAL_FEATURES}"
        for b in builders)
    bed.sh(client, f"printf '%s\\n' {shlex.quote('builders = ' + entries)} 'builders-use-substitutes = true'"
                   " >> /etc/nix/nix.conf && systemctl restart nix-daemon")
    return len(builders)  # `-` in the max-jobs column: 1 job per builder


def linger(bed, builders, enable):
    """The test-host workaround of configure_tutorial, lifted while site.yml runs: usermod cannot
    move the home of a user that has processes (its lingering systemd manager)."""
    for builder in builders:
        if enable:
            bed.sh(builder, f"loginctl enable-linger {TUTORIAL_USER}")
        else:
            bed.sh(builder, f"loginctl disable-linger {TUTORIAL_USER}; loginctl terminate-user {TUTORIAL_USER};"
                            f" for i in $(seq 50); do pgrep -u {TUTORIAL_USER} >/dev/null || exit 0; sleep 0.2; done;"
                            f" echo 'processes of {TUTORIAL_USER} left' >&2; exit 1")


def wait_for_user_manager(bed, builders, limit_s=300):
    """Wait until the build user's systemd manager runs again on every builder.

    Test-host artifact, not part of either set-up: in these containers the stop of the user
    manager that linger(False) asks for can hang until systemd gives up on it ("user@UID.service:
    Processes still around after final SIGKILL ... Failed with result 'timeout'", about two minutes
    later), and every login (pam_systemd) queues behind it.  Measured without this wait, the first
    burst after site.yml took 50-90 s (docs/benchmarks.md, finding 3)."""
    for builder in builders:
        start = time.monotonic()
        state = bed.sh(builder, f"uid=$(id -u {TUTORIAL_USER}); for i in $(seq {limit_s * 5}); do"
                                f" s=$(systemctl is-active user@$uid.service); [ \"$s\" = active ] && break; sleep 0.2;"
                                " done; echo $s", check=False).strip()
        waited = time.monotonic() - start
        if waited > 2 or state != "active":
            log(f"{builder}: the build user's systemd manager was {state} after {waited:.0f} s (test-host wait)")


def configure_collection(bed, client, builders, log_path, extra_vars=None):
    """site.yml over the tutorial's configuration.  Returns (slots, playbook seconds, builders lines)."""
    linger(bed, builders, False)
    seconds, _output = bed.playbook("playbooks/site.yml", log_path=log_path, extra_vars=extra_vars)
    linger(bed, builders, True)
    wait_for_user_manager(bed, builders)
    lines = [line for line in bed.sh(client, "cat /etc/nix/nix.conf").splitlines()
             if line.split("=")[0].strip() == "builders"]
    if len(lines) != 1 or "@" not in lines[0] or "ssh-ng://" in lines[0]:
        raise RuntimeError(f"after site.yml the client's nix.conf has builders lines {lines!r}: "
                           "the tutorial's line was not replaced")
    machines = bed.sh(client, "cat /etc/nix/machines")
    slots = 0
    for line in machines.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        slots += 1 if len(fields) < 4 or fields[3] == "-" else int(fields[3])
    return slots, seconds, lines, machines


# --------------------------------------------------------------------------- the benchmark

def bench_release(release, workloads, runs, collection_vars, timeout_s, variants=False, floor=False):
    name = testbed_name(f"bench-off-{release}")
    client, builders = "client", ["builder1", "builder2"]
    records = []
    with Testbed(name, {client: release, builders[0]: release, builders[1]: release},
                 {"nix_builders": builders, "nix_clients": [client]}) as bed:
        nix_version = bed.sh(client, "nix-store --version").split()[-1]
        prepare_client(bed, client)
        log(f"{release}: Nix {nix_version}; tutorial set-up")
        slots = configure_tutorial(bed, client, builders)
        copy_bytes = max((w.copy_bytes for w in workloads), default=0)
        stream_s = measure_copy_stream(bed, client, builders[0], copy_bytes) if copy_bytes else 0.0
        common = dict(bed=bed, client=client, release=release, nix_version=nix_version, stream_s=stream_s,
                      timeout_s=timeout_s)
        # chatty16x1s is there for the collection's CPU use; the tutorial would add minutes per release.
        records += run_workloads(config="tutorial", slots=slots, runs=runs,
                                 workloads=[w for w in workloads if w.kind != "chatty"], **common)
        log(f"{release}: collection set-up (site.yml, extra vars {collection_vars or 'none'})")
        slots, play_s, conf_lines, machines = configure_collection(
            bed, client, builders, os.path.join(LOGS, f"offload-{release}-site.log"), collection_vars)
        log(f"{release}: site.yml took {play_s:.1f} s; client nix.conf {conf_lines}; machines:\n{machines.strip()}")
        collection = run_workloads(config="collection", slots=slots, workloads=workloads, runs=runs, **common)
        if collection_vars:  # a figure taken with overriding variables says so; the defaults carry none
            for record in collection:
                record["collection_vars"] = collection_vars
        records += collection
        if variants and not collection_vars:
            records += run_variants(bed, client, slots, workloads, runs, common)
        if floor:
            records.append(measure_floor(bed, client, builders[0], release, nix_version))
        if collection_vars:
            # The roles' own defaults, once, with a short limit: do they work at all here?
            log(f"{release}: site.yml with the roles' defaults (probe)")
            slots, _seconds, _lines, _machines = configure_collection(
                bed, client, builders, os.path.join(LOGS, f"offload-{release}-site-defaults.log"))
            probe = [w for w in workloads if w.kind == "sleep"][:1] or list(workloads[:1])
            probe_args = dict(common)
            probe_args["timeout_s"] = min(timeout_s, 90)
            records += run_workloads(config="collection-defaults", slots=slots, workloads=probe, runs=1,
                                     tolerate_timeout=True, **probe_args)
    return records


SSH_CONFIG = "/etc/ssh/ssh_config.d/60-nix-remote-builders.conf"


def run_variants(bed, client, slots, workloads, runs, common):
    """The collection with one default changed back, on the same hosts right after it, so the
    effect of that default is measured side by side: 0.1.0's build-poll-interval = 1, and no
    connection reuse.  Set by editing the client's files (not site.yml); put back afterwards."""
    records = []
    by_kind = {w.kind: w for w in workloads}
    poll = [by_kind[k] for k in ("sleep", "chatty") if k in by_kind]
    reuse = [by_kind[k] for k in ("trivial", "sleep") if k in by_kind]
    conf = "/etc/nix/nix.conf"
    bed.sh(client, f"cp -p {conf} {conf}.bench && sed -i 's/^build-poll-interval = .*/build-poll-interval = 1/' {conf}"
                   " && systemctl restart nix-daemon")
    try:
        records += run_workloads(config="variant-poll1", slots=slots, workloads=poll, runs=runs, **common)
    finally:
        bed.sh(client, f"mv {conf}.bench {conf} && systemctl restart nix-daemon")
    bed.sh(client, f"cp -p {SSH_CONFIG} {SSH_CONFIG}.bench && sed -i '/Control/d' {SSH_CONFIG}"
                   " && (pkill -f '\\[mux\\]' || true)")
    try:
        records += run_workloads(config="variant-noreuse", slots=slots, workloads=reuse, runs=runs, **common)
    finally:
        bed.sh(client, f"mv {SSH_CONFIG}.bench {SSH_CONFIG}")
    return records


# Each part of one remote build's fixed cost, timed on the client as root with the collection's
# own files (key, ssh_config.d, known hosts): median of FLOOR_REPEATS runs, in ms.
FLOOR_REPEATS = 15
FLOOR_SCRIPT = r"""
set -eu
target=$1; key=$2; n=$3
t() { python3 -c 'import subprocess, sys, time
samples = []
for _ in range(int(sys.argv[1])):
    t = time.monotonic(); r = subprocess.run(sys.argv[2], shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    samples.append((time.monotonic() - t) * 1000)
    if r.returncode == 255: print("nan"); sys.exit(0)  # ssh itself failed (the daemon may exit 1 on EOF)
samples.sort(); print("%.1f" % samples[len(samples) // 2])' "$n" "$1"; }
host=${target#*@}
ssh -i $key -o BatchMode=yes $target </dev/null >/dev/null 2>&1 || true   # a master is up (ControlPersist)
echo "nix_start $(t 'nix --version')"
echo "ssh_check $(t "ssh -i $key -O check $target")"
echo "session_mux $(t "ssh -i $key -o BatchMode=yes $target")"
echo "login_full $(t "ssh -i $key -o BatchMode=yes -o ControlMaster=no -o ControlPath=none $target")"
ping="nix --extra-experimental-features nix-command store ping --store 'ssh-ng://$target?ssh-key=$key'"
echo "store_ping_mux $(t "$ping")"
echo "store_ping_full $(t "NIX_SSHOPTS='-o ControlMaster=no -o ControlPath=none' $ping")"
"""


def measure_floor(bed, client, builder, release, nix_version):
    """The per-build floor, part by part (session_mux and login_full include the remote
    `nix-daemon --stdio` start, which the forced command runs for every session)."""
    line = [ln for ln in bed.sh(client, "cat /etc/nix/machines").splitlines()
            if bed.address(builder) in ln.split(" ", 1)[0]][0]
    target = line.split()[0].split("://", 1)[1].split("?", 1)[0]
    key = line.split()[2]
    out = bed.sh(client, f"bash -c {shlex.quote(FLOOR_SCRIPT)} floor {shlex.quote(target)} {key} {FLOOR_REPEATS}")
    parts = {}
    for row in out.splitlines():
        name, _sep, value = row.partition(" ")
        try:
            parts[name] = float(value)
        except ValueError:
            parts[name] = None
    log(f"{release}: floor parts (ms, median of {FLOOR_REPEATS}): {parts}")
    return {"release": release, "nix_version": nix_version, "config": "floor", "workload": "floor",
            "repeats": FLOOR_REPEATS, "parts_ms": parts, "wall_s": None}


def run_workloads(bed, client, release, nix_version, config, slots, workloads, runs, stream_s, timeout_s,
                  tolerate_timeout=False):
    records = []
    for workload in workloads:
        samples, remote, cpu = [], [], []
        for _attempt in range(runs):
            try:
                seconds, offloaded, cpu_s = run_once(bed, client, workload, timeout_s)
            except BuildTimeout as exc:
                if not tolerate_timeout:
                    raise
                log(f"{release} {config} {workload.name}: HUNG ({exc})")
                records.append({"release": release, "nix_version": nix_version, "config": config,
                                "workload": workload.name, "jobs": workload.jobs, "slots": slots,
                                "wall_s": None, "ideal_s": None, "runs": [], "hung_after_s": timeout_s,
                                "error_tail": str(exc)[-600:]})
                break
            samples.append(round(seconds, 3))
            remote.append(offloaded)
            if cpu_s is not None:
                cpu.append(round(cpu_s, 3))
            log(f"{release} {config} {workload.name} run {len(samples)}: {seconds:.2f} s")
        if not samples:
            continue
        wall = statistics.median(samples)
        ideal = ideal_seconds(workload, slots, stream_s)
        record = {
            "release": release, "nix_version": nix_version, "config": config,
            "workload": workload.name, "jobs": workload.jobs, "slots": slots,
            "wall_s": round(wall, 3), "ideal_s": round(ideal, 3),
            "ratio_to_ideal": round(wall / ideal, 2) if ideal > 0 else None,
            "overhead_per_derivation_ms": round((wall - ideal) / workload.jobs * 1000, 1),
            "runs": samples, "offloaded_builds": remote,
            "daemon_cpu_s": round(statistics.median(cpu), 3) if cpu else None, "daemon_cpu_runs": cpu,
        }
        if workload.kind == "copy":
            record["copy_bytes_each"] = workload.copy_bytes
            record["ssh_stream_s"] = round(stream_s, 3)
        log(f"{release} {config:10} {workload.name:11} median {wall:7.2f} s  runs {samples}")
        # Every derivation must have gone to a builder, or the figure measures something else.
        if any(count != workload.jobs for count in remote):
            raise RuntimeError(f"{release} {config} {workload.name}: offloaded {remote} of {workload.jobs}")
        records.append(record)
    return records


def add_speedups(records):
    tutorial = {(r["release"], r["workload"]): r["wall_s"] for r in records if r["config"] == "tutorial"}
    for record in records:
        if record["config"] == "floor":
            continue
        base = tutorial.get((record["release"], record["workload"]))
        record["speedup_over_tutorial"] = round(base / record["wall_s"], 2) if base and record["wall_s"] else None


def floor_markdown(records):
    """The floor decomposition table of docs/benchmarks.md."""
    names = ("nix_start", "ssh_check", "session_mux", "login_full", "store_ping_mux", "store_ping_full")
    rows = ["| release | Nix | " + " | ".join(names) + " | trivial ms/drv (collection) |",
            "|---|---|" + "---|" * (len(names) + 1)]
    trivial = {r["release"]: r["overhead_per_derivation_ms"] for r in records
               if r["config"] == "collection" and r["workload"].startswith("trivial") and r["wall_s"]}
    for r in records:
        if r["config"] != "floor":
            continue
        cells = [("%.0f" % r["parts_ms"][n]) if r["parts_ms"].get(n) is not None else "-" for n in names]
        rows.append(f"| {r['release']} | {r['nix_version']} | " + " | ".join(cells)
                    + f" | {trivial.get(r['release'], '-')} |")
    return "\n".join(rows)


def table(records):
    records = [r for r in records if r["config"] != "floor"]
    header = (f"{'release':9} {'Nix':7} {'config':10} {'workload':11} {'slots':>5} {'wall s':>8} "
              f"{'ideal s':>8} {'x ideal':>8} {'ms/drv':>8} {'speed-up':>8}")
    rows = [header, "-" * len(header)]
    for r in records:
        if r["wall_s"] is None:
            rows.append(f"{r['release']:9} {r['nix_version']:7} {r['config']:10} {r['workload']:11} "
                        f"{r['slots']:>5}   HUNG: no result after {r['hung_after_s']} s")
            continue
        ratio = f"{r['ratio_to_ideal']:.2f}" if r["ratio_to_ideal"] is not None else "-"
        speedup = f"{r['speedup_over_tutorial']:.1f}x" if r["config"] != "tutorial" and r["speedup_over_tutorial"] is not None else "-"
        rows.append(f"{r['release']:9} {r['nix_version']:7} {r['config']:10} {r['workload']:11} "
                    f"{r['slots']:>5} {r['wall_s']:>8.2f} {r['ideal_s']:>8.2f} {ratio:>8} "
                    f"{r['overhead_per_derivation_ms']:>8.0f} {speedup:>8}")
    return "\n".join(rows)


def markdown(records):
    """The table of docs/benchmarks.md, from the JSON records."""
    floors = [r for r in records if r["config"] == "floor"]
    records = [r for r in records if r["config"] != "floor"]
    rows = ["| release | Nix | config | workload | slots | wall s (median) | runs s | ideal s | x ideal "
            "| overhead ms/drv | speed-up over tutorial | client daemon CPU s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r["wall_s"] is None:
            rows.append(f"| {r['release']} | {r['nix_version']} | {r['config']} | {r['workload']} | {r['slots']} "
                        f"| **hung** (killed after {r['hung_after_s']:.0f} s) | | | | | | |")
            continue
        ratio = f"{r['ratio_to_ideal']:.2f}" if r["ratio_to_ideal"] is not None else "-"
        speedup = f"{r['speedup_over_tutorial']:.1f}x" if r["config"] != "tutorial" and r["speedup_over_tutorial"] is not None else "-"
        runs = ", ".join(f"{x:.2f}" for x in r["runs"])
        cpu = f"{r['daemon_cpu_s']:.2f}" if r.get("daemon_cpu_s") is not None else "-"
        rows.append(f"| {r['release']} | {r['nix_version']} | {r['config']} | {r['workload']} | {r['slots']} "
                    f"| {r['wall_s']:.2f} | {runs} | {r['ideal_s']:.2f} | {ratio} "
                    f"| {r['overhead_per_derivation_ms']:.0f} | {speedup} | {cpu} |")
    text = "\n".join(rows)
    return text + ("\n\n" + floor_markdown(floors + records) if floors else "")


def load_records(paths):
    """The records of these JSON result files, in order (for --markdown)."""
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            records += json.load(handle)
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--releases", default=",".join(RELEASES),
                        help="comma-separated releases (default: bookworm,trixie,sid)")
    parser.add_argument("--runs", type=int, default=3, help="runs per workload, median reported (default 3)")
    parser.add_argument("--smoke", action="store_true",
                        help="bookworm, 1 run, tiny workloads; results under .build/bench-smoke/")
    parser.add_argument("--output-dir", help="where offload-<release>.json go (default bench/results/)")
    parser.add_argument("--collection-var", action="append", default=[], metavar="KEY=JSON",
                        help="extra variable for site.yml in the collection set-up (value parsed as JSON when "
                             "it can be, e.g. local_client_ssh_multiplexing=false); when given, the roles' "
                             "defaults are also probed once (config collection-defaults)")
    parser.add_argument("--build-timeout", type=float, default=300,
                        help="seconds before a nix-build counts as hung (default 300)")
    parser.add_argument("--no-variants", action="store_true",
                        help="skip the side-by-side variants (0.1.0's build-poll-interval 1, no connection reuse)")
    parser.add_argument("--no-floor", action="store_true", help="skip the per-build floor decomposition")
    parser.add_argument("--markdown", nargs="+", metavar="JSON",
                        help="print the results in these files as a Markdown table and exit (no testbed)")
    args = parser.parse_args(argv)

    if args.markdown:
        print(markdown(load_records(args.markdown)))
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (the testbed starts systemd-nspawn containers)")
    releases = [r for r in args.releases.split(",") if r]
    for release in releases:
        if release not in RELEASES:
            parser.error(f"--releases: unknown release {release!r} (choose from {', '.join(RELEASES)})")
    workloads, runs = FULL_WORKLOADS, args.runs
    if args.smoke:
        releases, workloads, runs = ["bookworm"], SMOKE_WORKLOADS, 1
    if runs < 1:
        parser.error("--runs must be at least 1")
    out_dir = args.output_dir or (SMOKE_RESULTS if args.smoke else RESULTS)
    os.makedirs(out_dir, exist_ok=True)
    collection_vars = {}
    for item in args.collection_var:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--collection-var: expected KEY=VALUE, got {item!r}")
        try:
            collection_vars[key] = json.loads(value)
        except ValueError:
            collection_vars[key] = value

    install_signal_handlers()
    everything, failed = [], []
    try:
        source = snapshot_collection()
        for release in releases:
            try:
                records = bench_release(release, workloads, runs, collection_vars, args.build_timeout,
                                        variants=not (args.smoke or args.no_variants),
                                        floor=not (args.smoke or args.no_floor))
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                log(f"{release}: FAILED, no result written: {exc}")
                failed.append(release)
                continue
            add_speedups(records)
            for record in records:
                record["collection"] = source
            path = os.path.join(out_dir, f"offload-{release}.json")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(records, handle, indent=2)
                handle.write("\n")
            log(f"wrote {path}")
            everything += records
    except Interrupted as exc:
        log(f"interrupted ({exc}); testbed torn down")
        return 130
    finally:
        drop_snapshot()
    print(table(everything))
    if failed:
        log(f"failed releases: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
