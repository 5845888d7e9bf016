"""``python examples/relay`` runs the relay (see relay.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay import main  # noqa: E402

sys.exit(main())
