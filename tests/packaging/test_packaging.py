"""The collection tarball holds what a user needs and no development files, and an execution
environment can be built from it with ansible-builder (build context only: no container engine)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

# Development files: scripts, test suites, the matrix, local settings and build output.
DEV_PREFIXES = ("hacking/", "tests/", "molecule/", "bench/", ".build/", ".venv/", ".ci/", ".nox/", "changelogs/fragments/")
DEV_FILES = {"noxfile.py", "pytest.ini", "ruff.toml", "Makefile",
             "ansible.cfg", "requirements-dev.in", "requirements-dev.txt", ".ansible-lint", ".yamllint", ".gitignore"}
# What a user of the collection needs.
NEEDED = {
    "MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml", "meta/execution-environment.yml",
    "playbooks/site.yml", "playbooks/verify.yml", "changelogs/changelog.yaml",
    "roles/remote_builder/tasks/main.yml", "roles/local_client/tasks/main.yml",
    "plugins/modules/nix_machines.py", "plugins/module_utils/machines.py", "docs/security.md",
}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(out), REPO],
                   check=True, stdout=subprocess.DEVNULL)
    (path,) = out.glob("nix_remote-builders-*.tar.gz")
    return path


def test_tarball_holds_what_a_user_needs_and_no_development_files(tarball):
    with tarfile.open(tarball) as tar:
        names = {m.name.rstrip("/") for m in tar.getmembers()}
    assert NEEDED <= names, sorted(NEEDED - names)
    dev = sorted(n for n in names if n in DEV_FILES or any((n + "/").startswith(p) for p in DEV_PREFIXES))
    assert dev == []


def test_execution_environment_metadata_says_no_controller_dependencies(tarball, tmp_path):
    with open(os.path.join(REPO, "meta", "execution-environment.yml"), encoding="utf-8") as handle:
        meta = yaml.safe_load(handle)
    assert meta == {"version": 1, "dependencies": {}}
    cols = tmp_path / "cols"
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--force", "-p", str(cols), str(tarball)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert (cols / "ansible_collections/nix_remote/builders/meta/execution-environment.yml").is_file()
    out = subprocess.run([os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize", str(cols)],
                         check=True, capture_output=True, text=True).stdout
    assert yaml.safe_load(out.split("---", 1)[1]) == {"python": [], "system": []}


def test_ansible_builder_creates_a_build_context_that_installs_the_tarball(tarball, tmp_path):
    # The tarball travels inside the build context; the image build installs it from there.
    in_context = f"collections/{tarball.name}"
    definition = tmp_path / "execution-environment.yml"
    definition.write_text(yaml.safe_dump({
        "version": 3,
        "images": {"base_image": {"name": "quay.io/ansible/awx-ee:latest"}},
        "additional_build_files": [{"src": str(tarball), "dest": "collections"}],
        "dependencies": {"galaxy": {"collections": [{"name": in_context, "type": "file"}]}},
    }))
    context = tmp_path / "context"
    subprocess.run([os.path.join(BIN, "ansible-builder"), "create", "-f", str(definition), "-c", str(context),
                    "--output-filename", "Containerfile"], check=True, stdout=subprocess.DEVNULL)
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/ansible/awx-ee:latest"' in containerfile
    assert "COPY _build /build" in containerfile
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in containerfile
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"] == [{"name": in_context, "type": "file"}]
    assert (context / "_build" / in_context).read_bytes() == tarball.read_bytes()
    for script in ("assemble", "install-from-bindep", "introspect.py", "check_galaxy"):
        assert (context / "_build" / "scripts" / script).is_file(), script
