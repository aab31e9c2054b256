"""AMI framing, sans-IO: bytes in, header dicts out.

Frames are blocks of `Key: Value` lines ended by an empty line (CRLF or LF). Bytes are kept
until a frame is complete, so a UTF-8 value split across TCP reads decodes whole. A repeated
header becomes a list. Bad input is dropped with one logged error and framing goes on.
"""
from __future__ import annotations

import logging
import re

log = logging.getLogger("pbx_textback.ami")

MAX_FRAME = 256 * 1024          # a real AMI frame is a few KB; a Command output can be larger
_END = re.compile(rb"\r?\n\r?\n")
_BANNER = re.compile(rb"^[^:\r\n]*Call Manager/[^\r\n]*\r?\n")

Frame = dict[str, "str | list[str]"]


class AmiFraming:
    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        self.banner: str | None = None
        self.errors = 0
        self._buf = bytearray()
        self._discarding = False      # inside an oversized frame: drop until its end

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        buf = self._buf
        pos = 0
        if self.banner is None and buf:
            m = _BANNER.match(buf)
            if m:
                self.banner = m.group(0).decode("latin-1").strip()
                pos = m.end()
            elif b"\n" in buf or len(buf) > 64:
                self.banner = ""      # no banner (mid-stream or a server of ours): go on
        while True:
            m = _END.search(buf, pos)
            if m is None:
                break
            chunk = bytes(buf[pos:m.start()])
            pos = m.end()
            if self._discarding:
                self._discarding = False
                continue
            if not chunk.strip():
                continue                # stray blank lines between frames
            frame = self._parse(chunk)
            if frame is not None:
                out.append(frame)
        del buf[:pos]
        if len(buf) > self.max_frame:
            if not self._discarding:
                self._error(f"frame over {self.max_frame} bytes dropped")
            self._discarding = True
            # keep the tail: the frame's end may straddle the cut
            del buf[:-3]
        return out

    def _parse(self, chunk: bytes) -> Frame | None:
        if len(chunk) > self.max_frame:
            self._error(f"frame over {self.max_frame} bytes dropped")
            return None
        replaced = False
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            text = chunk.decode("utf-8", errors="replace")
            replaced = True
        frame: Frame = {}
        bad = 0
        for line in text.replace("\r\n", "\n").split("\n"):
            key, sep, value = line.partition(": ")
            if not sep:                       # "Key:" with an empty value, or no colon at all
                key, sep, value = line.partition(":")
                if not sep:
                    bad += 1
                    continue
            if not key or key[0] == " " or " " in key or len(key) > 64:
                bad += 1
                continue
            old = frame.get(key)
            if old is None:
                frame[key] = value
            elif isinstance(old, list):
                old.append(value)
            else:
                frame[key] = [old, value]
        if "Event" not in frame and "Response" not in frame:
            self._error(f"garbage frame of {len(chunk)} bytes dropped (no Event or Response)")
            return None
        if replaced:    # one error per frame, the frame is kept
            self._error(f"invalid UTF-8 in {first(frame, 'Event') or 'response'}: undecodable bytes replaced")
        elif bad:
            self._error(f"{bad} malformed line(s) skipped in {first(frame, 'Event') or 'response'}")
        return frame

    def _error(self, msg: str) -> None:
        self.errors += 1
        log.error("AMI framing: %s", msg)


def first(frame: Frame, key: str, default: str = "") -> str:
    """A header's value; the first one when the header was repeated."""
    v = frame.get(key, default)
    return v[0] if isinstance(v, list) else v


def frames_from_bytes(data: bytes) -> list[Frame]:
    return AmiFraming().feed(data)
