# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading, diffing and atomically replacing configuration files, for this collection's modules.

The functions take the running AnsibleModule as an argument instead of importing it, so the
module_utils stay importable (and testable) without a module context.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import os
import pwd
import re
import shlex
import shutil
import stat
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


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """Name what a non-regular st_mode is, for error messages."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: str) -> None:
    """Refuse an existing path (symlinks followed) that is not a regular file.

    A FIFO would block the read forever while the host lock is held, and a device reads as
    empty and would be replaced by a regular file: neither is a configuration file to edit.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot examine: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ConfigFileError(f"{path}: is {file_kind(mode)}, not a regular file; refusing to read or replace it")


def read_config(path: str) -> tuple[str, bool]:
    """Return (text, exists). A missing file reads as empty; other read errors raise ConfigFileError.

    The file is opened without following a symlink (check_symlink resolved the path already) and
    without blocking, then checked to be a regular file before a byte is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return "", False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigFileError(f"{path}: is a symlink; refusing to read through it") from None
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigFileError(f"{path}: is {file_kind(mode)}, not a regular file; refusing to read or replace it")
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)
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


def _resolve_id(path: str, field: str, name, lookup) -> int:
    """A uid or gid from a name or a number; -1 (keep) when none is asked for."""
    if name is None or name == "":
        return -1
    text = str(name)
    if text.isdigit():
        return int(text)
    try:
        return lookup(text)
    except KeyError:
        raise ConfigFileError(f"{path}: {field}: no {'user' if field == 'owner' else 'group'} named {text!r} on this host; nothing was written") from None


def _resolve_mode(path: str, mode, current: int) -> int:
    """The permission bits to give the new file: `mode` (octal or symbolic) applied to `current`."""
    if mode is None:
        return current
    if isinstance(mode, int):
        wanted = mode
    else:
        try:
            wanted = int(str(mode), 8)
        except ValueError:
            try:
                fake = os.stat_result((stat.S_IFREG | current,) + (0,) * 9)
                wanted = AnsibleModuleModes.symbolic_to_octal(fake, str(mode))
            except Exception as exc:  # Ansible's parser raises bare ValueErrors and others; pylint: disable=broad-exception-caught
                raise ConfigFileError(f"{path}: mode: {mode!r} is neither an octal nor a symbolic mode ({exc}); nothing was written") from None
    if wanted != stat.S_IMODE(wanted):
        raise ConfigFileError(f"{path}: mode: {mode!r} holds more than permission bits; nothing was written")
    return wanted


class AnsibleModuleModes:
    """Ansible's own symbolic-mode parser, looked up lazily so module_utils import without Ansible."""

    @staticmethod
    def symbolic_to_octal(path_stat, symbolic: str) -> int:
        from ansible.module_utils.basic import AnsibleModule  # pylint: disable=import-outside-toplevel

        return AnsibleModule._symbolic_mode_to_octal(path_stat, symbolic)  # pylint: disable=protected-access


# The temporary files of replace_file are named after their target and this collection, so that a
# run holding the host lock can tell its predecessors' from anything else in the directory: a
# module killed (SIGKILL, OOM) between creating one and renaming it runs no cleanup, and the next
# run removes what it left (remove_stale_temporaries). Nix reads only the files it is told to.
TEMP_MARK = ".nix-remote-builders-tmp-"
_MKSTEMP_RANDOM = 8  # the length of the random part tempfile.mkstemp adds


def temporary_prefix(path: str) -> str:
    """The prefix of replace_file's temporary files for path, hidden and no longer than a file name may be."""
    return "." + os.path.basename(path)[:200] + TEMP_MARK


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove the temporary files an interrupted replace_file of path left in its directory.

    Only under the host lock (run_locked, host_lock): no other write of this collection can be
    under way then, so every regular file with path's temporary prefix is a leftover. Returns
    what was removed; a file it cannot remove is left (the write that follows reports any real
    problem with the directory)."""
    if not _LOCK_DEPTH[0]:
        return []
    directory = os.path.dirname(os.path.abspath(path)) or "."
    prefix = temporary_prefix(path)
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    for entry in entries:
        if not entry.startswith(prefix) or len(entry) != len(prefix) + _MKSTEMP_RANDOM:
            continue
        leftover = os.path.join(directory, entry)
        try:
            if stat.S_ISREG(os.lstat(leftover).st_mode):
                os.unlink(leftover)
                removed.append(leftover)
        except OSError:
            continue
    return removed


def replace_file(path: str, data: bytes, mode: int, uid: int = -1, gid: int = -1, prepare=None) -> None:
    """Replace path by data atomically: a temporary file in the same directory gets the content,
    the owner, group and mode (and whatever `prepare(tmp)` applies, such as an SELinux context)
    before it is renamed over path, so a failure at any step leaves path untouched.

    Every OS error is raised as ConfigFileError naming path and the cause; the temporary file is
    removed on every way out, including a failure inside `prepare`.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    tmp = None
    step = "create a temporary file in " + directory
    try:
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), dir=directory)
        with os.fdopen(fd, "wb") as handle:
            step = "write"
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if uid != -1 or gid != -1:
                step = "set owner/group"
                os.fchown(handle.fileno(), uid, gid)
            step = "set mode"
            # After chown, which clears set-id bits.
            os.fchmod(handle.fileno(), mode)
        if prepare is not None:
            step = "set attributes"
            prepare(tmp)
        step = "replace"
        os.rename(tmp, path)
        tmp = None
        step = "sync directory"
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        hint = ""
        if step == "replace" and exc.errno == errno.EPERM:
            hint = " (is the file or its directory immutable? see lsattr)"
        raise ConfigFileError(f"{path}: cannot write ({step} failed): {exc.strerror or exc}{hint}; the file was left as it was") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _new_attributes(module, path: str, existed: bool, task_file_args: bool = True) -> tuple[int, int, int]:
    """(uid, gid, mode) the new file gets: the task's owner, group and mode, else those of the
    existing file; a new file gets 0644 (Nix configuration is world-readable)."""
    # task_file_args=False: a second file the task edits (configuration.nix) keeps its own
    # owner and mode; the task's owner/group/mode/SELinux fields are about its main file.
    params = module.params if task_file_args else {}
    current = os.stat(path) if existed else None
    uid = _resolve_id(path, "owner", params.get("owner"), lambda name: pwd.getpwnam(name).pw_uid)
    gid = _resolve_id(path, "group", params.get("group"), lambda name: grp.getgrnam(name).gr_gid)
    if current is not None:
        uid = current.st_uid if uid == -1 else uid
        gid = current.st_gid if gid == -1 else gid
    mode = _resolve_mode(path, params.get("mode"), stat.S_IMODE(current.st_mode) if current else 0o644)
    return uid, gid, mode


def _encode(path: str, text: str) -> bytes:
    """The UTF-8 bytes of text; a lone surrogate or a NUL character is refused, naming the line."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise ConfigFileError(f"{path}, line {line}: {text[exc.start:exc.end]!r} is not a character (not valid UTF-8); "
                              "nothing was written") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ConfigFileError(f"{path}, line {line}: a NUL character cannot be written to a configuration file; nothing was written")
    return data


def make_backup(path: str) -> str:
    """Copy path to a backup named as AnsibleModule.backup_local names them, through replace_file.

    backup_local copies in place: on a full disk it fails with a truncated backup left behind.
    Here the copy is atomic like every other write (content, owner, group, mode and times of the
    original), so a failure leaves nothing. Returns the backup's name."""
    backup = f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"
    try:
        with open(path, "rb") as handle:
            meta = os.fstat(handle.fileno())
            data = handle.read()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot back up before writing: {exc.strerror or exc}; nothing was written") from None

    def keep_times(tmp: str) -> None:
        os.utime(tmp, ns=(meta.st_atime_ns, meta.st_mtime_ns))

    try:
        replace_file(backup, data, stat.S_IMODE(meta.st_mode), meta.st_uid, meta.st_gid, keep_times)
    except ConfigFileError as exc:
        raise ConfigFileError(f"{path}: cannot back up before writing: {exc}") from None
    return backup


def write_atomic(module, path: str, text: str, backup: bool, existed: bool, task_file_args: bool = True) -> str | None:
    """Write text to path through replace_file, with the module's owner, group, mode and SELinux
    context applied before the rename.

    Returns the backup file name when one was made. Keeps the owner and mode of an existing file;
    a new file gets 0644 (Nix configuration is world-readable) unless the module sets one.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise ConfigFileError(f"{path}: directory {directory} does not exist")
    uid, gid, mode = _new_attributes(module, path, existed, task_file_args)
    data = _encode(path, text)
    backup_file = None
    if backup and existed:
        backup_file = make_backup(path)

    def prepare(tmp: str) -> None:
        if not module.selinux_enabled():
            return
        context = module.selinux_context(path) if existed else module.selinux_default_context(path)
        asked = _secontext(module) if task_file_args else [None] * 4
        wanted = [want if want is not None else have for want, have in zip(asked, context)]
        module.set_context_if_different(tmp, wanted, False)

    try:
        replace_file(path, data, mode, uid, gid, prepare)
    except ConfigFileError:
        if backup_file:
            with contextlib.suppress(OSError):
                os.unlink(backup_file)
        raise
    return backup_file


class ValidationFailed(ConfigFileError):
    """The task's validate command refused the new content; carries its exit status and output."""

    def __init__(self, message: str, rc: int, stdout: str, stderr: str):
        super().__init__(message)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


def check_validate_command(command: str) -> None:
    """Refuse a validate command without %s (the contract of ansible.builtin.copy), or with another
    % directive, before anything is read or written."""
    if "%s" not in command:
        raise ConfigFileError(f"validate must contain %s, where the path of the file to check goes: {command}")
    try:
        command % "file"  # pylint: disable=pointless-statement
    except (TypeError, ValueError):
        raise ConfigFileError(f"validate: {command!r} has a % directive other than %s; write a literal % as %%") from None


def validate_candidate(module, path: str, text: str, existed: bool, command: str) -> None:
    """Run the task's validate command on a temporary file holding text, as ansible.builtin.copy does:
    %s is replaced by the temporary file's path and the command runs without a shell.

    The temporary file lies in a private directory under the module's temporary directory, never
    next to path (where a program reading a whole directory could pick it up), and has the owner,
    group and mode path would get, since some checkers look at them. It is removed afterwards.
    Raises ValidationFailed when the command exits non-zero, ConfigFileError when it cannot run.
    """
    uid, gid, mode = _new_attributes(module, path, existed)
    data = _encode(path, text)
    base = getattr(module, "tmpdir", None)
    # The path is substituted into the command line: keep it one plain word.
    workdir = tempfile.mkdtemp(prefix="validate-", dir=base if base and shlex.quote(base) == base else None)
    name = os.path.basename(path)
    candidate = os.path.join(workdir, name if name and shlex.quote(name) == name else "candidate")
    try:
        try:
            replace_file(candidate, data, mode, uid, gid)
        except ConfigFileError as exc:
            raise ConfigFileError(f"{path}: cannot write the temporary file to validate: {exc}; nothing was written") from None
        try:
            argv = shlex.split(command % shlex.quote(candidate))
        except ValueError as exc:
            raise ConfigFileError(f"validate: cannot split {command!r} into arguments ({exc}); nothing was written") from None
        program = argv[0] if argv else ""
        if not program or not (os.access(program, os.X_OK) if "/" in program else module.get_bin_path(program)):
            raise ConfigFileError(f"{path}: validate: {program or command!r} is not a program found on this host; nothing was written")
        rc, out, err = module.run_command(argv)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if rc != 0:
        how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
        said = err.strip() or out.strip()
        raise ValidationFailed(f"{path}: the new content was not installed: the validate command {command!r} {how} "
                               f"on a temporary copy{': ' + said if said else ''}", rc, out, err)


def _secontext(module) -> list:
    """The SELinux context fields the task asks for (None where it asks for none)."""
    params = module.params
    return [params.get("seuser"), params.get("serole"), params.get("setype"), params.get("selevel")]


# One lock per host for every edit this collection makes: two plays editing the same host at
# once (two operators, overlapping `serial` batches) then run their read-modify-write one after
# the other, and the second one reads what the first one wrote instead of overwriting it.
HOST_LOCK_PATH = "/var/run/nix-remote-builders.lock"
HOST_LOCK_TIMEOUT = 120.0
_LOCK_DEPTH = [0]  # how many host_lock contexts this process is inside


@contextlib.contextmanager
def host_lock(timeout: float | None = None, path: str | None = None):
    """Hold the host-wide edit lock; raises ConfigFileError after `timeout` seconds of waiting."""
    path = path or HOST_LOCK_PATH
    timeout = HOST_LOCK_TIMEOUT if timeout is None else timeout
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot take this host's edit lock: {exc.strerror}; run as root (become: true)") from None
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
        _LOCK_DEPTH[0] += 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] -= 1
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
    then apply the common file arguments (owner, group, mode, ...). Updates result in place.

    In check mode nothing is written, but an existing file whose owner, group or mode differ from
    the task's is reported as changed, exactly as the real run would report it."""
    if module.check_mode:
        # An owner, group or mode the real run cannot apply fails it before anything is written:
        # check mode fails the same way, also when the content would change.
        params = module.params
        _resolve_id(path, "owner", params.get("owner"), lambda name: pwd.getpwnam(name).pw_uid)
        _resolve_id(path, "group", params.get("group"), lambda name: grp.getgrnam(name).gr_gid)
        _resolve_mode(path, params.get("mode"), 0o644)
        if not result["changed"] and os.path.exists(path):
            file_args = module.load_file_common_arguments(module.params, path=path)
            result["changed"] = module.set_fs_attributes_if_different(file_args, False)
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


def make_directory(module, path: str, directory_mode, result: dict) -> None:
    """Create path's directory and any missing parents, each with directory_mode and the task's owner
    and group; an existing directory is left as it is. In check mode only reported.

    Owner, group and mode are resolved first, so a bad one fails before anything is made."""
    directory = os.path.dirname(path)
    if os.path.isdir(directory):
        return
    if os.path.lexists(directory):
        raise ConfigFileError(f"{directory}: is {file_kind(os.lstat(directory).st_mode)}, not a directory; nothing was written")
    missing = [directory]
    while not os.path.isdir(os.path.dirname(missing[-1])):
        parent = os.path.dirname(missing[-1])
        if os.path.lexists(parent) or parent == missing[-1]:
            raise ConfigFileError(f"{parent}: is not a directory; nothing was written")
        missing.append(parent)
    params = module.params
    uid = _resolve_id(directory, "owner", params.get("owner"), lambda name: pwd.getpwnam(name).pw_uid)
    gid = _resolve_id(directory, "group", params.get("group"), lambda name: grp.getgrnam(name).gr_gid)
    mode = _resolve_mode(directory, directory_mode, 0o755)
    result["changed"] = True
    if "diff" in result:
        result["diff"]["before_header"] = f"{path} (directory {directory} absent)"
    if module.check_mode:
        return
    # Each made closed, then given its owner and mode, so it is never open wider than asked.
    for made in reversed(missing):
        os.mkdir(made, 0o700)
        os.chown(made, uid, gid)
        os.chmod(made, mode)


def run_locked(module, edit) -> dict:
    """Run edit(module) -> result under the host lock (check mode only reads, so it needs none)."""
    keep = module.params.get("keep_backups")
    if keep is not None and keep < 1:
        module.fail_json(msg=f"keep_backups: {keep} would remove the backup just made; use 1 or more")
    try:
        # Before the lock: a FIFO or a device must not keep the lock while it is refused.
        for key in ("path", "nix_conf_path", "configuration"):
            if module.params.get(key):
                check_regular(module.params[key])
        if module.check_mode:
            return edit(module)
        with host_lock():
            # Also when nothing changes: what a killed run left is cleaned by the next one.
            for key in ("path", "nix_conf_path"):
                if module.params.get(key):
                    remove_stale_temporaries(module.params[key])
            return edit(module)
    except ConfigFileError as exc:
        module.fail_json(msg=str(exc))
