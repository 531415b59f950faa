"""remote_builder_trust: signing on Nix 2.26 and 2.34 (issue 7 item 3).

The build user is not a trusted Nix user; what a client uploads (inputs it built itself) must
carry its signature, and outputs fetched from one builder carry that builder's signature when
uploaded to another.  Every test builds for real through nix-daemon, as a user's build would.
"""

from __future__ import annotations

import re
import shlex
import uuid

import pytest
from fleet import BUILDERS, CLIENTS, KEY, PAIRS, host_of
from test_upgrade import ADMIN_KEY, UPGRADED

SECRET = "/etc/nix/nix-remote-builders-signing.sec"
PUBLIC = "/etc/nix/nix-remote-builders-signing.pub"


def address(name: str) -> str:
    return host_of(name).ansible.get_variables()["ansible_host"]


def machines_line(client, builder: str) -> str:
    lines = [ln for ln in client.file("/etc/nix/machines").content_string.splitlines()
             if f"@{address(builder)} " in ln or f"@{address(builder)}:" in ln]
    assert len(lines) == 1, lines
    return lines[0]


def nix(host, command: str):
    return host.run("bash -lc %s", "NIX_REMOTE=daemon " + command)


def expr(tag: str) -> tuple[str, str]:
    """A derivation `a` and a derivation `b` that reads a's output."""
    n = f"nix-remote-builders-signing-{tag}-{uuid.uuid4().hex[:10]}"
    a = (f'derivation {{ name = "{n}-a"; system = builtins.currentSystem; builder = "/bin/sh"; '
         f'args = [ "-c" "echo {n} > $out" ]; }}')
    b = (f'let a = {a}; in derivation {{ name = "{n}-b"; system = builtins.currentSystem; builder = "/bin/sh"; '
         f'args = [ "-c" "read x < ${{a}}; echo $x b > $out" ]; }}')
    return a, b


def build(host, expression: str, builders: str, max_jobs: int = 0):
    result = nix(host, f"nix-build --no-out-link --max-jobs {max_jobs} --builders {shlex.quote(builders)} "
                       f"-E {shlex.quote(expression)}")
    return result


@pytest.mark.parametrize("name", BUILDERS)
def test_build_user_is_not_trusted(name):
    conf = host_of(name).file("/etc/nix/nix.conf").content_string
    for line in conf.splitlines():
        if re.match(r"^(extra-)?trusted-users\s*=", line):
            assert "remotebuild" not in line.split("=", 1)[1].split(), line


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_builder_reports_the_client_untrusted(client, builder):
    c = host_of(client)
    store = machines_line(c, builder).split()[0]
    info = nix(c, f"nix --extra-experimental-features nix-command store info --store "
                  f"{shlex.quote(store + ('&' if '?' in store else '?') + 'ssh-key=' + KEY)}")
    assert info.rc == 0, info.stderr
    assert re.search(r"Trusted: 0", info.stdout + info.stderr), info.stdout + info.stderr


@pytest.mark.parametrize("name", BUILDERS)
def test_builder_trusts_exactly_the_role_keys_and_the_defaults(name):
    conf = host_of(name).file("/etc/nix/nix.conf").content_string
    lines = [ln for ln in conf.splitlines() if ln.startswith("extra-trusted-public-keys = ")]
    assert len(lines) == 1, lines
    trusted = set(lines[0].split("=", 1)[1].split())
    expected = {host_of(h).file(PUBLIC).content_string.strip() for h in CLIENTS + BUILDERS}
    # The builder 0.1.0 configured first (prepare.yml) keeps its administrator's key.
    assert trusted - {ADMIN_KEY} == expected
    assert (ADMIN_KEY in trusted) == (name in UPGRADED)
    assert re.search(rf"^extra-secret-key-files = {SECRET}$", conf, re.M)


@pytest.mark.parametrize("name", CLIENTS + BUILDERS)
def test_secret_signing_key_is_root_only_and_named_after_the_host(name):
    host = host_of(name)
    secret = host.file(SECRET)
    assert secret.user == "root" and secret.mode == 0o600
    assert host.file(PUBLIC).content_string.startswith(f"{name}-1:")


@pytest.mark.parametrize("name", CLIENTS)
def test_client_signs_what_it_builds(name):
    conf = host_of(name).file("/etc/nix/nix.conf").content_string
    assert re.search(rf"^extra-secret-key-files = {SECRET}$", conf, re.M), conf


@pytest.mark.parametrize(("client", "builder"), PAIRS)
def test_input_built_locally_is_uploaded_signed_and_the_build_runs_there(client, builder):
    """The case that fails without signing ("lacks a signature by a trusted key")."""
    c, b = host_of(client), host_of(builder)
    a, dependent = expr("upload")
    local = build(c, a, "", max_jobs=1)
    assert local.rc == 0, local.stderr
    a_out = local.stdout.strip().splitlines()[-1]
    remote = build(c, dependent, machines_line(c, builder))
    assert remote.rc == 0, remote.stderr
    out = remote.stdout.strip().splitlines()[-1]
    assert nix(b, f"nix-store --check-validity {out}").rc == 0, f"{out} was not built on {builder}"
    sigs = nix(b, f"nix --extra-experimental-features nix-command path-info --sigs {a_out}").stdout
    assert f"{client}-1:" in sigs, f"{a_out} on {builder} lacks {client}'s signature: {sigs}"


def test_output_of_one_builder_is_accepted_by_the_other():
    first, second = BUILDERS
    c = host_of(CLIENTS[0])
    a, dependent = expr("cross")
    one = build(c, a, machines_line(c, first))
    assert one.rc == 0, one.stderr
    two = build(c, dependent, machines_line(c, second))
    assert two.rc == 0, two.stderr
    out = two.stdout.strip().splitlines()[-1]
    assert nix(host_of(second), f"nix-store --check-validity {out}").rc == 0
