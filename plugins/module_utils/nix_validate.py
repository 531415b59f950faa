# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a candidate nix.conf the way Nix will read it, before it is installed.

Nix reads exactly one file, ``$NIX_CONF_DIR/nix.conf``, and the files it includes (relative
include paths are relative to the including file's directory; ``include`` of a missing file is
an error, ``!include`` of one is skipped; a file that cannot be read, such as a directory, is
skipped). A candidate is therefore checked as part of the nix.conf that reads it:

1. ``conf_root`` finds that nix.conf: the file the task named when it is called ``nix.conf``,
   otherwise a ``nix.conf`` beside it (or in /etc/nix) whose include tree holds it.
2. ``load_tree`` follows every include from there with our own parser, the candidate standing in
   for the file it replaces, and refuses include cycles (Nix overflows its stack on them), missing
   non-optional includes, non-regular files and syntax errors, naming the chain of files.
3. ``validate_tree`` copies that tree into a temporary directory, every include line pointing at
   the copy of the file it includes (line numbers unchanged), and has the installed Nix read it
   with ``NIX_CONF_DIR`` set there; its messages are given back with the real paths.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

from ansible_collections.nix_remote.builders.plugins.module_utils.file_edit import (
    ConfigFileError,
    file_kind,
    read_config,
)
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import NixConf
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_detect import (
    CONF_DIR,
    NIX_BIN_DIRS,
    config_show_argv,
    nix_implementation,
    parse_nix_version,
)

CONF_NAME = "nix.conf"
# Include trees deeper than this are refused rather than followed (Nix has no limit of its own and
# crashes on a cycle; no real configuration comes near it).
MAX_INCLUDE_DEPTH = 64


class IncludeError(ConfigFileError):
    """An include tree Nix cannot read: a cycle, a missing file, a file that is not a regular file."""


def _resolve(including: str, path: str) -> str:
    """Nix's absPath(path, dirOf(including)): lexical, symlinks not resolved."""
    return os.path.normpath(os.path.join(os.path.dirname(including), path))


def _chain_text(chain) -> str:
    return " -> ".join(f"{source}, line {line}" for source, line in chain)


class ConfTree:
    """The files Nix reads from one nix.conf: ``files`` maps each real path to
    ``(shown path, text, [(line, optional, included path as resolved, its real path or None)])``,
    in the order Nix reads them. ``directories`` are included paths that are directories (Nix skips
    them without a word); ``warnings`` say so."""

    def __init__(self, root: str):
        self.root = root
        self.files: dict = {}
        self.directories: set = set()
        self.warnings: list = []

    def __contains__(self, path: str) -> bool:
        return os.path.realpath(path) in self.files


def load_tree(root: str, overrides: dict) -> ConfTree:
    """Follow the includes of ``root`` as Nix does; ``overrides`` maps a path to the text that
    stands in for it (the candidate). Raises IncludeError, NixConfError or ConfigFileError, each
    naming the file (and line, and chain of includes) at fault."""
    overrides = {os.path.realpath(path): text for path, text in overrides.items()}
    tree = ConfTree(root)
    _load(tree, root, overrides, [], set())
    return tree


def _read(path: str, overrides: dict):
    real = os.path.realpath(path)
    if real in overrides:
        return overrides[real]
    text, existed = read_config(real)
    return text if existed else None


def _load(tree: ConfTree, path: str, overrides: dict, chain: list, active: set) -> None:
    real = os.path.realpath(path)
    text = _read(path, overrides)
    if text is None:
        text = ""  # the root itself may not exist yet: Nix reads no file then
    conf = NixConf.parse(text, source=path)
    includes = []
    tree.files[real] = (path, text, includes)
    active.add(real)
    try:
        for number, optional, included in conf.include_lines():
            target = _resolve(path, included)
            here = chain + [(path, number)]
            target_real = os.path.realpath(target)
            if target_real in active:
                raise IncludeError(f"include cycle: {_chain_text(here)} includes {target} again; "
                                   "Nix would recurse until it crashes. Remove one of these include lines")
            if len(here) > MAX_INCLUDE_DEPTH:
                raise IncludeError(f"includes nested more than {MAX_INCLUDE_DEPTH} deep: {_chain_text(here)}")
            # A dangling symlink counts as missing (Nix would skip it without a word even for 'include').
            if target_real not in overrides and not os.path.exists(target):
                if optional:
                    includes.append((number, optional, target, None))
                    continue
                through = f" (included through {_chain_text(chain)})" if chain else ""
                raise IncludeError(f"{path}, line {number}: included file {target} not found{through}"
                                   "; Nix refuses to start without it. Create it, or write '!include' for an optional file")
            if target_real not in overrides:
                try:
                    mode = os.stat(target).st_mode
                except OSError as exc:
                    raise IncludeError(f"{path}, line {number}: cannot examine included file {target}: {exc.strerror}") from None
                if stat.S_ISDIR(mode):
                    tree.directories.add(target)
                    tree.warnings.append(f"{path}, line {number}: included path {target} is a directory, which Nix "
                                         "skips without a word; include the files in it one by one")
                    includes.append((number, optional, target, None))
                    continue
                if not stat.S_ISREG(mode):
                    raise IncludeError(f"{path}, line {number}: included file {target} is {file_kind(mode)}, not a regular "
                                       "file; Nix would block or fail reading it")
            includes.append((number, optional, target, target_real))
            if target_real not in tree.files:
                _load(tree, target, overrides, here, active)
    finally:
        active.discard(real)


def conf_root(requested: str, target: str, overrides: dict, default_dir: str = CONF_DIR) -> str | None:
    """The nix.conf whose include tree holds ``target``.

    ``requested`` is the file the task named (``target`` is the file actually edited, after
    following nix.custom.conf). A file called nix.conf is read by Nix when it is in NIX_CONF_DIR;
    any other file only when a nix.conf includes it: its own directory's nix.conf or the default
    one. None when no nix.conf includes it (Nix does not read it at all).
    """
    if os.path.basename(requested) == CONF_NAME:
        return requested
    for candidate in (os.path.join(os.path.dirname(requested), CONF_NAME), os.path.join(default_dir, CONF_NAME)):
        if not os.path.isfile(candidate):
            continue
        try:
            if target in load_tree(candidate, overrides):
                return candidate
        except (ConfigFileError, ValueError):
            continue  # a broken tree that does not reach the target says nothing about it
    return None


def _safe_workdir(module) -> str:
    """A temporary directory whose path survives as one token in an include line."""
    base = getattr(module, "tmpdir", None)
    if base and not any(char in base for char in " \t\r\n#"):
        return tempfile.mkdtemp(prefix="nix-conf-check-", dir=base)
    return tempfile.mkdtemp(prefix="nix-conf-check-")


def _materialize(tree: ConfTree, workdir: str) -> dict:
    """Write the tree under workdir; returns {temporary path: real path} for messages."""
    def copy_of(path: str) -> str:
        return workdir + "/f" + os.path.abspath(path)

    shown = {}
    root_real = os.path.realpath(tree.root)
    for real, (path, text, includes) in tree.files.items():
        lines = text.split("\n")
        for number, optional, target, target_real in includes:
            mapped = copy_of(target_real if target_real else target)
            if target_real is not None and target_real == root_real:
                mapped = os.path.join(workdir, "conf", CONF_NAME)
            lines[number - 1] = ("!include " if optional else "include ") + mapped
        dest = os.path.join(workdir, "conf", CONF_NAME) if real == root_real else copy_of(real)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines))
        shown[dest] = path
    for directory in tree.directories:
        os.makedirs(copy_of(directory), exist_ok=True)
    return shown


def _real_paths(text: str, shown: dict, workdir: str) -> str:
    for temporary, path in sorted(shown.items(), key=lambda item: -len(item[0])):
        text = text.replace(temporary, path)
    return text.replace(workdir + "/f/", "/").replace(workdir, "<temporary copy>")


def validate_tree(module, tree: ConfTree) -> tuple[bool, str]:
    """Have the installed Nix read the tree as its NIX_CONF_DIR/nix.conf.

    Returns (validated, message): (False, reason) when Nix rejected it; (True, "") when it accepted
    it or when no Nix is installed to ask. Warnings Nix prints go to module.warn, with real paths.
    """
    nix = module.get_bin_path("nix", opt_dirs=list(NIX_BIN_DIRS))
    if not nix:
        return True, ""
    rc, out, _err = module.run_command([nix, "--version"])
    if rc != 0:
        return True, ""
    workdir = _safe_workdir(module)
    try:
        shown = _materialize(tree, workdir)
        environ = {
            "NIX_CONF_DIR": os.path.join(workdir, "conf"),
            # Only the system file: a user's own nix.conf must not decide what the daemon accepts.
            "NIX_USER_CONF_FILES": os.path.join(workdir, "no-user-conf"),
            "NIX_CONFIG": "",
        }
        # Best spelling first; where the version does not settle it (Lix, unknown), the other
        # is tried when Nix says it does not know the command.
        for argv in config_show_argv(nix, parse_nix_version(out), nix_implementation(out)):
            rc, out, err = module.run_command(argv, environ_update=environ)
            if rc == 0 or "recognised" not in err:
                break
        err = _real_paths(err, shown, workdir)
        out = _real_paths(out, shown, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for line in err.splitlines():
        if line.startswith("warning:"):
            module.warn(f"nix: {line}")
    if rc != 0:
        if rc < 0:
            return False, f"Nix rejects the edited configuration: nix was killed by signal {-rc} reading {tree.root}"
        reason = err.strip() or out.strip() or f"nix exited with status {rc} reading {tree.root}"
        return False, f"Nix rejects the edited configuration: {reason}"
    return True, ""


def check_candidate(module, requested: str, target: str, text: str, validate_with_nix: bool = True) -> tuple[bool, str]:
    """Check ``text`` as the new content of ``target`` within the nix.conf that reads it.

    Our own parser runs first (include cycles, missing includes, syntax errors in any file of the
    tree, each named); then, with ``validate_with_nix``, the installed Nix. Returns (ok, message)
    where the message names the real files. A target that no nix.conf reads is checked on its own,
    as the nix.conf it would be, with a warning that Nix does not read it.
    """
    overrides = {target: text}
    root = conf_root(requested, target, overrides)
    if root is None:
        module.warn(f"{target}: Nix does not read this file: it is not named {CONF_NAME} and no {CONF_NAME} "
                    f"beside it or in {CONF_DIR} includes it; it was checked as if it were {CONF_NAME}")
        root = target
    try:
        tree = load_tree(root, overrides)
    except (ConfigFileError, ValueError) as exc:
        return False, str(exc)
    for warning in tree.warnings:
        module.warn(warning)
    if not validate_with_nix:
        return True, ""
    ok, message = validate_tree(module, tree)
    if not ok and root != target:
        message = f"{message} (read as part of {root})"
    return ok, message


def validate_candidate(module, conf_dir: str, candidates: dict) -> tuple[bool, str]:
    """Compatibility wrapper: check each candidate (file name in conf_dir -> text)."""
    for name, text in candidates.items():
        path = os.path.join(conf_dir, name)
        ok, message = check_candidate(module, path, path, text)
        if not ok:
            return ok, message
    return True, ""
