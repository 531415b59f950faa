#!/usr/bin/python
# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nix_info
short_description: Report how Nix is installed on a host and what it can build
version_added: 0.1.0
description:
  - Finds Nix (also where it is not on the PATH of a non-interactive shell), its version, the systems
    and features its builds support, the host's capacity, which configuration file to edit, how the
    C(nix-daemon) service is run, the host's SSH public host keys, the OpenSSH client tools the daemon
    runs for remote builds, and the members of the build users group.
  - Everything a remote builder or a client of one needs to know about the host, read without changing anything.
  - Effective settings come from Nix itself (C(nix show-config) before Nix 2.20, C(nix config show) from 2.20),
    reading only the system configuration, as the daemon does; when that fails the system type comes from
    C(nix-instantiate --eval -E builtins.currentSystem), which works on every Nix version.
  - A host without Nix is not an error; RV(installed) is then V(false) and the roles decide what to do.
  - The results are returned at the top level of the result, not as C(ansible_facts).
author:
  - nix_remote.builders contributors (@nix_remote)
extends_documentation_fragment:
  - nix_remote.builders.attributes
  - nix_remote.builders.attributes.INFO_MODULE
attributes:
  platform:
    platforms: posix
    details:
      - Linux (systemd or not, NixOS included) and macOS (Darwin).
options: {}
notes:
  - Run it as root (C(become)) so the effective configuration and C(/dev/kvm) are seen as the daemon sees them.
  - The binary paths are the stable locations (for example C(/nix/var/nix/profiles/default/bin/nix-daemon)),
    never resolved to C(/nix/store) paths, which disappear after an upgrade.
seealso:
  - module: nix_remote.builders.nix_daemon
  - module: nix_remote.builders.nix_conf
"""

EXAMPLES = r"""
- name: Find out how Nix is installed
  nix_remote.builders.nix_info:
  become: true
  register: nix

- name: Stop on hosts without a Nix daemon
  ansible.builtin.assert:
    that:
      - nix.installed
      - nix.multi_user
    fail_msg: "{{ inventory_hostname }}: remote builds need a multi-user Nix (layout {{ nix.layout }})"

- name: Show what the host can build
  ansible.builtin.debug:
    msg: "{{ nix.systems | join(',') }} with {{ nix.system_features | join(',') }} on {{ nix.cores }} cores"
"""

RETURN = r"""
installed:
  description: Whether a Nix installation was found.
  returned: always
  type: bool
  sample: true
version:
  description: The Nix version, from C(nix-store --version) (or C(nix --version)); null without Nix.
  returned: always
  type: str
  sample: 2.26.3
implementation:
  description: Which Nix the version line names (V(nix), V(determinate) or V(lix)); null without Nix.
  returned: always
  type: str
  sample: nix
capabilities:
  description:
    - What this Nix can do, from the collection's one table of Nix versions
      (C(plugins/module_utils/nix_capabilities.py)); roles test these instead of comparing versions.
  returned: always
  type: dict
  contains:
    ssh_reuse:
      description:
        - Whether ssh connection reuse (ControlMaster) is safe for the daemon's connections to builders.
        - False on Nix 2.15 and 2.16, which wait for a line a reused connection never prints (builds hang),
          and when the version is unknown.
      type: bool
      returned: always
    ssh_reuse_reason:
      description: Why, in words for the user (shown by the verify playbook).
      type: str
      returned: always
    host_key_column:
      description: The machines file's column 8 (base64 host key) is read (Nix 2.4 and later).
      type: bool
      returned: always
    port_in_uri:
      description: A port in an ssh builder URI (C(user@host:port)) is understood (Nix 2.31 and later).
      type: bool
      returned: always
    config_show:
      description: C(nix config show) exists (Nix 2.20 and later), else C(nix show-config).
      type: bool
      returned: always
    signing_remote_builds:
      description: An untrusted build user can build with signed inputs over ssh-ng (Nix 2.16 and later).
      type: bool
      returned: always
    extra_settings:
      description:
        - C(extra-<setting>) appends to any list setting, for example C(extra-trusted-users) (Nix 2.4 and later);
          before, C(trusted-users) itself must be edited.
      type: bool
      returned: always
    experimental_features:
      description: The C(experimental-features) setting and the C(nix-command) gate exist (Nix 2.4 and later).
      type: bool
      returned: always
    store_info:
      description: C(nix store info) exists (Nix 2.19 and later), else C(nix store ping).
      type: bool
      returned: always
    float_speed_factor:
      description: A machines speed factor may be a decimal such as C(1.5) (Nix 2.20 and later).
      type: bool
      returned: always
    machines_comments_first:
      description:
        - A machines text is cut at C(#) before C(;) splits entries (Nix 2.29, backported to 2.28.2 and 2.24.15);
          before, a C(;) in a comment starts an entry.
      type: bool
      returned: always
    external_builders:
      description:
        - The C(external-builders) setting (behind the experimental feature of that name) exists (Nix 2.32 and later;
          Determinate Nix 3.8.4 and later, on a Nix 2.30 base). Lix has no such setting.
      type: bool
      returned: always
  sample:
    ssh_reuse: true
    ssh_reuse_reason: Nix 2.26.3 checks for a running master first (2.17 and later)
    host_key_column: true
    port_in_uri: false
    config_show: true
    signing_remote_builds: true
    extra_settings: true
    experimental_features: true
    store_info: true
    float_speed_factor: true
    machines_comments_first: false
    external_builders: false
multi_user:
  description: Whether a Nix daemon is installed (a service for it, NixOS, or the daemon socket directory).
  returned: always
  type: bool
  sample: true
paths:
  description:
    - Absolute paths of the Nix binaries and of the OpenSSH client tools, each null when not found.
    - The Nix binaries are searched in C(/run/current-system/sw/bin), C(/nix/var/nix/profiles/default/bin),
      C(/usr/local/bin), C(/usr/bin), C(/bin), then the module's C(PATH) and root's C(~/.nix-profile/bin).
    - The OpenSSH client tools (RV(paths.ssh), RV(paths.ssh_keygen)) are searched in C(/usr/bin), C(/bin),
      C(/usr/sbin), C(/sbin), C(/usr/local/bin), C(/run/current-system/sw/bin),
      C(/nix/var/nix/profiles/default/bin), then the module's C(PATH).
  returned: always
  type: dict
  contains:
    nix:
      description: Path of C(nix).
      type: str
      returned: always
    nix_store:
      description: Path of C(nix-store).
      type: str
      returned: always
    nix_daemon:
      description: Path of C(nix-daemon), for forced commands and C(remote-program).
      type: str
      returned: always
    nix_build:
      description: Path of C(nix-build).
      type: str
      returned: always
    nix_instantiate:
      description: Path of C(nix-instantiate).
      type: str
      returned: always
    ssh:
      description:
        - Path of the OpenSSH client C(ssh), which C(nix-daemon) runs for every remote build; null when missing
          (install the OpenSSH client package, for example C(openssh-client) on Debian).
      type: str
      returned: always
      version_added: 0.2.0
    ssh_keygen:
      description: Path of C(ssh-keygen), which makes and reads the daemon's SSH key; null when missing.
      type: str
      returned: always
      version_added: 0.2.0
  sample:
    nix: /nix/var/nix/profiles/default/bin/nix
    nix_store: /nix/var/nix/profiles/default/bin/nix-store
    nix_daemon: /nix/var/nix/profiles/default/bin/nix-daemon
    nix_build: /nix/var/nix/profiles/default/bin/nix-build
    nix_instantiate: /nix/var/nix/profiles/default/bin/nix-instantiate
    ssh: /usr/bin/ssh
    ssh_keygen: /usr/bin/ssh-keygen
system:
  description: The host's Nix system type; null when Nix could not tell.
  returned: always
  type: str
  sample: x86_64-linux
extra_platforms:
  description: The effective C(extra-platforms) setting.
  returned: always
  type: list
  elements: str
  sample: [i686-linux]
systems:
  description: All system types the host builds for, RV(system) first, then RV(extra_platforms).
  returned: always
  type: list
  elements: str
  sample: [x86_64-linux, i686-linux]
system_features:
  description:
    - The effective C(system-features) setting.
    - When Nix cannot report it, the Nix defaults (C(benchmark), C(big-parallel), C(nixos-test)) plus C(kvm)
      when RV(kvm) is true.
  returned: always
  type: list
  elements: str
  sample: [benchmark, big-parallel, kvm, nixos-test, uid-range]
settings:
  description:
    - The effective values of the settings the collection's checks compare against (C(max-jobs), C(cores),
      C(min-free), C(max-free)), and C(post-build-hook), which the fleet cache's upload needs, as Nix
      reports them; empty when Nix cannot report them. No other setting is
      returned (some hold secrets, such as C(access-tokens)).
  returned: always
  type: dict
  sample: {max-jobs: "1", cores: "0", min-free: "1073741824", max-free: "4294967296"}
  version_added: 0.2.0
kvm:
  description: Whether C(/dev/kvm) is readable and writable (Linux only).
  returned: always
  type: bool
  sample: true
binfmt:
  description:
    - The kernel's binfmt_misc registrations under C(/proc/sys/fs/binfmt_misc) (Linux only; empty when it is not
      mounted, as in most containers), with the Nix system each interprets (null when it interprets no system
      Nix knows, or matches by extension).
    - C(fix_binary) is the C(F) flag, which Nix's build sandbox needs unless the interpreter is in C(extra-sandbox-paths).
  returned: always
  type: list
  elements: dict
  sample:
    - name: qemu-aarch64
      enabled: true
      interpreter: /usr/libexec/qemu-binfmt/aarch64-binfmt-P
      flags: POCF
      fix_binary: true
      system: aarch64-linux
      offset: 0
      magic: 7f454c460201010000000000000000000200b700
      mask: ffffffffffffff00fffffffffffffffffeffffff
      extension: null
binfmt_configs:
  description:
    - The registrations that systemd-binfmt applies at boot (C(/etc/binfmt.d), C(/run/binfmt.d), C(/usr/lib/binfmt.d);
      a file name in an earlier directory hides the later ones), one item per line, with the system each interprets.
  returned: always
  type: list
  elements: dict
  sample:
    - file: qemu-aarch64.conf
      path: /usr/lib/binfmt.d/qemu-aarch64.conf
      name: qemu-aarch64
      kind: M
      interpreter: /usr/bin/qemu-aarch64
      flags: OPF
      fix_binary: true
      system: aarch64-linux
      line: ':qemu-aarch64:M::\x7f\x45\x4c\x46...:/usr/bin/qemu-aarch64:OPF'
binfmt_systems:
  description: The systems other than RV(system) that enabled registrations of RV(binfmt) make the kernel run.
  returned: always
  type: list
  elements: str
  sample: [aarch64-linux]
cores:
  description: CPU cores this process may use (its scheduler affinity where the OS has one).
  returned: always
  type: int
  sample: 8
memory_bytes:
  description: Total memory in bytes (C(/proc/meminfo) on Linux, C(sysctl hw.memsize) on macOS); null if unknown.
  returned: always
  type: int
  sample: 16777216000
conf_dir:
  description: The Nix configuration directory.
  returned: always
  type: str
  sample: /etc/nix
conf_path:
  description: The system C(nix.conf).
  returned: always
  type: str
  sample: /etc/nix/nix.conf
conf_edit_path:
  description:
    - The file settings should be written to; C(nix.custom.conf) when C(nix.conf) includes it
      (Determinate, the new official installer, Lix), otherwise RV(conf_path).
  returned: always
  type: str
  sample: /etc/nix/nix.custom.conf
layout:
  description:
    - How Nix was installed.
    - V(debian) a distribution package (C(nix-daemon) in C(/usr/bin), as Debian's C(nix-bin)),
      V(upstream) the official multi-user installer, V(determinate) Determinate Nix,
      V(nixos) NixOS, V(nix_darwin) nix-darwin, V(single_user) Nix without a daemon,
      V(unknown) anything else or no Nix.
  returned: always
  type: str
  sample: upstream
service_manager:
  description: What runs C(nix-daemon) (V(systemd), V(launchd), V(nixos) or V(none)).
  returned: always
  type: str
  sample: systemd
launchd_label:
  description: The launchd label of the daemon on macOS (C(systems.determinate.nix-daemon) or C(org.nixos.nix-daemon)), otherwise null.
  returned: always
  type: str
  sample: org.nixos.nix-daemon
daemon_socket_group:
  description: The group owning C(/nix/var/nix/daemon-socket) when it is not root's group (Debian's C(nix-users)), otherwise null.
  returned: always
  type: str
  sample: nix-users
ssh_host_keys:
  description: The host's SSH public host keys, ed25519 first, then ecdsa, then rsa.
  returned: always
  type: list
  elements: dict
  contains:
    type:
      description: The key type as written in the file.
      type: str
      returned: always
      sample: ssh-ed25519
    path:
      description: The C(.pub) file it was read from.
      type: str
      returned: always
      sample: /etc/ssh/ssh_host_ed25519_key.pub
    public_key:
      description: C(<type> <key>) without the comment, for C(known_hosts).
      type: str
      returned: always
      sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx3oAiZMGgcmEBT0zeNY6yvQD9l4aKEDtcl2tG9Vkjy
    base64:
      description:
        - Base64 of exactly RV(ssh_host_keys[].public_key) (no comment, no newline), for column 8 of the machines file.
        - Nix decodes it into a C(known_hosts) line, so leaving out the comment changes nothing
          and keeps the value the same wherever the key is read.
      type: str
      returned: always
      sample: c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUd4M29BaVpNR2djbUVCVDB6ZU5ZNnl2UUQ5bDRhS0VEdGNsMnRHOVZrank=
build_users_group:
  description: The effective C(build-users-group) (C(nixbld) when a daemon is installed and nothing says otherwise), or null.
  returned: always
  type: str
  sample: nixbld
build_users:
  description:
    - How many users are in RV(build_users_group) (members and users with it as primary group).
    - C(nix-daemon) builds only as the users listed as members; see RV(build_users_group_members).
  returned: always
  type: int
  sample: 32
build_users_group_members:
  description:
    - The user names listed as members of RV(build_users_group), from the name service (as C(getent group) shows
      them), in that order without repeats; empty when there is no such group or it has no members.
    - These are the users C(nix-daemon) builds as, one per concurrent build; users that only have the group as
      their primary group are not among them.
  returned: always
  type: list
  elements: str
  sample: [nixbld1, nixbld2, nixbld3, nixbld4]
  version_added: 0.2.0
is_nixos:
  description: Whether the host is NixOS (C(/etc/NIXOS) or C(ID=nixos) in os-release).
  returned: always
  type: bool
  sample: false
is_darwin:
  description: Whether the host is macOS.
  returned: always
  type: bool
  sample: false
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nix_remote.builders.plugins.module_utils import binfmt, nix_capabilities, nix_detect
from ansible_collections.nix_remote.builders.plugins.module_utils.nix_conf import NixConf, NixConfError

# The file system root the module inspects; unit tests point it at a fake tree.
ROOT = "/"

BINARIES = {
    "nix": "nix",
    "nix_store": "nix-store",
    "nix_daemon": "nix-daemon",
    "nix_build": "nix-build",
    "nix_instantiate": "nix-instantiate",
}

# Read the system configuration only, as the daemon does: a user's nix.conf or NIX_CONFIG in the
# module's environment must not change what we report about the host.
# The settings returned as RV(settings): what verify.yml compares against; never one that may hold a secret.
BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
REPORTED_SETTINGS = ("max-jobs", "cores", "min-free", "max-free", "post-build-hook")
SYSTEM_CONF_ONLY = {"NIX_USER_CONF_FILES": "/nonexistent/nix-remote-builders-no-user-conf", "NIX_CONFIG": ""}

NIX_DARWIN_MARKER = "/run/current-system/darwin-version"
DETERMINATE_MARKERS = ("/usr/local/bin/determinate-nixd", "/nix/determinate")
DISTRO_DAEMON_PATHS = ("/usr/bin/nix-daemon", "/bin/nix-daemon")
UPSTREAM_PROFILE_BIN = "/nix/var/nix/profiles/default/bin/"


def sysname() -> str:
    return os.uname().sysname


def cpu_count() -> int:
    # Honour cpusets and taskset: the builds get only the CPUs this process may use.
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0))
        except OSError:
            pass
    return os.cpu_count() or 1


def group_by_gid(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def group_members(name: str) -> list[str]:
    """The users listed as members of the group (NSS, so LDAP too), as nix-daemon reads them."""
    try:
        group = grp.getgrnam(name)
    except KeyError:
        return []
    return list(dict.fromkeys(group.gr_mem))


def count_group_users(name: str) -> int:
    """Members of the group plus users whose primary group it is (NSS, so LDAP too)."""
    try:
        group = grp.getgrnam(name)
    except KeyError:
        return 0
    users = set(group.gr_mem)
    users.update(entry.pw_name for entry in pwd.getpwall() if entry.pw_gid == group.gr_gid)
    return len(users)


class Gatherer:
    """Collects the facts; one method per question, each with its own fallbacks."""

    def __init__(self, module: AnsibleModule, root: str):
        self.module = module
        self.root = root
        self.warnings: list[str] = []

    def path(self, host_path: str) -> str:
        return nix_detect.host_path(self.root, host_path)

    def run(self, argv: list[str], environ: dict | None = None) -> tuple[int, str, str]:
        rc, out, err = self.module.run_command(argv, environ_update=environ or {})
        return rc, out, err

    def find_paths(self) -> dict:
        # The single-user profile of the user the module runs as (root with become).
        home = os.environ.get("HOME") or pwd.getpwuid(os.geteuid()).pw_dir
        extra = (os.path.join(home, ".nix-profile/bin"), "/nix/var/nix/profiles/per-user/root/profile/bin")
        path_env = os.environ.get("PATH", "")
        paths = {key: nix_detect.find_binary(name, path_env, self.root, extra) for key, name in BINARIES.items()}
        paths.update((key, nix_detect.find_binary(name, path_env, self.root, known_dirs=nix_detect.SSH_CLIENT_DIRS))
                     for key, name in nix_detect.SSH_CLIENT_BINARIES.items())
        return paths

    def version(self, paths: dict) -> tuple[str | None, str | None]:
        for key in ("nix_store", "nix"):
            if paths[key]:
                rc, out, err = self.run([paths[key], "--version"])
                version = nix_detect.parse_nix_version(out) if rc == 0 else None
                if version:
                    return version, nix_detect.nix_implementation(out)
                self.warnings.append(f"'{paths[key]} --version' gave no version (rc={rc}): {err.strip() or out.strip()}")
        return None, None

    def settings(self, paths: dict, version: str | None, implementation: str | None) -> dict:
        if not paths["nix"]:
            return {}
        errors = []
        for argv in nix_detect.config_show_argv(paths["nix"], version, implementation or "nix"):
            rc, out, err = self.run(argv, SYSTEM_CONF_ONLY)
            if rc == 0:
                return nix_detect.parse_config_show(out)
            errors.append(f"'{' '.join(argv)}' failed (rc={rc}): {err.strip()}")
        self.warnings.extend(errors)
        return {}

    def current_system(self, paths: dict) -> str | None:
        if not paths["nix_instantiate"]:
            return None
        argv = [paths["nix_instantiate"], "--eval", "-E", "builtins.currentSystem"]
        rc, out, err = self.run(argv, SYSTEM_CONF_ONLY)
        if rc == 0:
            return nix_detect.parse_nix_string(out)
        self.warnings.append(f"'{' '.join(argv)}' failed (rc={rc}): {err.strip()}")
        return None

    def kvm(self, darwin: bool) -> bool:
        return not darwin and os.access(self.path("/dev/kvm"), os.R_OK | os.W_OK)

    def memory_bytes(self, darwin: bool) -> int | None:
        if darwin:
            rc, out, _err = self.run(["/usr/sbin/sysctl", "-n", "hw.memsize"])
            text = out.strip()
            return int(text) if rc == 0 and text.isdigit() else None
        text = nix_detect.read_text(self.path("/proc/meminfo"))
        return nix_detect.parse_meminfo(text) if text else None

    def conf(self, conf_path: str) -> tuple[NixConf | None, str]:
        """The parsed nix.conf (None if missing) and its text."""
        text = nix_detect.read_text(self.path(conf_path))
        if text is None:
            return None, ""
        try:
            return NixConf.parse(text, source=conf_path), text
        except NixConfError as exc:
            # Nix itself refuses to run with this file, so nothing built on it would work.
            self.module.fail_json(msg=f"{exc} (Nix itself refuses this file; fix it first)", conf_path=conf_path,
                                  line=exc.line)
        return None, text  # not reached

    def daemon_socket_group(self) -> str | None:
        try:
            gid = os.stat(self.path(nix_detect.DAEMON_SOCKET_DIR)).st_gid
        except OSError:
            return None
        return group_by_gid(gid) if gid != 0 else None

    def ssh_host_keys(self) -> list[dict]:
        keys = []
        for kind in nix_detect.SSH_HOST_KEY_TYPES:
            host_path = f"/etc/ssh/ssh_host_{kind}_key.pub"
            text = nix_detect.read_text(self.path(host_path))
            if text is None:
                continue
            key = nix_detect.ssh_host_key(text)
            if key is None:
                self.warnings.append(f"{host_path} does not hold an SSH public key; ignored")
                continue
            keys.append(dict(key, path=host_path))
        return keys

    def exists(self, host_path: str) -> bool:
        return os.path.lexists(self.path(host_path))

    def layout(self, installed, nixos, darwin, implementation, paths, conf_text, custom_conf, service_manager,
               label) -> str:
        if not installed:
            return "unknown"
        if nixos:
            return "nixos"
        if any((implementation == "determinate", label == nix_detect.LAUNCHD_LABEL_DETERMINATE,
                any(self.exists(p) for p in DETERMINATE_MARKERS))):
            return "determinate"
        if darwin and self.exists(NIX_DARWIN_MARKER):
            return "nix_darwin"
        if custom_conf and "determinate" in conf_text.lower():
            return "determinate"
        if service_manager == "none" and not self.exists(nix_detect.DAEMON_SOCKET_DIR):
            return "single_user"
        daemon = paths["nix_daemon"] or ""
        if daemon in DISTRO_DAEMON_PATHS:
            return "debian"
        if daemon.startswith(UPSTREAM_PROFILE_BIN):
            return "upstream"
        return "unknown"

    def gather(self) -> dict:
        darwin = sysname() == "Darwin"
        nixos = nix_detect.is_nixos(self.root)
        paths = self.find_paths()
        installed = bool(paths["nix_store"] or paths["nix"])
        version, implementation = self.version(paths) if installed else (None, None)
        settings = self.settings(paths, version, implementation) if installed else {}

        kvm = self.kvm(darwin)
        binfmt_entries = [] if darwin else binfmt.read_entries(self.path(BINFMT_DIR))
        binfmt_configs = [] if darwin else binfmt.read_configs(self.path)
        system = settings.get("system") or (self.current_system(paths) if installed else None)
        extra_platforms = nix_detect.split_list(settings.get("extra-platforms"))
        systems = nix_detect.split_list(" ".join(([system] if system else []) + extra_platforms))
        if "system-features" in settings:
            # Nix computed it as root, kvm included; an explicit list without kvm is the truth.
            features = nix_detect.split_list(settings["system-features"])
        else:
            features = list(nix_detect.DEFAULT_SYSTEM_FEATURES) + (["kvm"] if kvm else [])
        features = sorted(set(features))

        conf_dir = nix_detect.CONF_DIR
        conf_path = f"{conf_dir}/nix.conf"
        conf, conf_text = self.conf(conf_path)
        custom_conf = nix_detect.custom_conf_path(conf_path, conf.includes()) if conf else None

        service_manager, label = nix_detect.detect_service_manager(darwin, nixos, self.root)
        multi_user = installed and (service_manager != "none" or self.exists(nix_detect.DAEMON_SOCKET_DIR))

        if "build-users-group" in settings:
            build_users_group = settings["build-users-group"] or None
        elif conf is not None and conf.get("build-users-group") is not None:
            build_users_group = conf.get("build-users-group") or None
        else:
            build_users_group = "nixbld" if multi_user else None

        return dict(
            installed=installed,
            version=version,
            implementation=implementation,
            capabilities=nix_capabilities.capabilities(version, implementation),
            multi_user=multi_user,
            paths=paths,
            system=system,
            extra_platforms=extra_platforms,
            systems=systems,
            system_features=features,
            settings={key: settings[key] for key in REPORTED_SETTINGS if key in settings},
            kvm=kvm,
            binfmt=binfmt_entries,
            binfmt_systems=binfmt.emulated_systems(binfmt_entries, native=[system] if system else []),
            binfmt_configs=binfmt_configs,
            cores=cpu_count(),
            memory_bytes=self.memory_bytes(darwin),
            conf_dir=conf_dir,
            conf_path=conf_path,
            conf_edit_path=custom_conf or conf_path,
            layout=self.layout(installed, nixos, darwin, implementation, paths, conf_text, custom_conf,
                               service_manager, label),
            service_manager=service_manager,
            launchd_label=label,
            daemon_socket_group=self.daemon_socket_group(),
            ssh_host_keys=self.ssh_host_keys(),
            build_users_group=build_users_group,
            build_users=count_group_users(build_users_group) if build_users_group else 0,
            build_users_group_members=group_members(build_users_group) if build_users_group else [],
            is_nixos=nixos,
            is_darwin=darwin,
        )


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    gatherer = Gatherer(module, ROOT)
    result = gatherer.gather()
    for warning in gatherer.warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
