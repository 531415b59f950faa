# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading, diffing and atomically replacing configuration files, for this collection's modules.

The functions take the running AnsibleModule as an argument instead of importing it, so the
module_utils stay importable (and testable) without a module context.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time

# Nix configuration files are small; anything this large is not one, and reading it whole
# into memory on a fleet of hosts is not something to do by accident.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


class ConfigFileError(ValueError):
    """A configuration file that cannot be edited safely (unreadable, not text, too large)."""


def decode_config(data: bytes, path: str) -> str:
    """Decode a configuration file as UTF-8, naming the line of the first bad byte."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigFileError(f"{path}: file is {len(data)} bytes, more than the {MAX_CONFIG_BYTES} bytes a Nix configuration file can sensibly be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigFileError(f"{path}: line {line}, column {column}: byte 0x{data[exc.start]:02x} is not valid UTF-8") from None


def read_config(path: str) -> tuple[str, bool]:
    """Return (text, exists). A missing file reads as empty; other read errors raise ConfigFileError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return "", False
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from None
    return decode_config(data, path), True


def check_symlink(path: str, follow: bool) -> str:
    """Return the path to edit. A symlink is refused unless follow is set, then resolved."""
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if not follow:
        raise ConfigFileError(
            f"{path}: is a symlink to {target}; refusing to replace it. "
            "Set follow=true to edit the file it points to, or point path at the real file"
        )
    return target


def file_diff(path: str, before: str, after: str, existed: bool) -> dict:
    """A diff in the before/after form Ansible's --diff prints."""
    return {
        "before": before,
        "after": after,
        "before_header": f"{path} (content)" if existed else f"{path} (absent)",
        "after_header": f"{path} (content)",
    }


def write_atomic(module, path: str, text: str, backup: bool, existed: bool) -> str | None:
    """Write text to path through a temporary file in the same directory and atomic_move.

    Returns the backup file name when one was made. Keeps the mode of an existing file;
    a new file gets 0644 (Nix configuration is world-readable) unless the module sets one.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        module.fail_json(msg=f"{path}: directory {directory} does not exist")
    backup_file = None
    if backup and existed:
        try:
            backup_file = module.backup_local(path)
        except Exception as exc:  # backup_local raises a bare Exception; pylint: disable=broad-exception-caught
            cause = getattr(exc.__cause__ or exc.__context__, "strerror", None)
            module.fail_json(msg=f"{path}: cannot back up before writing: {exc}" + (f" ({cause})" if cause else ""))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o7777 if existed else 0o644)
        module.atomic_move(tmp, os.path.abspath(path), unsafe_writes=module.params.get("unsafe_writes", False))
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        module.fail_json(msg=f"{path}: cannot write: {exc.strerror}")
    return backup_file


# One lock per host for every edit this collection makes: two plays editing the same host at
# once (two operators, overlapping `serial` batches) then run their read-modify-write one after
# the other, and the second one reads what the first one wrote instead of overwriting it.
HOST_LOCK_PATH = "/var/run/nix-remote-builders.lock"
HOST_LOCK_TIMEOUT = 120.0


@contextlib.contextmanager
def host_lock(timeout: float | None = None, path: str | None = None):
    """Hold the host-wide edit lock; raises ConfigFileError after `timeout` seconds of waiting."""
    path = path or HOST_LOCK_PATH
    timeout = HOST_LOCK_TIMEOUT if timeout is None else timeout
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConfigFileError(f"{path}: another run of nix_remote.builders has held this host's edit lock for {timeout:.0f} s") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


_BACKUP_SUFFIX = re.compile(r"\.\d+\.\d{4}-\d{2}-\d{2}@\d{2}:\d{2}:\d{2}~$")


def prune_backups(path: str, keep: int) -> list[str]:
    """Remove all but the newest `keep` backups that AnsibleModule.backup_local made of path."""
    directory, name = os.path.split(os.path.abspath(path))
    backups = [
        os.path.join(directory, entry)
        for entry in os.listdir(directory)
        if entry.startswith(name + ".") and _BACKUP_SUFFIX.search(entry[len(name):])
    ]
    backups.sort(key=lambda backup: os.stat(backup).st_mtime_ns, reverse=True)
    removed = backups[keep:] if keep >= 0 else []
    for backup in removed:
        os.unlink(backup)
    return removed


def install(module, path: str, after: str, existed: bool, result: dict) -> None:
    """Install an edited file unless in check mode: back up, write atomically, prune old backups,
    then apply the common file arguments (owner, group, mode, ...). Updates result in place."""
    if module.check_mode:
        return
    if result["changed"]:
        backup_file = write_atomic(module, path, after, module.params["backup"], existed)
        if backup_file:
            result["backup_file"] = backup_file
            if module.params.get("keep_backups") is not None:
                prune_backups(path, module.params["keep_backups"])
    if os.path.exists(path):
        file_args = module.load_file_common_arguments(module.params, path=path)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])


def run_locked(module, edit) -> dict:
    """Run edit(module) -> result under the host lock (check mode only reads, so it needs none)."""
    keep = module.params.get("keep_backups")
    if keep is not None and keep < 1:
        module.fail_json(msg=f"keep_backups: {keep} would remove the backup just made; use 1 or more")
    if module.check_mode:
        return edit(module)
    try:
        with host_lock():
            return edit(module)
    except ConfigFileError as exc:
        module.fail_json(msg=str(exc))
