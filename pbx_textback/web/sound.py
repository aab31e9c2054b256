"""The new-reply sound, made here at start-up: a short two-note chime as an 8 kHz 8-bit WAV
(about 3 KB). Our own bytes, no third-party asset, and every browser plays WAV."""
from __future__ import annotations

import io
import math
import wave
from functools import lru_cache

RATE = 8000


@lru_cache(maxsize=1)
def chime() -> bytes:
    samples = bytearray()
    for freq, dur in ((880.0, 0.12), (1320.0, 0.22)):
        n = int(RATE * dur)
        for i in range(n):
            fade = min(1.0, i / 80, (n - i) / 400)          # no clicks at the edges
            samples.append(int(128 + 90 * fade * math.sin(2 * math.pi * freq * i / RATE)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(RATE)
        w.writeframes(bytes(samples))
    return buf.getvalue()
