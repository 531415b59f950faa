"""The fleet features on real hosts (issue 14): builder slots shared among the clients, and the
builder health service with a builder blackholed and restored while the clients build; a run
limited to a client, its builders outside the limit (issue 17).

Hosts: builder-port (sid, port 2200, remote_builder_max_jobs 6) and builder-upstream (trixie,
upstream layout, 3) in nix_builders; client-sid, client-trixie and client-bookworm in nix_clients
with local_client_slot_policy: shared, and the health service on the first two (interval 2 s).
Runs before the default scenario's tests (molecule's additional_files_or_dirs), and leaves every
host as converge made it.
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

import pytest
from fleet import (BUILDERS, CLIENTS, LIVE_MACHINES, MACHINES, PROJECT, client_record, health_on, host_of, login, recap,
                   site)

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "fleet")
HEALTH_CLIENTS = [c for c in CLIENTS if health_on(c)]
SERVICE = "nix-remote-builders-health.service"
DOWN = "# down (nix-remote-builders-health): "
EXPORT_FILE = "/etc/ansible/facts.d/nix_remote_builders.fact"


def capacity(builder: str) -> int:
    """The builder's own max-jobs, as its daemon reads it."""
    conf = host_of(builder).file("/etc/nix/nix.conf").content_string
    return int(re.search(r"^max-jobs = (\d+)$", conf, re.M).group(1))


def entry(client: str, builder: str) -> list[str]:
    """The fields of the builder's entry in the client's machines file (found by the role's record)."""
    uri = client_record(host_of(client), builder)["uri"]
    lines = [ln.split() for ln in host_of(client).file(MACHINES).content_string.splitlines()
             if ln.split(" ", 1)[0] == uri]
    assert len(lines) == 1, lines
    return lines[0]


def live_entries(client: str) -> tuple[list[str], list[str]]:
    """(first fields of the listed entries, first fields of those the service took out)."""
    text = host_of(client).file(LIVE_MACHINES).content_string
    listed = [ln.split()[0] for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    down = [ln[len(DOWN):].split()[0] for ln in text.splitlines() if ln.startswith(DOWN)]
    return listed, down


def wait_for(condition, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.5)
    return time.monotonic() - start


def blackhole(builder: str, state: str) -> None:
    subprocess.run([sys.executable, str(PROJECT / "tests/testbed/testbed.py"), "blackhole",
                    "--name", f"molecule-{SCENARIO}", builder, state], check=True, capture_output=True)


def derivations(tag: str, count: int) -> str:
    nonce = f"fleet-{tag}-{uuid.uuid4().hex[:12]}"
    return (f'builtins.genList (i: derivation {{ name = "{nonce}-${{toString i}}"; system = builtins.currentSystem; '
            f'builder = "/bin/sh"; args = [ "-c" "echo {nonce} ${{toString i}} > $out" ]; }}) {count}')


# ---------------------------------------------------------------- slots


@pytest.mark.parametrize("builder", BUILDERS)
def test_each_builder_s_slots_are_shared_by_its_clients(builder):
    """shared: every client gets capacity / clients (rounded down, at least 1), so the clients
    together never hold more slots than the builder has; Nix's locks are per client, so with
    `full` all three would take the whole capacity each."""
    total = capacity(builder)
    jobs = {client: int(entry(client, builder)[3]) for client in CLIENTS}
    assert set(jobs.values()) == {max(1, total // len(CLIENTS))}, jobs
    assert sum(jobs.values()) <= total, (jobs, total)


# ---------------------------------------------------------------- health


@pytest.mark.parametrize("client", CLIENTS)
def test_the_health_service_runs_where_it_is_on_and_nix_reads_its_file(client):
    host = host_of(client)
    conf = host.file("/etc/nix/nix.conf").content_string
    if client not in HEALTH_CLIENTS:
        assert re.search(rf"^builders = @{MACHINES}$", conf, re.M)
        assert not host.file(f"/etc/systemd/system/{SERVICE}").exists
        return
    assert re.search(rf"^builders = @{LIVE_MACHINES}$", conf, re.M)
    assert host.service(SERVICE).is_running and host.service(SERVICE).is_enabled
    # Every builder answers: the live file lists what the machines file does, nothing taken out.
    listed, down = live_entries(client)
    assert down == []
    assert sorted(listed) == sorted(client_record(host, b)["uri"] for b in BUILDERS)
    assert host.file(LIVE_MACHINES).content_string.endswith(host.file(MACHINES).content_string)


def test_a_blackholed_builder_is_taken_out_and_builds_go_to_the_other():
    dead, live = "builder-upstream", "builder-port"
    machines_before = {c: host_of(c).file(MACHINES).content_string for c in CLIENTS}
    blackhole(dead, "on")
    try:
        for client in HEALTH_CLIENTS:
            uri = client_record(host_of(client), dead)["uri"]
            wait_for(lambda c=client, u=uri: live_entries(c)[1] == [u], 60, f"{client}'s live file without {dead}")
        # Builds with local builds forbidden all go to the builder that answers; Nix does not even
        # try the blackholed one (it is not in the file it reads).
        for client in HEALTH_CLIENTS:
            build = login(host_of(client), "NIX_REMOTE=daemon nix-build --no-out-link --max-jobs 0 -E "
                          + shlex.quote(derivations(client, 4)))
            assert build.rc == 0, build.stderr[-3000:]
            assert "cannot build on" not in build.stderr, build.stderr[-3000:]
            outputs = build.stdout.split()
            assert len(outputs) == 4
            assert login(host_of(live), "nix-store --check-validity " + " ".join(outputs)).rc == 0
        # Ansible sees no change while the live file differs from the machines file: a run over
        # the clients (the builders are outside the limit, one of them unreachable anyway).
        run = site("--limit", "nix_clients")
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        rows = recap(run.stdout)
        assert all(rows[c]["changed"] == 0 and rows[c]["failed"] == 0 for c in CLIENTS), rows
        assert {c: host_of(c).file(MACHINES).content_string for c in CLIENTS} == machines_before
    finally:
        blackhole(dead, "off")
    # Back within an interval (2 s here) and a probe.
    for client in HEALTH_CLIENTS:
        waited = wait_for(lambda c=client: live_entries(c)[1] == [], 30, f"{dead} back in {client}'s live file")
        assert waited < 15, waited
        assert host_of(client).file(LIVE_MACHINES).content_string.endswith(machines_before[client])
    # The service said so, once each way.
    for client in HEALTH_CLIENTS:
        journal = host_of(client).run(f"journalctl -u {SERVICE} -o cat --no-pager").stdout
        assert re.search(rf"^{dead}: down: ", journal, re.M), journal[-2000:]
        # Up when the service started, and up again after the blackhole.
        assert len(re.findall(rf"^{dead}: up$", journal, re.M)) >= 2, journal[-2000:]


def test_a_run_limited_to_a_client_reads_the_builders_kept_exports():
    """Without a fact cache, a run limited to one client gets its builders' exports from the files
    the builders keep (remote_builder_export_file): a machines file that lost its entries gets them
    back exactly, and no builder is reported unconfigured.  The builders are outside the limit."""
    client = next(c for c in CLIENTS if not health_on(c))
    host = host_of(client)
    before = host.file(MACHINES).content_string
    for b in BUILDERS:
        kept = json.loads(host_of(b).file(EXPORT_FILE).content_string)
        assert kept["state"] == "present" and kept["host_key"], kept
        assert host_of(b).file(EXPORT_FILE).mode == 0o644
    assert host.run(f"truncate -s 0 {MACHINES}").rc == 0
    try:
        run = site("--limit", client)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        rows = recap(run.stdout)
        assert set(rows) == {client}, rows
        assert "no remote_builder_export from" not in run.stdout, run.stdout[-4000:]
        assert host.file(MACHINES).content_string == before
    finally:
        if host.file(MACHINES).content_string != before:
            host.run(f"printf %s {shlex.quote(before)} > {MACHINES}")
