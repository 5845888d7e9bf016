"""Puts ``histbuild`` (hand-made histories) on the import path for these tests and tests/report."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
