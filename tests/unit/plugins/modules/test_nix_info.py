"""nix_info on fake host trees: each installation layout, fallbacks, host keys, groups, check mode."""

from __future__ import annotations

import base64
import os

import pytest

from ansible.module_utils import basic

from ansible_collections.nix_remote.builders.plugins.modules import nix_info

FLAG = ["--extra-experimental-features", "nix-command"]
ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIGx3oAiZMGgcmEBT0zeNY6yvQD9l4aKEDtcl2tG9Vkjy"
RSA = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"
CONFIG_SHOW = (
    "build-users-group = nixbld\n"
    "builders = \n"
    "extra-platforms = i686-linux\n"
    "max-jobs = 1\n"
    "min-free = 1073741824\n"
    "access-tokens = github.com=ghp_secret\n"
    "system = x86_64-linux\n"
    "system-features = benchmark big-parallel kvm nixos-test uid-range\n"
)
BIN_NAMES = ("nix", "nix-store", "nix-daemon", "nix-build", "nix-instantiate")


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
        if kwargs.get("environ_update"):
            # Only the system configuration counts, as for the daemon.
            assert kwargs["environ_update"]["NIX_CONFIG"] == ""
        return rc, out, err


class FakeGroup:
    def __init__(self, name, gid, members):
        self.gr_name, self.gr_gid, self.gr_mem = name, gid, members


class FakeUser:
    def __init__(self, name, gid):
        self.pw_name, self.pw_gid = name, gid


class Uname:
    def __init__(self, sysname):
        self.sysname = sysname


class Host:
    """A fake file system root plus the commands and name service the module will see."""

    def __init__(self, root, monkeypatch):
        self.root = root
        self.monkeypatch = monkeypatch
        self.groups = {}
        self.users = []
        monkeypatch.setattr(nix_info, "ROOT", str(root))
        monkeypatch.setattr(nix_info, "sysname", lambda: "Linux")
        monkeypatch.setattr(nix_info.grp, "getgrgid", self._getgrgid)
        monkeypatch.setattr(nix_info.grp, "getgrnam", self._getgrnam)
        monkeypatch.setattr(nix_info.pwd, "getpwall", lambda: list(self.users))
        monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        monkeypatch.setenv("HOME", "/root")
        self.file("/proc/meminfo", "MemTotal:       16384000 kB\nMemFree: 1 kB\n")

    def _getgrgid(self, gid):
        for group in self.groups.values():
            if group.gr_gid == gid:
                return group
        raise KeyError(gid)

    def _getgrnam(self, name):
        return self.groups[name]

    def real(self, path):
        return os.path.join(str(self.root), path.lstrip("/"))

    def file(self, path, text="", mode=0o644):
        real = self.real(path)
        os.makedirs(os.path.dirname(real), exist_ok=True)
        with open(real, "w") as handle:
            handle.write(text)
        os.chmod(real, mode)

    def dir(self, path):
        os.makedirs(self.real(path), exist_ok=True)

    def binaries(self, directory):
        for name in BIN_NAMES:
            self.file(f"{directory}/{name}", "#!/bin/sh\n", 0o755)

    def systemd(self, unit_dir="/usr/lib/systemd/system"):
        self.dir("/run/systemd/system")
        self.file(f"{unit_dir}/nix-daemon.service", "[Service]\n")
        self.file(f"{unit_dir}/nix-daemon.socket", "[Socket]\n")

    def socket_dir(self, group=None):
        self.dir("/nix/var/nix/daemon-socket")
        if group:
            # Any non-root gid stands for the group; as root, give the directory a made-up one.
            gid = 998 if os.geteuid() == 0 else os.getegid()
            if os.geteuid() == 0:
                os.chown(self.real("/nix/var/nix/daemon-socket"), -1, gid)
            self.groups[group] = FakeGroup(group, gid, [])

    def build_users(self, count, group="nixbld", gid=30000):
        members = [f"nixbld{i}" for i in range(1, count + 1)]
        self.groups[group] = FakeGroup(group, gid, members[: count // 2])
        # The other half only have it as their primary group, as the installer's users do.
        self.users += [FakeUser(name, gid) for name in members] + [FakeUser("alice", 100)]

    def ssh_client(self, directory):
        for name in ("ssh", "ssh-keygen"):
            self.file(f"{directory}/{name}", "#!/bin/sh\n", 0o755)

    def host_keys(self):
        self.file("/etc/ssh/ssh_host_rsa_key.pub", f"ssh-rsa {RSA} root@builder\n")
        self.file("/etc/ssh/ssh_host_ed25519_key.pub", f"ssh-ed25519 {ED25519} root@builder\n")

    def commands(self, script):
        commands = Commands(script)
        self.monkeypatch.setattr(basic.AnsibleModule, "run_command",
                                 lambda module, args, **kwargs: commands(args, **kwargs))
        return commands


@pytest.fixture
def host(tmp_path, monkeypatch):
    return Host(tmp_path, monkeypatch)


def cpu_count():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


BINFMT_AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POCF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def test_debian_package_on_bookworm(run_module, host):
    host.binaries("/usr/bin")
    host.systemd()
    host.socket_dir(group="nix-users")
    host.file("/etc/nix/nix.conf", "build-users-group = nixbld\n")
    host.file("/dev/kvm", "", 0o666)
    # Debian's qemu-user-static registered aarch64 (with F); a disabled arm entry runs nothing.
    host.file("/proc/sys/fs/binfmt_misc/register", "")
    host.file("/proc/sys/fs/binfmt_misc/status", "enabled\n")
    host.file("/proc/sys/fs/binfmt_misc/qemu-aarch64", BINFMT_AARCH64)
    host.file("/proc/sys/fs/binfmt_misc/qemu-arm", "disabled\n" + BINFMT_AARCH64.split("\n", 1)[1])
    host.build_users(10)
    host.host_keys()
    host.ssh_client("/usr/bin")
    commands = host.commands([
        (["/usr/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.8.0\n", ""),
        (["/usr/bin/nix", *FLAG, "show-config"], 0, CONFIG_SHOW, ""),
    ])
    result = run_module(nix_info.main, {})
    assert not result["failed"], result
    assert not commands.script
    assert not result["changed"]
    assert result["installed"] and result["multi_user"]
    assert result["version"] == "2.8.0" and result["implementation"] == "nix"
    # 2.8 reads nothing from ssh before its protocol: reuse is safe; no port in the URI yet.
    assert result["capabilities"]["ssh_reuse"] is True and "2.8.0" in result["capabilities"]["ssh_reuse_reason"]
    assert result["capabilities"]["port_in_uri"] is False and result["capabilities"]["host_key_column"] is True
    assert result["paths"] == {
        "nix": "/usr/bin/nix", "nix_store": "/usr/bin/nix-store", "nix_daemon": "/usr/bin/nix-daemon",
        "nix_build": "/usr/bin/nix-build", "nix_instantiate": "/usr/bin/nix-instantiate",
        "ssh": "/usr/bin/ssh", "ssh_keygen": "/usr/bin/ssh-keygen"}
    assert result["layout"] == "debian"
    assert result["service_manager"] == "systemd" and result["launchd_label"] is None
    assert result["daemon_socket_group"] == "nix-users"
    assert result["system"] == "x86_64-linux"
    assert result["extra_platforms"] == ["i686-linux"]
    assert result["systems"] == ["x86_64-linux", "i686-linux"]
    assert result["system_features"] == ["benchmark", "big-parallel", "kvm", "nixos-test", "uid-range"]
    assert result["kvm"] is True
    assert [(e["name"], e["enabled"], e["system"], e["fix_binary"]) for e in result["binfmt"]] == [
        ("qemu-aarch64", True, "aarch64-linux", True), ("qemu-arm", False, "aarch64-linux", True)]
    assert result["binfmt_systems"] == ["aarch64-linux"]
    # Only the settings the checks compare against; never one that may hold a secret.
    assert result["settings"] == {"max-jobs": "1", "min-free": "1073741824"}
    assert "ghp_secret" not in repr(result)
    assert result["cores"] == cpu_count()
    assert result["memory_bytes"] == 16384000 * 1024
    assert result["conf_dir"] == "/etc/nix"
    assert result["conf_path"] == result["conf_edit_path"] == "/etc/nix/nix.conf"
    assert result["build_users_group"] == "nixbld" and result["build_users"] == 10
    # Only the listed members, which nix-daemon builds as; primary-group-only users are counted above.
    assert result["build_users_group_members"] == ["nixbld1", "nixbld2", "nixbld3", "nixbld4", "nixbld5"]
    assert result["is_nixos"] is False and result["is_darwin"] is False
    keys = result["ssh_host_keys"]
    assert [key["type"] for key in keys] == ["ssh-ed25519", "ssh-rsa"]
    assert keys[0]["public_key"] == f"ssh-ed25519 {ED25519}"
    assert keys[0]["path"] == "/etc/ssh/ssh_host_ed25519_key.pub"
    assert base64.b64decode(keys[0]["base64"]).decode() == f"ssh-ed25519 {ED25519}"


def test_upstream_installer_on_2_26_uses_config_show(run_module, host):
    profile = "/nix/var/nix/profiles/default/bin"
    host.binaries(profile)
    host.systemd(unit_dir="/etc/systemd/system")
    host.socket_dir()
    host.file("/etc/nix/nix.conf", "build-users-group = nixbld\n")
    host.build_users(32)
    commands = host.commands([
        ([f"{profile}/nix-store", "--version"], 0, "nix-store (Nix) 2.26.3\n", ""),
        ([f"{profile}/nix", *FLAG, "config", "show"], 0, CONFIG_SHOW.replace(" kvm", ""), ""),
    ])
    result = run_module(nix_info.main, {})
    assert not commands.script
    assert result["layout"] == "upstream" and result["version"] == "2.26.3"
    assert result["capabilities"]["ssh_reuse"] is True and result["capabilities"]["config_show"] is True
    assert result["paths"]["nix_daemon"] == f"{profile}/nix-daemon"
    assert result["daemon_socket_group"] is None
    # No /dev/kvm: no kvm, and the reported features are what Nix computed.
    assert result["kvm"] is False and "kvm" not in result["system_features"]
    assert result["build_users"] == 32
    assert result["ssh_host_keys"] == []


def test_determinate_follows_nix_custom_conf(run_module, host):
    profile = "/nix/var/nix/profiles/default/bin"
    host.binaries(profile)
    host.file("/usr/local/bin/determinate-nixd", "#!/bin/sh\n", 0o755)
    host.systemd(unit_dir="/etc/systemd/system")
    host.socket_dir()
    host.file("/etc/nix/nix.conf", "# Generated by Determinate Nix Installer.\n!include nix.custom.conf\n")
    host.commands([
        ([f"{profile}/nix-store", "--version"], 0, "nix-store (Determinate Nix 3.8.5) 2.30.2\n", ""),
        ([f"{profile}/nix", *FLAG, "config", "show"], 0, CONFIG_SHOW, ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["layout"] == "determinate" and result["implementation"] == "determinate"
    assert result["conf_path"] == "/etc/nix/nix.conf"
    assert result["conf_edit_path"] == "/etc/nix/nix.custom.conf"


def test_official_installer_with_custom_conf_is_upstream(run_module, host):
    profile = "/nix/var/nix/profiles/default/bin"
    host.binaries(profile)
    host.systemd(unit_dir="/etc/systemd/system")
    host.socket_dir()
    host.file("/etc/nix/nix.conf", "build-users-group = nixbld\n!include nix.custom.conf\n")
    host.commands([
        ([f"{profile}/nix-store", "--version"], 0, "nix-store (Nix) 2.33.3\n", ""),
        ([f"{profile}/nix", *FLAG, "config", "show"], 0, CONFIG_SHOW, ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["layout"] == "upstream"
    assert result["conf_edit_path"] == "/etc/nix/nix.custom.conf"


def test_nixos(run_module, host):
    host.binaries("/run/current-system/sw/bin")
    host.file("/etc/NIXOS")
    host.file("/etc/os-release", "NAME=NixOS\nID=nixos\n")
    host.ssh_client("/run/current-system/sw/bin")
    host.systemd(unit_dir="/etc/systemd/system")
    host.socket_dir()
    host.file("/etc/nix/nix.conf", "build-users-group = nixbld\n")
    host.commands([
        (["/run/current-system/sw/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.28.4\n", ""),
        (["/run/current-system/sw/bin/nix", *FLAG, "config", "show"], 0, CONFIG_SHOW, ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["is_nixos"] and result["layout"] == "nixos"
    assert result["service_manager"] == "nixos" and result["multi_user"]
    assert result["paths"]["nix_daemon"] == "/run/current-system/sw/bin/nix-daemon"
    assert result["paths"]["ssh"] == "/run/current-system/sw/bin/ssh"
    assert result["paths"]["ssh_keygen"] == "/run/current-system/sw/bin/ssh-keygen"
    # The group exists in nix.conf but not in this host's name service.
    assert result["build_users_group"] == "nixbld" and result["build_users_group_members"] == []


@pytest.mark.parametrize("label", ["org.nixos.nix-daemon", "systems.determinate.nix-daemon"])
def test_macos_upstream_and_determinate_labels(run_module, host, label):
    host.monkeypatch.setattr(nix_info, "sysname", lambda: "Darwin")
    profile = "/nix/var/nix/profiles/default/bin"
    host.binaries(profile)
    host.socket_dir()
    host.file(f"/Library/LaunchDaemons/{label}.plist", "<plist/>")
    host.file("/dev/kvm", "", 0o666)  # nothing on macOS looks at it
    host.commands([
        ([f"{profile}/nix-store", "--version"], 0, "nix-store (Nix) 2.26.3\n", ""),
        ([f"{profile}/nix", *FLAG, "config", "show"], 0,
         "system = aarch64-darwin\nextra-platforms = x86_64-darwin aarch64-darwin\n"
         "system-features = apple-virt benchmark big-parallel nixos-test\n", ""),
        (["/usr/sbin/sysctl", "-n", "hw.memsize"], 0, "34359738368\n", ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["is_darwin"] and result["service_manager"] == "launchd"
    assert result["launchd_label"] == label
    assert result["layout"] == ("upstream" if label.startswith("org") else "determinate")
    assert result["systems"] == ["aarch64-darwin", "x86_64-darwin"]
    assert result["kvm"] is False and "kvm" not in result["system_features"]
    assert result["memory_bytes"] == 34359738368


def test_nix_darwin(run_module, host):
    host.monkeypatch.setattr(nix_info, "sysname", lambda: "Darwin")
    host.binaries("/run/current-system/sw/bin")
    host.file("/run/current-system/darwin-version", "25.05.abcdef")
    host.file("/Library/LaunchDaemons/org.nixos.nix-daemon.plist", "<plist/>")
    host.socket_dir()
    host.commands([
        (["/run/current-system/sw/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.28.4\n", ""),
        (["/run/current-system/sw/bin/nix", *FLAG, "config", "show"], 0, "system = aarch64-darwin\n", ""),
        (["/usr/sbin/sysctl", "-n", "hw.memsize"], 0, "8589934592\n", ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["layout"] == "nix_darwin" and result["launchd_label"] == "org.nixos.nix-daemon"


def test_no_nix_is_not_an_error(run_module, host):
    commands = host.commands([])
    host.host_keys()
    result = run_module(nix_info.main, {})
    assert not result["failed"] and commands.calls == []
    assert result["installed"] is False and result["multi_user"] is False
    assert result["version"] is None and result["system"] is None
    # No Nix, no version: nothing may be assumed, reuse included.
    assert result["capabilities"]["ssh_reuse"] is False and not any(
        value for key, value in result["capabilities"].items() if key != "ssh_reuse_reason")
    assert result["layout"] == "unknown" and result["service_manager"] == "none"
    assert set(result["paths"].values()) == {None}
    assert result["build_users_group"] is None and result["build_users"] == 0
    assert result["build_users_group_members"] == []
    # Host facts still come back: a role can say which host lacks Nix and what it is.
    assert len(result["ssh_host_keys"]) == 2


def test_single_user_install(run_module, host):
    host.binaries("/root/.nix-profile/bin")
    host.commands([
        (["/root/.nix-profile/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.26.3\n", ""),
        (["/root/.nix-profile/bin/nix", *FLAG, "config", "show"], 0, "build-users-group = \nsystem = x86_64-linux\n", ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["installed"] and not result["multi_user"]
    assert result["layout"] == "single_user" and result["service_manager"] == "none"
    assert result["build_users_group"] is None


def test_config_show_failure_falls_back_to_current_system(run_module, host):
    host.binaries("/usr/bin")
    host.systemd()
    host.socket_dir()
    host.file("/dev/kvm", "", 0o666)
    error = "error: 'show-config' is not a recognised command\n"
    commands = host.commands([
        (["/usr/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.8.0\n", ""),
        (["/usr/bin/nix", *FLAG, "show-config"], 1, "", error),
        (["/usr/bin/nix", *FLAG, "config", "show"], 1, "", error),
        (["/usr/bin/nix-instantiate", "--eval", "-E", "builtins.currentSystem"], 0, '"x86_64-linux"\n', ""),
    ])
    result = run_module(nix_info.main, {})
    assert not commands.script
    assert result["system"] == "x86_64-linux" and result["systems"] == ["x86_64-linux"]
    assert result["system_features"] == ["benchmark", "big-parallel", "kvm", "nixos-test"]
    assert any("show-config" in warning for warning in result["warnings"])
    # Without Nix's word, nix.conf says nothing either: the installer default.
    assert result["build_users_group"] == "nixbld"


def test_broken_nix_conf_is_reported_with_file_and_line(run_module, host):
    host.binaries("/usr/bin")
    host.file("/etc/nix/nix.conf", "build-users-group = nixbld\nmax-jobs=4\n")
    host.commands([
        (["/usr/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.8.0\n", ""),
        (["/usr/bin/nix", *FLAG, "show-config"], 1, "", "error: syntax error in configuration line 'max-jobs=4'"),
        (["/usr/bin/nix", *FLAG, "config", "show"], 1, "", "error: syntax error in configuration line 'max-jobs=4'"),
        (["/usr/bin/nix-instantiate", "--eval", "-E", "builtins.currentSystem"], 1, "", "error: syntax error"),
    ])
    result = run_module(nix_info.main, {})
    assert result["failed"]
    assert "/etc/nix/nix.conf, line 2" in result["msg"] and result["line"] == 2


def test_check_mode_reports_the_same(run_module, host):
    host.binaries("/usr/bin")
    script = [
        (["/usr/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.8.0\n", ""),
        (["/usr/bin/nix", *FLAG, "show-config"], 0, CONFIG_SHOW, ""),
    ]
    host.commands(script)
    normal = run_module(nix_info.main, {})
    host.commands(script)
    checked = run_module(nix_info.main, {}, check_mode=True)
    assert checked == normal and not checked["changed"]


def test_build_users_group_from_nix_conf_when_nix_cannot_tell(run_module, host):
    host.binaries("/usr/bin")
    host.systemd()
    host.socket_dir()
    host.file("/etc/nix/nix.conf", "build-users-group = nixbuilders\n")
    host.build_users(4, group="nixbuilders", gid=30100)
    host.commands([
        (["/usr/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.8.0\n", ""),
        (["/usr/bin/nix", *FLAG, "show-config"], 1, "", "error"),
        (["/usr/bin/nix", *FLAG, "config", "show"], 1, "", "error"),
        (["/usr/bin/nix-instantiate", "--eval", "-E", "builtins.currentSystem"], 0, '"x86_64-linux"\n', ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["build_users_group"] == "nixbuilders" and result["build_users"] == 4
    assert result["build_users_group_members"] == ["nixbld1", "nixbld2"]


def test_ssh_client_fixed_directories_first_then_path(run_module, host):
    """/usr/bin before the Nix profile and PATH; PATH finds what the fixed list misses; else null."""
    profile = "/nix/var/nix/profiles/default/bin"
    host.binaries(profile)
    host.systemd(unit_dir="/etc/systemd/system")
    host.socket_dir()
    host.ssh_client(profile)
    host.file("/usr/bin/ssh", "#!/bin/sh\n", 0o755)
    host.file("/opt/openssh/bin/ssh-keygen", "#!/bin/sh\n", 0o755)
    host.file("/usr/local/bin/ssh-keygen", "not executable", 0o644)
    host.monkeypatch.setenv("PATH", "/opt/openssh/bin:/usr/bin")
    script = [
        ([f"{profile}/nix-store", "--version"], 0, "nix-store (Nix) 2.26.3\n", ""),
        ([f"{profile}/nix", *FLAG, "config", "show"], 0, CONFIG_SHOW, ""),
    ]
    host.commands(script)
    result = run_module(nix_info.main, {})
    assert result["paths"]["ssh"] == "/usr/bin/ssh"
    # The fixed list's Nix profile comes before PATH.
    assert result["paths"]["ssh_keygen"] == f"{profile}/ssh-keygen"
    os.remove(host.real(f"{profile}/ssh-keygen"))
    host.commands(script)
    assert run_module(nix_info.main, {})["paths"]["ssh_keygen"] == "/opt/openssh/bin/ssh-keygen"
    host.monkeypatch.setenv("PATH", "relative/bin")
    host.commands(script)
    assert run_module(nix_info.main, {})["paths"]["ssh_keygen"] is None


def test_ssh_client_on_macos(run_module, host):
    host.monkeypatch.setattr(nix_info, "sysname", lambda: "Darwin")
    profile = "/nix/var/nix/profiles/default/bin"
    host.binaries(profile)
    host.socket_dir()
    host.ssh_client("/usr/bin")
    host.file("/Library/LaunchDaemons/org.nixos.nix-daemon.plist", "<plist/>")
    host.groups["nixbld"] = FakeGroup("nixbld", 350, ["_nixbld1", "_nixbld2", "_nixbld3", "_nixbld2"])
    host.commands([
        ([f"{profile}/nix-store", "--version"], 0, "nix-store (Nix) 2.24.10\n", ""),
        ([f"{profile}/nix", *FLAG, "config", "show"], 0, "system = aarch64-darwin\nbuild-users-group = nixbld\n", ""),
        (["/usr/sbin/sysctl", "-n", "hw.memsize"], 0, "8589934592\n", ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["paths"]["ssh"] == "/usr/bin/ssh" and result["paths"]["ssh_keygen"] == "/usr/bin/ssh-keygen"
    # In the name service's order, a member listed twice (two sources) once.
    assert result["build_users_group_members"] == ["_nixbld1", "_nixbld2", "_nixbld3"]
    assert result["build_users"] == 3


def test_build_users_group_without_members(run_module, host):
    host.binaries("/usr/bin")
    host.systemd()
    host.socket_dir()
    host.groups["nixbld"] = FakeGroup("nixbld", 30000, [])
    host.commands([
        (["/usr/bin/nix-store", "--version"], 0, "nix-store (Nix) 2.26.3\n", ""),
        (["/usr/bin/nix", *FLAG, "config", "show"], 0, CONFIG_SHOW, ""),
    ])
    result = run_module(nix_info.main, {})
    assert result["build_users_group"] == "nixbld"
    assert result["build_users_group_members"] == [] and result["build_users"] == 0
