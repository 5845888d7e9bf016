"""Sans-I/O codecs: config → connect request, audio/control → frames, frames → events."""
