"""Upgrade from 0.1.0 (issue 12 item 4): prepare.yml let 0.1.0 configure builder-trixie and
client-trixie over settings an administrator wrote by hand; converge then ran this version on
all four hosts.  Nothing may be lost, and 0.1.0's state files are retired: the files themselves
record which entries the collection manages (marker comments).
"""

from __future__ import annotations

import re

import pytest
from fleet import BUILDERS, CLIENTS, client_records, host_of, login

UPGRADED = ["builder-trixie", "client-trixie"]
ADMIN_KEY = "admin-1:4Rv0D5sVpQ2nLr3oZ1yKg8xHkBTn6WZ7vCMEqXe3hPc="
ADMIN_MACHINE = "ssh-ng://nix@admin-builder.example.org riscv64-linux /root/.ssh/id_admin 2 1"
ADMIN_KNOWN_HOST = "admin-builder.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
PUBLIC = "/etc/nix/nix-remote-builders-signing.pub"
STATE_FILES = ["/etc/nix/nix-remote-builders.json", "/etc/nix/nix-remote-builders-trust.json"]


@pytest.mark.parametrize("name", CLIENTS + BUILDERS)
def test_the_state_files_of_0_1_0_are_retired(name):
    host = host_of(name)
    for path in STATE_FILES:
        assert not host.file(path).exists, f"{name}: {path} is still there"


def test_the_administrators_machines_entry_and_host_key_survive():
    client = host_of("client-trixie")
    machines = client.file("/etc/nix/machines").content_string.splitlines()
    assert machines.count(ADMIN_MACHINE) == 1, machines
    known = client.file("/etc/ssh/ssh_known_hosts").content_string.splitlines()
    assert known.count(ADMIN_KNOWN_HOST) == 1, known


@pytest.mark.parametrize("client", CLIENTS)
def test_every_builder_is_marked_once_in_every_client_machines_file(client):
    records = client_records(host_of(client))
    assert sorted(r["name"] for r in records) == BUILDERS, records
    # The marker sits directly above its entry, which names the same store URI.
    lines = host_of(client).file("/etc/nix/machines").content_string.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("# nix_remote.builders "):
            uri = re.search(r'"uri":"([^"]+)"', line).group(1)
            assert lines[index + 1].split(" ", 1)[0] == uri, (line, lines[index + 1])


@pytest.mark.parametrize("name", BUILDERS)
def test_the_builders_trust_what_nix_reads_the_role_keys_and_the_administrators(name):
    host = host_of(name)
    shown = login(host, "nix --extra-experimental-features nix-command config show trusted-public-keys")
    assert shown.rc == 0, shown.stderr
    trusted = set(shown.stdout.split())
    for other in CLIENTS + BUILDERS:
        assert host_of(other).file(PUBLIC).content_string.strip() in trusted, other
    assert (ADMIN_KEY in trusted) == (name in UPGRADED)
    # nix.conf's marker comment records the role's keys, never the administrator's.
    conf = host.file("/etc/nix/nix.conf").content_string
    marker = re.search(r"^# nix_remote\.builders manages extra-trusted-public-keys: (.*)$", conf, re.M)
    assert marker, conf
    recorded = marker.group(1).split()
    assert ADMIN_KEY not in recorded
    assert sorted(recorded) == sorted(host_of(h).file(PUBLIC).content_string.strip() for h in CLIENTS + BUILDERS)
