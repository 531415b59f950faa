# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading, diffing and atomically replacing configuration files, for this collection's modules.

The functions take the running AnsibleModule as an argument instead of importing it, so the
module_utils stay importable (and testable) without a module context.
"""

from __future__ import annotations

import os
import tempfile

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
    backup_file = module.backup_local(path) if backup and existed else None
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o7777 if existed else 0o644)
        module.atomic_move(tmp, os.path.abspath(path), unsafe_writes=module.params.get("unsafe_writes", False))
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        module.fail_json(msg=f"{path}: cannot write: {exc.strerror}")
    return backup_file
