"""Signing-mode plans over a configured fleet: site.yml --check --diff on local inventory hosts.

(a) A run that knows only some hosts' signing keys (--limit) keeps the keys nix.conf records for
    the hosts it left out, clients and builders alike, and changes nothing the full run would not.
(b) The client's signing key joins the administrator's extra-secret-key-files instead of
    replacing them, and is recorded under the collection's marker.
(c) A builder that was in signing mode under 0.1.0 and is now trusted drops the keys 0.1.0's
    state file recorded and its own secret key file.

Each host has its own nix.conf directory; the signing key paths are per-host extra vars (extra
vars beat the roles' vars, and are templated per host).
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from plan_run import failures, ran, run_plan, task
from test_linux_plan import linux_nix

ADMIN_KEY = "admin-1:4Rv0D5sVpQ2nLr3oZ1yKg8xHkBTn6WZ7vCMEqXe3hPc="
KEYS = {
    "b1": "b1-1:Qm2Wn8eRt4yU6iO0pA1sD3fG5hJ7kL9zX2cV4bN6mQ8=",
    "b2": "b2-1:Xk4Lp0aSd2fG4hJ6kL8zX0cV2bN4mQ6wE8rT0yU2iO4=",
    "c1": "c1-1:Fh3Lk8s1pO0yTq2wRn5vZb7XcJd9mG4eUa6iNtQHrYw=",
    "c2": "c2-1:Pz9Ox8Iw7Uv6Yt5Rs4Qr3Ep2Wo1Ai0Sd9Fg8Hj7Kl6=",
}
OLD_CLIENT_KEY = "old-1:Wc5Vb4Nm3Lk2Jh1Gf0Ds9Ap8Oi7Uy6Tr5Ee4Ww3Qq2="
MARKER = "# nix_remote.builders manages extra-trusted-public-keys: "


def per_host(values: dict) -> str:
    """A Jinja expression that gives each host its value of VALUES."""
    return "{{ %s[inventory_hostname] }}" % json.dumps(values)


def account():
    return {"exists": True, "uid": 999, "home": "/var/lib/remotebuild", "home_exists": True, "home_is_dir": True,
            "home_uid": 999, "processes": []}


def fleet(work, builder_conf: dict, trust: dict):
    """Hosts b1, b2 (builders), c1, c2 (clients), each with a key pair and nix.conf of its own."""
    dirs, secrets, states = {}, {}, {}
    for host in ("b1", "b2", "c1", "c2"):
        conf_dir = work / host
        conf_dir.mkdir()
        (conf_dir / "signing.sec").write_text(f"{host}-1:secret\n")
        (conf_dir / "signing.pub").write_text(KEYS[host] + "\n")
        (conf_dir / "nix.conf").write_text(builder_conf.get(host, "# the administrator's\nsandbox = true\n"))
        dirs[host], secrets[host], states[host] = conf_dir, str(conf_dir / "signing.sec"), str(conf_dir / "trust.json")
    hosts = {"b1": {"ansible_host": "192.0.2.31", "remote_builder_trust": trust["b1"]},
             "b2": {"ansible_host": "192.0.2.32", "remote_builder_trust": trust["b2"]}}
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_account_override": account()},
        "hosts": {h: {"remote_builder_nix_info_override": linux_nix("debian", str(dirs[h])),
                      "local_client_nix_info_override": linux_nix("debian", str(dirs[h]))} for h in dirs},
        "children": {"nix_builders": {"hosts": hosts}, "nix_clients": {"hosts": {"c1": {}, "c2": {}}}}}}
    extra = json.dumps({"__remote_builder_signing_key_path": per_host(secrets),
                        "__local_client_signing_key_path": per_host(secrets),
                        "__remote_builder_trust_state_path": per_host(states)})
    return dirs, inventory, extra


def snapshot(dirs):
    return {(h, p.name): p.read_bytes() for h, d in dirs.items() for p in d.iterdir()}


def recorded_conf(*hosts, admin=True):
    keys = " ".join(KEYS[h] for h in hosts)
    return ("# the administrator's\n" + MARKER + keys + "\n"
            + f"extra-trusted-public-keys = {ADMIN_KEY + ' ' if admin else ''}{keys}\n"
            + "# nix_remote.builders manages extra-secret-key-files: SECRET\nextra-secret-key-files = SECRET\n")


@pytest.fixture(scope="module")
def configured(tmp_path_factory):
    """A signing fleet as a full run left it: each builder trusts all four keys."""
    cache = {}

    def plan(*limit):
        if limit in cache:
            return cache[limit]
        work = tmp_path_factory.mktemp("signing-plan")
        conf = {b: recorded_conf("b1", "b2", "c1", "c2").replace("SECRET", str(work / b / "signing.sec"))
                for b in ("b1", "b2")}
        dirs, inventory, extra = fleet(work, conf, {"b1": "signing", "b2": "signing"})
        before = snapshot(dirs)
        results, run = run_plan(work, inventory, ("--check", "--diff", "-e", extra, *limit))
        assert snapshot(dirs) == before, "check mode changed a file"
        assert not failures(results), (failures(results), run.stderr[-3000:])
        cache[limit] = results
        return results
    return plan


def after(result):
    """The planned content of a module's --diff, with the file's directory taken out."""
    diff = result["diff"] if isinstance(result["diff"], dict) else result["diff"][0]
    return diff["after"].replace(result["path"].rsplit("/", 2)[0], "WORK")


def keys_edit(results, builder):
    conf = task(results[builder], "Write the builder's nix.conf settings")
    assert ran(conf)
    return conf, conf["list_items"]["extra-trusted-public-keys"]


def test_full_run_over_a_configured_signing_fleet_changes_no_key(configured):
    results = configured()
    for builder in ("b1", "b2"):
        conf, keys = keys_edit(results, builder)
        assert keys["removed"] == [] and keys["added"] == [], keys
        assert sorted(keys["managed"]) == sorted(KEYS.values())


@pytest.mark.parametrize("limit", ["b1,c1", "b1"])
def test_a_limited_run_keeps_the_keys_of_the_hosts_it_left_out(configured, limit):
    results = configured("--limit", limit)
    assert set(results) == set(limit.split(","))
    conf, keys = keys_edit(results, "b1")
    # c2 and b2 (and c1, when left out too) were not in the run: their recorded keys stay trusted.
    assert keys["removed"] == [], keys
    assert sorted(keys["items"]) == sorted([ADMIN_KEY, *KEYS.values()])
    assert sorted(keys["managed"]) == sorted(KEYS.values())
    # The same file as the full run would write (only the directory's name differs).
    full, _keys = keys_edit(configured(), "b1")
    assert after(conf) == after(full)


def test_a_client_that_left_the_fleet_loses_its_trust_in_a_limited_run(tmp_path_factory):
    """Keeping is for hosts of the groups this run left out, not for hosts that left the groups."""
    work = tmp_path_factory.mktemp("signing-plan-gone")
    conf = {"b1": recorded_conf("b1", "b2", "c1", "c2").replace(KEYS["c2"], OLD_CLIENT_KEY)
            .replace("SECRET", str(work / "b1" / "signing.sec"))}
    dirs, inventory, extra = fleet(work, conf, {"b1": "signing", "b2": "signing"})
    results, run = run_plan(work, inventory, ("--check", "--diff", "-e", extra, "--limit", "b1"))
    assert not failures(results), (failures(results), run.stderr[-3000:])
    _conf, keys = keys_edit(results, "b1")
    assert keys["removed"] == [OLD_CLIENT_KEY], keys
    assert ADMIN_KEY in keys["items"]


def test_the_client_key_joins_the_administrators_secret_key_files(tmp_path_factory):
    work = tmp_path_factory.mktemp("signing-plan-client")
    dirs, inventory, extra = fleet(work, {}, {"b1": "signing", "b2": "trusted"})
    (dirs["c1"] / "nix.conf").write_text("extra-secret-key-files = /etc/nix/admin-cache.sec\n")
    results, run = run_plan(work, inventory, ("--check", "--diff", "-e", extra, "--limit", "b1,c1"))
    assert not failures(results), (failures(results), run.stderr[-3000:])
    conf = task(results["c1"], "Point nix.conf at the machines file")
    files = conf["list_items"]["extra-secret-key-files"]
    assert files["items"] == ["/etc/nix/admin-cache.sec", str(dirs["c1"] / "signing.sec")], files
    assert files["managed"] == [str(dirs["c1"] / "signing.sec")]
    assert "# nix_remote.builders manages extra-secret-key-files: WORK/c1/signing.sec\n" in after(conf)


def test_a_0_1_0_signing_builder_switched_to_trusted_drops_its_old_keys(tmp_path_factory):
    work = tmp_path_factory.mktemp("signing-plan-upgrade")
    secret = work / "b2" / "signing.sec"
    # What 0.1.0 in signing mode left: unmarked keys and secret key file, and its state file.
    conf = {"b2": f"extra-trusted-public-keys = {ADMIN_KEY} {KEYS['c1']}\nextra-secret-key-files = {secret}\n"}
    dirs, inventory, extra = fleet(work, conf, {"b1": "trusted", "b2": "trusted"})
    (dirs["b2"] / "trust.json").write_text(json.dumps({"keys": [KEYS["c1"]]}))
    results, run = run_plan(work, inventory, ("--check", "--diff", "-e", extra, "--limit", "b2"))
    assert not failures(results), (failures(results), run.stderr[-3000:])
    conf_result, keys = keys_edit(results, "b2")
    assert keys["removed"] == [KEYS["c1"]] and keys["items"] == [ADMIN_KEY]
    assert conf_result["list_items"]["extra-secret-key-files"]["removed"] == [str(secret)]
    assert ran(task(results["b2"], "Retire the trust record of older versions"))


def test_nixos_hosts_sign_and_show_no_credential(tmp_path_factory):
    """NixOS: the client's module lists its signing key; credentials in settings never reach the output
    (the JSON callback prints every result whole, facts included, as -v does)."""
    work = tmp_path_factory.mktemp("signing-plan-nixos")
    dirs, inventory, extra = fleet(work, {}, {"b1": "signing", "b2": "trusted"})
    nixos_dir = work / "etc-nixos"
    nixos_dir.mkdir()
    (nixos_dir / "configuration.nix").write_text("{ ... }:\n{\n  imports = [ ];\n}\n")
    token = "github.com=ghp_NixosPlanToken0123456789abcdef"
    for host, hostvars in inventory["all"]["hosts"].items():
        nixos = linux_nix("nixos", str(dirs[host]))
        hostvars.update(remote_builder_nix_info_override=nixos, local_client_nix_info_override=nixos)
    inventory["all"]["vars"].update(
        remote_builder_nixos_config_dir=str(nixos_dir), local_client_nixos_config_dir=str(nixos_dir),
        remote_builder_nix_settings={"access-tokens": token}, local_client_nix_settings={"access-tokens": token})
    results, run = run_plan(work, inventory, ("--check", "--diff", "-e", extra, "--limit", "b1,c1"))
    assert not failures(results), (failures(results), run.stderr[-3000:])
    assert "ghp_NixosPlanToken" not in run.stdout + run.stderr
    module = task(results["c1"], "Write the client's NixOS module and import it from configuration.nix")
    assert re.search(r'extra-secret-key-files = \[\s*"WORK/c1/signing.sec"\s*\];', after(module)), after(module)
