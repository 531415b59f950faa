"""The machines file records which entries the collection manages: marker comments.

builder_records puts the marker comment into each record's machine; nix_machines writes it above
the entry; managed_records reads the records back (round trip), refuses markers it cannot trust
naming the line, and merge_previous migrates the old state file.
"""

from __future__ import annotations

import base64
import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.filter.builder_records import builder_records
from ansible_collections.nix_remote.builders.plugins.filter.managed_records import (
    FilterModule,
    managed_records,
)
from ansible_collections.nix_remote.builders.plugins.filter.stale_entries import stale_entries
from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import (
    MARKER,
    RecordError,
    managed_comment,
    managed_records as managed_records_util,
    merge_previous,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.machines import legacy_parse_differences, parse_machines
from ansible_collections.nix_remote.builders.plugins.modules import nix_machines

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
HOST_KEY_B64 = base64.b64encode(HOST_KEY.encode()).decode()
KEY_PATH = "/root/.ssh/nix_remote_builders_ed25519"
USER_LINES = "# my own builder\nnix@mine.example.org x86_64-linux /root/.ssh/id_mine 2 1\n\n"


def export(**changes):
    value = {
        "state": "present", "address": "192.0.2.10", "port": 22, "user": "remotebuild", "protocol": "ssh-ng",
        "host_key": HOST_KEY, "host_key_base64": HOST_KEY_B64, "systems": ["x86_64-linux"],
        "supported_features": ["big-parallel", "kvm"], "mandatory_features": [], "max_jobs": 2, "speed_factor": 4,
        "trust": "trusted", "remote_program": "",
    }
    value.update(changes)
    return value


HOSTVARS = {
    "b1": {"remote_builder_export": export()},
    "b2": {"remote_builder_export": export(address="192.0.2.11", port=2222, trust="signing")},
    "b3": {"remote_builder_export": export(address="2001:db8::3", port=2200, speed_factor=1.5,
                                           mandatory_features=["benchmark"], remote_program="/run/bin/nix-daemon")},
}
EXTERNAL = [
    {"name": "nixbuild", "uri": "ssh-ng://eu.nixbuild.net", "systems": ["x86_64-linux", "aarch64-linux"],
     "known_hosts": ["eu.nixbuild.net " + HOST_KEY], "public_host_key": HOST_KEY_B64, "max_jobs": 100},
    {"name": "odd;name", "uri": "ssh://nix@other.example.net:2022", "systems": ["i686-linux"], "ssh_key": "/root/.ssh/other"},
]


def make_records(nix="2.26.3", hostvars=None, **options):
    hostvars = HOSTVARS if hostvars is None else hostvars
    return builder_records(sorted(hostvars), hostvars, client="client", nix_version=nix, key_path=KEY_PATH,
                           external_builders=options.pop("external_builders", EXTERNAL), **options)


def normalized(records):
    """As Nix reads a machines entry: systems and features are sorted sets."""
    out = json.loads(json.dumps(records))
    for r in out:
        for key in ("systems", "supported_features", "mandatory_features"):
            r["machine"][key] = sorted(set(r["machine"][key]))
    return out


def write(run_module, path, records, stale=(), **args):
    items = [dict(r["machine"], state="present") for r in records] + list(stale)
    return run_module(nix_machines.main, dict({"path": str(path), "builders": items, "nix_version": "2.26.3"}, **args))


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters() == {"managed_records": managed_records}


# --- round trip ------------------------------------------------------------------------------

@pytest.mark.parametrize("nix", ["2.3.16", "2.26.3", "2.31.0"])
def test_records_written_by_nix_machines_read_back_the_same(run_module, tmp_path, nix):
    hostvars = HOSTVARS
    if nix == "2.3.16":  # a fractional speed factor needs Nix 2.20
        hostvars = dict(HOSTVARS, b3={"remote_builder_export": dict(HOSTVARS["b3"]["remote_builder_export"], speed_factor=3)})
    records = make_records(nix, hostvars)
    path = tmp_path / "machines"
    path.write_text(USER_LINES)
    result = write(run_module, path, records, nix_version=nix)
    assert result["changed"], result
    text = path.read_text()
    assert text.startswith(USER_LINES)
    expected = normalized(records)
    if nix == "2.3.16":  # Nix < 2.4 reads no column 8, so it is not written: the external builder's key is not kept
        for r in expected:
            r["machine"]["public_host_key"] = ""
    assert managed_records(text, path=str(path)) == expected
    # Every entry has its own marker line directly above it; Nix reads the entries only.
    lines = text.splitlines()
    for r in records:
        [index] = [i for i, line in enumerate(lines) if line == "# " + r["machine"]["comment"]]
        assert parse_machines(lines[index + 1])[0].store_uri.endswith(r["uri"].split("://", 1)[1])
    assert len(parse_machines(text)) == len(records) + 1


def test_ports_aliases_and_external_builders_keep_their_fields():
    records = {r["name"]: r for r in make_records("2.26.3")}
    assert records["b2"]["alias"]["port"] == 2222 and records["b2"]["trust"] == "signing"
    assert records["b3"]["uri"].endswith("?remote-program=/run/bin/nix-daemon")
    for name, record in records.items():
        data = json.loads(record["machine"]["comment"][len(MARKER):])
        assert data == {k: v for k, v in record.items() if k != "machine"}, name
        assert "trust" in data or record["source"] == "external"


def test_the_second_run_changes_nothing_and_check_mode_matches_the_real_run(run_module, tmp_path):
    records = make_records()
    path = tmp_path / "machines"
    path.write_text(USER_LINES)
    before = path.read_bytes()
    items = [dict(r["machine"], state="present") for r in records]
    args = {"path": str(path), "builders": items, "nix_version": "2.26.3"}
    checked = run_module(nix_machines.main, args, check_mode=True, diff=True)
    assert path.read_bytes() == before
    real = run_module(nix_machines.main, args, diff=True)
    assert checked["changed"] and real["changed"]
    assert checked["diff"] == real["diff"] and checked["machines"] == real["machines"]
    assert real["diff"]["after"] == path.read_text()
    after = path.read_bytes()
    again = run_module(nix_machines.main, args)
    assert not again["changed"] and path.read_bytes() == after
    # The records read back, written again unchanged, change nothing either.
    previous = managed_records(path.read_text())
    again = write(run_module, path, previous)
    assert not again["changed"] and path.read_bytes() == after


def test_a_changed_record_updates_its_marker_in_place(run_module, tmp_path):
    path = tmp_path / "machines"
    write(run_module, path, make_records())
    first = path.read_text()
    hostvars = dict(HOSTVARS, b1={"remote_builder_export": export(trust="signing", max_jobs=8)})
    records = make_records(hostvars=hostvars)
    assert write(run_module, path, records)["changed"]
    text = path.read_text()
    assert len(text.splitlines()) == len(first.splitlines())
    assert managed_records(text) == normalized(records)
    [b1] = [r for r in managed_records(text) if r["name"] == "b1"]
    assert b1["trust"] == "signing" and b1["machine"]["max_jobs"] == 8


def test_stale_entries_go_with_their_marker_and_user_lines_stay(run_module, tmp_path):
    path = tmp_path / "machines"
    path.write_text(USER_LINES)
    write(run_module, path, make_records())
    previous = managed_records(path.read_text())
    current = [r for r in make_records() if r["name"] in ("b1", "external:nixbuild")]
    stale = stale_entries(previous, current)
    assert {i["uri"] for i in stale["machines"]} == {r["uri"] for r in previous if r["name"] not in ("b1", "external:nixbuild")}
    assert all(i["comment"].startswith(MARKER) for i in stale["machines"])
    assert write(run_module, path, current, stale=stale["machines"])["changed"]
    text = path.read_text()
    assert text.startswith(USER_LINES)
    assert managed_records(text) == normalized(current)
    assert text.count("# nix_remote.builders ") == 2
    # Everything removed: the user's lines are all that is left, byte for byte.
    stale = stale_entries(managed_records(text), [])
    assert write(run_module, path, [], stale=stale["machines"])["changed"]
    assert path.read_text() == USER_LINES


# --- what is not managed, and markers that cannot be trusted ---------------------------------

def test_entries_and_comments_without_the_marker_are_ignored():
    [record] = make_records(hostvars={"b1": HOSTVARS["b1"]}, external_builders=[])
    line = "ssh-ng://remotebuild@192.0.2.10 x86_64-linux %s 2 4 big-parallel,kvm - %s" % (KEY_PATH, HOST_KEY_B64)
    text = ("# nix_remote.builders-like but not the marker\nnix@a x86_64-linux\nnix@b\n"
            "#nix_remote.builders\n\n"
            "# " + record["machine"]["comment"] + "\n" + line + "\n# trailing comment\n")
    assert managed_records(text) == normalized([record])
    assert managed_records("") == [] and managed_records(None) == []
    assert managed_records("nix@a ; nix@b\n# only comments\n") == []


def test_another_marker_selects_other_entries():
    [record] = make_records(hostvars={"b1": HOSTVARS["b1"]}, external_builders=[], marker="site-a ")
    assert record["machine"]["comment"].startswith("site-a {")
    text = "# %s\n%s\n" % (record["machine"]["comment"], "ssh-ng://remotebuild@192.0.2.10 x86_64-linux")
    assert managed_records(text) == []
    assert [r["name"] for r in managed_records(text, marker="site-a ")] == ["b1"]


def marked(data, entry="ssh-ng://remotebuild@b1 x86_64-linux"):
    body = data if isinstance(data, str) else json.dumps(data)
    return "nix@mine\n# nix_remote.builders %s\n%s\n" % (body, entry)


@pytest.mark.parametrize("text, expect", [
    (marked('{"name":"b1","uri":'), "/etc/nix/machines: line 2: the marker comment of nix_remote.builders is not valid JSON"),
    (marked('["b1"]'), "line 2: the marker comment of nix_remote.builders is not a JSON object"),
    (marked({"uri": "ssh-ng://remotebuild@b1"}), "line 2: the marker comment of nix_remote.builders has no name"),
    (marked({"name": "b1", "uri": ""}), "has no uri"),
    (marked({"name": "b1", "uri": "ssh-ng://remotebuild@b1"}, entry=""), "(b1) is not directly above a machine entry"),
    (marked({"name": "b1", "uri": "ssh-ng://remotebuild@b1"}, entry="ssh-ng://a ; ssh-ng://remotebuild@b1"),
     "is not directly above a machine entry alone on its line"),
    (marked({"name": "b1", "uri": "ssh-ng://remotebuild@b1"}, entry="@/etc/nix/more"), "not directly above a machine entry"),
    (marked({"name": "b1", "uri": "ssh-ng://remotebuild@b9"}),
     "names ssh-ng://remotebuild@b9 for b1, but the entry below it is ssh-ng://remotebuild@b1"),
    (marked({"name": "b1", "uri": "ssh-ng://remotebuild@b1"})
     + '# nix_remote.builders {"name":"b1","uri":"ssh://b2"}\nssh://b2\n',
     "line 4: the marker comment of nix_remote.builders marks b1 again (first on line 2)"),
])
def test_a_marker_that_cannot_be_trusted_fails_naming_the_line(text, expect):
    with pytest.raises(RecordError) as caught:
        managed_records_util(text, source="/etc/nix/machines")
    assert expect in str(caught.value)
    assert "delete the line to leave the entry below it unmanaged" in str(caught.value)
    with pytest.raises(AnsibleFilterError, match="^managed_records: /etc/nix/machines: line"):
        managed_records(text, path="/etc/nix/machines")


def test_a_malformed_entry_fails_naming_the_line():
    with pytest.raises(AnsibleFilterError, match="/etc/nix/machines: line 2, column 4"):
        managed_records("nix@a\nnix@b x86_64-linux - many\n", path="/etc/nix/machines")


@pytest.mark.parametrize("marker", ["", "  ", "a;b ", "a\nb ", None])
def test_a_marker_that_cannot_be_written_is_refused(marker):
    with pytest.raises(AnsibleFilterError, match="marker"):
        managed_records("", marker=marker)
    with pytest.raises(RecordError, match="marker"):
        managed_comment({"name": "b1", "uri": "ssh://b1"}, marker)


def test_the_input_must_be_text():
    with pytest.raises(AnsibleFilterError, match="not the text of a machines file"):
        managed_records(["nix@a"])


# --- Nix before 2.29 and Lix -----------------------------------------------------------------

def test_the_marker_holds_no_semicolon_even_when_a_record_does():
    record = {"name": "external:odd;name", "uri": "ssh://nix@b1", "known_hosts": ["a;b ssh-ed25519 AAAA"], "note": "é\u2028"}
    comment = managed_comment(record)
    assert ";" not in comment and "\n" not in comment and comment.isascii()
    assert "\\u003b" in comment
    assert json.loads(comment[len(MARKER):]) == record


@pytest.mark.parametrize("nix", ["2.18.1", "2.28.1", "2.93.3"])
def test_old_nix_and_lix_read_the_marked_file_the_same_way(run_module, tmp_path, nix):
    path = tmp_path / "machines"
    records = [r for r in make_records("2.18.1") if r["name"] != "b3"]  # its speed factor 1.5 needs Nix 2.20
    assert any(";" in r["name"] for r in records)
    result = write(run_module, path, records, nix_version=nix, exclusive=True)
    assert not result["failed"], result
    text = path.read_text()
    assert legacy_parse_differences(text) == []
    assert not any(str(path) in warning for warning in result["warnings"])
    assert managed_records(text) == normalized(records)


# --- migration from the old state file -------------------------------------------------------

def test_merge_previous_prefers_marked_records_and_marks_legacy_ones():
    records = make_records(marker=None)
    legacy = json.loads(json.dumps(records))  # what the old state file held: no comment
    marked_b2 = dict(records[1], trust="trusted", machine=dict(records[1]["machine"], comment="nix_remote.builders {}"))
    extra = {"name": "b9", "uri": "ssh://b9", "machine": {"uri": "ssh://b9", "comment": "nix_remote.builders {...}"}}
    merged = merge_previous(legacy, [marked_b2, extra])
    assert [r["name"] for r in merged] == [r["name"] for r in records] + ["b9"]
    assert merged[1] is marked_b2
    assert merged[-1] is extra
    for legacy_record, record in zip(legacy, merged):
        if record["name"] == "b2":
            continue
        assert record["machine"]["comment"] == managed_comment(legacy_record)
        assert "comment" not in legacy_record["machine"]  # the input is not changed
    assert merge_previous([], []) == [] and merge_previous(None, None) == []


def test_managed_records_merges_the_legacy_records_of_the_old_state_file(run_module, tmp_path):
    records = make_records()
    path = tmp_path / "machines"
    write(run_module, path, records[:2])
    legacy = [dict(r, machine={k: v for k, v in r["machine"].items() if k != "comment"}) for r in records[1:]]
    merged = managed_records(path.read_text(), legacy=legacy)
    # b2 from the file (marked) wins; b3 and the external builders come from the state file, now marked.
    assert [r["name"] for r in merged] == [r["name"] for r in records[1:]] + ["b1"]
    assert merged[0] == normalized([records[1]])[0]
    assert all(r["machine"]["comment"] == managed_comment(r) for r in merged)
    # Written again, the legacy entries get their markers and the state file is no longer needed.
    write(run_module, path, merged)
    assert {r["name"] for r in managed_records(path.read_text())} == {r["name"] for r in records}


def test_a_legacy_record_without_a_machine_is_refused():
    with pytest.raises(AnsibleFilterError, match="not a record with a machine"):
        managed_records("", legacy=[{"name": "b1", "uri": "ssh://b1"}])


# --- NixOS: the records live in the generated module's header ---------------------------------

def test_nixos_module_header_round_trip_through_the_rendered_module():
    from ansible_collections.nix_remote.builders.plugins.filter.nixos_module_comment import nixos_module_comment
    from ansible_collections.nix_remote.builders.plugins.module_utils.nix_expr import render_module

    records = make_records("2.26.3")
    header = nixos_module_comment(records, "Generated by Ansible; changes made here are overwritten.")
    text = render_module({"nix": {"distributedBuilds": True}}, header)
    assert text.splitlines()[0] == "# Generated by Ansible; changes made here are overwritten."
    expected = json.loads(json.dumps(records))
    for r in expected:
        del r["machine"]["comment"]  # the machines file's marker; a NixOS module has no entries to mark
    assert managed_records(text, kind="nixos_module", path="/etc/nixos/nix-remote-builders.nix") == expected
    # Nothing but comment lines before the module's code, none holding a newline of a record.
    code = text.index("{ config")
    assert all(line.startswith("#") for line in text[:code].splitlines())


def test_nixos_module_records_ignore_code_and_refuse_bad_markers():
    text = '# hello\n{ config, ... }:\n# nix_remote.builders {"name":"x"}\n'
    assert managed_records(text, kind="nixos_module") == []
    with pytest.raises(AnsibleFilterError, match=r"m\.nix: line 2: .* is not a record with a machine"):
        managed_records('# hi\n# nix_remote.builders {"name":"b1","uri":"ssh://b1"}\n{ }:\n', kind="nixos_module", path="m.nix")
    with pytest.raises(AnsibleFilterError, match="kind must be"):
        managed_records("", kind="yaml")
    assert managed_records(None, kind="nixos_module") == []
