"""nix_detect: version parsing, config output, binary lookup, OS and service detection, host keys."""

from __future__ import annotations

import base64
import os

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import nix_detect


@pytest.mark.parametrize(
    ("output", "version", "implementation"),
    [
        ("nix-store (Nix) 2.8.0\n", "2.8.0", "nix"),
        ("nix (Nix) 2.26.3\n", "2.26.3", "nix"),
        ("nix (Determinate Nix 3.8.5) 2.30.2\n", "2.30.2", "determinate"),
        ("nix (Lix, like Nix) 2.91.1\nSystem type: x86_64-linux\n", "2.91.1", "lix"),
        ("nix-store (Nix) 2.26.0pre20241010_abcdef0\n", "2.26.0pre20241010_abcdef0", "nix"),
        ("no version here\n", None, "nix"),
    ],
)
def test_parse_nix_version(output, version, implementation):
    assert nix_detect.parse_nix_version(output) == version
    assert nix_detect.nix_implementation(output) == implementation


@pytest.mark.parametrize(
    ("version", "expected"),
    [("2.26.3", (2, 26, 3)), ("2.4pre20210601", (2, 4)), ("2.26.0pre2024", (2, 26, 0)), (None, ()), ("x", ())],
)
def test_nix_version_tuple(version, expected):
    assert nix_detect.nix_version_tuple(version) == expected


def test_config_show_command_follows_the_2_20_rename_and_2_4_flag():
    flag = ["--extra-experimental-features", "nix-command"]
    assert nix_detect.config_show_argv("/n/nix", "2.3.16") == [["/n/nix", "show-config"]]
    assert nix_detect.config_show_argv("/n/nix", "2.8.0") == [
        ["/n/nix", *flag, "show-config"], ["/n/nix", *flag, "config", "show"]]
    assert nix_detect.config_show_argv("/n/nix", "2.20.0") == [
        ["/n/nix", *flag, "config", "show"], ["/n/nix", *flag, "show-config"]]
    # Lix numbers itself 2.90+ but forked at 2.18: try both, new spelling first.
    assert nix_detect.config_show_argv("/n/nix", "2.91.1", "lix")[1] == ["/n/nix", *flag, "show-config"]


def test_parse_config_show_keeps_values_with_spaces_and_empty_values():
    output = (
        "allowed-users = *\n"
        "build-users-group = nixbld\n"
        "builders = \n"
        "extra-platforms = i686-linux\n"
        "system-features = benchmark big-parallel kvm nixos-test uid-range\n"
        "trusted-users = root\n"
        "some-flag =\n"
    )
    settings = nix_detect.parse_config_show(output)
    assert settings["system-features"] == "benchmark big-parallel kvm nixos-test uid-range"
    assert settings["builders"] == ""
    assert settings["some-flag"] == ""
    assert settings["extra-platforms"] == "i686-linux"


def test_parse_nix_string_and_split_list():
    assert nix_detect.parse_nix_string('"aarch64-darwin"\n') == "aarch64-darwin"
    assert nix_detect.parse_nix_string("error: x") is None
    assert nix_detect.split_list(" a  b a\tc ") == ["a", "b", "c"]
    assert nix_detect.split_list(None) == []


def _exe(root, path):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write("#!/bin/sh\n")
    os.chmod(full, 0o755)


def test_find_binary_prefers_the_stable_profile_path_over_path(tmp_path):
    _exe(tmp_path, "/nix/var/nix/profiles/default/bin/nix-daemon")
    _exe(tmp_path, "/opt/bin/nix-daemon")
    found = nix_detect.find_binary("nix-daemon", "/opt/bin:/usr/bin", str(tmp_path))
    assert found == "/nix/var/nix/profiles/default/bin/nix-daemon"


def test_find_binary_uses_path_and_extra_dirs_and_skips_non_executables(tmp_path):
    _exe(tmp_path, "/opt/bin/nix-store")
    assert nix_detect.find_binary("nix-store", "/opt/bin", str(tmp_path)) == "/opt/bin/nix-store"
    _exe(tmp_path, "/root/.nix-profile/bin/nix")
    assert nix_detect.find_binary("nix", "", str(tmp_path), ("/root/.nix-profile/bin",)) == "/root/.nix-profile/bin/nix"
    plain = tmp_path / "usr/bin/nix-build"
    plain.parent.mkdir(parents=True)
    plain.write_text("not executable")
    assert nix_detect.find_binary("nix-build", "", str(tmp_path)) is None


def test_find_binary_ssh_client_directories(tmp_path):
    """The OpenSSH client: the system directories before the Nix ones, then PATH."""
    _exe(tmp_path, "/run/current-system/sw/bin/ssh")
    _exe(tmp_path, "/usr/bin/ssh")
    _exe(tmp_path, "/opt/bin/ssh-keygen")
    dirs = nix_detect.SSH_CLIENT_DIRS
    assert dirs[:4] == ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
    assert nix_detect.find_binary("ssh", "/opt/bin", str(tmp_path), known_dirs=dirs) == "/usr/bin/ssh"
    assert nix_detect.find_binary("ssh-keygen", "/opt/bin", str(tmp_path), known_dirs=dirs) == "/opt/bin/ssh-keygen"
    assert nix_detect.find_binary("ssh-keygen", "", str(tmp_path), known_dirs=dirs) is None
    # Nix's own order is unchanged: the NixOS system profile first.
    assert nix_detect.find_binary("ssh", "", str(tmp_path)) == "/run/current-system/sw/bin/ssh"


def test_nixos_detection_by_marker_or_os_release(tmp_path):
    assert not nix_detect.is_nixos(str(tmp_path))
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('NAME="Debian GNU/Linux"\nID=debian\n')
    assert not nix_detect.is_nixos(str(tmp_path))
    (tmp_path / "etc/os-release").write_text('NAME=NixOS\nID="nixos"\nVERSION_ID="25.05"\n')
    assert nix_detect.is_nixos(str(tmp_path))
    (tmp_path / "etc/os-release").write_text("ID=debian\n")
    (tmp_path / "etc/NIXOS").write_text("")
    assert nix_detect.is_nixos(str(tmp_path))


def test_service_manager_detection(tmp_path):
    root = str(tmp_path)
    assert nix_detect.detect_service_manager(False, True, root) == ("nixos", None)
    assert nix_detect.detect_service_manager(False, False, root) == ("none", None)
    (tmp_path / "usr/lib/systemd/system").mkdir(parents=True)
    (tmp_path / "usr/lib/systemd/system/nix-daemon.service").write_text("[Service]\n")
    # A unit file alone is not enough: systemd must be running (sd_booted).
    assert nix_detect.detect_service_manager(False, False, root) == ("none", None)
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    assert nix_detect.detect_service_manager(False, False, root) == ("systemd", None)


def test_launchd_label_prefers_determinate(tmp_path):
    root = str(tmp_path)
    assert nix_detect.detect_service_manager(True, False, root) == ("none", None)
    daemons = tmp_path / "Library/LaunchDaemons"
    daemons.mkdir(parents=True)
    (daemons / "org.nixos.nix-daemon.plist").write_text("<plist/>")
    assert nix_detect.detect_service_manager(True, False, root) == ("launchd", "org.nixos.nix-daemon")
    (daemons / "systems.determinate.nix-daemon.plist").write_text("<plist/>")
    assert nix_detect.detect_service_manager(True, False, root) == ("launchd", "systems.determinate.nix-daemon")


def test_parse_meminfo():
    assert nix_detect.parse_meminfo("MemFree: 1 kB\nMemTotal:       24594136 kB\n") == 24594136 * 1024
    assert nix_detect.parse_meminfo("nothing\n") is None


KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIGx3oAiZMGgcmEBT0zeNY6yvQD9l4aKEDtcl2tG9Vkjy"


def test_ssh_host_key_drops_comment_and_encodes_type_and_key():
    key = nix_detect.ssh_host_key(f"ssh-ed25519 {KEY} root@builder\n")
    assert key["type"] == "ssh-ed25519"
    assert key["public_key"] == f"ssh-ed25519 {KEY}"
    # Nix decodes column 8 into "<host> <decoded>\n" as a known_hosts line.
    assert base64.b64decode(key["base64"]).decode() == f"ssh-ed25519 {KEY}"
    assert "\n" not in key["base64"]
    assert nix_detect.ssh_host_key(f"ssh-ed25519 {KEY}") == key


def test_ssh_host_key_rejects_garbage():
    assert nix_detect.ssh_host_key("") is None
    assert nix_detect.ssh_host_key("ssh-ed25519 not*base64 x") is None


def test_custom_conf_path_resolves_relative_includes():
    includes = [(False, "other.conf"), (True, "nix.custom.conf")]
    assert nix_detect.custom_conf_path("/etc/nix/nix.conf", includes) == "/etc/nix/nix.custom.conf"
    assert nix_detect.custom_conf_path("/etc/nix/nix.conf", [(True, "/etc/nix/sub/nix.custom.conf")]) == \
        "/etc/nix/sub/nix.custom.conf"
    assert nix_detect.custom_conf_path("/etc/nix/nix.conf", [(False, "machines.conf")]) is None
