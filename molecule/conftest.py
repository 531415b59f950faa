"""The scenarios' testinfra tests import their shared helper (resources/fleet.py) from here."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources"))
