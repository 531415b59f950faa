"""read_state.yml decides whether sshd reads sshd_config.d from the file's text (a `search` test),
where the role ran `grep -Eiq` before: both must find the same lines."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The pattern the role used with grep (0.2.0 before read_files).
GREP = r"^[[:space:]]*Include[[:space:]]+(/etc/ssh/)?sshd_config\.d/\*\.conf"


def role_pattern() -> str:
    with open(os.path.join(REPO, "roles", "remote_builder", "tasks", "read_state.yml"), encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle)
    (named,) = [t for t in tasks if t["name"] == "Name what was read"]
    return named["vars"]["__include"]


@pytest.mark.parametrize("text", [
    "Include /etc/ssh/sshd_config.d/*.conf\n",                     # Debian's first line
    "Port 22\n  include sshd_config.d/*.conf\nPermitRootLogin no\n",  # indented, any case, relative
    "\tINCLUDE\t/etc/ssh/sshd_config.d/*.conf # comment\n",
    "#Include /etc/ssh/sshd_config.d/*.conf\n",                    # commented out
    "Include /etc/ssh/sshd_config.d/50-cloud.conf\n",              # one file, not the directory
    "Include\n/etc/ssh/sshd_config.d/*.conf\n",                    # split over two lines
    "Include /etc/ssh/other.d/*.conf\n",
    "",
    "Port 22\r\nInclude /etc/ssh/sshd_config.d/*.conf\r\n",        # CRLF
])
def test_the_search_finds_the_lines_grep_found(tmp_path, text):
    config = tmp_path / "sshd_config"
    config.write_text(text)
    by_grep = subprocess.run(["grep", "-Eiq", GREP, str(config)], check=False).returncode == 0
    # Ansible's `search` test is re.search with the pattern as given (flags inline).
    by_role = re.search(role_pattern(), text) is not None
    assert by_role == by_grep
