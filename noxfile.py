"""The support matrix: ansible-test sanity and units for every ansible-core minor claimed.

Run with `make matrix` (or `.venv/bin/nox -l` to list the cells).  Sessions:

- sanity-<core>(python=X): `ansible-test sanity` with ansible-core <core> on controller Python X;
  the compile and import tests run on X as well.
- units-<core>(python=X): `ansible-test units` on Python X, which is a managed-node Python for
  ansible-core <core> (module and module_utils tests) and, when it is also a controller Python,
  the controller-side tests too.  ansible-test itself runs on the newest controller Python.

Why plain nox and not antsibull-nox: antsibull-nox 1.10 installs here, but its sanity and units
sessions always pass --docker (no container engine runs here) and take ansible-core from GitHub
(not reachable); its generic session would still need this file's offline pip bootstrap.
The pyenv interpreters are found through symlinks in .build/pythons (pyenv's shims refuse
versions that are not selected), which also puts them on the PATH ansible-test keeps.
"""

from __future__ import annotations

import glob
import os
import re

import nox

REPO = os.path.dirname(os.path.abspath(__file__))
PYTHONS_DIR = os.path.join(REPO, ".build", "pythons")

# ansible-core minor -> (controller Pythons, managed-node Pythons), from its documentation and
# ansible_test._internal.constants; each session checks the table against the installed ansible-test.
# Managed-node Pythons below 3.7 are not claimed by this collection.
CORES = {
    "2.16": (("3.10", "3.11", "3.12"), ("3.7", "3.8", "3.9", "3.10", "3.11", "3.12")),
    "2.17": (("3.10", "3.11", "3.12"), ("3.7", "3.8", "3.9", "3.10", "3.11", "3.12")),
    "2.18": (("3.11", "3.12", "3.13"), ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")),
    "2.19": (("3.11", "3.12", "3.13"), ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")),
    "2.20": (("3.12", "3.13", "3.14"), ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")),
    "2.21": (("3.12", "3.13", "3.14"), ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")),
}


def _link_pyenv_pythons() -> list[str]:
    """Symlink every pyenv CPython as .build/pythons/pythonX.Y and return the versions found."""
    os.makedirs(PYTHONS_DIR, exist_ok=True)
    found = []
    for binary in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.*"))):
        name = os.path.basename(binary)
        if not re.fullmatch(r"python3\.\d+", name):
            continue
        link = os.path.join(PYTHONS_DIR, name)
        if not os.path.exists(link):
            os.symlink(binary, link)
        found.append(name[len("python"):])
    found += [name[len("python"):] for name in os.listdir(PYTHONS_DIR) if name[len("python"):] not in found]
    return sorted(set(found), key=lambda v: tuple(int(p) for p in v.split(".")))


PRESENT = _link_pyenv_pythons()
os.environ["PATH"] = PYTHONS_DIR + os.pathsep + os.environ["PATH"]

nox.options.envdir = os.path.join(REPO, ".build", "nox")
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _install_core(session: nox.Session, core: str) -> None:
    session.install(f"ansible-core~={core}.0")
    version = session.run("python", "-c", "import ansible; print(ansible.__version__)", silent=True).strip()
    if not version.startswith(core + "."):
        session.error(f"asked for ansible-core {core}, got {version}")
    controller, targets = CORES[core]
    session.run(
        "python", os.path.join(REPO, "hacking", "check_core_pythons.py"),
        ",".join(controller), ",".join(targets), silent=False,
    )


def _ansible_test(session: nox.Session, command: str, *args: str) -> None:
    session.run(
        os.path.join(REPO, "hacking", "ansible-test.sh"), session.virtualenv.location, command, *args,
        external=True,
    )


for _core, (_controller, _targets) in CORES.items():
    _controllers_here = [v for v in _controller if v in PRESENT]
    _targets_here = [v for v in _targets if v in PRESENT]

    def _sanity(session: nox.Session, core: str = _core) -> None:
        _install_core(session, core)
        _ansible_test(session, "sanity", "--python", session.python)

    nox.session(name=f"sanity-{_core}", python=_controllers_here)(_sanity)

    def _units(session: nox.Session, target: str, core: str = _core) -> None:
        _install_core(session, core)
        _ansible_test(session, "units", "--python", target)

    # ansible-test runs on the newest controller Python present; the tests run on `target`.
    nox.session(name=f"units-{_core}", python=max(_controllers_here, key=lambda v: tuple(map(int, v.split(".")))))(
        nox.parametrize("target", _targets_here)(_units)
    )
