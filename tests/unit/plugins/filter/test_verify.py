# -*- coding: utf-8 -*-
# Copyright (c) nix_remote.builders contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The verify_checks, verify_rows and verify_table filters of playbooks/verify.yml.

Each diagnosis hint gets a case with the error text Nix or ssh prints, fed through the row of
a store check that failed; then the other outcomes of a row, and the table.
"""

from __future__ import annotations

import hashlib
import json
from xml.etree import ElementTree

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.filter.verify_checks import (
    FilterModule as ChecksFilters,
    verify_checks,
)
from ansible_collections.nix_remote.builders.plugins.filter.verify_rows import (
    FilterModule as RowsFilters,
    verify_rows,
)
from ansible_collections.nix_remote.builders.plugins.filter.verify_report import (
    FilterModule as ReportFilters,
)
from ansible_collections.nix_remote.builders.plugins.filter.verify_report import verify_report as report_filter
from ansible_collections.nix_remote.builders.plugins.filter.verify_table import (
    FilterModule as TableFilters,
    verify_table,
)
from ansible_collections.nix_remote.builders.plugins.module_utils import verify_report

URI = "ssh-ng://remotebuild@192.0.2.10"
OUT = "/nix/store/0c6a9s7z3q1j9k8l0m2n4p6r8t0v2x4z-nix-remote-builders-verify-x"


def record(name="b1", uri=URI, public_host_key="QUJD", trust="trusted", systems=("x86_64-linux",)):
    value = {"name": name, "uri": uri, "source": "inventory",
             "machine": {"uri": uri, "ssh_key": "/root/.ssh/k", "public_host_key": public_host_key,
                         "systems": list(systems)}}
    if trust is not None:
        value["trust"] = trust
    return value


def test_the_filters_are_registered_under_their_names():
    assert ChecksFilters().filters() == {"verify_checks": verify_checks}
    assert RowsFilters().filters() == {"verify_rows": verify_rows}
    assert TableFilters().filters() == {"verify_table": verify_table}


# --- checks -----------------------------------------------------------------------------------

def test_a_check_has_the_machines_line_the_store_uri_and_a_new_nonce():
    machines = "# other\n%s-other x86_64-linux - 1 1 - - -\n%s x86_64-linux /root/.ssh/k 2 1 kvm - QUJD\n" % (URI, URI)
    [check] = verify_checks([record()], machines, "20261202120000000000", "client")
    digest = hashlib.sha1(b"client-b1").hexdigest()[:12]
    assert check == {
        "name": "b1", "uri": URI, "line": URI + " x86_64-linux /root/.ssh/k 2 1 kvm - QUJD",
        "store": URI + "?ssh-key=/root/.ssh/k&base64-ssh-public-host-key=QUJD",
        "systems": ["x86_64-linux"], "features": [], "mandatory": [], "trust": "trusted",
        "nonce": "nix-remote-builders-verify-20261202120000000000-" + digest,
    }


def test_a_uri_with_parameters_gets_more_and_no_column_8_means_no_host_key_parameter():
    uri = URI + "?remote-program=/nix/var/nix/profiles/default/bin/nix-daemon"
    [check] = verify_checks([record(uri=uri, public_host_key="", trust=None)], uri + "\tx86_64-linux", "1", "c")
    assert check["store"] == uri + "&ssh-key=/root/.ssh/k"
    assert check["line"] == uri + "\tx86_64-linux"
    assert check["trust"] == "trusted"


def test_a_builder_missing_from_the_machines_file_has_an_empty_line():
    [check] = verify_checks([record()], "ssh-ng://remotebuild@192.0.2.100 x86_64-linux\n", "1", "c")
    assert check["line"] == ""
    assert verify_checks([record()], "", "1", "c")[0]["line"] == ""


def test_records_without_machine_are_named():
    with pytest.raises(AnsibleFilterError, match="verify_checks"):
        verify_checks([{"name": "b1", "uri": URI}], "", "1", "c")


# --- rows ---------------------------------------------------------------------------------------

def check(**changes):
    value = {"name": "b1", "uri": URI, "line": URI + " x86_64-linux - 1 1 - - -", "store": URI + "?ssh-key=/k",
             "systems": ["x86_64-linux", "i686-linux"], "trust": "trusted", "nonce": "n"}
    value.update(changes)
    return value


def ping(rc=0, stdout="Store URL: ssh-ng://remotebuild@192.0.2.10\nVersion: 2.26.3\nTrusted: 1\n", stderr=""):
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "item": check()}


def build(system, rc=0, stderr="", c=None):
    return {"rc": rc, "stderr": stderr, "stdout_lines": [OUT + "-" + system] if rc == 0 else [],
            "item": [c or check(), system]}


def found(build_result, rc=0):
    return {"rc": rc, "item": build_result}


def row(c=None, p=None, builds=None, founds=None):
    c = c or check()
    builds = [build(s, c=c) for s in c["systems"]] if builds is None else builds
    founds = [found(b) for b in builds if b["rc"] == 0] if founds is None else founds
    [result] = verify_rows([c], [p or ping()], builds, founds, "client")
    assert result["client"] == "client" and result["builder"] == c["name"]
    return result["ok"], result["result"]


# The error text Nix or ssh prints for each hint.
HINT_CASES = [
    ("Host key verification failed.\r\nerror: cannot connect to 'remotebuild@192.0.2.10'",
     "host key mismatch: the builder does not present the key pinned in /etc/ssh/ssh_known_hosts (and machines column 8)"),
    ("@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @",
     "host key mismatch: the builder does not present the key pinned in /etc/ssh/ssh_known_hosts; if its key"),
    ("remotebuild@192.0.2.10: Permission denied (publickey).",
     "permission denied: the builder does not accept this client's key"),
    ("error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Permission denied",
     "socket permission: the build user cannot open nix-daemon's socket"),
    ("cannot connect to /nix/var/nix/daemon-socket/socket: Permission denied",
     "socket permission: the build user cannot open nix-daemon's socket"),
    ("bash: line 1: nix-daemon: command not found", "nix-daemon not found on the builder"),
    ("sh: 1: nix-daemon: not found", "nix-daemon not found on the builder"),
    ("sh: 1: nix-store: not found", "nix-store not found on the builder"),
    ("error: path '/nix/store/abc-x.drv' lacks a signature by a trusted key", "not trusted: the builder refuses unsigned paths"),
    ("cannot add path '/nix/store/abc-x' because it lacks a valid signature", "not trusted: the builder refuses unsigned paths"),
    ("error: you are not privileged to build input-addressed derivations",
     "not trusted: the builder does not let the build user build"),
    ("ssh: connect to host 192.0.2.10 port 22: Connection refused", "builder unreachable: nothing listens for SSH"),
    ("ssh: connect to host 192.0.2.10 port 22: Connection timed out", "builder unreachable: SSH connection timed out"),
    ("ssh: connect to host 192.0.2.10 port 22: No route to host", "builder unreachable: no route to host"),
    ("ssh: Could not resolve hostname builder: Name or service not known",
     "builder unreachable: its host name does not resolve"),
    ("error: executable 'ssh' not found", "ssh missing on the client: install openssh-client"),
    ("error: unable to execute 'ssh': No such file or directory", "ssh missing on the client: install openssh-client"),
    ("error: derivation needs required system feature 'kvm'", "missing system feature"),
    ("error: a 'x86_64-linux' with features {kvm} is required to build '/nix/store/abc-x.drv', but I am a 'x86_64-linux'",
     "missing system feature"),
    ("error: unable to start any build; either increase '--max-jobs' or enable remote builds.",
     "no builder took the build: its system or features do not match, or it was unreachable"),
    ("error: failed to find a machine for remote build!", "no builder took the build: its system or features do not match"),
]


def test_every_hint_has_a_case_in_its_order():
    needles = [needle for needle, _hint in verify_report.HINTS]
    assert [[n for n in needles if n in text.lower()][0] for text, _expected in HINT_CASES] == needles


@pytest.mark.parametrize("stderr, hint", HINT_CASES, ids=[n for n, _h in verify_report.HINTS])
def test_a_failed_store_check_is_diagnosed(stderr, hint):
    ok, result = row(p=ping(rc=1, stdout="", stderr="some context\n" + stderr + "\n"))
    assert not ok
    assert result.startswith(hint)


@pytest.mark.parametrize("stderr, hint", HINT_CASES, ids=[n for n, _h in verify_report.HINTS])
def test_a_failed_build_is_diagnosed_with_its_system(stderr, hint):
    c = check()
    builds = [build("x86_64-linux", c=c), build("i686-linux", rc=1, stderr=stderr, c=c)]
    ok, result = row(c, builds=builds)
    assert not ok
    assert result.startswith("i686-linux: " + hint)


def test_every_hint_is_found_whatever_its_case():
    for needle, hint in verify_report.HINTS:
        assert verify_report.diagnose("x " + needle.upper() + " y", 1) == hint


def test_the_first_hint_wins():
    stderr = "Host key verification failed.\nssh: connect to host b port 22: Connection refused"
    assert verify_report.diagnose(stderr, 255).startswith("host key mismatch")


def test_a_timeout_without_a_known_text():
    assert row(p=ping(rc=124, stdout="", stderr="")) == (False, "timed out: the builder did not answer within the time limit")


def test_a_known_text_beats_the_timeout():
    assert row(p=ping(rc=124, stderr="Connection timed out"))[1] == "builder unreachable: SSH connection timed out"


def test_an_unknown_error_shows_its_last_line():
    assert row(p=ping(rc=1, stderr="warning: x\nerror: something new happened\n\n")) == (
        False, "failed: error: something new happened")


def test_an_unknown_error_without_text_shows_the_exit_code():
    assert row(p=ping(rc=3, stdout="", stderr="  \n")) == (False, "failed: exit code 3")
    assert verify_report.diagnose(None, 3) == "failed: exit code 3"


def test_a_long_last_line_is_cut_at_a_word_as_jinja_truncate_does():
    words = " ".join(["word%03d" % i for i in range(40)])
    result = verify_report.diagnose("error: " + words, 1)
    assert result.startswith("failed: error: word000") and result.endswith("...")
    assert len(result) <= len("failed: ") + 160
    assert verify_report.truncate("x" * 165) == "x" * 165
    assert verify_report.truncate("x" * 166) == "x" * 157 + "..."


def test_no_machines_line_comes_first():
    assert row(check(line="")) == (False, "no entry for %s in /etc/nix/machines: run site.yml" % URI)


def test_a_builder_that_does_not_trust_the_build_user():
    assert row(p=ping(stdout="Trusted: 0\n")) == (
        False, "not trusted: the builder does not trust the build user; add it to trusted-users (run site.yml)")


def test_a_signing_builder_need_not_trust_the_build_user():
    c = check(trust="signing", systems=["x86_64-linux"])
    assert row(c, p=ping(stdout="Trusted: 0\n")) == (
        True, "OK: x86_64-linux built there, untrusted, signed uploads (%s-x86_64-linux)" % OUT)


def test_the_trust_line_may_come_on_stderr():
    assert row(p=ping(stdout="", stderr="Trusted:   0"))[0] is False


def test_an_output_missing_from_the_builder_store():
    c = check()
    builds = [build(s, c=c) for s in c["systems"]]
    assert row(c, builds=builds, founds=[found(builds[0]), found(builds[1], rc=1)]) == (
        False, "built, but %s-i686-linux is not in the builder's store: the build ran elsewhere" % OUT)


def test_every_system_built_there_on_a_trusting_builder():
    assert row() == (True, "OK: x86_64-linux,i686-linux built there, trusted (%s-x86_64-linux)" % OUT)


def test_a_store_that_does_not_say_whether_it_trusts():
    assert row(p=ping(stdout="Store URL: x\n")) == (True, "OK: x86_64-linux,i686-linux built there (%s-x86_64-linux)" % OUT)


def test_skipped_builds_are_not_failures():
    c = check(systems=["x86_64-linux"])
    builds = [build("x86_64-linux", c=c), {"skipped": True, "item": [c, "x86_64-linux"]}]
    assert row(c, builds=builds, founds=[found(builds[0])])[0] is True


def test_results_are_matched_to_their_builder():
    c1, c2 = check(name="b1", systems=["x86_64-linux"]), check(name="b2", systems=["x86_64-linux"])
    builds = [build("x86_64-linux", c=c1), build("x86_64-linux", rc=1, stderr="Connection refused", c=c2)]
    rows = verify_rows([c1, c2], [ping(), ping()], builds, [found(builds[0])], "client")
    assert [(r["builder"], r["ok"]) for r in rows] == [("b1", True), ("b2", False)]
    assert rows[1]["result"] == "x86_64-linux: builder unreachable: nothing listens for SSH at its address and port"


def test_a_client_without_builders_gets_one_failed_row():
    assert verify_rows([], [], [], [], "client") == [
        {"client": "client", "builder": "-", "ok": False,
         "result": "no builders configured by the role on this client: run site.yml"}]


def test_results_that_do_not_match_the_checks_are_named():
    with pytest.raises(AnsibleFilterError, match="verify_rows"):
        verify_rows([check()], [], [], [], "client")


# --- the table ---------------------------------------------------------------------------------

def test_the_table_gathers_every_host_and_marks_a_host_that_failed_early():
    hostvars = {
        "client-long-name": {"__local_client_verify_rows": [
            {"client": "client-long-name", "builder": "b1", "ok": True, "result": "OK: x"}]},
        "c2": {},
    }
    report = verify_table(["client-long-name", "c2"], hostvars)
    assert report["rows"] == [
        {"client": "client-long-name", "builder": "b1", "ok": True, "result": "OK: x"},
        {"client": "c2", "builder": "-", "ok": False,
         "result": "not verified: this host failed before the checks (see its error above)"}]
    assert report["lines"] == [
        "CLIENT            BUILDER  RESULT",
        "client-long-name  b1       OK: x",
        "c2                -        not verified: this host failed before the checks (see its error above)",
    ]


def test_the_table_of_no_hosts_is_its_header():
    assert verify_table([], {}) == {"rows": [], "lines": ["CLIENT  BUILDER  RESULT"]}


# --------------------------------------------------------------- connection reuse row

REASON_ON = "Nix 2.26.3 checks for a running master first (2.17 and later)"
REASON_OFF = ("Nix 2.16.1 waits for ssh's `started` line on a reused connection, which never prints it "
              "(NixOS/nix#8329; fixed in 2.17): builds would hang")


@pytest.mark.parametrize(("configured", "safe", "reason", "text"), [
    (True, True, REASON_ON, "ssh connection reuse on: " + REASON_ON),
    (False, False, REASON_OFF, "ssh connection reuse off: " + REASON_OFF),
    (True, False, REASON_OFF, "ssh connection reuse on although " + REASON_OFF + " (forced by local_client_ssh_multiplexing)"),
    (False, True, REASON_ON, "ssh connection reuse off (local_client_ssh_multiplexing: false), although " + REASON_ON),
])
def test_the_reuse_row_says_on_or_off_and_why(configured, safe, reason, text):
    c = check()
    builds = [build(s, c=c) for s in c["systems"]]
    rows = verify_rows([c], [ping()], builds, [found(b) for b in builds], "client",
                       {"configured": configured, "safe": safe, "reason": reason})
    assert [r["builder"] for r in rows] == ["b1", "(ssh)"]
    assert rows[1] == {"client": "client", "builder": "(ssh)", "ok": True, "result": text}


def test_no_reuse_row_without_builders_or_without_reuse_facts():
    rows = verify_rows([], [], [], [], "client", {"configured": True, "safe": True, "reason": REASON_ON})
    assert [r["builder"] for r in rows] == ["-"]
    c = check()
    builds = [build(s, c=c) for s in c["systems"]]
    assert [r["builder"] for r in verify_rows([c], [ping()], builds, [found(b) for b in builds], "client")] == ["b1"]


# --- verify_report: the rows for other tools ------------------------------------------------------

REPORT_ROWS = [
    {"client": "c1", "builder": "b1", "ok": True, "result": "OK: x86_64-linux built there, trusted (/nix/store/x)"},
    {"client": "c1", "builder": "b2", "ok": False, "result": "timed out: <the builder> & \"friends\""},
    {"client": "c1", "builder": "(ssh)", "ok": True, "result": "ssh connection reuse on: Nix 2.26"},
    {"client": "c2", "builder": "b1", "ok": True, "result": "OK: x86_64-linux built there"},
]
STAMP = "2026-12-02T19:00:00Z"


def test_verify_report_is_registered():
    assert ReportFilters().filters() == {"verify_report": report_filter}


def test_json_report_counts_pairs_not_informational_rows():
    report = json.loads(json.dumps(report_filter(REPORT_ROWS, "json", STAMP)))
    assert (report["version"], report["generated"], report["ok"], report["pairs"], report["failed"]) == (1, STAMP, False, 3, 1)
    assert [(r["client"], r["builder"], r["kind"]) for r in report["rows"]] == [
        ("c1", "b1", "pair"), ("c1", "b2", "pair"), ("c1", "(ssh)", "info"), ("c2", "b1", "pair")]
    assert report_filter([r for r in REPORT_ROWS if r["ok"]], "json", STAMP)["ok"] is True


def test_junit_report_has_one_case_per_pair_and_the_reason_of_each_failure():
    root = ElementTree.fromstring(report_filter(REPORT_ROWS, "junit", STAMP).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [("c1", "b1"), ("c1", "b2"), ("c2", "b1")]
    failure = cases[1].find("failure")
    assert failure.get("message") == 'timed out: <the builder> & "friends"'
    assert cases[0].find("failure") is None
    assert "ssh connection reuse on" in suite.find("system-out").text


def test_verify_report_refuses_an_unknown_format_and_bad_rows():
    with pytest.raises(AnsibleFilterError, match="json or junit"):
        report_filter(REPORT_ROWS, "yaml", STAMP)
    with pytest.raises(AnsibleFilterError, match="rows without"):
        report_filter([{"client": "c1"}], "json", STAMP)


# --- the informational rows of a client, and the checks of a builder ----------------------------

def a_check(name="b1", systems=("x86_64-linux",), features=(), mandatory=()):
    return {"name": name, "uri": URI, "line": URI + " x", "store": URI, "systems": list(systems),
            "features": sorted(set(features) | set(mandatory)), "mandatory": list(mandatory), "trust": "trusted",
            "nonce": "n"}


def test_a_plain_build_that_stays_local_says_why_and_what_to_do():
    checks = [a_check("b1"), a_check("b2")]
    plain = {"build": {"rc": 0, "stdout_lines": [OUT]}, "found": [{"rc": 1, "item": checks[0]}, {"rc": 1, "item": checks[1]}]}
    rows = verify_report.verify_rows(checks, [{"rc": 0}] * 2, [], [], "c1", plain=plain,
                                     nix={"settings": {"max-jobs": "1"}, "systems": [], "system_features": []})
    [local] = [r for r in rows if r["builder"] == "(local)"]
    assert local["ok"] is True
    assert "stayed on this client: its max-jobs is 1" in local["result"] and "local_client_max_jobs: 0" in local["result"]
    plain["found"][1]["rc"] = 0
    rows = verify_report.verify_rows(checks, [{"rc": 0}] * 2, [], [], "c1", plain=plain, nix={"settings": {"max-jobs": "0"}})
    assert [r["result"] for r in rows if r["builder"] == "(local)"] == ["a plain nix-build ran on b2 (max-jobs 0 on this client)"]


def test_features_no_builder_offers_are_named_and_fatal_only_without_local_slots():
    checks = [a_check("b1", features=("big-parallel",)), a_check("b2", systems=("aarch64-linux",), mandatory=("kvm",))]
    nix = {"systems": ["x86_64-linux", "i686-linux"], "system_features": ["big-parallel", "kvm"], "settings": {"max-jobs": "2"}}
    row = verify_report.features_row("c1", nix["systems"], nix["system_features"], "2", checks)
    assert row["ok"] is True and row["builder"] == "(features)"
    # b2 has kvm, but only for aarch64-linux, and only for derivations that require it.
    assert row["result"] == ("no builder offers x86_64-linux with kvm, i686-linux, i686-linux with big-parallel, "
                             "i686-linux with kvm: builds that need it run on this client")
    assert "with max-jobs 0 builds that need it fail" in verify_report.features_row("c1", ["x86_64-linux"], ["kvm"], "0", checks)["result"]
    assert verify_report.features_row("c1", ["x86_64-linux"], ["big-parallel"], "0", checks)["result"].startswith(
        "every system and feature of this client is offered")


def builder(daemon_rc=0, available_kib=50 * 1024 * 1024, min_free=1073741824, sessions=10, startups="100:30:200",
            max_jobs=4, clients=3):
    df = {"rc": 0, "stdout_lines": ["Filesystem 1024-blocks Used Available Capacity Mounted on",
                                    "/dev/vda 100 50 %d 50%% /" % available_kib]}
    sshd = {"rc": 0, "stdout": "port 22\nmaxsessions %d\nmaxstartups %s\n" % (sessions, startups)}
    daemon = {"rc": daemon_rc, "stderr": "" if daemon_rc == 0 else "error: cannot connect to socket at "
              "'/nix/var/nix/daemon-socket/socket': Connection refused"}
    nix = {"version": "2.26.3", "settings": {"min-free": str(min_free), "max-jobs": str(max_jobs)}}
    return verify_report.builder_rows("b1", daemon, df, sshd, nix, clients, "remotebuild")


def test_a_healthy_builder_has_three_ok_rows():
    rows = builder()
    assert [(r["client"], r["builder"], r["ok"], r["kind"]) for r in rows] == [
        ("b1", "(daemon)", True, "builder"), ("b1", "(disk)", True, "builder"), ("b1", "(sshd)", True, "builder")]
    assert rows[1]["result"] == "50.0 GiB free for /nix/store, min-free 1.0 GiB"
    assert rows[2]["result"] == "MaxSessions 10 for remotebuild, MaxStartups 100:30:200, for 3 clients"


@pytest.mark.parametrize("changes, check, text", [
    ({"daemon_rc": 1}, "(daemon)", "nix-daemon does not answer"),
    ({"available_kib": 512 * 1024}, "(disk)", "0.5 GiB free for /nix/store, below min-free (1.0 GiB)"),
    ({"sessions": 2}, "(sshd)", "MaxSessions 2 for remotebuild is below max-jobs 4"),
    ({"startups": "2:30:10"}, "(sshd)", "MaxStartups 2:30:10 lets fewer unauthenticated connections in at once than the 3 clients"),
])
def test_each_builder_check_that_fails_says_what_to_do(changes, check, text):
    [row] = [r for r in builder(**changes) if not r["ok"]]
    assert row["builder"] == check and text in row["result"]


def test_builder_checks_count_in_the_report_and_have_a_junit_suite_of_their_own():
    rows = REPORT_ROWS[:1] + builder(sessions=2) + [
        {"client": "c1", "builder": "(local)", "ok": True, "result": "a plain nix-build ran on b1"}]
    report = report_filter(rows, "json", STAMP)
    assert (report["ok"], report["pairs"], report["failed"], report["builder_checks"], report["builder_checks_failed"]) == (
        False, 1, 0, 3, 1)
    assert [r["kind"] for r in report["rows"]] == ["pair", "builder", "builder", "builder", "info"]
    root = ElementTree.fromstring(report_filter(rows, "junit", STAMP).split("\n", 1)[1])
    pairs, checks = root.findall("testsuite")
    assert [(c.get("classname"), c.get("name")) for c in pairs.findall("testcase")] == [("c1", "b1")]
    assert [(c.get("classname"), c.get("name")) for c in checks.findall("testcase")] == [
        ("b1", "(daemon)"), ("b1", "(disk)"), ("b1", "(sshd)")]
    assert (root.get("tests"), root.get("failures"), checks.get("failures")) == ("4", "1", "1")
    assert "a plain nix-build ran on b1" in pairs.find("system-out").text


def test_the_table_starts_with_the_builders_own_checks_of_those_that_ran_them():
    hostvars = {"c1": {"__local_client_verify_rows": REPORT_ROWS[:1]},
                "b1": {"__remote_builder_verify_rows": builder()}, "b2": {}}
    table = verify_table(["c1"], hostvars, builders=["b1", "b2"])
    assert [(r["client"], r["builder"]) for r in table["rows"]] == [
        ("b1", "(daemon)"), ("b1", "(disk)"), ("b1", "(sshd)"), ("c1", "b1")]
    assert table["lines"][1].split()[:2] == ["b1", "(daemon)"]
