"""Reference ASR/orchestrator server: the backend under test by default. Never imports harness."""
