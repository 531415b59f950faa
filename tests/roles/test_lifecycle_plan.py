"""Life-cycle plans (issue 13): site.yml --check over builders that exist already or are withdrawn.

(a) A build account made by the nix.dev tutorial (home /home/remotebuild, a lingering systemd
    manager, so usermod cannot change its home) keeps its home; an account with a placeholder home
    that must move while it has processes stops the run for that builder before anything changes,
    saying what to do.  The account as the host reports it comes from the role's test hook
    remote_builder_account_override.
(b) Withdrawing a signing builder removes its key pair and trust record and takes the role's keys
    out of nix.conf, leaving the administrator's, after nix-daemon restarted on the new nix.conf
    (it signs with the key until then).
(d) On NixOS, a rebuild owed by a run whose nixos-rebuild failed is planned again although the
    generated module is unchanged.
"""

from __future__ import annotations

import json
import sys

import pytest

from plan_run import failures, ran, run_plan, task
from test_linux_plan import linux_nix

ADMIN_KEY = "admin-1:4Rv0D5sVpQ2nLr3oZ1yKg8xHkBTn6WZ7vCMEqXe3hPc="
CLIENT_KEY = "client-1:Fh3Lk8s1pO0yTq2wRn5vZb7XcJd9mG4eUa6iNtQHrYw="
BUILDER_KEY = "builder-1:Qm2Wn8eRt4yU6iO0pA1sD3fG5hJ7kL9zX2cV4bN6mQ8="


def tutorial_account(**extra):
    """`useradd --system --user-group --create-home --home-dir /home/remotebuild`, with processes."""
    return dict({"exists": True, "uid": 999, "home": "/home/remotebuild", "home_exists": True, "home_is_dir": True,
                 "home_uid": 999, "processes": [4242, 4243]}, **extra)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    work = tmp_path_factory.mktemp("lifecycle-plan")
    conf_dir = work / "etc-nix"
    conf_dir.mkdir()
    secret = conf_dir / "signing.sec"
    trust = conf_dir / "trust.json"
    secret.write_text("builder-1:secret\n")
    (conf_dir / "signing.pub").write_text(BUILDER_KEY + "\n")
    trust.write_text(json.dumps({"managed_by": "nix_remote.builders remote_builder role", "keys": [CLIENT_KEY, BUILDER_KEY]}))
    (conf_dir / "nix.conf").write_text(
        "# the administrator's\n"
        "trusted-users = root\n"
        f"extra-trusted-public-keys = {ADMIN_KEY} {CLIENT_KEY} {BUILDER_KEY}\n"
        f"extra-secret-key-files = {secret}\n")
    before = {p.name: p.read_bytes() for p in conf_dir.iterdir()}
    nix = linux_nix("debian", str(conf_dir))
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix},
        "children": {
            "nix_builders": {"hosts": {
                "tutorial": {"ansible_host": "192.0.2.20", "remote_builder_account_override": tutorial_account()},
                "placeholder-busy": {"ansible_host": "192.0.2.21", "remote_builder_account_override": tutorial_account(
                    home="/nonexistent", home_exists=False, home_is_dir=False, home_uid=-1)},
                "placeholder-idle": {"ansible_host": "192.0.2.22", "remote_builder_account_override": tutorial_account(
                    home="/var/empty", home_uid=0, processes=[])},
                "withdrawn": {"ansible_host": "192.0.2.23", "nix_remote_state": "absent", "remote_builder_trust": "signing",
                              "remote_builder_account_override": tutorial_account()},
                "withdrawn-client": {"ansible_host": "192.0.2.24", "nix_remote_state": "absent", "remote_builder_trust": "signing",
                                     "remote_builder_account_override": {"exists": False}}}},
            "nix_clients": {"hosts": {"client": {}, "withdrawn-client": {}}}}}}
    extra = json.dumps({"__remote_builder_signing_key_path": str(secret), "__remote_builder_trust_state_path": str(trust)})
    results, run = run_plan(work, inventory, ("--check", "--diff", "-e", extra))
    assert {p.name: p.read_bytes() for p in conf_dir.iterdir()} == before, "check mode changed a file"
    return results, run, conf_dir


def test_tutorial_account_keeps_its_home(lifecycle):
    results, run, _conf_dir = lifecycle
    builder = results["tutorial"]
    assert not [f for f in failures(results) if f[0] == "tutorial"], (failures(results), run.stderr[-2000:])
    user = task(builder, "Create the build user")
    assert ran(user) and user["invocation"]["module_args"]["home"] == "/home/remotebuild"
    kept = task(builder, "Say that the existing account keeps its home")
    assert ran(kept) and "/home/remotebuild" in kept["msg"] and "usermod -d /var/lib/remotebuild -m remotebuild" in kept["msg"]
    assert not ran(task(builder, "Stop before moving the home of a build user that has processes"))


def test_placeholder_home_of_a_busy_account_stops_before_any_change(lifecycle):
    results, _run, _conf_dir = lifecycle
    builder = results["placeholder-busy"]
    failed = [(n, m) for h, n, m in failures(results) if h == "placeholder-busy"]
    assert [n.split(" : ")[-1] for n, _m in failed] == ["Stop before moving the home of a build user that has processes"]
    message = failed[0][1]
    for words in ("/nonexistent", "/var/lib/remotebuild", "PIDs 4242, 4243", "Nothing was changed",
                  "loginctl terminate-user remotebuild", "run again"):
        assert words in message, message
    # The failure came first: no task that changes the account ran.
    names = [n.split(" : ")[-1] for n, _r in builder]
    assert "Create the build user's group" not in names and "Create the build user" not in names


def test_placeholder_home_of_an_idle_account_moves(lifecycle):
    results, _run, _conf_dir = lifecycle
    builder = results["placeholder-idle"]
    assert not [f for f in failures(results) if f[0] == "placeholder-idle"]
    assert task(builder, "Create the build user")["invocation"]["module_args"]["home"] == "/var/lib/remotebuild"
    assert not ran(task(builder, "Say that the existing account keeps its home"))


def test_withdrawn_signing_builder_leaves_no_signing_state(lifecycle):
    results, run, conf_dir = lifecycle
    builder = results["withdrawn"]
    assert not [f for f in failures(results) if f[0] == "withdrawn"], (failures(results), run.stderr[-2000:])
    conf = task(builder, "Remove the build user and the role's keys from the trust settings")
    assert ran(conf) and conf["changed"]
    keys = conf["list_items"]["extra-trusted-public-keys"]
    assert sorted(keys["removed"]) == sorted([CLIENT_KEY, BUILDER_KEY]) and keys["items"] == [ADMIN_KEY]
    secret_files = conf["list_items"]["extra-secret-key-files"]
    assert secret_files["removed"] == [str(conf_dir / "signing.sec")] and secret_files["items"] == []
    removed = task(builder, "Remove the builder's signing key pair and the record of the keys it trusted")
    assert sorted(r["path"] for r in removed["results"] if r["changed"]) == sorted(
        str(conf_dir / name) for name in ("signing.sec", "signing.pub", "trust.json"))
    # The tutorial's account keeps its home to the end: its authorized_keys goes from there.
    keys = task(builder, "Remove the build user's authorized keys")
    assert keys["invocation"]["module_args"]["path"] == "/home/remotebuild/.ssh/authorized_keys"


def test_withdrawn_builder_that_is_a_client_too_takes_the_shared_key_pair_with_it(lifecycle):
    """nix_remote_state withdraws the host from both roles: no client signs with the pair any more."""
    results, run, conf_dir = lifecycle
    builder = results["withdrawn-client"]
    conf = task(builder, "Remove the build user and the role's keys from the trust settings")
    assert conf["list_items"]["extra-trusted-public-keys"]["items"] == [ADMIN_KEY]
    assert conf["list_items"]["extra-secret-key-files"]["items"] == [], conf["list_items"]
    removed = task(builder, "Remove the builder's signing key pair and the record of the keys it trusted")
    assert [r["item"] for r in removed["results"]] == [str(conf_dir / n) for n in ("signing.sec", "signing.pub", "trust.json")]


def test_the_daemon_restarts_before_the_signing_key_goes(lifecycle):
    """The running nix-daemon signs with the key until it has restarted on nix.conf without it."""
    results, _run, _conf_dir = lifecycle
    names = [n.split(" : ")[-1] for n, _r in results["withdrawn"]]
    restart = names.index("Restart nix-daemon on the builder")
    assert restart < names.index("Remove the builder's signing key pair and the record of the keys it trusted"), names


# --- (d) NixOS: a failed rebuild is retried ---------------------------------------------------------


@pytest.fixture(scope="module")
def nixos(tmp_path_factory):
    """Plan a NixOS builder twice over a module already written: without and with the marker."""
    work = tmp_path_factory.mktemp("nixos-retry")
    nixos_dir = work / "etc-nixos"
    nixos_dir.mkdir()
    (nixos_dir / "configuration.nix").write_text("{ ... }:\n{\n  imports = [ ./hardware-configuration.nix ];\n}\n")
    nix = linux_nix("nixos", str(work / "etc-nix"))
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "remote_builder_nixos_config_dir": str(nixos_dir)},
        "children": {"nix_builders": {"hosts": {"builder": {"ansible_host": "192.0.2.10"}}}, "nix_clients": {"hosts": {}}}}}
    first, run = run_plan(work, inventory, ("--check", "--diff"))
    assert not failures(first), (failures(first), run.stderr[-2000:])
    # What the real run would have written before its nixos-rebuild failed.
    for diff in task(first["builder"], "Write the builder's NixOS module and import it from configuration.nix")["diff"]:
        path = diff["after_header"].rsplit(" (", 1)[0]
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(diff["after"])
    plans = {}
    for pending in (False, True):
        marker = nixos_dir / ".nix-remote-builder.nix.rebuild-pending"
        if pending:
            marker.write_text("owed\n")
        results, run = run_plan(work, inventory, ("--check", "--diff"))
        assert not failures(results), (failures(results), run.stderr[-2000:])
        plans[pending] = results["builder"]
    return plans


def test_module_unchanged_and_no_rebuild_owed_plans_no_rebuild(nixos):
    builder = nixos[False]
    module = task(builder, "Write the builder's NixOS module and import it from configuration.nix")
    assert not module["changed"] and not module["rebuild_required"]
    rebuild = task(builder, "Apply the configuration with nixos-rebuild switch")
    assert rebuild.get("skip_reason") == "Conditional result was False", rebuild


def test_rebuild_owed_by_a_failed_run_is_planned_again(nixos):
    builder = nixos[True]
    module = task(builder, "Write the builder's NixOS module and import it from configuration.nix")
    assert not module["changed"] and module["rebuild_required"] and module["rebuild_pending"]
    rebuild = task(builder, "Apply the configuration with nixos-rebuild switch")
    assert rebuild.get("skip_reason") != "Conditional result was False", rebuild
    forget = task(builder, "Forget the rebuild owed")
    assert ran(forget) and forget["changed"]
