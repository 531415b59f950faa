"""Testinfra over molecule's inventory: the hosts answer SSH as root and their nix-daemon answers."""

from __future__ import annotations

import pytest

# The same PATH a login shell gets: trixie-upstream has Nix only under the default profile.
LOGIN = "bash -lc "


@pytest.fixture
def release(host):
    return "upstream" if host.file("/nix/var/nix/profiles/default/bin/nix-store").exists else "debian"


def test_system_is_up(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in {"running", "degraded"}


def test_sshd_runs_as_root_login(host):
    assert host.user().name == "root"
    assert host.service("ssh").is_running


def test_nix_daemon_answers_a_store_query(host):
    probe = "/nix/store/00000000000000000000000000000000-molecule-probe"
    result = host.run(LOGIN + f"'nix-store --store daemon --check-validity --print-invalid {probe}'")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == probe


def test_nix_on_the_non_login_path_only_where_debian_installed_it(host, release):
    found = host.run("command -v nix-store").rc == 0
    assert found == (release == "debian")


def test_inventory_groups_from_platforms(host):
    expected = {"tb-builder": {"nix_builders"}, "tb-client": {"nix_clients"}}
    groups = set(host.ansible.get_variables()["group_names"]) - {"all"}
    assert groups == expected[host.backend.get_hostname()]
