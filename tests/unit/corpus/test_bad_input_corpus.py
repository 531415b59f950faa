"""Bad input corpus: the modules refuse every case in module_cases.yml clearly and change no file.

Each case runs the real module's main() in-process. A case passes when the module fails (through
fail_json, not a traceback) with a message holding every expected substring, and every file and
symlink in the directories it used is byte-identical afterwards, with the same mtime, and no file
was added (no temporary file, no backup).
"""

from __future__ import annotations

import copy
import json
import os
import socket
import stat
import subprocess

import pytest
import yaml

from ansible_collections.nix_remote.builders.plugins.module_utils.file_edit import MAX_CONFIG_BYTES
from ansible_collections.nix_remote.builders.plugins.modules import file_content, nix_conf, nix_machines, nixos_module

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = {"nix_conf": nix_conf.main, "nix_machines": nix_machines.main, "nixos_module": nixos_module.main,
           "file_content": file_content.main}
# Categories whose input is a file: their message must name it.
FILE_CATEGORIES = {"nix.conf line", "machines entry", "huge file", "non-UTF-8", "symlink", "read-only file system",
                   "include tree", "validation by Nix", "custom conf override", "file reference", "legacy entry",
                   "non-regular target", "secret", "string survival", "file attributes", "check mode"}


def load_table() -> dict:
    with open(os.path.join(HERE, "module_cases.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


TABLE = load_table()
CASES = TABLE["cases"]


def substitute(value, places: dict):
    """Replace {dir} and {outside} in every string of a nested structure."""
    if isinstance(value, str):
        for name, path in places.items():
            value = value.replace("{" + name + "}", path)
        return value
    if isinstance(value, list):
        return [substitute(item, places) for item in value]
    if isinstance(value, dict):
        return {substitute(key, places): substitute(item, places) for key, item in value.items()}
    return value


def pad_to_huge(path: str) -> None:
    """Grow a file with comment lines to one byte more than the modules accept."""
    size = os.path.getsize(path)
    line = b"#" * 1023 + b"\n"
    target = MAX_CONFIG_BYTES + 1
    with open(path, "ab") as handle:
        while size + len(line) <= target:
            handle.write(line)
            size += len(line)
        handle.write(b"#" * (target - size))


def snapshot(directories) -> dict:
    """Every entry of the directories, recursively: symlink target, kind of a special file,
    directory, or content and mtime of a regular file."""
    state = {}
    for directory in directories:
        for base, dirs, names in os.walk(directory):
            for name in sorted(dirs + names):
                path = os.path.join(base, name)
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    state[path] = ("link", os.readlink(path))
                elif stat.S_ISDIR(info.st_mode):
                    state[path] = ("dir",)
                elif not stat.S_ISREG(info.st_mode):
                    state[path] = ("special", stat.S_IFMT(info.st_mode))
                else:
                    with open(path, "rb") as handle:
                        state[path] = ("file", handle.read(), info.st_mtime_ns)
    return state


@pytest.fixture
def read_only():
    """Bind-mount a directory read-only for the rest of the test; unmounted in a finalizer."""
    mounted = []

    def mount(directory: str) -> None:
        subprocess.run(["mount", "--bind", directory, directory], check=True)
        mounted.append(directory)
        subprocess.run(["mount", "-o", "remount,ro,bind", directory], check=True)

    yield mount
    for directory in reversed(mounted):
        subprocess.run(["umount", directory], check=True)


def prepare(case: dict, tmp_path, read_only) -> tuple:
    """Write the case's files under a stand-in for /etc/nix; return (module args, places, directories)."""
    places = {"dir": str(tmp_path / "etc-nix"), "outside": str(tmp_path / "outside")}
    for path in places.values():
        os.mkdir(path)
    defaults = TABLE["defaults"][case["module"]]
    for name in case.get("dirs", []):
        os.makedirs(os.path.join(places["dir"], name))
    files = case.get("files", defaults["files"])
    for name, text in files.items():
        path = os.path.join(places["dir"], name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(substitute(text, places).encode(case.get("encoding", "utf-8")))
    for name in case.get("fifos", []):
        os.mkfifo(os.path.join(places["dir"], name))
    for name in case.get("sockets", []):
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(os.path.join(places["dir"], name))  # the socket file stays after close
    for name, target in case.get("symlinks", {}).items():
        os.symlink(substitute(target, places), os.path.join(places["dir"], name))
    if "huge" in case:
        pad_to_huge(os.path.join(places["dir"], case["huge"]))
    if case.get("read_only"):
        read_only(places["dir"])
    args = substitute(copy.deepcopy(case.get("args", defaults["args"])), places)
    return args, places, list(places.values())


def case_params(cases: list) -> list:
    """The cases as parameters; those that bind-mount a read-only directory need root."""
    return [pytest.param(case, id=case["id"], marks=[pytest.mark.root] if case.get("read_only") else []) for case in cases]


@pytest.mark.parametrize("case", case_params(CASES))
def test_bad_input_is_refused_and_no_file_changes(case, run_module, tmp_path, read_only):
    args, places, directories = prepare(case, tmp_path, read_only)
    before = snapshot(directories)
    try:
        result = run_module(MODULES[case["module"]], args, check_mode=case.get("check_mode", False))
    except ValueError as exc:  # ansible-core 2.16 lets syslog's refusal escape: a module failure
        assert "embedded null character" in str(exc)
        result = {"failed": True, "msg": SYSLOG_REFUSAL}
    assert result["failed"], f"accepted: {result}"
    message = result["msg"]
    # Where AnsibleModule logs its invocation to syslog (ansible-test's units on Python 3.12 and later),
    # syslog refuses a NUL in the arguments before the module's own check runs: Ansible's message,
    # and nothing changed all the same (asserted below).
    if not (SYSLOG_REFUSAL in message and "\\u0000" in json.dumps(args)):
        for expected in substitute(case["expect"], places):
            assert expected in message, f"{expected!r} not in {message!r}"
    for secret in case.get("secrets", []):
        assert secret not in repr(result), f"{secret!r} shown in {result!r}"
    assert snapshot(directories) == before


SYSLOG_REFUSAL = "Failed to log to syslog (embedded null character)"

READ_ONLY_CASES = [
    {"id": "read-only-nix-conf", "module": "nix_conf"},
    {"id": "read-only-nix-conf-with-backup", "module": "nix_conf", "args": {"path": "{dir}/nix.conf", "settings": {"cores": 2}, "backup": True}},
    {"id": "read-only-machines", "module": "nix_machines"},
    {
        "id": "read-only-builders-setting",
        "module": "nix_machines",
        "files": {"nix.conf": "sandbox = true\n"},
        "args": {"nix_conf_path": "{dir}/nix.conf", "builders": [{"uri": "ssh://b1"}]},
    },
]


@pytest.mark.root  # mount
@pytest.mark.parametrize("case", READ_ONLY_CASES, ids=[case["id"] for case in READ_ONLY_CASES])
def test_read_only_file_system_changes_nothing(case, run_module, tmp_path, read_only):
    """On a read-only /etc/nix the edit must not succeed and must leave every file as it was.

    How it fails is not checked here: the modules raise an OSError instead of a clear message
    today (PENDING.md holds the strict cases that will join module_cases.yml once that is fixed).
    """
    args, places, directories = prepare(dict(case, read_only=True), tmp_path, read_only)
    before = snapshot(directories)
    try:
        result = run_module(MODULES[case["module"]], args)
    except OSError as exc:
        assert exc.filename and exc.filename.startswith(places["dir"] + "/"), exc
    except Exception as exc:  # pylint: disable=broad-exception-caught  # ansible-core's backup_local raises a bare Exception
        assert places["dir"] in str(exc), exc
    else:
        assert result["failed"], f"accepted: {result}"
        assert places["dir"] in result["msg"]
    assert snapshot(directories) == before


@pytest.mark.parametrize("module", sorted(MODULES))
def test_default_input_of_the_table_is_accepted(module, run_module, tmp_path, read_only):
    """The corpus' defaults are valid: each case fails because of its own bad input."""
    args, places, directories = prepare({"module": module}, tmp_path, read_only)
    before = snapshot(directories)
    result = run_module(MODULES[module], args)
    assert not result["failed"] and result["changed"], result
    assert snapshot(directories) != before
    assert sorted(os.listdir(places["dir"])) == sorted(TABLE["defaults"][module]["files"])


def test_symlink_is_edited_when_follow_is_set(run_module, tmp_path, read_only):
    """The symlink cases fail because follow is off, not because the link is unusable."""
    case = {"module": "nix_conf", "files": {"../outside/nix.conf": "sandbox = true\n"}, "symlinks": {"nix.conf": "{outside}/nix.conf"}}
    args, places, directories = prepare(case, tmp_path, read_only)
    result = run_module(nix_conf.main, dict(args, follow=True))
    assert not result["failed"] and result["path"] == places["outside"] + "/nix.conf"
    with open(result["path"], encoding="utf-8") as handle:
        assert handle.read() == "sandbox = true\nmax-jobs = 4\n"
    assert os.readlink(os.path.join(places["dir"], "nix.conf")) == places["outside"] + "/nix.conf"


def test_table_is_well_formed():
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert len(CASES) >= 250
    for case in CASES:
        assert case["module"] in MODULES and case["expect"], case["id"]
        if case["category"] in FILE_CATEGORIES:
            assert any("{dir}" in expected for expected in case["expect"]), f"{case['id']}: the message must name the file"
