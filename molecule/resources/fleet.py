"""What every scenario's testinfra tests share: the inventory, the hosts, and the client's
record of each builder.

The records are read the way a user would read them, from the marker comment that the
local_client role writes above each entry of /etc/nix/machines ("# nix_remote.builders " and
the record as JSON), independently of the collection's own parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[2]))
RUNNER = AnsibleRunner(INVENTORY)
BUILDERS = sorted(RUNNER.get_hosts("nix_builders"))
CLIENTS = sorted(RUNNER.get_hosts("nix_clients"))
PAIRS = [(c, b) for c in CLIENTS for b in BUILDERS]

KEY = "/root/.ssh/nix_remote_builders_ed25519"
BUILD_USER = "remotebuild"
MACHINES = "/etc/nix/machines"
# The machines file the builder health service keeps (local_client_builder_health).
LIVE_MACHINES = "/var/lib/nix-remote-builders/machines"
MARKER = "# nix_remote.builders "
# Nix is on the non-login PATH only where Debian installed it; a login shell finds both layouts.
LOGIN = "bash -lc "


def host_of(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def health_on(name: str) -> bool:
    """Whether the inventory turns the builder health service on for this client."""
    value = RUNNER.get_variables(name).get("local_client_builder_health", False)
    return value is True or str(value).lower() in ("true", "yes", "1")


def builders_setting(name: str) -> str:
    """nix.conf's builders line on this client: the live file while the health service is on."""
    return "@" + (LIVE_MACHINES if health_on(name) else MACHINES)


def login(host, command: str):
    return host.run(LOGIN + shlex.quote(command))


def client_records(client, path: str = MACHINES) -> list[dict]:
    """Every record the role marked in the client's machines file, in file order."""
    return [json.loads(line[len(MARKER):]) for line in client.file(path).content_string.splitlines()
            if line.startswith(MARKER)]


def machines_entries(client, path: str = MACHINES) -> list[str]:
    """The machines file's entries: its lines that are neither empty nor comments."""
    return [line for line in client.file(path).content_string.splitlines() if line.strip() and not line.startswith("#")]


def client_record(client, builder: str) -> dict:
    """The local_client role's record of this builder on this client (exactly one)."""
    records = [r for r in client_records(client) if r["name"] == builder]
    assert len(records) == 1, f"{builder} recorded {len(records)} times: {client_records(client)}"
    return records[0]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def site(*args: str) -> subprocess.CompletedProcess:
    """site.yml over the scenario's inventory with extra ansible-playbook ARGS, plain text output."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".testbed" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_FORCE_COLOR", None)
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", INVENTORY,
                           str(PROJECT / "playbooks" / "site.yml"), *args],
                          capture_output=True, text=True, env=env, check=False, timeout=900)


def recap(out: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counters by host."""
    rows = {}
    for line in ANSI.sub("", out).splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match and "ok=" in match.group(2):
            rows[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return rows
