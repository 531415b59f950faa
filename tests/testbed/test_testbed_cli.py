"""testbed.py without hosts: argument parsing, inventory, addresses, image keys, error messages."""

from __future__ import annotations

import dataclasses
import json

import pytest
import testbed
import yaml


def test_host_spec_with_and_without_port():
    assert testbed.parse_host_spec("builder1=bookworm") == testbed.HostSpec("builder1", "bookworm", 22)
    assert testbed.parse_host_spec("b2=trixie-upstream:2222") == testbed.HostSpec("b2", "trixie-upstream", 2222)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("builder1", "expected HOST=RELEASE"),
        ("b=buster", "unknown release 'buster'"),
        ("b=sid:0", "port '0'"),
        ("b=sid:70000", "port '70000'"),
        ("B_1=sid", "name 'B_1'"),
    ],
)
def test_bad_host_spec_says_what_is_wrong(text, complaint):
    with pytest.raises(testbed.TestbedError, match=complaint):
        testbed.parse_host_spec(text)


def test_groups_merge_and_refuse_unknown_hosts():
    groups = testbed.parse_groups(["nix_builders=b1,b2", "nix_clients=c1", "nix_builders=b2"], ["b1", "b2", "c1"])
    assert groups == {"nix_builders": ["b1", "b2"], "nix_clients": ["c1"]}
    with pytest.raises(testbed.TestbedError, match="'x' is not one of the hosts"):
        testbed.parse_groups(["nix_builders=x"], ["b1"])


def test_molecule_platforms_become_hosts_and_groups():
    platforms = [
        {"name": "b1", "release": "trixie", "port": 2222, "groups": ["nix_builders"]},
        {"name": "b2", "release": "trixie-upstream", "groups": ["nix_builders"]},
        {"name": "c1", "release": "trixie", "groups": ["nix_clients"]},
    ]
    hosts, groups, emulate = testbed.parse_platforms(json.dumps(platforms))
    assert hosts == ["b1=trixie:2222", "b2=trixie-upstream", "c1=trixie"]
    assert groups == ["nix_builders=b1,b2", "nix_clients=c1"]
    assert emulate == []
    platforms[0]["emulate"] = ["aarch64-linux", "riscv64-linux"]
    assert testbed.parse_platforms(json.dumps(platforms))[2] == ["b1=aarch64-linux,riscv64-linux"]
    with pytest.raises(testbed.TestbedError, match="item 1: needs `name` and `release`"):
        testbed.parse_platforms('[{"name": "x"}]')


def test_emulate_names_a_host_and_systems_qemu_has():
    assert testbed.parse_emulate(["b1=aarch64-linux", "b1=aarch64-linux,riscv64-linux"], ["b1", "c1"]) == {
        "b1": ["aarch64-linux", "riscv64-linux"]}
    with pytest.raises(testbed.TestbedError, match="HOST one of"):
        testbed.parse_emulate(["x=aarch64-linux"], ["b1"])
    with pytest.raises(testbed.TestbedError, match="cannot emulate 'mips-linux'"):
        testbed.parse_emulate(["b1=mips-linux"], ["b1"])


def test_inventory_has_connection_and_release_variables(tmp_path):
    bed = testbed.Testbed(name="demo", repo="/r", state_dir=str(tmp_path), runtime_dir=str(tmp_path),
                          groups={"nix_builders": ["b"], "nix_clients": ["c"]})
    bed.hosts = [testbed.Host("b", "bookworm", "127.0.0.2", 22, nix_version="2.8.0"),
                 testbed.Host("c", "sid", "127.0.0.3", 2200, nix_version="2.34.8")]
    path = testbed.write_inventory(bed, tmp_path / "id_ed25519", tmp_path / "known_hosts")
    inventory = yaml.safe_load(path.read_text())
    c = inventory["all"]["hosts"]["c"]
    assert c["ansible_host"] == "127.0.0.3"
    assert c["ansible_port"] == 2200
    assert c["ansible_user"] == "root"
    assert c["ansible_ssh_private_key_file"] == str(tmp_path / "id_ed25519")
    assert c["ansible_python_interpreter"] == "/usr/bin/python3"
    assert c["testbed_release"] == "sid"
    assert c["testbed_nix_version"] == "2.34.8"
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in c["ansible_ssh_common_args"]
    assert inventory["all"]["children"]["nix_builders"]["hosts"] == {"b": {}}
    assert inventory["all"]["children"]["nix_clients"]["hosts"] == {"c": {}}


def test_addresses_skip_taken_ones_and_the_machines_own():
    addresses = testbed.allocate_addresses(3, {"127.0.0.2", "127.0.0.4"})
    assert addresses == ["127.0.0.3", "127.0.0.5", "127.0.0.6"]
    pool = set(testbed.ADDRESS_POOL)
    assert "127.0.0.1" not in pool
    assert not any(address.startswith("127.0.1.") for address in pool)
    assert len(pool) == len(testbed.ADDRESS_POOL)


def test_image_key_follows_the_recipe(monkeypatch):
    release = testbed.RELEASES["trixie"]
    key = testbed.image_key(release)
    assert key == testbed.image_key(release)
    assert key.startswith("trixie-")
    monkeypatch.setattr(testbed, "PACKAGES", (*testbed.PACKAGES, "curl"))
    assert testbed.image_key(release) != key
    monkeypatch.undo()
    upstream = dataclasses.replace(release, name="trixie", upstream_layout=True)
    assert testbed.image_key(upstream) != key


def test_missing_tools_name_the_apt_packages(monkeypatch):
    monkeypatch.setattr(testbed.shutil, "which", lambda tool: None)
    with pytest.raises(testbed.TestbedError) as error:
        testbed.require_tools(["systemd-nspawn", "mmdebstrap", "ssh"])
    assert "apt-get install -y mmdebstrap openssh-client systemd-container" in str(error.value)


def test_instance_config_for_molecule(tmp_path):
    bed = testbed.Testbed(name="m", repo="/r", state_dir=str(tmp_path), runtime_dir=str(tmp_path))
    bed.hosts = [testbed.Host("b", "bookworm", "127.0.0.2", 2222)]
    target = tmp_path / "ephemeral/instance_config.yml"
    testbed.write_instance_config(bed, target)
    assert yaml.safe_load(target.read_text()) == [
        {"instance": "b", "address": "127.0.0.2", "user": "root", "port": 2222,
         "identity_file": str(tmp_path / "id_ed25519")},
    ]
