"""The fleet binary cache's planning (module_utils/binary_cache.py): the upload command, nix-cache-info,
the export other hosts read, and the substituter items they get."""

from __future__ import annotations

import shlex

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import binary_cache as bc
from ansible_collections.nix_remote.builders.plugins.module_utils.builder_export import authorized_keys_file

PUBLIC = "cache-1:" + "A" * 43 + "="
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM root@cache"


def export(**overrides):
    values = dict(name="cache", url="http://10.0.0.5:5000/", public_key_text=PUBLIC + "\n", ssh_host="10.0.0.5",
                  ssh_port=22, user="nix-cache", host_key=HOST_KEY, priority=30)
    values.update(overrides)
    return bc.cache_export(**values)


def test_the_upload_command_serves_the_cache_directory_signed_with_the_cache_key():
    command = bc.upload_command("/usr/bin/nix-store", "/var/cache/nix-fleet-cache", "/etc/nix/c.sec")
    # What sshd's shell runs: one --store argument holding the whole URL, '&' and '?' included.
    assert shlex.split(command) == ["/usr/bin/nix-store", "--store",
                                    "file:///var/cache/nix-fleet-cache?secret-key=/etc/nix/c.sec&compression=zstd",
                                    "--serve", "--write"]
    # In authorized_keys it sits in double quotes: it must hold none.
    line = authorized_keys_file([{"source": "b1", "key": "ssh-ed25519 AAAA b1"}], command, role="binary_cache").splitlines()
    assert line[0].startswith("# Managed by nix_remote.builders (binary_cache role)")
    assert line[2] == f'restrict,command="{command}" ssh-ed25519 AAAA b1'


@pytest.mark.parametrize("args, field", [
    (("/usr/bin/nix-store", "/var/cache/my cache", "/etc/nix/c.sec"), "binary_cache_dir"),
    (("/usr/bin/nix-store", "relative", "/etc/nix/c.sec"), "binary_cache_dir"),
    (("/usr/bin/nix-store", "/var/cache/a?b", "/etc/nix/c.sec"), "binary_cache_dir"),
    (("/usr/bin/nix-store", "/var/cache/c", "/etc/nix/it's.sec"), "secret key"),
    (("nix-store", "/var/cache/c", "/etc/nix/c.sec"), "nix-store path"),
])
def test_paths_that_would_break_the_command_are_refused(args, field):
    with pytest.raises(bc.CacheError, match=field):
        bc.upload_command(*args)


def test_compression_and_priority_are_checked():
    with pytest.raises(bc.CacheError, match="binary_cache_compression 'gzip'"):
        bc.store_url("/c", "/k", "gzip")
    assert bc.store_url("/c", "/k", "none").endswith("compression=none")
    with pytest.raises(bc.CacheError, match="binary_cache_priority"):
        bc.cache_info(-1)
    assert bc.cache_info(30) == "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"


@pytest.mark.parametrize("name, ok", [("cache.example.org-1", True), ("c", True), ("a:b", False), ("a b", False), ("", False)])
def test_key_names(name, ok):
    if ok:
        assert bc.key_name(name) == name
    else:
        with pytest.raises(bc.CacheError, match="binary_cache_key_name"):
            bc.key_name(name)


def test_the_export_holds_what_hosts_need_and_pins_the_host_key_with_its_port():
    default = export()
    assert default["url"] == "http://10.0.0.5:5000" and default["public_key"] == PUBLIC
    assert default["known_hosts_line"] == "10.0.0.5 " + " ".join(HOST_KEY.split()[:2])
    assert export(ssh_port=2222)["known_hosts_line"].startswith("[10.0.0.5]:2222 ssh-ed25519 ")
    with pytest.raises(bc.CacheError, match="not a Nix public key"):
        export(public_key_text="-----BEGIN")
    with pytest.raises(bc.CacheError, match="binary_cache_url"):
        export(url="file:///var/cache")


def test_fleet_caches_skip_hosts_without_an_export_or_withdrawn():
    hostvars = {"c2": {"binary_cache_export": export(name="c2", url="http://c2:5000")},
                "c1": {"binary_cache_export": export(name="c1", url="http://c1:5000")},
                "gone": {"binary_cache_export": dict(export(name="gone"), state="absent")},
                "new": {}}
    caches = bc.fleet_caches(["new", "c2", "gone", "c1"], hostvars)
    assert [c["name"] for c in caches] == ["c1", "c2"]
    assert bc.substituter_items(caches) == {
        "extra-substituters": {"present": ["http://c1:5000", "http://c2:5000"]},
        "extra-trusted-public-keys": {"present": [PUBLIC, PUBLIC]},
    }
    # No cache: the items are empty, so the marker's record removes what an earlier run added.
    assert bc.substituter_items([]) == {"extra-substituters": {"present": []}, "extra-trusted-public-keys": {"present": []}}


def test_verify_rows_say_what_holds_and_what_to_do():
    from ansible_collections.nix_remote.builders.plugins.module_utils.verify_report import cache_rows, report_json

    cache = export()
    ok = {"status": 200, "content": "StoreDir: /nix/store\n"}
    rows = cache_rows("b1", [cache], [ok], [{"rc": 0}], "cache.nixos.org-1:x " + PUBLIC,
                      upload={"path": "/nix/store/x", "found": True, "seconds": 4})
    assert [(r["builder"], r["ok"]) for r in rows] == [("(cache cache)", True), ("(cache cache)", True)]
    assert rows[0]["result"] == "http://10.0.0.5:5000 answers and its key cache-1 is trusted"
    assert rows[1]["result"] == "a path built here reached the cache in 4 s"
    assert report_json(rows, "now")["builder_checks"] == 2
    down = cache_rows("c1", [cache], [{"status": -1, "msg": "Connection refused"}], [{"rc": 0}], PUBLIC)
    assert not down[0]["ok"] and "Connection refused" in down[0]["result"] and "systemctl status nginx" in down[0]["result"]
    unlisted = cache_rows("c1", [cache], [ok], [{"rc": 1}], PUBLIC)
    assert not unlisted[0]["ok"] and "effective substituters lack it" in unlisted[0]["result"]
    untrusted = cache_rows("c1", [cache], [ok], [{"rc": 0}], "cache.nixos.org-1:x")
    assert not untrusted[0]["ok"] and "does not trust cache's key (cache-1)" in untrusted[0]["result"]
    lost = cache_rows("b1", [cache], [ok], [{"rc": 0}], PUBLIC, upload={"path": "/nix/store/y", "found": False})
    assert not lost[1]["ok"] and "journalctl -u nix-fleet-cache-uploader" in lost[1]["result"]


def test_a_cache_without_an_export_in_this_run_is_unknown_not_gone():
    hostvars = {"c1": {"binary_cache_export": export(name="c1")}, "limited-out": {"ansible_host": "10.0.0.9"},
                "withdrawn": {"nix_remote_state": "absent"}}
    assert bc.unknown_caches(["withdrawn", "limited-out", "c1"], hostvars) == ["limited-out"]
    assert bc.unknown_caches([], hostvars) == []
