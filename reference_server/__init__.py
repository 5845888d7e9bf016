"""Reference ASR/orchestrator server: the backend under test by default. Never imports harness."""

__version__ = "0.1.0"
