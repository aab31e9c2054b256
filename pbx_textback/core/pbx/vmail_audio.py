"""A voicemail notification e-mail's recording (the attachment the PBX adds with `attach=yes`):
its bytes, a type a browser plays, and its length. Pure: bytes in, a Recording or None out.

Bounded like vmail.py: the same capped header policy and complexity guard, and a recording
larger than `max_bytes` is not kept (the mail itself is still relayed to the staff mailbox).
"""
from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from email.parser import BytesParser

from .vmail import _POLICY, _strip_final_dot, _too_complex

MAX_BYTES = 10 * 1024 * 1024          # ~10 minutes of the 8 kHz 16-bit WAV a PBX writes
_TYPES = {".wav": "audio/wav", ".gsm": "audio/x-gsm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
          ".opus": "audio/ogg", ".wav49": "audio/x-wav49"}


@dataclass(frozen=True)
class Recording:
    filename: str
    content_type: str                # what the browser is told (audio/wav for a RIFF WAVE file)
    audio: bytes
    duration_s: float | None         # from the WAV header; None when it cannot be read
    too_big: bool = False            # the mail carried one larger than max_bytes: not kept


def recording(data: bytes, max_bytes: int = MAX_BYTES) -> Recording | None:
    """The first audio attachment of the mail, or None (no attachment, or not a mail we parse)."""
    data = _strip_final_dot(data)
    if _too_complex(data):
        return None
    try:
        msg = BytesParser(policy=_POLICY).parsebytes(data)
        for part in msg.walk():
            if part.is_multipart():
                continue
            ctype = part.get_content_type()
            name = str(part.get_filename() or "")
            ext = ("." + name.rsplit(".", 1)[1].lower()) if "." in name else ""
            if not (ctype.startswith("audio/") or ext in _TYPES):
                continue
            audio = part.get_payload(decode=True) or b""
            if not audio:
                continue
            if len(audio) > max_bytes:
                return Recording(name, ctype, b"", None, too_big=True)
            return Recording(name or "voicemail", _browser_type(audio, ctype, ext), audio, wav_seconds(audio))
    except Exception:            # noqa: BLE001 - a broken mail has no recording, never an error
        return None
    return None


def _browser_type(audio: bytes, ctype: str, ext: str) -> str:
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE":
        return "audio/wav"       # Asterisk says audio/x-wav, FreeSWITCH audio/x-wave: browsers want this
    return _TYPES.get(ext, ctype if ctype.startswith("audio/") else "application/octet-stream")


def wav_seconds(audio: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(audio)) as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else None
    except (wave.Error, EOFError, ValueError):
        return None
