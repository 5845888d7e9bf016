"""The wire layer: one sans-I/O adapter per vendor protocol over the shared session core.

``adapter.py`` is the shape (frames -> actions), ``connection.py`` the one I/O driver,
``audio.py`` the conversion to the engines' 16 kHz, ``records.py`` what each connection did
(``GET /debug/connections``). Each vendor module is one adapter with its wire choices in its
docstring. The v1 stream (``reference_server/stream.py``) is the reference protocol itself,
with offsets, acks and resume, and keeps its own connection class.
"""

from .assemblyai import AssemblyAIAdapter
from .deepgram import DeepgramAdapter
from .openai_realtime import OpenAIRealtimeAdapter
from .speechmatics import SpeechmaticsAdapter
from .wyoming import WyomingAdapter

# route path -> adapter class
VENDOR_ROUTES = {
    "/v1/listen": DeepgramAdapter,
    "/v1/realtime": OpenAIRealtimeAdapter,
    "/v3/ws": AssemblyAIAdapter,
    "/v2": SpeechmaticsAdapter,
    "/v1/wyoming": WyomingAdapter,  # Wyoming over a WebSocket; over TCP: --wyoming-port (wire/tcp.py)
}

__all__ = ["VENDOR_ROUTES", "AssemblyAIAdapter", "DeepgramAdapter", "OpenAIRealtimeAdapter", "SpeechmaticsAdapter", "WyomingAdapter"]
