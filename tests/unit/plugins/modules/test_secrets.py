"""Credentials in nix.conf (access-tokens) never reach a module's output: result, invocation, diff.

The module runs as its own process, the way Ansible runs it, and its whole JSON output is
searched for every secret (file content before and after, and the task's own value).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.nix_remote.builders.plugins.modules import nix_conf

OLD_TOKEN = "ghp_oldSECRETtoken0123456789"
NEW_TOKEN = "ghp_newSECRETtoken9876543210"
INCLUDED_TOKEN = "glpat-includedSECRET42"


def run_as_process(tmp_path, args: dict, check_mode=False) -> tuple[str, dict]:
    root = next(p for p in sys.path if p.endswith(os.path.join(".build", "collections")) or "nix-remote-collections-" in p)
    args = dict(args, _ansible_diff=True, _ansible_check_mode=check_mode, _ansible_tmpdir=str(tmp_path / "tmp"), _ansible_verbosity=4)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (tmp_path / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run([sys.executable, nix_conf.__file__, str(tmp_path / "args.json")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=root), check=False, timeout=60)
    return done.stdout + done.stderr, json.loads(done.stdout)


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("follow", [False, True])
def test_access_tokens_never_appear_in_output(tmp_path, check_mode, follow):
    conf_dir = tmp_path / "etc-nix"
    conf_dir.mkdir()
    main = "!include nix.custom.conf\n" if follow else ""
    target = conf_dir / ("nix.custom.conf" if follow else "nix.conf")
    (conf_dir / "nix.conf").write_text(main + (f"access-tokens = github.com={OLD_TOKEN} gitlab.com={INCLUDED_TOKEN}\n" if not follow else ""))
    if follow:
        target.write_text(f"access-tokens = github.com={OLD_TOKEN}\nextra-access-tokens = gitlab.com={INCLUDED_TOKEN}\n")
    output, result = run_as_process(tmp_path, {
        "path": str(conf_dir / "nix.conf"),
        "settings": {"access-tokens": f"github.com={NEW_TOKEN}", "cores": 3},
        "validate": False,
    }, check_mode=check_mode)
    assert result.get("changed") and not result.get("failed"), result
    assert "diff" in result and "invocation" in result
    for secret in (OLD_TOKEN, NEW_TOKEN, INCLUDED_TOKEN):
        assert secret not in output
    assert "cores = 3" in result["diff"]["after"]  # the diff is there, only the secrets are masked
    if not check_mode:
        assert NEW_TOKEN in target.read_text()  # masked in output only, written as given
