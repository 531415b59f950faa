"""A NixOS builder keeps the keys of clients a --limit run leaves out (review finding of issue 13).

The generated module cannot be read back, so the role keeps the authorized_keys text in a record
beside it (nix-remote-builder.authorized_keys) and takes the module's keys from that text; a client
outside the run keeps the line it had, as on the other platforms (authorized_keys.yml).
"""

from __future__ import annotations

import sys

from plan_run import failures, run_plan, task
from test_linux_plan import linux_nix

COMMAND = "/run/current-system/sw/bin/nix-daemon --stdio"
OLD_LINE = f'restrict,command="{COMMAND}" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv0Rl9mCUV1zHx1kP6W7m4XPhxW2XL6YQ9j7m7tBjQq root@client-b'


def test_a_client_outside_the_limit_keeps_its_key_in_the_nixos_module(tmp_path):
    nixos_dir = tmp_path / "etc-nixos"
    nixos_dir.mkdir()
    (nixos_dir / "configuration.nix").write_text("{ ... }:\n{\n  imports = [ ];\n}\n")
    record = nixos_dir / "nix-remote-builder.authorized_keys"
    record.write_text(f"# Managed by nix_remote.builders (remote_builder role); rewritten on every run.\n"
                      f"# source: client-b\n{OLD_LINE}\n")
    nix = linux_nix("nixos", str(tmp_path / "etc-nix"))
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "remote_builder_nix_info_override": nix, "local_client_nix_info_override": nix,
                 "remote_builder_nixos_config_dir": str(nixos_dir), "local_client_nixos_config_dir": str(nixos_dir),
                 "remote_builder_nixos_rebuild": False},
        "children": {"nix_builders": {"hosts": {"builder": {"ansible_host": "192.0.2.10"}}},
                     "nix_clients": {"hosts": {"client-a": {}, "client-b": {}}}}}}
    results, run = run_plan(tmp_path, inventory, ("--check", "--diff", "--limit", "builder"))
    assert not failures(results), (failures(results), run.stderr[-2000:])
    builder = results["builder"]
    module = task(builder, "Write the builder's NixOS module and import it from configuration.nix")
    keys = module["invocation"]["module_args"]["content"]["users"]["users"]["remotebuild"]["openssh"]["authorizedKeys"]["keys"]
    assert OLD_LINE in keys, keys
    written = task(builder, "Write the build user's authorized_keys")["invocation"]["module_args"]
    assert written["path"] == str(record) and f"# source: client-b\n{OLD_LINE}\n" in written["content"]
    assert written["mode"] == "0600" and written["owner"] == "root"
