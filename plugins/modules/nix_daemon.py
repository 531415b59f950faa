#!/usr/bin/python
# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nix_daemon
short_description: Restart or start the Nix daemon and wait until it answers
version_added: 0.1.0
description:
  - Restarts (or starts) C(nix-daemon) with the host's service manager, then waits until the daemon answers
    a store query made through its socket as the builds will make it, and fails with the daemon's own error
    output when it does not within O(timeout) seconds.
  - C(nix-daemon) reads C(nix.conf) only when it starts, so a restart is what makes changed settings such as
    C(trusted-users) or C(builders) take effect. Changes to C(/etc/nix/machines) need no restart.
  - systemd restarts C(nix-daemon.service) (running builds survive, the unit has C(KillMode=process))
    and makes sure C(nix-daemon.socket) is listening when the host has that socket unit.
  - A unit that systemd cannot start (C(systemctl restart) fails) is treated like a daemon that does not answer;
    then the O(rollback) files are restored and the daemon is restarted on them.
  - launchd uses C(launchctl kickstart -k system/<label>) with the label whose plist is installed,
    C(systems.determinate.nix-daemon) (Determinate Nix) or C(org.nixos.nix-daemon), and loads the plist
    with C(launchctl bootstrap) when the service is not loaded.
  - On NixOS the daemon belongs to the system activation; the module refuses and says to run C(nixos-rebuild switch).
author:
  - nix_remote.builders contributors (@nix_remote)
extends_documentation_fragment:
  - nix_remote.builders.attributes
attributes:
  check_mode:
    support: full
    details:
      - With O(state=restarted) it reports a change and runs nothing.
      - With O(state=started) it only reads the service state (C(systemctl show), C(launchctl print)) to predict the change.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details:
      - Linux with systemd, macOS with launchd. NixOS and hosts without a daemon service are refused with an explanation.
options:
  state:
    description:
      - V(restarted) always restarts the daemon, so it rereads its configuration.
      - V(started) starts it only when it is not running (or, for socket activation, when its socket is not listening).
    type: str
    choices: [restarted, started]
    default: restarted
  timeout:
    description:
      - Seconds to wait for the daemon to answer a store query after the restart or start.
      - The query is made at least once, even with V(0).
    type: int
    default: 30
  service_manager:
    description:
      - What runs the daemon. V(auto) detects it the way M(nix_remote.builders.nix_info) does.
    type: str
    choices: [auto, systemd, launchd, nixos, none]
    default: auto
  store_query_bin:
    description:
      - The C(nix-store) to make the readiness query with.
      - By default it is looked for in the known Nix locations (such as C(/nix/var/nix/profiles/default/bin)),
        then on the C(PATH).
    type: path
  rollback:
    description:
      - Configuration files to put back when the daemon does not answer after the restart or start, usually the
        files just changed, with the backups that M(nix_remote.builders.nix_conf), M(nix_remote.builders.nix_machines)
        or M(ansible.builtin.template) made of them (their C(backup_file) result).
      - The files are restored, systemd reloads its units, the daemon is restarted on the old configuration and
        must answer again; the task then fails with the daemon's own error from the failed start either way.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The configuration file that was changed.
        type: path
        required: true
      backup:
        description:
          - The copy of the file from before the change. When unset, the file did not exist before and is removed.
        type: path
notes:
  - The readiness query is C(nix-store --store daemon --check-validity --print-invalid) of a made-up store path;
    it needs the daemon to answer, changes nothing and works on every Nix version.
  - Needs root (C(become)).
seealso:
  - module: nix_remote.builders.nix_info
  - module: nix_remote.builders.nix_conf
"""

EXAMPLES = r"""
- name: Restart the Nix daemon so it rereads nix.conf
  nix_remote.builders.nix_daemon:
    state: restarted
  become: true

- name: Make sure the daemon runs, waiting up to two minutes for it
  nix_remote.builders.nix_daemon:
    state: started
    timeout: 120
  become: true

- name: Restart with a nix-store that is not in a standard place
  nix_remote.builders.nix_daemon:
    store_query_bin: /opt/nix/bin/nix-store
  become: true
"""

RETURN = r"""
service_manager:
  description: The service manager used (V(systemd) or V(launchd)); after detection when O(service_manager=auto).
  returned: always
  type: str
  sample: systemd
launchd_label:
  description: The launchd label used, or null when not on launchd.
  returned: always
  type: str
  sample: org.nixos.nix-daemon
commands:
  description:
    - Every command run, in order, as argument lists.
    - The readiness query is listed once even when it was retried (see RV(ready_attempts)).
  returned: always
  type: list
  elements: list
  sample:
    - [/usr/bin/systemctl, show, --property=LoadState, --property=ActiveState, nix-daemon.service]
    - [/usr/bin/systemctl, show, --property=LoadState, --property=ActiveState, nix-daemon.socket]
    - [/usr/bin/systemctl, restart, nix-daemon.service]
    - [/nix/var/nix/profiles/default/bin/nix-store, --store, daemon, --check-validity, --print-invalid,
       /nix/store/00000000000000000000000000000000-nix-remote-builders-probe]
rolled_back:
  description: The files put back (or removed) because the daemon did not answer after the change.
  returned: when the daemon did not answer and O(rollback) was given
  type: list
  elements: str
  sample: [/etc/nix/nix.conf]
ready_attempts:
  description: How many times the readiness query ran (0 in check mode).
  returned: always
  type: int
  sample: 1
"""

import os
import stat
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nix_remote.builders.plugins.module_utils import nix_detect
from ansible_collections.nix_remote.builders.plugins.module_utils.file_edit import ConfigFileError, check_regular, replace_file

# The file system root inspected for detection; unit tests point it at a fake tree.
ROOT = "/"

SERVICE = "nix-daemon.service"
SOCKET = "nix-daemon.socket"
# A well-formed store path that is never valid: asking the daemon about it needs a working
# connection and handshake but reads and changes nothing.
PROBE_PATH = "/nix/store/00000000000000000000000000000000-nix-remote-builders-probe"
# launchctl's exit status when the service is not loaded ("Could not find service").
LAUNCHCTL_NOT_FOUND = 113

monotonic = time.monotonic
sleep = time.sleep


class DaemonControl:
    """Runs the service commands, recording each one for the result."""

    def __init__(self, module: AnsibleModule):
        self.module = module
        self.commands: list[list[str]] = []
        # Set when systemctl could not start the unit; replaces the readiness query's error.
        self.start_error = ""

    def run(self, argv: list[str], record: bool = True) -> tuple[int, str, str]:
        if record:
            self.commands.append(list(argv))
        return self.module.run_command(argv)

    def fail(self, msg: str, **kwargs):
        self.module.fail_json(msg=msg, commands=self.commands, **kwargs)

    def must(self, argv: list[str]) -> None:
        rc, out, err = self.run(argv)
        if rc != 0:
            self.fail(f"'{' '.join(argv)}' failed (rc={rc}): {(err or out).strip()}", rc=rc, stdout=out, stderr=err)

    # systemd ------------------------------------------------------------------------------------

    def unit_state(self, systemctl: str, unit: str) -> dict:
        argv = [systemctl, "show", "--property=LoadState", "--property=ActiveState", unit]
        rc, out, err = self.run(argv)
        if rc != 0:
            self.fail(f"'{' '.join(argv)}' failed (rc={rc}): {err.strip()}", stderr=err)
        state = {}
        for line in out.splitlines():
            key, _sep, value = line.partition("=")
            state[key.strip()] = value.strip()
        return state

    def systemd(self, state: str, check_mode: bool) -> bool:
        systemctl = self.module.get_bin_path("systemctl", required=True)
        if state == "restarted" and check_mode:
            return True
        service = self.unit_state(systemctl, SERVICE)
        if service.get("LoadState") != "loaded":
            self.fail(f"systemd has no {SERVICE} (LoadState={service.get('LoadState')}); "
                      "remote builds need a multi-user Nix installation with its daemon")
        socket = self.unit_state(systemctl, SOCKET)
        socket_exists = socket.get("LoadState") == "loaded"
        socket_listening = socket.get("ActiveState") == "active"
        service_running = service.get("ActiveState") == "active"

        actions = []
        if state == "restarted":
            actions.append([systemctl, "restart", SERVICE])
        elif not service_running and not socket_exists:
            actions.append([systemctl, "start", SERVICE])
        # With socket activation the socket is what must listen; the first query starts the service.
        if socket_exists and not socket_listening:
            actions.append([systemctl, "start", SOCKET])
        if not check_mode:
            for argv in actions:
                # A unit that fails to start (ExecStartPre, a bad drop-in) is the same fault as a
                # daemon that does not answer: the caller rolls back instead of failing here.
                rc, out, err = self.run(argv)
                if rc != 0:
                    self.start_error = f"'{' '.join(argv)}' failed (rc={rc}): {(err or out).strip()}"
                    break
        return bool(actions)

    def systemd_diagnostics(self) -> str:
        systemctl = self.module.get_bin_path("systemctl", required=True)
        _rc, out, err = self.run([systemctl, "status", "--no-pager", "--full", "--lines=30", SERVICE, SOCKET])
        return (out + err).strip()

    # launchd ------------------------------------------------------------------------------------

    def launchd(self, state: str, check_mode: bool, label: str) -> bool:
        launchctl = self.module.get_bin_path("launchctl", required=True)
        target = f"system/{label}"
        plist = nix_detect.launchd_plist(label)
        if state == "restarted":
            if check_mode:
                return True
            rc, out, err = self.run([launchctl, "kickstart", "-k", target])
            if rc == LAUNCHCTL_NOT_FOUND:
                # Not loaded (booted out or never loaded): loading it starts it (RunAtLoad).
                self.must([launchctl, "bootstrap", "system", plist])
            elif rc != 0:
                self.fail(f"'{launchctl} kickstart -k {target}' failed (rc={rc}): {(err or out).strip()}")
            return True
        rc, out, _err = self.run([launchctl, "print", target])
        if rc == 0 and "state = running" in out:
            return False
        if not check_mode:
            if rc != 0:
                self.must([launchctl, "bootstrap", "system", plist])
            else:
                self.must([launchctl, "kickstart", target])
        return True

    def launchd_diagnostics(self, label: str) -> str:
        launchctl = self.module.get_bin_path("launchctl", required=True)
        _rc, out, err = self.run([launchctl, "print", f"system/{label}"])
        return (out + err).strip()

    # readiness ----------------------------------------------------------------------------------

    def wait_ready(self, nix_store: str, timeout: int) -> tuple[int, str]:
        """Query the daemon until it answers; returns (attempts, last error) with error "" on success."""
        argv = [nix_store, "--store", "daemon", "--check-validity", "--print-invalid", PROBE_PATH]
        deadline = monotonic() + max(timeout, 0)
        attempts = 0
        while True:
            rc, out, err = self.run(argv, record=attempts == 0)
            attempts += 1
            if rc == 0:
                return attempts, ""
            last_error = (err or out).strip() or f"exit status {rc}"
            remaining = deadline - monotonic()
            if remaining <= 0:
                return attempts, last_error
            sleep(min(1.0, remaining))


def restore(item: dict) -> None:
    """Put a backup back over path atomically, or remove a file that did not exist before.

    The backup's owner and mode go onto the temporary copy before the rename (replace_file),
    so a failure leaves path as it was; errors are ConfigFileError naming the file.
    """
    path, backup = item["path"], item.get("backup")
    if not backup:
        try:
            if os.path.lexists(path):
                os.unlink(path)
        except OSError as exc:
            raise ConfigFileError(f"{path}: cannot remove: {exc.strerror}") from None
        return
    check_regular(backup)
    check_regular(path)
    try:
        with open(backup, "rb") as handle:
            data = handle.read()
        meta = os.stat(backup)
    except OSError as exc:
        raise ConfigFileError(f"{backup}: cannot read the backup of {path}: {exc.strerror}") from None
    replace_file(path, data, stat.S_IMODE(meta.st_mode), meta.st_uid, meta.st_gid)


def roll_back(module: AnsibleModule, control: DaemonControl, manager: str, label: str | None, nix_store: str) -> tuple[list[str], str]:
    """Restore the rollback files and restart the daemon on them; returns (files, error after rollback)."""
    restored = []
    for item in module.params["rollback"]:
        try:
            restore(item)
        except ConfigFileError as exc:
            return restored, f"could not restore {item['path']}: {exc}"
        restored.append(item["path"])
    if manager == "systemd":
        control.must([module.get_bin_path("systemctl", required=True), "daemon-reload"])
        control.start_error = ""
        control.systemd("restarted", False)
        if control.start_error:
            return restored, control.start_error
    else:
        control.launchd("restarted", False, label)
    _attempts, error = control.wait_ready(nix_store, module.params["timeout"])
    return restored, error


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="restarted", choices=["restarted", "started"]),
            timeout=dict(type="int", default=30),
            service_manager=dict(type="str", default="auto", choices=["auto", "systemd", "launchd", "nixos", "none"]),
            store_query_bin=dict(type="path"),
            rollback=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                backup=dict(type="path"),
            )),
        ),
        supports_check_mode=True,
    )
    state = module.params["state"]
    control = DaemonControl(module)

    darwin = os.uname().sysname == "Darwin"
    manager = module.params["service_manager"]
    label = nix_detect.launchd_label(ROOT)
    if manager == "auto":
        manager, label = nix_detect.detect_service_manager(darwin, nix_detect.is_nixos(ROOT), ROOT)
    result = dict(changed=False, service_manager=manager, launchd_label=label if manager == "launchd" else None,
                  commands=control.commands, ready_attempts=0)

    if manager == "nixos":
        module.fail_json(msg="nix-daemon on NixOS is managed by NixOS activation; run nixos-rebuild switch "
                             "(it restarts the daemon when nix.conf changed)", **result)
    if manager == "none":
        module.fail_json(msg="no nix-daemon service found: no systemd nix-daemon.service (with systemd running) and "
                             f"no launchd plist {nix_detect.launchd_plist(nix_detect.LAUNCHD_LABEL_UPSTREAM)} or "
                             f"{nix_detect.launchd_plist(nix_detect.LAUNCHD_LABEL_DETERMINATE)}; remote builds "
                             "need a multi-user Nix installation with its daemon", **result)
    if manager == "launchd" and not label:
        module.fail_json(msg=f"no nix-daemon launchd plist in {nix_detect.LAUNCHD_DIR} "
                             f"({nix_detect.LAUNCHD_LABEL_DETERMINATE}.plist or {nix_detect.LAUNCHD_LABEL_UPSTREAM}.plist)",
                         **result)

    nix_store = module.params["store_query_bin"]
    if not module.check_mode and not nix_store:
        nix_store = nix_detect.find_binary("nix-store", os.environ.get("PATH", ""), ROOT)
        if not nix_store:
            module.fail_json(msg="nix-store not found in the Nix locations or on the PATH; set store_query_bin", **result)

    if manager == "systemd":
        result["changed"] = control.systemd(state, module.check_mode)
    else:
        result["changed"] = control.launchd(state, module.check_mode, label)

    if module.check_mode:
        module.exit_json(**result)

    if control.start_error:
        attempts, error = 0, control.start_error
    else:
        attempts, error = control.wait_ready(nix_store, module.params["timeout"])
    result["ready_attempts"] = attempts
    if error:
        diagnostics = control.systemd_diagnostics() if manager == "systemd" else control.launchd_diagnostics(label)
        msg = f"nix-daemon did not answer a store query within {module.params['timeout']} seconds: {error}\n{diagnostics}"
        if module.params["rollback"]:
            restored, after = roll_back(module, control, manager, label, nix_store)
            result["rolled_back"] = restored
            if after:
                msg += f"\nRolled back {', '.join(restored) or 'nothing'}, but the daemon still does not answer: {after}"
            else:
                msg += f"\nRolled back {', '.join(restored)}; the daemon answers again on the previous configuration."
        module.fail_json(msg=msg, daemon_error=error, diagnostics=diagnostics, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
