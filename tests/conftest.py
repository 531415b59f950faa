"""Make this checkout importable as ansible_collections.nix_remote.builders for pytest."""

from __future__ import annotations

import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _collection_root() -> str:
    """A directory holding ansible_collections/nix_remote/builders -> this checkout."""
    base = os.path.join(REPO, ".build", "collections")
    link = os.path.join(base, "ansible_collections", "nix_remote", "builders")
    if not os.path.islink(link):
        try:
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(os.path.relpath(REPO, os.path.dirname(link)), link)
        except OSError:
            # Read-only checkout: fall back to a private temporary tree.
            base = tempfile.mkdtemp(prefix="nix-remote-collections-")
            link = os.path.join(base, "ansible_collections", "nix_remote", "builders")
            os.makedirs(os.path.dirname(link))
            os.symlink(REPO, link)
    return base


# Under `ansible-test units` the checkout already lies at ansible_collections/nix_remote/builders
# and ansible-test's collection loader serves it (this conftest is imported through it);
# only a plain `pytest` run needs the symlinked tree.
_IN_COLLECTION_TREE = REPO.split(os.sep)[-3:] == ["ansible_collections", "nix_remote", "builders"]
if not _IN_COLLECTION_TREE:
    _ROOT = _collection_root()
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    # ansible_collections is a namespace package that the PyPI `ansible` bundle also provides;
    # drop any copy imported before our path was added so both portions are seen.
    for _name in [n for n in sys.modules if n == "ansible_collections" or n.startswith("ansible_collections.nix_remote")]:
        del sys.modules[_name]


# --- running a module's main() in-process ---------------------------------------------------

import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402


try:
    from hypothesis import HealthCheck, settings
except ImportError:  # only the property tests need it
    pass
else:
    # The machines these run on are shared and loaded (the support matrix runs several Pythons at
    # once): time-based checks fail there without any fault in the code, so only the properties count.
    settings.register_profile("shared-machine", suppress_health_check=[HealthCheck.too_slow], deadline=None)
    settings.load_profile("shared-machine")


ROOT_MARKER_HELP = "root: needs root (mount, chown to another user, chattr +i, setuid); deselected in a non-root session, `make test` runs them"


def pytest_configure(config):
    # Registered here rather than in pytest.ini: `ansible-test units` runs pytest with its own ini.
    config.addinivalue_line("markers", "nix: needs a real nix-instantiate (Debian: apt-get install nix-bin); evaluates generated NixOS modules")
    config.addinivalue_line("markers", ROOT_MARKER_HELP)
    _use_a_store_nix_can_reach()


# --- Nix without the daemon ----------------------------------------------------------------------
#
# The modules and the tests ask the real Nix to parse and evaluate (nix-instantiate --parse,
# --eval --strict).  Neither needs a store, but Nix opens one first: as root that is the local store;
# a user outside Debian nix-bin's nix-users group cannot even stat the daemon socket and every call
# fails ("getting status of /nix/var/nix/daemon-socket/socket: Permission denied"), whatever the
# input.  Then the session uses Nix's dummy store (NIX_REMOTE=dummy://), with which parsing and
# evaluation run as before and bad input is still refused; anything that would need a real store
# fails loudly instead of being faked.  An explicit NIX_REMOTE is left alone, and so is a Nix that
# works as it is (root, CI) or that fails for another reason (the tests show that failure).

NIX_DUMMY_STORE = "dummy://"


def _nix_instantiate(expression: str, **env) -> subprocess.CompletedProcess:
    nix_instantiate = shutil.which("nix-instantiate")
    return subprocess.run([nix_instantiate, "--eval", "-E", expression], capture_output=True, text=True, check=False, timeout=60,
                          env=dict(os.environ, NIX_PATH="", **env))


def _use_a_store_nix_can_reach() -> None:
    if "NIX_REMOTE" in os.environ or not shutil.which("nix-instantiate"):
        return
    plain = _nix_instantiate("1")
    if plain.returncode == 0 or "daemon-socket" not in plain.stderr:
        return
    # Only when the dummy store makes Nix answer, and a syntax error is still an error.
    if _nix_instantiate("1", NIX_REMOTE=NIX_DUMMY_STORE).returncode == 0 and _nix_instantiate("1 +", NIX_REMOTE=NIX_DUMMY_STORE).returncode != 0:
        os.environ["NIX_REMOTE"] = NIX_DUMMY_STORE


def pytest_report_header(config):
    if os.environ.get("NIX_REMOTE") == NIX_DUMMY_STORE:
        return "nix: NIX_REMOTE=dummy:// (the daemon socket is not accessible to this user; parsing and evaluation need no store)"
    return None


# --- tests that need root ----------------------------------------------------------------------
#
# A skipped test must not pass for a run test, so tests marked `root` are not skipped in a non-root
# session: they are deselected, and the end of the session says how many and where they do run.

ROOT_DESELECTED = "root_deselected"
_ROOT_DESELECTED_KEY = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)  # after -k and -m: count only the tests this session would have run
def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    deselected = [item for item in items if item.get_closest_marker("root")]
    if not deselected:
        return
    items[:] = [item for item in items if not item.get_closest_marker("root")]
    config.hook.pytest_deselected(items=deselected)
    config.stash[_ROOT_DESELECTED_KEY] = len(deselected)
    if hasattr(config, "workeroutput"):  # a pytest-xdist worker: the controller prints the summary
        config.workeroutput[ROOT_DESELECTED] = len(deselected)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):  # pylint: disable=unused-argument
    """pytest-xdist: each worker collected every test, so each deselected the same ones."""
    count = getattr(node, "workeroutput", {}).get(ROOT_DESELECTED, 0)
    config = node.config
    config.stash[_ROOT_DESELECTED_KEY] = max(count, config.stash.get(_ROOT_DESELECTED_KEY, 0))


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pylint: disable=unused-argument
    count = config.stash.get(_ROOT_DESELECTED_KEY, 0)
    if hasattr(config, "workeroutput") or not count:
        return
    terminalreporter.section("tests that need root", sep="=", yellow=True, bold=True)
    terminalreporter.write_line(f"{count} test(s) marked `root` were DESELECTED, not run: this session is not root (uid {os.geteuid()}).", yellow=True)
    terminalreporter.write_line("They have not passed here; `make test` (as root, as CI runs it) runs them.", yellow=True)


@contextlib.contextmanager
def _module_args(args: dict):
    """Feed args to AnsibleModule: ansible-core's helper (2.19+), or the module's stdin buffer before it."""
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core < 2.19
        from ansible.module_utils import basic
        from ansible.module_utils.common.text.converters import to_bytes

        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved
    else:
        with patch_module_args(args):
            yield


class ModuleExit(Exception):
    """Raised in place of AnsibleModule.exit_json / fail_json; carries the result."""

    def __init__(self, result: dict, failed: bool):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


@pytest.fixture(autouse=True)
def host_lock_path(monkeypatch, tmp_path) -> str:
    """Every test has its own host edit lock: the real one is in /var/run, which only root may write,
    and tests running at once must not wait for each other.  A module a test starts as its own
    process must be given this path (file_edit.HOST_LOCK_PATH in the test is it)."""
    from ansible_collections.nix_remote.builders.plugins.module_utils import file_edit

    path = str(tmp_path / "nix-remote-builders.lock")
    monkeypatch.setattr(file_edit, "HOST_LOCK_PATH", path)
    return path


@pytest.fixture
def run_module(monkeypatch, tmp_path):
    """Run a module's main() with the given args; returns the result dict (result['failed'] on failure)."""
    from ansible.module_utils import basic

    from ansible.module_utils.common.parameters import remove_values

    # Like the real exit_json/fail_json, credentials registered in no_log_values are masked.
    def exit_json(self, **kwargs):
        from ansible.module_utils.common.warnings import get_warning_messages

        raise ModuleExit(remove_values(dict(kwargs, failed=False, warnings=list(get_warning_messages())), self.no_log_values), failed=False)

    def fail_json(self, msg, **kwargs):
        raise ModuleExit(remove_values(dict(kwargs, msg=msg, failed=True), self.no_log_values), failed=True)

    # The host-wide edit lock lives in /var/run on a real host; tests keep their own (host_lock_path).
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    # A module runs on the target.  ansible-core >= 2.19 sends module warnings to the controller's
    # Display instead of the result once any controller code (a filter plugin's test imports
    # ansible.errors) was imported into this process; the flag does not exist before 2.19.
    try:
        from ansible.module_utils import _internal as module_internal
    except ImportError:  # ansible-core < 2.19 has no such package (and no such routing)
        module_internal = None
    if module_internal is not None:
        monkeypatch.setattr(module_internal, "is_controller", False, raising=False)
    # backup_local and atomic_move need a writable remote tmp; keep it inside the test's tmp.
    monkeypatch.setenv("ANSIBLE_REMOTE_TMP", str(tmp_path / ".ansible-tmp"))

    def run(main, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
        full = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_tmpdir=str(tmp_path / ".ansible-tmp"))
        (tmp_path / ".ansible-tmp").mkdir(exist_ok=True)
        with _module_args(full):
            try:
                main()
            except ModuleExit as exc:
                json.dumps(exc.result)  # what a real module prints must serialize
                return exc.result
        raise AssertionError("module returned without exit_json or fail_json")

    return run
