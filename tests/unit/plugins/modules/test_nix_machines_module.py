"""The nix_machines module: entries in a machines file or in the builders setting of nix.conf."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.machines import parse_machines
from ansible_collections.nix_remote.builders.plugins.modules import nix_machines

HOST_KEY = base64.b64encode(b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1NXUdulunTDfre49tXJFpNPWhUYGUGNqiYCVXDp9LX").decode()

USER_MACHINES = (
    "# builders the user added by hand\n"
    "nix@old.example.org  x86_64-linux  /root/.ssh/id_old  2 1\n"
    "\n"
    "@/etc/nix/more-machines\n"
)

BUILDER = {
    "uri": "ssh-ng://remotebuild@builder1",
    "systems": ["x86_64-linux", "i686-linux"],
    "ssh_key": "/root/.ssh/nix_remote_builders_ed25519",
    "max_jobs": 4,
    "speed_factor": 2,
    "supported_features": ["big-parallel", "benchmark"],
    "public_host_key": HOST_KEY,
}


@pytest.fixture
def machines(tmp_path):
    path = tmp_path / "machines"
    path.write_text(USER_MACHINES)
    return path


def test_adds_entry_keeping_user_lines(run_module, machines):
    result = run_module(nix_machines.main, {"path": str(machines), "builders": [BUILDER], "nix_version": "2.26.3"})
    assert result["changed"] and not result["restart_required"]
    text = machines.read_text()
    assert text.startswith(USER_MACHINES)
    added = text[len(USER_MACHINES):]
    assert added == (
        "ssh-ng://remotebuild@builder1 i686-linux,x86_64-linux /root/.ssh/nix_remote_builders_ed25519 4 2 "
        f"benchmark,big-parallel - {HOST_KEY}\n"
    )
    [entry] = [m for m in result["machines"] if m["store_uri"] == "ssh-ng://remotebuild@builder1"]
    assert entry["max_jobs"] == 4 and entry["systems"] == ["i686-linux", "x86_64-linux"]


def test_idempotent_and_check_mode(run_module, machines):
    args = {"path": str(machines), "builders": [BUILDER], "nix_version": "2.26.3"}
    before = machines.read_bytes()
    assert run_module(nix_machines.main, args, check_mode=True)["changed"]
    assert machines.read_bytes() == before
    run_module(nix_machines.main, args)
    after = machines.read_bytes()
    second = run_module(nix_machines.main, args)
    assert not second["changed"] and machines.read_bytes() == after


def test_replaces_by_normalized_uri_in_place(run_module, machines):
    result = run_module(
        nix_machines.main,
        {"path": str(machines), "builders": [{"uri": "ssh://nix@old.example.org", "systems": ["aarch64-linux"], "max_jobs": 3}]},
    )
    assert result["changed"]
    lines = machines.read_text().splitlines()
    assert lines[0] == "# builders the user added by hand"
    assert lines[1] == "ssh://nix@old.example.org aarch64-linux - 3 1 - - -"
    assert lines[3] == "@/etc/nix/more-machines"


def test_absent_and_exclusive(run_module, machines):
    run_module(nix_machines.main, {"path": str(machines), "builders": [BUILDER]})
    result = run_module(nix_machines.main, {"path": str(machines), "builders": [{"uri": BUILDER["uri"], "state": "absent"}]})
    assert result["changed"] and machines.read_text() == USER_MACHINES
    result = run_module(nix_machines.main, {"path": str(machines), "builders": [BUILDER], "exclusive": True})
    text = machines.read_text()
    assert "old.example.org" not in text and "@/etc/nix/more-machines" in text and "builder1" in text


def test_diff(run_module, machines):
    result = run_module(nix_machines.main, {"path": str(machines), "builders": [BUILDER]}, diff=True)
    assert result["diff"]["before"] == USER_MACHINES and "builder1" in result["diff"]["after"]


def test_old_nix_gets_integer_speed_and_no_host_key_column(run_module, tmp_path):
    path = tmp_path / "machines"
    run_module(nix_machines.main, {"path": str(path), "builders": [dict(BUILDER, speed_factor=2.0)], "nix_version": "2.3.16"})
    assert path.read_text().split()[4] == "2"
    assert HOST_KEY not in path.read_text()


@pytest.mark.parametrize(
    "override, field",
    [
        ({"ssh_key": "id_builder"}, "builders[0].ssh_key"),
        ({"max_jobs": -1}, "builders[0].max_jobs"),
        ({"speed_factor": -3}, "builders[0].speed_factor"),
        ({"public_host_key": "BAD_BASE64"}, "builders[0]"),
        ({"uri": "two words"}, "builders[0]"),
        ({"systems": ["x86_64-linux i686-linux"]}, "builders[0]"),
    ],
)
def test_invalid_builder_fails_naming_the_field_and_changes_nothing(run_module, machines, override, field):
    before = machines.read_bytes()
    result = run_module(nix_machines.main, {"path": str(machines), "builders": [dict(BUILDER, **override)]})
    assert result["failed"] and field in result["msg"], result["msg"]
    assert machines.read_bytes() == before


def test_fractional_speed_factor_refused_for_old_nix(run_module, machines):
    before = machines.read_bytes()
    result = run_module(nix_machines.main, {"path": str(machines), "builders": [dict(BUILDER, speed_factor=1.5)], "nix_version": "2.8.0"})
    assert result["failed"] and "builders[0]" in result["msg"]
    assert machines.read_bytes() == before


def test_malformed_existing_file_fails_naming_line_and_column(run_module, machines):
    machines.write_text(USER_MACHINES + "nix@bad.example.org - - eight\n")
    before = machines.read_bytes()
    result = run_module(nix_machines.main, {"path": str(machines), "builders": [BUILDER]})
    assert result["failed"]
    assert str(machines) in result["msg"] and "line 5" in result["msg"] and "column 4" in result["msg"] and "eight" in result["msg"]
    assert machines.read_bytes() == before


def test_builders_setting_in_nix_conf_keeps_default_machines_file(run_module, tmp_path):
    conf = tmp_path / "nix.conf"
    conf.write_text("# mine\nsandbox = true\n")
    result = run_module(nix_machines.main, {"nix_conf_path": str(conf), "builders": [dict(BUILDER, public_host_key=None)]})
    assert result["changed"] and result["restart_required"]
    lines = conf.read_text().splitlines()
    assert lines[:2] == ["# mine", "sandbox = true"]
    value = lines[2].split(" = ", 1)[1]
    assert value.startswith(f"@{tmp_path}/machines ; ")
    [machine] = parse_machines(value.split(" ; ", 1)[1])
    assert machine.store_uri == BUILDER["uri"] and machine.max_jobs == 4
    again = run_module(nix_machines.main, {"nix_conf_path": str(conf), "builders": [dict(BUILDER, public_host_key=None)]})
    assert not again["changed"]
