"""Credentials in nix.conf never reach a module's output: result, invocation, diff, messages.

The settings that carry one were read in Nix's source (module_utils/nix_secrets.py): access-tokens,
impure-env, and the password of any scheme://user:password@ URL (substituters, builders, nix-path...).
The module runs as its own process, the way Ansible runs it (-vvvv, --diff), and its whole output is
searched for every secret (file content before and after, and the task's own value).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible.module_utils.ansible_release import __version__ as ANSIBLE_VERSION

from ansible_collections.nix_remote.builders.plugins.module_utils import file_edit
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_secrets import redact, secret_values
from ansible_collections.nix_remote.builders.plugins.modules import nix_conf, nix_machines

OLD_TOKEN = "ghp_oldSECRETtoken0123456789"
NEW_TOKEN = "ghp_newSECRETtoken9876543210"
INCLUDED_TOKEN = "glpat-includedSECRET42"


# Runs a module file as its own process like `python module.py args.json`, with the host edit lock
# pointed at the test's own (the real one is in /var/run; see host_lock_path in tests/conftest.py).
RUNNER = """
import os, runpy, sys
from ansible_collections.nix_remote.builders.plugins.module_utils import file_edit
file_edit.HOST_LOCK_PATH = sys.argv[1]
sys.argv = sys.argv[2:]
sys.path[0] = os.path.dirname(sys.argv[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_as_process(tmp_path, args: dict, check_mode=False, module=nix_conf) -> tuple[str, dict]:
    # The directory holding ansible_collections/ this test imported the collection from (ansible-test's own tree too).
    root = os.path.abspath(file_edit.__file__).rsplit(os.sep + "ansible_collections" + os.sep, 1)[0]
    args = dict(args, _ansible_diff=True, _ansible_check_mode=check_mode, _ansible_tmpdir=str(tmp_path / "tmp"), _ansible_verbosity=4)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (tmp_path / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    # Before ansible-test's PYTHONPATH (which brings ansible-core), not in its place.
    pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", RUNNER, file_edit.HOST_LOCK_PATH, module.__file__, str(tmp_path / "args.json")],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=pythonpath), check=False, timeout=60)
    return done.stdout + done.stderr, json.loads(done.stdout)


def invocation_shown(result: dict) -> bool:
    """The module's result holds its invocation (the arguments, masked), where the module adds it:
    ansible-core 2.21 no longer adds it, so there the check is the diff's alone."""
    return "invocation" in result or tuple(int(x) for x in ANSIBLE_VERSION.split(".")[:2]) >= (2, 21)


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
    assert "diff" in result and invocation_shown(result)
    for secret in (OLD_TOKEN, NEW_TOKEN, INCLUDED_TOKEN):
        assert secret not in output
    assert "cores = 3" in result["diff"]["after"]  # the diff is there, only the secrets are masked
    if not check_mode:
        assert NEW_TOKEN in target.read_text()  # masked in output only, written as given


OLD_SECRET = "oldPASSWORDxyz123"
NEW_SECRET = "newPASSWORDabc987"

# (setting, value in the file before, value the task sets): every secret must stay out of the output.
CREDENTIAL_SETTINGS = [
    ("extra-access-tokens", f"github.com={OLD_SECRET}", f"gitlab.com=PAT:{NEW_SECRET}"),
    ("impure-env", f"NIX_GITHUB_PRIVATE_PASSWORD={OLD_SECRET}", f"https_proxy=http://proxy.example:3128 NIX_GITHUB_PRIVATE_PASSWORD={NEW_SECRET}"),
    ("extra-impure-env", f"http_proxy=http://u:{OLD_SECRET}@proxy.example:3128", f"TOKEN={NEW_SECRET}"),
    ("substituters", f"https://cache.nixos.org https://ci:{OLD_SECRET}@cache.example/", f"https://ci:{NEW_SECRET}@cache.example/"),
    ("extra-substituters", f"https://user:{OLD_SECRET}@attic.example/main", f"s3://bucket https://bot:{NEW_SECRET}@cachix.example"),
    ("trusted-substituters", f"https://a:{OLD_SECRET}@c.example", f"https://a:{NEW_SECRET}@c.example"),
    ("nix-path", f"nixpkgs=https://u:{OLD_SECRET}@git.example/nixpkgs.tar.gz", f"nixpkgs=https://u:{NEW_SECRET}@git.example/x.tar.gz"),
    ("flake-registry", f"https://u:{OLD_SECRET}@registry.example/r.json", f"https://u:{NEW_SECRET}@registry.example/r.json"),
    ("hashed-mirrors", f"https://u:{OLD_SECRET}@tarballs.example", f"https://u:{NEW_SECRET}@tarballs.example"),
    ("builders", f"ssh://nix:{OLD_SECRET}@b1 x86_64-linux", f"ssh-ng://nix:{NEW_SECRET}@b2 x86_64-linux"),
]


@pytest.mark.parametrize("setting, old, new", CREDENTIAL_SETTINGS, ids=[row[0] for row in CREDENTIAL_SETTINGS])
def test_credentials_of_every_setting_never_appear(tmp_path, setting, old, new):
    conf_dir = tmp_path / "etc-nix"
    conf_dir.mkdir()
    (conf_dir / "nix.conf").write_text(f"{setting} = {old}\ncores = 2\n")
    output, result = run_as_process(tmp_path, {"path": str(conf_dir / "nix.conf"), "settings": {setting: new, "cores": 3},
                                               "validate": False})
    assert result.get("changed") and not result.get("failed"), result
    assert invocation_shown(result) and "cores = 3" in result["diff"]["after"]
    for secret in (OLD_SECRET, NEW_SECRET):
        assert secret not in output
    assert NEW_SECRET in (conf_dir / "nix.conf").read_text()


@pytest.mark.parametrize("check_mode", [False, True])
def test_list_items_of_credential_settings_never_appear(tmp_path, check_mode):
    """list_items of access-tokens and impure-env, the marker comment recording them, and URL passwords
    in substituters items are masked like settings values (result, diff, invocation)."""
    conf_dir = tmp_path / "etc-nix"
    conf_dir.mkdir()
    (conf_dir / "nix.conf").write_text(f"# nix_remote.builders manages access-tokens: github.com={OLD_TOKEN}\n"
                                       f"access-tokens = gitlab.com={INCLUDED_TOKEN}\n")
    output, result = run_as_process(tmp_path, {
        "path": str(conf_dir / "nix.conf"), "validate": False, "managed_marker": "nix_remote.builders",
        "list_items": {"access-tokens": {"present": [f"github.com={NEW_TOKEN}"]},
                       "extra-impure-env": {"present": [f"TOKEN={NEW_SECRET}"]},
                       "extra-substituters": {"present": [f"https://u:{OLD_SECRET}@cache.example"]}},
    }, check_mode=check_mode)
    assert result.get("changed") and not result.get("failed"), result
    assert "diff" in result and invocation_shown(result) and "extra-substituters" in result["diff"]["after"]
    for secret in (OLD_TOKEN, NEW_TOKEN, INCLUDED_TOKEN, NEW_SECRET, OLD_SECRET):
        assert secret not in output
    if not check_mode:
        assert NEW_TOKEN in (conf_dir / "nix.conf").read_text()


@pytest.mark.parametrize("text", [
    f"access-tokens=github.com={OLD_SECRET}\n",            # a syntax error: the message quotes the line
    f"access-tokens github.com={OLD_SECRET}\n",
    f"substituters https://u:{OLD_SECRET}@cache.example\n",
])
def test_a_refused_line_is_quoted_without_its_credential(tmp_path, text):
    conf_dir = tmp_path / "etc-nix"
    conf_dir.mkdir()
    (conf_dir / "nix.conf").write_text(text)
    output, result = run_as_process(tmp_path, {"path": str(conf_dir / "nix.conf"), "settings": {"cores": 3}, "validate": False})
    assert result.get("failed") and "line 1" in result["msg"], result
    assert OLD_SECRET not in output
    assert (conf_dir / "nix.conf").read_text() == text


def test_token_cut_by_a_hash_is_masked_whole(tmp_path):
    """A '#' inside a token is refused; neither half of the token is shown."""
    conf_dir = tmp_path / "etc-nix"
    conf_dir.mkdir()
    (conf_dir / "nix.conf").write_text(f"access-tokens = github.com=abc#{OLD_SECRET}\n")
    output, result = run_as_process(tmp_path, {"path": str(conf_dir / "nix.conf"), "validate": False,
                                               "settings": {"access-tokens": f"github.com={NEW_SECRET}#tail"}})
    assert result.get("failed") and "settings.access-tokens" in result["msg"], result
    for secret in (OLD_SECRET, NEW_SECRET):
        assert secret not in output


@pytest.mark.parametrize("in_nix_conf", [False, True])
def test_nix_machines_masks_uri_passwords_and_the_nix_conf_around_them(tmp_path, in_nix_conf):
    conf_dir = tmp_path / "etc-nix"
    conf_dir.mkdir()
    builder = {"uri": f"ssh-ng://nix:{NEW_SECRET}@builder2", "systems": ["x86_64-linux"]}
    if in_nix_conf:
        (conf_dir / "nix.conf").write_text(f"access-tokens = github.com={OLD_TOKEN}\nbuilders = ssh://nix:{OLD_SECRET}@b1 x86_64-linux\n")
        args = {"nix_conf_path": str(conf_dir / "nix.conf"), "builders": [builder]}
    else:
        (conf_dir / "machines").write_text(f"ssh://nix:{OLD_SECRET}@b1 x86_64-linux - 1 1 - - -\n")
        args = {"path": str(conf_dir / "machines"), "builders": [builder]}
    output, result = run_as_process(tmp_path, args, module=nix_machines)
    assert result.get("changed") and not result.get("failed"), result
    assert "builder2" in result["diff"]["after"]
    for secret in (OLD_SECRET, NEW_SECRET, OLD_TOKEN):
        assert secret not in output


def test_secret_values_and_redact():
    found = secret_values([f"access-tokens = a.com={OLD_SECRET} # note\nsubstituters = https://u:p4ss@c\n"], {})
    assert {f"a.com={OLD_SECRET}", OLD_SECRET, "p4ss"} <= found and "note" not in found
    assert secret_values([], {"impure-env": {"A": "s3cr3t"}}) >= {"A=s3cr3t", "s3cr3t"}
    assert secret_values(["netrc-file = /etc/nix/netrc\nsecret-key-files = /k\n"], {}) == set()
    assert redact(f"access-tokens=x.com={OLD_SECRET}") == "access-tokens=********"
    assert redact("substituters https://u:pw@c") == "substituters https://u:********@c"


def test_nixos_module_masks_credentials_in_nix_settings(tmp_path):
    from ansible_collections.nix_remote.builders.plugins.modules import nixos_module

    nixos = tmp_path / "nixos"
    nixos.mkdir()
    (nixos / "configuration.nix").write_text("{ config, pkgs, ... }:\n{\n  imports = [ ./hardware-configuration.nix ];\n}\n")
    (nixos / "remote-builder.nix").write_text(
        '{ config, lib, pkgs, ... }:\n{\n  nix = {\n    settings = {\n      access-tokens = [\n'
        f'        "github.com={OLD_TOKEN}"\n      ];\n      substituters = [ "https://u:{OLD_SECRET}@c.example" ];\n    }};\n  }};\n}}\n')
    content = {"nix": {"settings": {"access-tokens": [f"github.com={NEW_TOKEN}"], "impure-env": [f"TOKEN={NEW_SECRET}"],
                                    "substituters": [f"https://u:{NEW_SECRET}x@c.example"], "cores": 3}}}
    output, result = run_as_process(tmp_path, {"path": str(nixos / "remote-builder.nix"), "configuration": str(nixos / "configuration.nix"),
                                               "content": content}, module=nixos_module)
    assert result.get("changed") and not result.get("failed"), result
    assert "cores = 3" in result["diff"][0]["after"] if isinstance(result["diff"], list) else "cores = 3" in result["diff"]["after"]
    for secret in (OLD_TOKEN, NEW_TOKEN, OLD_SECRET, NEW_SECRET):
        assert secret not in output
    assert NEW_TOKEN in (nixos / "remote-builder.nix").read_text() and "********" in output
