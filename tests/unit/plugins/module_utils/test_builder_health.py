"""The builder health service (module_utils/builder_health.py): which entries it probes, the live
file it writes, and real probes against real sockets on this machine."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import builder_health as health
from ansible_collections.nix_remote.builders.plugins.module_utils.builder_records import MARKER, builder_records, managed_records
from ansible_collections.nix_remote.builders.plugins.module_utils.machines import Machine, MachinesDocument

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
USER_LINES = "# my own builder\nssh://mine x86_64-linux\n@/etc/nix/more-machines\n"


def export(address, port=22):
    return {"version": 1, "state": "present", "address": address, "port": port, "user": "remotebuild",
            "protocol": "ssh-ng", "host_key": HOST_KEY, "host_key_base64": base64.b64encode(HOST_KEY.encode()).decode(),
            "systems": ["x86_64-linux"], "supported_features": [], "mandatory_features": [], "max_jobs": 2,
            "speed_factor": 1, "trust": "trusted", "remote_program": ""}


def machines_text(exports, before=USER_LINES, nix="2.26.3", port_style="auto", external=()):
    """A machines file as the role writes it: the user's lines, then the role's entries with their markers."""
    hostvars = {name: {"remote_builder_export": value} for name, value in exports.items()}
    records = builder_records(hostvars, sorted(hostvars), "client", nix_version=nix, key_path="/root/.ssh/k",
                              port_style=port_style, external_builders=external)
    doc = MachinesDocument.parse(before)
    for record in records:
        machine = dict(record["machine"])
        comment = machine.pop("comment")
        doc.upsert(Machine(store_uri=machine.pop("uri"), **machine), nix_version=nix, comment=comment)
    return doc.render()


def test_the_marker_is_builder_records_one():
    assert health.MARKER == MARKER


def test_it_probes_exactly_the_role_entries_of_inventory_builders():
    text = machines_text({"b1": export("192.0.2.10"), "b2": export("192.0.2.11", 2222), "b3": export("2001:db8::3", 2200)},
                         external=[{"name": "nixbuild", "uri": "ssh://eu.nixbuild.net", "systems": ["x86_64-linux"]}])
    found = health.targets(text)
    lines = text.splitlines()
    # The same entries as the role's own reader, less the external builder.
    managed = [r for r in managed_records(text) if r["source"] == "inventory"]
    assert [t["name"] for t in found] == [r["name"] for r in managed] == ["b1", "b2", "b3"]
    assert [lines[t["line"]].split()[0] for t in found] == [r["uri"] for r in managed]
    # Nix 2.26 reaches another port through an ssh alias; the probe goes to its hostname and port.
    assert [(t["host"], t["port"]) for t in found] == [("192.0.2.10", 22), ("192.0.2.11", 2222), ("2001:db8::3", 2200)]


def test_ports_in_the_uri_on_nix_2_31_and_later():
    text = machines_text({"b2": export("192.0.2.11", 2222), "b3": export("2001:db8::3", 2200)}, nix="2.34.1")
    assert "ssh-ng://remotebuild@[2001:db8::3]:2200" in text
    assert [(t["host"], t["port"]) for t in health.targets(text)] == [("192.0.2.11", 2222), ("2001:db8::3", 2200)]


@pytest.mark.parametrize("uri, address", [
    ("ssh-ng://u@host", ("host", 22)),
    ("ssh://host:2222", ("host", 2222)),
    ("ssh-ng://u@[fe80::1]", ("fe80::1", 22)),
    ("ssh-ng://u@[::1]:22?remote-program=/x", ("::1", 22)),
    ("ssh-ng://u@host:ssh", None),
    ("ssh-ng://u@host:70000", None),
    ("local", None),
    ("https://cache.example", None),
])
def test_uri_addresses(uri, address):
    assert health._uri_address(uri) == address


@pytest.mark.parametrize("above", [
    "# nix_remote.builders {not json\n",
    '# nix_remote.builders {"name":"b1","uri":"ssh-ng://remotebuild@192.0.2.99"}\n',  # another entry's marker
    '# nix_remote.builders ["b1"]\n',
    '# something else\n',
])
def test_what_it_cannot_trust_is_not_probed(above):
    assert health.targets(above + "ssh-ng://remotebuild@192.0.2.10 x86_64-linux\n") == []


def test_the_live_file_comments_out_only_the_lines_of_builders_that_are_down():
    text = machines_text({"b1": export("192.0.2.10"), "b2": export("192.0.2.11")}).replace("\n", "\r\n", 1)
    found = health.targets(text)
    live = health.live_text(text, [found[1]["line"]], "/etc/nix/machines", 10)
    header, body = live[:len(health.HEADER % ("/etc/nix/machines", 10))], live[len(health.HEADER % ("/etc/nix/machines", 10)):]
    assert header.startswith("# Written by nix-remote-builders-health from /etc/nix/machines every 10 s")
    # Every line as it was but b2's entry; Nix reads the result as the user's entries and b1.
    assert body.replace(health.DOWN_PREFIX, "", 1) == text
    assert body.splitlines()[found[1]["line"]] == health.DOWN_PREFIX + text.splitlines()[found[1]["line"]]
    uris = [m.store_uri for m in MachinesDocument.parse(live).machines()]
    assert uris == ["ssh://mine", "ssh-ng://remotebuild@192.0.2.10"]


def test_what_the_service_adds_has_no_semicolon_that_nix_before_2_29_would_split_on():
    """Nix 2.26 read the header's '; edit ...' as an entry and refused every build (found on the
    fleet scenario's trixie client): Nix before 2.29 splits on ';' before it removes comments."""
    added = health.HEADER % ("/etc/nix/machines", 10) + health.DOWN_PREFIX
    assert ";" not in added


class FakeServer:
    """A listening socket on 127.0.0.1 that answers each connection with BANNER (None: says nothing)."""

    def __init__(self, banner):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.banner = banner
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _address = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.banner is not None:
                conn.sendall(self.banner)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def server():
    made = []

    def make(banner=b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"):
        made.append(FakeServer(banner))
        return made[-1]

    yield make
    for each in made:
        each.close()


def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_probes_against_real_sockets(server):
    assert health.probe("127.0.0.1", server().port, 2) is None
    assert "no ssh banner within" in health.probe("127.0.0.1", server(None).port, 0.5)
    assert "no ssh banner" in health.probe("127.0.0.1", server(b"HTTP/1.1 400 Bad Request\r\n").port, 2)
    assert "refused" in health.probe("127.0.0.1", closed_port(), 2).lower()
    assert "cannot resolve" in health.probe("no-such-host.invalid", 22, 2)


def test_every_builder_is_probed_at_once():
    names = ["b%d" % n for n in range(5)]
    barrier = threading.Barrier(len(names), timeout=5)

    def prober(host, port, timeout):
        barrier.wait()  # breaks (and the probe reports it) unless all five run at the same time
        return None if host != "b3" else "down"

    found = [{"line": n, "name": name, "host": name, "port": 22} for n, name in enumerate(names)]
    assert health.probe_all(found, 1, prober) == {"b0": None, "b1": None, "b2": None, "b3": "down", "b4": None}


def test_a_builder_that_answers_again_is_listed_again(tmp_path, server):
    up = server()
    port = closed_port()
    text = machines_text({"b1": export("127.0.0.1", up.port), "b2": export("127.0.0.1", port)}, nix="2.34.1")
    machines, live = tmp_path / "machines", tmp_path / "state" / "machines"
    machines.write_text(text)
    assert health.run_once(str(machines), str(live), 2, 10)["b2"]
    listed = [m.store_uri for m in MachinesDocument.parse(live.read_text()).machines()]
    assert listed == ["ssh://mine", "ssh-ng://remotebuild@127.0.0.1:%d" % up.port]
    # Unchanged state: the file is not rewritten.
    inode = os.stat(live).st_ino
    health.run_once(str(machines), str(live), 2, 10)
    assert os.stat(live).st_ino == inode
    # b2's sshd comes up on its port.
    back = socket.socket()
    back.bind(("127.0.0.1", port))
    back.listen(4)
    threading.Thread(target=lambda: back.accept()[0].sendall(b"SSH-2.0-x\r\n"), daemon=True).start()
    try:
        assert health.run_once(str(machines), str(live), 2, 10) == {"b1": None, "b2": None}
    finally:
        back.close()
    assert live.read_text() == health.HEADER % (machines, 10) + text
    assert machines.read_text() == text
    assert oct(os.stat(live).st_mode & 0o777) == "0o644"


def test_no_machines_file_gives_a_live_file_without_builders(tmp_path):
    live = tmp_path / "live"
    assert health.run_once(str(tmp_path / "missing"), str(live), 1, 10) == {}
    assert MachinesDocument.parse(live.read_text()).machines() == []


def test_the_program_runs_on_its_own_with_the_standard_library(tmp_path, server):
    """What the service runs: the file itself, under an isolated interpreter (no Ansible on its path)."""
    machines, live = tmp_path / "machines", tmp_path / "live"
    up, down = server().port, closed_port()
    machines.write_text(machines_text({"b1": export("127.0.0.1", up), "b2": export("127.0.0.1", down)}, nix="2.34.1"))
    out = subprocess.run([sys.executable, "-I", health.__file__, "--machines", str(machines), "--live", str(live),
                          "--once", "--timeout", "2"], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines()[0] == "b1: up"
    assert out.stdout.splitlines()[1].startswith("b2: down: ")
    assert [m.store_uri for m in MachinesDocument.parse(live.read_text()).machines()] == [
        "ssh://mine", "ssh-ng://remotebuild@127.0.0.1:%d" % up]
