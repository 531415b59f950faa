"""binfmt_misc registrations (module_utils/binfmt.py) as Nix system types: the texts are what Linux
prints for the registrations of Debian's qemu-user-static and binfmt-support packages."""

from __future__ import annotations

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils import binfmt

# Debian 12 qemu-user-static, /usr/lib/binfmt.d/qemu-aarch64.conf as the kernel reports it.
AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POCF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""
# Registered by hand without the fix-binary flag.
RISCV64_NO_F = """enabled
interpreter /usr/bin/qemu-riscv64-static
flags: P
offset 0
magic 7f454c460201010000000000000000000200f300
mask ffffffffffffff00fffffffffffffffffeffffff
"""
ARM_DISABLED = """disabled
interpreter /usr/libexec/qemu-binfmt/arm-binfmt-P
flags: POCF
offset 0
magic 7f454c4601010100000000000000000002002800
mask ffffffffffffff00fffffffffffffffffeffffff
"""
S390X = """enabled
interpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P
flags: POCF
offset 0
magic 7f454c46020201000000000000000000000200016
mask ffffffffffffff00fffffffffffffffffffeffff
"""
S390X_VALID = S390X.replace("magic 7f454c46020201000000000000000000000200016", "magic 7f454c4602020100000000000000000000020016")
# binfmt-support's registration of a script type by extension.
JAR = """enabled
interpreter /usr/bin/jexec
flags:
extension .jar
"""


def test_debian_qemu_aarch64_registration():
    entry = binfmt.parse_entry("qemu-aarch64", AARCH64)
    assert entry["enabled"] and entry["fix_binary"]
    assert entry["system"] == "aarch64-linux"
    assert entry["interpreter"] == "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    assert entry["flags"] == "POCF" and entry["offset"] == 0
    assert entry["magic"] == "7f454c460201010000000000000000000200b700"


def test_big_endian_machine_and_other_systems():
    assert binfmt.parse_entry("qemu-s390x", S390X_VALID)["system"] == "s390x-linux"
    assert binfmt.parse_entry("qemu-riscv64", RISCV64_NO_F)["system"] == "riscv64-linux"
    assert binfmt.parse_entry("qemu-arm", ARM_DISABLED)["system"] == "armv7l-linux"


@pytest.mark.parametrize("text", [S390X, JAR, "", "garbage\n", "enabled\nflags: F\noffset 2\nmagic 7f454c46\n"])
def test_what_names_no_system(text):
    entry = binfmt.parse_entry("x", text)
    assert entry is None or entry["system"] is None


def test_not_a_registration():
    assert binfmt.parse_entry("status", "enabled") is not None  # the caller skips control files by name
    assert binfmt.parse_entry("x", "") is None
    assert binfmt.parse_entry("x", "1\n") is None


def test_read_entries_skips_control_files_and_a_missing_directory(tmp_path):
    (tmp_path / "register").write_text("")
    (tmp_path / "status").write_text("enabled\n")
    (tmp_path / "qemu-aarch64").write_text(AARCH64)
    (tmp_path / "qemu-arm").write_text(ARM_DISABLED)
    (tmp_path / "jar").write_text(JAR)
    names = [e["name"] for e in binfmt.read_entries(str(tmp_path))]
    assert names == ["jar", "qemu-aarch64", "qemu-arm"]
    assert binfmt.read_entries(str(tmp_path / "absent")) == []


def test_emulated_systems_enabled_only_and_not_native():
    entries = [binfmt.parse_entry(n, t) for n, t in
               (("qemu-aarch64", AARCH64), ("qemu-arm", ARM_DISABLED), ("qemu-riscv64", RISCV64_NO_F), ("jar", JAR))]
    assert binfmt.emulated_systems(entries) == ["aarch64-linux", "riscv64-linux"]
    assert binfmt.emulated_systems(entries, native=["aarch64-linux"]) == ["riscv64-linux"]


def test_sandbox_interpreters_only_without_fix_binary():
    entries = [binfmt.parse_entry(n, t) for n, t in (("qemu-aarch64", AARCH64), ("qemu-riscv64", RISCV64_NO_F))]
    assert binfmt.sandbox_interpreters(entries, ["aarch64-linux", "riscv64-linux"]) == ["/usr/bin/qemu-riscv64-static"]
    assert binfmt.sandbox_interpreters(entries, ["aarch64-linux"]) == []
    # A registration with F for the same system serves the sandbox; the other needs nothing.
    fixed = binfmt.parse_entry("mine-riscv64", RISCV64_NO_F.replace("flags: P", "flags: F"))
    assert binfmt.sandbox_interpreters(entries + [fixed], ["riscv64-linux"]) == []


# sid's qemu-user-binfmt, /usr/lib/binfmt.d/qemu-aarch64.conf.
CONF_AARCH64 = (r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:"
                r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64:OPF")
CONF_RISCV_NO_F = CONF_AARCH64.replace("aarch64", "riscv64").replace(r"\xb7\x00", r"\xf3\x00").replace(":OPF", ":OP")


def test_register_line_of_debian_package():
    entry = binfmt.parse_register_line(CONF_AARCH64)
    assert entry == {"name": "qemu-aarch64", "kind": "M", "interpreter": "/usr/bin/qemu-aarch64", "flags": "OPF",
                     "fix_binary": True, "system": "aarch64-linux"}
    assert binfmt.parse_register_line(CONF_RISCV_NO_F)["system"] == "riscv64-linux"
    assert binfmt.parse_register_line("# comment") is None and binfmt.parse_register_line(":x:E") is None
    assert binfmt.parse_register_line(":jar:E::jar::/usr/bin/jexec:")["system"] is None


def test_with_fix_binary_adds_only_the_flag():
    fixed = binfmt.with_fix_binary(CONF_RISCV_NO_F)
    assert fixed == CONF_RISCV_NO_F[:-2] + "OPF"
    assert binfmt.with_fix_binary(CONF_AARCH64) == CONF_AARCH64
    assert binfmt.with_fix_binary(":a:M::\\x7fELF::/i") == ":a:M::\\x7fELF::/i:F"


def test_read_configs_earlier_directory_wins(tmp_path):
    def path_of(host_path):
        return str(tmp_path) + host_path
    (tmp_path / "usr/lib/binfmt.d").mkdir(parents=True)
    (tmp_path / "etc/binfmt.d").mkdir(parents=True)
    (tmp_path / "usr/lib/binfmt.d/qemu-riscv64.conf").write_text("# packaged\n" + CONF_RISCV_NO_F + "\n")
    (tmp_path / "usr/lib/binfmt.d/qemu-aarch64.conf").write_text(CONF_AARCH64 + "\n")
    (tmp_path / "etc/binfmt.d/qemu-riscv64.conf").write_text(binfmt.with_fix_binary(CONF_RISCV_NO_F) + "\n")
    (tmp_path / "etc/binfmt.d/notes.txt").write_text(CONF_AARCH64)
    configs = binfmt.read_configs(path_of)
    assert [(c["path"], c["system"], c["fix_binary"]) for c in configs] == [
        ("/etc/binfmt.d/qemu-riscv64.conf", "riscv64-linux", True),
        ("/usr/lib/binfmt.d/qemu-aarch64.conf", "aarch64-linux", True)]


def _nix(entries=(), configs=(), extra_platforms=("i686-linux",)):
    return {"system": "x86_64-linux", "extra_platforms": list(extra_platforms), "binfmt": list(entries),
            "binfmt_configs": list(configs)}


def _config(line, name):
    entry = binfmt.parse_register_line(line)
    entry.update(file=name, path="/usr/lib/binfmt.d/" + name, line=line)
    return entry


def test_plan_nothing_requested_nothing_registered_leaves_nix_alone():
    assert binfmt.plan(_nix(), []) == {"systems": [], "extra_platforms": [], "sandbox_paths": [], "overrides": [],
                                       "missing": []}


def test_plan_requested_and_registered_keeps_nix_default_platforms():
    nix = _nix([binfmt.parse_entry("qemu-aarch64", AARCH64)], [_config(CONF_AARCH64, "qemu-aarch64.conf")])
    result = binfmt.plan(nix, ["aarch64-linux", "x86_64-linux"])
    assert result["systems"] == ["aarch64-linux"]  # the native system is never emulated
    assert result["extra_platforms"] == ["i686-linux", "aarch64-linux"]
    assert result["missing"] == [] and result["sandbox_paths"] == [] and result["overrides"] == []


def test_plan_detects_what_was_set_up_by_hand_only_with_fix_binary():
    entries = [binfmt.parse_entry("qemu-aarch64", AARCH64), binfmt.parse_entry("qemu-riscv64", RISCV64_NO_F)]
    assert binfmt.plan(_nix(entries), [])["systems"] == ["aarch64-linux"]
    assert binfmt.plan(_nix(entries), [], detect=False)["systems"] == []


def test_plan_registration_without_f_needs_the_interpreter_in_the_sandbox_and_an_override():
    nix = _nix([binfmt.parse_entry("qemu-riscv64", RISCV64_NO_F)], [_config(CONF_RISCV_NO_F, "qemu-riscv64.conf")])
    result = binfmt.plan(nix, ["riscv64-linux"])
    assert result["systems"] == ["riscv64-linux"] and result["missing"] == []
    assert result["sandbox_paths"] == ["/usr/bin/qemu-riscv64-static"]
    assert result["overrides"] == [{"name": "qemu-riscv64", "path": "/etc/binfmt.d/qemu-riscv64.conf",
                                    "content": CONF_RISCV_NO_F[:-2] + "OPF\n"}]


def test_plan_missing_says_why():
    result = binfmt.plan(_nix(), ["aarch64-linux"])
    assert result["missing"][0]["system"] == "aarch64-linux"
    assert "not mounted" in result["missing"][0]["reason"] and "qemu-user-static" in result["missing"][0]["reason"]
    registered = binfmt.plan(_nix([binfmt.parse_entry("qemu-arm", ARM_DISABLED)],
                                  [_config(CONF_AARCH64, "qemu-aarch64.conf")]), ["aarch64-linux"])
    assert registered["missing"] == [{"system": "aarch64-linux",
                                      "reason": "no enabled binfmt_misc registration runs aarch64-linux binaries"}]
