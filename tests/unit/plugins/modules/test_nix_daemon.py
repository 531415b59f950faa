"""nix_daemon: the exact commands per service manager, readiness waiting, refusals, check mode."""

from __future__ import annotations

import pytest

from ansible.module_utils import basic

from ansible_collections.nix_remote.builders.plugins.modules import nix_daemon

SYSTEMCTL = "/usr/bin/systemctl"
LAUNCHCTL = "/bin/launchctl"
NIX_STORE = "/nix/var/nix/profiles/default/bin/nix-store"
PROBE = [NIX_STORE, "--store", "daemon", "--check-validity", "--print-invalid", nix_daemon.PROBE_PATH]


class Commands:
    """A scripted run_command: each call must be the next expected argv; answers its rc/out/err."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []

    def __call__(self, args, **kwargs):
        self.calls.append(list(args))
        assert self.script, f"unexpected command {args}"
        expected, rc, out, err = self.script.pop(0)
        assert list(args) == expected
        return rc, out, err


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fake host root; the module detects from it and finds nix-store in the upstream profile."""
    monkeypatch.setattr(nix_daemon, "ROOT", str(tmp_path))
    monkeypatch.setattr(nix_daemon.os, "uname", lambda: _Uname("Linux"))
    tools = {"systemctl": SYSTEMCTL, "launchctl": LAUNCHCTL}
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: tools[name])
    store = tmp_path / NIX_STORE.lstrip("/")
    store.parent.mkdir(parents=True)
    store.write_text("#!/bin/sh\n")
    store.chmod(0o755)
    return tmp_path


class _Uname:
    def __init__(self, sysname):
        self.sysname = sysname


def systemd_host(root):
    (root / "run/systemd/system").mkdir(parents=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "nix-daemon.service").write_text("[Service]\n")
    (units / "nix-daemon.socket").write_text("[Socket]\n")


def darwin_host(root, monkeypatch, label):
    monkeypatch.setattr(nix_daemon.os, "uname", lambda: _Uname("Darwin"))
    daemons = root / "Library/LaunchDaemons"
    daemons.mkdir(parents=True)
    (daemons / f"{label}.plist").write_text("<plist/>")


def show(unit):
    return [SYSTEMCTL, "show", "--property=LoadState", "--property=ActiveState", unit]


def script(monkeypatch, steps):
    commands = Commands(steps)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kwargs: commands(args, **kwargs))
    return commands


def test_systemd_restart_restarts_the_service_and_waits_for_the_daemon(run_module, host, monkeypatch):
    systemd_host(host)
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        (PROBE, 0, nix_daemon.PROBE_PATH + "\n", ""),
    ])
    result = run_module(nix_daemon.main, {})
    assert not result["failed"], result
    assert result["changed"] and result["service_manager"] == "systemd"
    assert result["commands"] == commands.calls and not commands.script
    assert result["ready_attempts"] == 1


def test_systemd_restart_also_starts_an_inactive_socket(run_module, host, monkeypatch):
    systemd_host(host)
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=inactive\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=inactive\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        ([SYSTEMCTL, "start", "nix-daemon.socket"], 0, "", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"state": "restarted"})
    assert result["changed"] and not commands.script


def test_systemd_started_socket_activated_and_listening_is_no_change(run_module, host, monkeypatch):
    systemd_host(host)
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "ActiveState=inactive\nLoadState=loaded\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"state": "started"})
    assert not result["failed"] and not result["changed"] and not commands.script


def test_systemd_started_starts_only_the_socket_when_socket_activated(run_module, host, monkeypatch):
    systemd_host(host)
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=inactive\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=inactive\n", ""),
        ([SYSTEMCTL, "start", "nix-daemon.socket"], 0, "", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"state": "started"})
    assert result["changed"] and not commands.script


def test_systemd_started_starts_the_service_without_socket_unit(run_module, host, monkeypatch):
    systemd_host(host)
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=failed\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=not-found\nActiveState=inactive\n", ""),
        ([SYSTEMCTL, "start", "nix-daemon.service"], 0, "", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"state": "started"})
    assert result["changed"] and not commands.script


def test_systemd_missing_unit_is_a_clear_error(run_module, host, monkeypatch):
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=not-found\nActiveState=inactive\n", ""),
    ])
    result = run_module(nix_daemon.main, {"service_manager": "systemd"})
    assert result["failed"] and "no nix-daemon.service" in result["msg"] and not commands.script


def test_systemd_restart_failure_reports_systemctl_error(run_module, host, monkeypatch):
    systemd_host(host)
    script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 1, "", "Access denied\n"),
        ([SYSTEMCTL, "status", "--no-pager", "--full", "--lines=30", "nix-daemon.service", "nix-daemon.socket"], 3, "", ""),
    ])
    result = run_module(nix_daemon.main, {})
    assert result["failed"] and "Access denied" in result["msg"]


def test_timeout_fails_with_the_daemon_error_and_status(run_module, host, monkeypatch):
    systemd_host(host)
    clock = [0.0]
    monkeypatch.setattr(nix_daemon, "monotonic", lambda: clock[0])
    monkeypatch.setattr(nix_daemon, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    refused = "error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Connection refused\n"
    status = "x nix-daemon.service - Nix Daemon\n   Active: failed (Result: exit-code)\nerror: syntax error in configuration line 'bad'\n"
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        (PROBE, 1, "", refused),
        (PROBE, 1, "", refused),
        (PROBE, 1, "", refused),
        ([SYSTEMCTL, "status", "--no-pager", "--full", "--lines=30", "nix-daemon.service", "nix-daemon.socket"],
         3, status, ""),
    ])
    result = run_module(nix_daemon.main, {"timeout": 2})
    assert result["failed"] and not commands.script
    assert "within 2 seconds" in result["msg"]
    assert "Connection refused" in result["msg"] and "syntax error in configuration line" in result["msg"]
    assert result["ready_attempts"] == 3
    # The probe is listed once although it ran three times.
    assert result["commands"].count(PROBE) == 1


def test_daemon_that_comes_up_late_is_waited_for(run_module, host, monkeypatch):
    systemd_host(host)
    clock = [0.0]
    monkeypatch.setattr(nix_daemon, "monotonic", lambda: clock[0])
    monkeypatch.setattr(nix_daemon, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        (PROBE, 1, "", "Connection refused"),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"timeout": 30})
    assert not result["failed"] and result["ready_attempts"] == 2


@pytest.mark.parametrize("label", ["org.nixos.nix-daemon", "systems.determinate.nix-daemon"])
def test_launchd_restart_kickstarts_the_installed_label(run_module, host, monkeypatch, label):
    darwin_host(host, monkeypatch, label)
    commands = script(monkeypatch, [
        ([LAUNCHCTL, "kickstart", "-k", f"system/{label}"], 0, "", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {})
    assert not result["failed"], result
    assert result["changed"] and result["service_manager"] == "launchd" and result["launchd_label"] == label
    assert not commands.script


def test_launchd_restart_loads_a_service_that_is_not_loaded(run_module, host, monkeypatch):
    label = "org.nixos.nix-daemon"
    darwin_host(host, monkeypatch, label)
    commands = script(monkeypatch, [
        ([LAUNCHCTL, "kickstart", "-k", f"system/{label}"], 113, "", "Could not find service"),
        ([LAUNCHCTL, "bootstrap", "system", f"/Library/LaunchDaemons/{label}.plist"], 0, "", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {})
    assert result["changed"] and not result["failed"] and not commands.script


def test_launchd_started_leaves_a_running_daemon_alone(run_module, host, monkeypatch):
    label = "systems.determinate.nix-daemon"
    darwin_host(host, monkeypatch, label)
    commands = script(monkeypatch, [
        ([LAUNCHCTL, "print", f"system/{label}"], 0, "system/x = {\n\tstate = running\n}\n", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"state": "started"})
    assert not result["changed"] and not commands.script


def test_launchd_started_kickstarts_a_stopped_daemon(run_module, host, monkeypatch):
    label = "org.nixos.nix-daemon"
    darwin_host(host, monkeypatch, label)
    commands = script(monkeypatch, [
        ([LAUNCHCTL, "print", f"system/{label}"], 0, "system/x = {\n\tstate = not running\n}\n", ""),
        ([LAUNCHCTL, "kickstart", f"system/{label}"], 0, "", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"state": "started"})
    assert result["changed"] and not commands.script


def test_nixos_is_refused_with_the_command_to_run(run_module, host, monkeypatch):
    (host / "etc").mkdir()
    (host / "etc/NIXOS").write_text("")
    commands = script(monkeypatch, [])
    result = run_module(nix_daemon.main, {})
    assert result["failed"] and "nixos-rebuild switch" in result["msg"]
    assert result["commands"] == [] and commands.calls == [] and not result["changed"]


def test_no_service_is_a_clear_error(run_module, host, monkeypatch):
    commands = script(monkeypatch, [])
    result = run_module(nix_daemon.main, {})
    assert result["failed"] and result["service_manager"] == "none"
    assert "no nix-daemon service found" in result["msg"] and commands.calls == []


def test_check_mode_restart_runs_nothing(run_module, host, monkeypatch):
    systemd_host(host)
    commands = script(monkeypatch, [])
    result = run_module(nix_daemon.main, {}, check_mode=True)
    assert result["changed"] and result["commands"] == [] and commands.calls == []


def test_check_mode_launchd_restart_runs_nothing(run_module, host, monkeypatch):
    darwin_host(host, monkeypatch, "org.nixos.nix-daemon")
    commands = script(monkeypatch, [])
    result = run_module(nix_daemon.main, {}, check_mode=True)
    assert result["changed"] and commands.calls == []


def test_check_mode_started_only_reads_state(run_module, host, monkeypatch):
    systemd_host(host)
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=inactive\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=inactive\n", ""),
    ])
    result = run_module(nix_daemon.main, {"state": "started"}, check_mode=True)
    assert result["changed"] and not commands.script and result["ready_attempts"] == 0


def test_store_query_bin_is_used_for_the_probe(run_module, host, monkeypatch):
    systemd_host(host)
    custom = "/opt/nix/bin/nix-store"
    script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        ([custom] + PROBE[1:], 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"store_query_bin": custom})
    assert not result["failed"]


def test_rollback_restores_files_and_restarts_on_them(run_module, host, monkeypatch, tmp_path):
    systemd_host(host)
    clock = [0.0]
    monkeypatch.setattr(nix_daemon, "monotonic", lambda: clock[0])
    monkeypatch.setattr(nix_daemon, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    conf = tmp_path / "nix.conf"
    conf.write_text("max-jobs = bad\n")
    backup = tmp_path / "nix.conf.1.2026-11-25@12:00:00~"
    backup.write_text("max-jobs = 4\n")
    dropin = tmp_path / "60-nix-remote-builders.conf"
    dropin.write_text("[Service]\nMemoryMax=1\n")
    rejected = "error: setting 'max-jobs' has invalid value 'bad'"
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        (PROBE, 1, "", rejected),
        (PROBE, 1, "", rejected),
        ([SYSTEMCTL, "status", "--no-pager", "--full", "--lines=30", "nix-daemon.service", "nix-daemon.socket"], 3, "failed", ""),
        ([SYSTEMCTL, "daemon-reload"], 0, "", ""),
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=failed\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"timeout": 1, "rollback": [
        {"path": str(conf), "backup": str(backup)},
        {"path": str(dropin)},
    ]})
    assert result["failed"] and not commands.script
    assert rejected in result["msg"] and "answers again on the previous configuration" in result["msg"]
    assert result["rolled_back"] == [str(conf), str(dropin)]
    assert conf.read_text() == "max-jobs = 4\n" and not dropin.exists() and backup.exists()


def test_rollback_that_does_not_help_says_so(run_module, host, monkeypatch, tmp_path):
    systemd_host(host)
    clock = [0.0]
    monkeypatch.setattr(nix_daemon, "monotonic", lambda: clock[0])
    monkeypatch.setattr(nix_daemon, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    conf = tmp_path / "machines"
    conf.write_text("new\n")
    refused = "Connection refused"
    script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        (PROBE, 1, "", refused),
        ([SYSTEMCTL, "status", "--no-pager", "--full", "--lines=30", "nix-daemon.service", "nix-daemon.socket"], 3, "", ""),
        ([SYSTEMCTL, "daemon-reload"], 0, "", ""),
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=failed\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        (PROBE, 1, "", refused),
    ])
    result = run_module(nix_daemon.main, {"timeout": 0, "rollback": [{"path": str(conf)}]})
    assert result["failed"] and "still does not answer" in result["msg"] and not conf.exists()


def test_unit_that_fails_to_start_is_rolled_back(run_module, host, monkeypatch, tmp_path):
    """A drop-in that systemd refuses (ExecStartPre=/bin/false) fails `systemctl restart` itself:
    that must roll back too, not stop at the systemctl error."""
    systemd_host(host)
    dropin = tmp_path / "60-nix-remote-builders.conf"
    dropin.write_text("[Service]\nExecStartPre=/bin/false\n")
    backup = tmp_path / "60-nix-remote-builders.conf.1.2026-11-25@12:00:00~"
    backup.write_text("[Service]\nMemoryMax=90%\n")
    refused = "Job for nix-daemon.service failed because the control process exited with error code."
    commands = script(monkeypatch, [
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 1, "", refused),
        ([SYSTEMCTL, "status", "--no-pager", "--full", "--lines=30", "nix-daemon.service", "nix-daemon.socket"], 3, "failed", ""),
        ([SYSTEMCTL, "daemon-reload"], 0, "", ""),
        (show("nix-daemon.service"), 0, "LoadState=loaded\nActiveState=failed\n", ""),
        (show("nix-daemon.socket"), 0, "LoadState=loaded\nActiveState=active\n", ""),
        ([SYSTEMCTL, "restart", "nix-daemon.service"], 0, "", ""),
        (PROBE, 0, "", ""),
    ])
    result = run_module(nix_daemon.main, {"rollback": [{"path": str(dropin), "backup": str(backup)}]})
    assert result["failed"] and not commands.script
    assert refused in result["msg"] and "answers again on the previous configuration" in result["msg"]
    assert dropin.read_text() == "[Service]\nMemoryMax=90%\n"
