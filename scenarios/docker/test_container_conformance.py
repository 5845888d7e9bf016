"""A conformance subset against the reference server in a container: the same scenarios as the
conformance suite (imported from it, not copied), with the suite's container as their target."""

from __future__ import annotations

import sys
from pathlib import Path

CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"
if str(CONFORMANCE) not in sys.path:
    sys.path.insert(0, str(CONFORMANCE))

from test_bad_input import test_bad_input_gets_documented_answers  # noqa: E402,F401
from test_finalize_paths import test_finalize_paths_are_equivalent  # noqa: E402,F401
from test_health import test_health_counts_follow_connections  # noqa: E402,F401
from test_idempotency import test_concurrent_finalizes_run_the_pipeline_once  # noqa: E402,F401
