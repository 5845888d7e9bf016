"""A test and chaos harness for real-time transcription backends."""

__version__ = "0.1.0"
