"""Post-transcription pipeline: refinement, analytics, tasks and summary of a finished session."""
