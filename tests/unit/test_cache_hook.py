"""The role's post-build hook (roles/remote_builder/templates/nix-fleet-cache-hook.j2), rendered and
run as Nix runs it (sh, OUT_PATHS in its environment): it only queues, and never fails a build.
Controller-side (it renders a template with Jinja2), so it lives outside tests/unit/plugins/module_utils,
whose tests also run on managed-node Pythons without Jinja2 under ansible-test units."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jinja2

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "roles" / "remote_builder" / "templates" / "nix-fleet-cache-hook.j2"


def render_hook(tmp_path, queue):
    text = jinja2.Template(HOOK.read_text()).render(ansible_managed="test", __remote_builder_cache_queue_path=str(queue))
    hook = tmp_path / "hook"
    hook.write_text(text)
    hook.chmod(0o755)
    return hook


def run_hook(hook, out_paths):
    env = {"PATH": os.environ["PATH"], "OUT_PATHS": out_paths, "DRV_PATH": "/nix/store/x.drv"}
    return subprocess.run([str(hook)], env=env, capture_output=True, text=True, timeout=10, check=False)


def test_the_hook_queues_every_output_and_exits_0(tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    hook = render_hook(tmp_path, queue)
    # '?' is legal in a store path name: no globbing may touch it.
    paths = "/nix/store/aaaa-out /nix/store/bbbb-dev?x"
    result = run_hook(hook, paths)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    files = os.listdir(queue)
    assert len(files) == 1 and not files[0].startswith(".")
    assert (queue / files[0]).read_text() == "/nix/store/aaaa-out\n/nix/store/bbbb-dev?x\n"


def test_the_hook_never_fails_a_build(tmp_path):
    hook = render_hook(tmp_path, tmp_path / "missing")
    result = run_hook(hook, "/nix/store/aaaa-out")
    assert result.returncode == 0
    assert run_hook(render_hook(tmp_path, tmp_path), "").returncode == 0
