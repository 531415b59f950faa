"""The fleet binary cache on real hosts (issue 16): every arrow of it, and its locks.

The scenario's host `cache` runs the binary_cache role (nginx from Debian's archive, the signing key
made there, the upload user); both builders upload through their post-build hook and uploader
service and substitute from it; every client substitutes from it.  What is real: all of it, the
nginx, the SSH upload into `nix-store --serve --write` on the cache directory, the signatures Nix
checks.  The testbed stands in only for a stopped cache host's network: an nftables rule that
refuses its SSH port (tests/testbed/testbed.py blackhole --refuse-port), with nginx stopped for real.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import uuid

import pytest
from fleet import BUILDERS, CLIENTS, PROJECT, RUNNER, client_record, host_of, login, site

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "fleet")
CACHE = sorted(RUNNER.get_hosts("nix_caches"))[0]
CACHE_DIR = "/var/cache/nix-fleet-cache"
SECRET = "/etc/nix/nix-fleet-cache.sec"
UPLOAD_KEY = "/etc/nix/nix-fleet-cache-upload_ed25519"
KNOWN_HOSTS = "/etc/nix/nix-fleet-cache.known_hosts"
QUEUE = "/var/lib/nix-fleet-cache/queue"
UPLOADER = "nix-fleet-cache-uploader.service"


def cache_address() -> str:
    return RUNNER.get_variables(CACHE).get("ansible_host", CACHE)


def url() -> str:
    return f"http://{cache_address()}:5000"


def public_key() -> str:
    return host_of(CACHE).file("/etc/nix/nix-fleet-cache.pub").content_string.strip()


def expression(tag: str, nonce: str, dep: str = "") -> str:
    """A derivation of its own (NONCE) that writes a line; with DEP, one that reads DEP's output."""
    script = f"read x < ${{{dep}}}; echo $x {tag} > $out" if dep else f"echo {nonce} {tag} > $out"
    return (f'derivation {{ name = "cache-{tag}-{nonce}"; system = builtins.currentSystem; builder = "/bin/sh"; '
            f'args = [ "-c" "{script}" ]; }}')


def nix_build(client: str, expr: str, *options: str):
    """nix-build as root through the daemon, local builds off: the build goes to a builder."""
    return login(host_of(client), "nix-build --no-out-link --max-jobs 0 " + " ".join(options) + " -E " + shlex.quote(expr))


def narinfo(path: str) -> str:
    """The cache's narinfo of PATH, read through its URL from the cache host itself ('' when it has none)."""
    name = path.split("/")[-1].split("-", 1)[0]
    result = host_of(CACHE).run(f"python3 -c 'import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "
                                f"{url()}/{name}.narinfo")
    return result.stdout if result.rc == 0 else ""


def wait_for(condition, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(1)
    return time.monotonic() - start


def builder_with(path: str) -> str:
    holders = [b for b in BUILDERS if login(host_of(b), f"nix-store --check-validity {path}").rc == 0]
    assert len(holders) == 1, holders
    return holders[0]


def refuse(port_state: str) -> None:
    argv = [sys.executable, str(PROJECT / "tests/testbed/testbed.py"), "blackhole", "--name", f"molecule-{SCENARIO}", CACHE, port_state]
    subprocess.run(argv + (["--refuse-port", "22"] if port_state == "on" else []), check=True, capture_output=True)


@pytest.mark.parametrize("name", CLIENTS + BUILDERS)
def test_every_host_substitutes_from_the_cache_and_trusts_its_key(name):
    host = host_of(name)
    conf = host.file("/etc/nix/nix.conf").content_string
    assert re.search(rf"^extra-substituters = .*{re.escape(url())}( |$)", conf, re.M), conf
    assert re.search(rf"^extra-trusted-public-keys = .*{re.escape(public_key())}( |$)", conf, re.M), conf
    # What the daemon will do when the cache does not answer: fall back to building, soon.
    assert re.search(r"^fallback = true$", conf, re.M) and re.search(r"^connect-timeout = 5$", conf, re.M)
    # The cache answers this host.
    info = host.run(f"python3 -c 'import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())' {url()}/nix-cache-info")
    assert info.rc == 0 and "StoreDir: /nix/store" in info.stdout and "Priority: 30" in info.stdout, info.stderr


def test_the_cache_s_secret_key_is_the_upload_user_s_only():
    cache = host_of(CACHE)
    secret = cache.file(SECRET)
    assert secret.mode == 0o600 and secret.user == "nix-cache"
    # The public key is the secret key's own.
    assert secret.content_string.split(":", 1)[0] == public_key().split(":", 1)[0]


@pytest.fixture(scope="module")
def uploaded():
    """A derivation built from client-sid on one of the builders, then uploaded by that builder."""
    nonce = uuid.uuid4().hex[:12]
    build = nix_build("client-sid", expression("a", nonce))
    assert build.rc == 0, build.stderr[-3000:]
    path = build.stdout.split()[-1]
    waited = wait_for(lambda: narinfo(path), 60, f"{path} in the cache")
    return {"nonce": nonce, "path": path, "builder": builder_with(path), "waited": waited}


def test_a_built_path_is_uploaded_and_signed_by_the_cache(uploaded):
    info = narinfo(uploaded["path"])
    assert f"StorePath: {uploaded['path']}" in info
    key_name = public_key().split(":", 1)[0]
    assert re.search(rf"^Sig: {re.escape(key_name)}:", info, re.M), info
    assert "Compression: zstd" in info
    journal = host_of(uploaded["builder"]).run(f"journalctl -u {UPLOADER} -o cat --no-pager").stdout
    assert re.search(rf"^nix-cache@{re.escape(cache_address())}:22: uploaded \d+ paths$", journal, re.M), journal[-2000:]


def test_another_client_substitutes_it_from_the_cache(uploaded):
    # No builders and no local builds: the path can only come from a substituter.
    build = nix_build("client-trixie", expression("a", uploaded["nonce"]), "--builders", "''")
    assert build.rc == 0, build.stderr[-3000:]
    assert build.stdout.split()[-1] == uploaded["path"]
    assert f"copying path '{uploaded['path']}' from '{url()}'" in build.stderr, build.stderr[-3000:]
    assert host_of("client-trixie").file(uploaded["path"]).content_string == f"{uploaded['nonce']} a\n"


def test_the_other_builder_substitutes_the_input_rather_than_getting_it_from_the_client(uploaded):
    other = next(b for b in BUILDERS if b != uploaded["builder"])
    entry = [ln for ln in host_of("client-sid").file("/etc/nix/machines").content_string.splitlines()
             if ln.split(" ", 1)[0] == client_record(host_of("client-sid"), other)["uri"]]
    assert len(entry) == 1, entry
    expr = f"let a = {expression('a', uploaded['nonce'])}; in {expression('b', uuid.uuid4().hex[:12], dep='a')}"
    build = nix_build("client-sid", expr, "--builders", shlex.quote(entry[0]))
    assert build.rc == 0, build.stderr[-3000:]
    assert host_of("client-sid").file(build.stdout.split()[-1]).content_string == f"{uploaded['nonce']} a b\n"
    # client-sid holds the input (it built it through the first builder), yet the other builder's copy
    # carries the cache's signature: it came from the cache (builders-use-substitutes), not from the client.
    sigs = login(host_of(other), f"nix --extra-experimental-features nix-command path-info --sigs {uploaded['path']}")
    assert sigs.rc == 0 and public_key().split(":", 1)[0] + ":" in sigs.stdout, sigs.stdout + sigs.stderr


def test_a_build_succeeds_while_the_cache_is_stopped_and_the_queue_drains_after():
    cache = host_of(CACHE)
    assert cache.run("systemctl stop nginx.service").rc == 0
    refuse("on")
    try:
        nonce = uuid.uuid4().hex[:12]
        # Nix 2.26 (trixie): with fallback the build goes on.  Nix 2.8 (bookworm) aborts instead once it has
        # disabled the cache ("terminate called after throwing an instance of 'nix::SubstituterDisabled'"),
        # with fallback or without: a limit of that release, in the role's README.
        build = nix_build("client-trixie", expression("c", nonce))
        assert build.rc == 0, build.stderr[-3000:]
        path = build.stdout.split()[-1]
        builder = host_of(builder_with(path))
        # The hook queued it; the uploader could not deliver it and keeps it.
        wait_for(lambda: "failed" in builder.run(f"journalctl -u {UPLOADER} -o cat --no-pager -n 5").stdout, 60,
                 "the uploader's failed attempt")
        queued = builder.run(f"cat {QUEUE}/*").stdout.split()
        assert path in queued, queued
    finally:
        refuse("off")
        assert cache.run("systemctl start nginx.service").rc == 0
    waited = wait_for(lambda: narinfo(path), 60, f"{path} in the cache after it came back")
    assert waited < 40, waited
    assert builder.run(f"ls -A {QUEUE}").stdout.split() == [] or all(
        n.startswith(".") for n in builder.run(f"ls -A {QUEUE}").stdout.split())


def test_the_upload_key_runs_nothing_but_the_upload():
    secret = host_of(CACHE).file(SECRET).content_string.strip().split(":", 1)[1]
    builder = host_of(BUILDERS[0])
    ssh = (f"ssh -i {UPLOAD_KEY} -o IdentitiesOnly=yes -o UserKnownHostsFile={KNOWN_HOSTS} -o StrictHostKeyChecking=yes "
           f"-o BatchMode=yes nix-cache@{cache_address()}")

    def attempt(args: str) -> tuple[int, str]:
        # ssh's own exit code (255 for its errors) is printed, not returned: testinfra takes a 255 for its own failure.
        result = builder.run(f'timeout 20 {ssh} {args} < /dev/null; echo "rc=$?"')
        out = result.stdout + result.stderr
        return int(re.findall(r"^rc=(\d+)$", result.stdout, re.M)[-1]), out

    for command in ("id", f"cat {SECRET}", "sh -c 'echo shell'"):
        rc, out = attempt(shlex.quote(command))
        assert rc != 0, out
        assert "uid=" not in out and not re.search(r"^shell$", out, re.M) and secret not in out, out
        # sshd ran the forced command instead: nix-store's serve protocol, which found no handshake.
        assert "error: unexpected end-of-file" in out, out
    # No tty, no forwarding.
    rc, out = attempt("-tt id")
    assert rc != 0 and "uid=" not in out and "PTY allocation request failed" in out, out
    rc, out = attempt("-o ExitOnForwardFailure=yes -N -R 15999:127.0.0.1:22")
    assert rc != 0 and "remote port forwarding failed" in out, out


def test_a_path_signed_by_a_key_the_hosts_do_not_trust_is_refused():
    cache = host_of(CACHE)
    nonce = uuid.uuid4().hex[:12]
    made = login(cache, "set -e; d=$(mktemp -d); cd $d; nix-store --generate-binary-cache-key rogue-1 rogue.sec rogue.pub; "
                 f"p=$(nix-build --no-out-link -E {shlex.quote(expression('rogue', nonce))}); "
                 f"nix --extra-experimental-features nix-command copy --to 'file://{CACHE_DIR}?secret-key='$d/rogue.sec $p; "
                 f"chown -R nix-cache: {CACHE_DIR}; rm -rf $d; echo $p")
    assert made.rc == 0, made.stderr[-2000:]
    path = made.stdout.split()[-1]
    assert "Sig: rogue-1:" in narinfo(path)
    result = login(host_of("client-sid"), f"nix-store --realise {path}")
    assert result.rc != 0
    assert "not signed by any of the keys in 'trusted-public-keys'" in result.stderr, result.stderr[-2000:]
    assert login(host_of("client-sid"), f"nix-store --check-validity {path}").rc != 0


def test_the_cache_s_secret_key_never_reaches_a_verbose_log():
    secret = host_of(CACHE).file(SECRET).content_string.strip().split(":", 1)[1]
    run = site("--limit", CACHE, "-vvv")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    log = run.stdout + run.stderr
    assert "binary_cache_export" in log
    # Neither the whole key nor any 16-character piece of it.
    assert not [i for i in range(0, len(secret) - 16, 8) if secret[i:i + 16] in log]
