"""Makes testbed.py importable and registers the `testbed` marker (tests that start real hosts)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "testbed: starts real systemd-nspawn hosts (needs root, mmdebstrap, systemd-container); "
        "run with -m testbed",
    )
