# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test sanity bootstraps pip into each of its virtual environments with a script
fetched from the Ansible CI file server, which this project's machines cannot reach.
It looks first in ~/.ansible/test/cache/get_pip_<version>.py (no hash check), so
`make sanity` installs this file there.  It runs ensurepip in a child process (doing it
in-process would set PIP_CONFIG_FILE=/dev/null and lose the machine's pip configuration),
then installs the requested pip with the remaining arguments.
"""

from __future__ import annotations

import subprocess
import sys

# ensurepip ships its own wheels; these flags only matter to the real get-pip.py.
DROPPED_ARGS = {"--no-setuptools", "--no-wheel"}


def main(argv: list[str]) -> int:
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
    wanted = [arg for arg in argv if arg not in DROPPED_ARGS]
    return subprocess.run([sys.executable, "-m", "pip", "install"] + wanted, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
