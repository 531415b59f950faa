"""Every string a module accepts survives into the target format unchanged, or is refused naming the field.

For each module a generated value is rendered the way the module renders it and read back with our
parser; for nix.conf and NixOS expressions also with the real Nix on the host (2.8 here): `nix
show-config --json` with NIX_CONF_DIR for nix.conf, `nix-instantiate --eval --strict --json` for
NixOS. A value that does not survive must have been refused, with the field in the message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.nix_remote.builders.plugins.module_utils.machines import parse_machines, render_machine
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import NixConf
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_expr import render
from ansible_collections.nix_remote.builders.plugins.modules import nix_conf as nix_conf_module
from ansible_collections.nix_remote.builders.plugins.modules.nix_machines import BUILDER_SPEC, machine_from_params

NIX = shutil.which("nix") or ("/usr/bin/nix" if os.path.exists("/usr/bin/nix") else None)
NIX_INSTANTIATE = shutil.which("nix-instantiate") or ("/usr/bin/nix-instantiate" if os.path.exists("/usr/bin/nix-instantiate") else None)
needs_nix = pytest.mark.skipif(not (NIX and NIX_INSTANTIATE), reason="no Nix on this host")

# The nasty corners, mixed with anything Unicode has (lone surrogates stand for non-UTF-8 input).
CORNERS = ["#", "\n", "\r", "\t", " ", "  ", "=", "\x00", "\v", "\f", "\u00a0", "\u2028", ";", ",", "-", "@",
           "${", "''", "\\", "\"", "$", "'''", "''$", "''\\", "\udcff", "\u00e9", "\u2603", "\U0001f600"]
nasty_text = st.lists(st.one_of(st.sampled_from(CORNERS), st.text(max_size=4)), max_size=6).map("".join)
long_text = st.integers(1, 3).map(lambda n: "v" * (4096 * n))
any_text = st.one_of(nasty_text, long_text)


class Refused(Exception):
    pass


class StubModule:
    """Just enough of AnsibleModule for apply_changes: fail_json raises with the message."""

    def __init__(self, params):
        self.params = params

    def fail_json(self, msg, **_kwargs):
        raise Refused(msg)


# --- nix.conf ------------------------------------------------------------------------------------

CONF_KEYS = ["builders", "post-build-hook", "trusted-users", "substituters", "extra-substituters", "access-tokens"]


def conf_value(value):
    """What the module writes for value, or the failure message."""
    conf = NixConf.parse("", source="/etc/nix/nix.conf")
    key = value[0]
    try:
        nix_conf_module.apply_changes(StubModule({"settings": {key: value[1]}, "absent": []}), conf, "/etc/nix/nix.conf")
    except Refused as exc:
        return None, str(exc)
    return conf.render(), None


def expected_conf_value(value):
    return " ".join(value) if isinstance(value, list) else value


conf_case = st.tuples(st.sampled_from(CONF_KEYS), st.one_of(any_text, st.lists(nasty_text, max_size=3)))


@settings(max_examples=150)
@given(conf_case)
def test_nix_conf_values_survive_or_are_refused(case):
    key, value = case
    text, refusal = conf_value(case)
    if refusal is not None:
        assert refusal.startswith(f"/etc/nix/nix.conf: settings.{key}: "), refusal
        return
    assert NixConf.parse(text).get(key) == expected_conf_value(value)


def nix_show_config(text: str) -> dict:
    workdir = tempfile.mkdtemp(prefix="survival-")
    try:
        with open(os.path.join(workdir, "nix.conf"), "w", encoding="utf-8") as handle:
            handle.write(text)
        env = dict(os.environ, NIX_CONF_DIR=workdir, NIX_USER_CONF_FILES=os.path.join(workdir, "none"), NIX_CONFIG="")
        done = subprocess.run([NIX, "--extra-experimental-features", "nix-command", "show-config", "--json"],
                              capture_output=True, check=False, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    finally:
        shutil.rmtree(workdir)


@needs_nix
@settings(max_examples=20)
@given(st.one_of(nasty_text, long_text))
def test_nix_conf_values_nix_reads_as_written(value):
    """The real Nix reads an accepted string value (a string setting, so nothing is split) as written."""
    text, refusal = conf_value(("post-build-hook", value))
    if refusal is not None:
        assert "settings.post-build-hook" in refusal
        return
    assert nix_show_config(text)["post-build-hook"]["value"] == value


# --- machines ------------------------------------------------------------------------------------

def builder_spec(**fields):
    spec = {name: option.get("default") for name, option in BUILDER_SPEC.items()}
    spec.update(fields)
    return spec


field_text = st.one_of(nasty_text, st.sampled_from(["x86_64-linux", "kvm", "big-parallel", "a,b", "", "-"]))
machines_case = st.fixed_dictionaries({
    "uri": st.one_of(st.sampled_from(["ssh-ng://nix@b1", "ssh://b2"]), nasty_text.map(lambda t: "ssh-ng://nix@b" + t)),
    "systems": st.lists(field_text, max_size=3),
    "supported_features": st.lists(field_text, max_size=3),
    "mandatory_features": st.lists(field_text, max_size=2),
    "ssh_key": st.one_of(st.none(), nasty_text.map(lambda t: "/root/.ssh/k" + t)),
    "public_host_key": st.one_of(st.none(), st.sampled_from(["c3NoLWVkMjU1MTkgQUFBQQ==", "QUJD"]), nasty_text),
})


@settings(max_examples=200)
@given(machines_case)
def test_machines_fields_survive_or_are_refused(fields):
    try:
        machine = machine_from_params(0, builder_spec(**fields), "2.26")
    except ValueError as exc:
        assert str(exc).startswith("builders[0]"), exc
        return
    [reread] = parse_machines(render_machine(machine, "2.26") + "\n")
    assert reread.store_uri == fields["uri"]
    assert set(reread.systems) == set(fields["systems"])
    assert set(reread.supported_features) == set(fields["supported_features"])
    assert set(reread.mandatory_features) == set(fields["mandatory_features"])
    assert reread.ssh_key == (fields["ssh_key"] or None)
    assert reread.public_host_key == (fields["public_host_key"] or "")


# --- NixOS expressions ---------------------------------------------------------------------------

nixos_value = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1) | any_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(nasty_text, children, max_size=3),
    max_leaves=8,
)


def nix_eval_json(expression: str):
    done = subprocess.run([NIX_INSTANTIATE, "--eval", "--strict", "--json", "-E", expression],
                          capture_output=True, check=False, timeout=60, env=dict(os.environ, NIX_PATH=""))
    assert done.returncode == 0, (expression, done.stderr)
    return json.loads(done.stdout)


@needs_nix
@settings(max_examples=30)
@given(st.dictionaries(nasty_text, nixos_value, max_size=3))
def test_nixos_values_survive_or_are_refused(value):
    try:
        expression = render(value, 0, "content")
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("content"), exc
        return
    assert nix_eval_json(expression) == value


@pytest.mark.parametrize("value", ["${x}", "''${x}''", "a\\${b}", "\\", "''", "'''", "$${a}", "${", "$", "\u00e9\u2603", "a\tb\r\nc"])
@needs_nix
def test_nixos_escapes(value):
    assert nix_eval_json(render({"s": value})) == {"s": value}


@pytest.mark.parametrize("value", ["a\x00b", "\udcff"])
def test_nixos_refuses_nul_and_non_utf8(value):
    with pytest.raises(ValueError, match=r"^content\.nix\.x: "):
        render({"nix": {"x": value}}, 0, "content")
