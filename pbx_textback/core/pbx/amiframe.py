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

GOOD_KEYS_MAX = 4096            # header names remembered as checked (AMI has a few hundred)
SEEN_LINES = 4096               # lines remembered split (see _feed_crlf), at most this long:
SEEN_LINE_MAX = 200             # a few hundred KB at most
Frame = dict[str, "str | list[str]"]


class AmiFraming:
    """`wanted`: the event names the reader handles (None: all). An event frame whose first
    line is `Event: <name>` with another name, and which has no ActionID or Response line
    (so no action of ours waits for it), is skipped after reading that line: no dict, no
    checks, no error for a malformed line in it. Responses and other frames always come.
    `wanted_vars`: the channel variables the reader handles (None: all). A VarSet whose
    `Variable:` (leading underscores, the inheritance marks, stripped) is another one comes
    as a short frame: Event, Uniqueid, Linkedid, Timestamp (when sent) and RAW_KEY, the
    frame's text, for a reader that needs the rest (parse_raw; the tracker does when it
    meets the channel first there). VarSets are most of a call's events and most of them set
    variables nobody reads, but each still moves its channel's call on. Only the CRLF fast
    path makes short frames; a VarSet read by the careful loop comes whole."""

    def __init__(self, max_frame: int = MAX_FRAME, wanted: "frozenset[str] | None" = None,
                 wanted_vars: "frozenset[str] | None" = None):
        self.max_frame = max_frame
        self.wanted = wanted
        self.wanted_vars = wanted_vars
        self.skipped = 0              # frames skipped as not wanted
        self.shortened = 0            # VarSets handed on short (wanted_vars)
        self.banner: str | None = None
        self.errors = 0
        self._buf = bytearray()
        self._discarding = False      # inside an oversized frame: drop until its end
        self._good_keys: set[str] = set()
        self._seen: dict[str, tuple[str, str]] = {}   # a `Key: Value` line -> (key, value)

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
        if not self._discarding:
            pos = self._feed_crlf(buf, pos, out)
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
            if self.wanted is not None and self._unwanted(chunk):
                continue
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

    def _feed_crlf(self, buf: bytearray, pos: int, out: list) -> int:
        """The common case at C speed: every complete frame in the buffer, when the stretch
        up to the last frame end is valid UTF-8, decoded once and split on the blank lines;
        each frame whose lines are all CRLF-ended `Key: Value` with distinct plain keys is a
        dict at once. Anything else (a repeated header, a malformed line) goes to _parse,
        which says what was wrong; from a bare LF on, and for bad UTF-8, the careful loop in
        feed() takes over. Returns where it stopped."""
        end = buf.rfind(b"\r\n\r\n")
        if end < pos:
            return pos
        end += 4
        try:
            text = buf[pos:end].decode("utf-8")
        except UnicodeDecodeError:
            return pos
        wanted, wvars = self.wanted, self.wanted_vars
        # A bare LF: the careful loop in feed() finds the ends. With the filter most frames
        # are read by their first line only, so the whole text is counted once; without it
        # each frame is split into lines anyway and a line is looked into when first seen
        # (the frames before one with a bare LF have only CRLF line ends: the careful loop
        # would cut them the same, so it starts at that frame).
        if wanted is not None and text.count("\n") != text.count("\r\n"):
            return pos
        seen = self._seen
        if len(seen) >= SEEN_LINES:
            seen.clear()                # (lines seen once, e.g. Timestamp, fill it: start over)
        limit = self.max_frame // 4     # chars: no frame under this can be over max_frame bytes
        good = self._good_keys
        chunks = text.split("\r\n\r\n")
        for chunk in chunks:
            if wanted is not None:
                # (a frame after a stray blank line: the split of the reads decides whether
                # the blank line is left in front of it, so the name is read past it)
                c = chunk.lstrip("\r\n") if chunk[:1] == "\r" else chunk
                if c[:7] == "Event: " and len(chunk) <= limit:
                    j = c.find("\r\n")
                    name = c[7:j] if j > 0 else c[7:]
                    if name not in wanted:
                        if "\nActionID:" not in chunk and "\nResponse:" not in chunk:
                            self.skipped += 1   # the same test as _unwanted, on the decoded text
                            continue
                    elif name == "VarSet" and wvars is not None and \
                            "\nActionID:" not in chunk and "\nResponse:" not in chunk:
                        short = _short_varset(c, wvars)
                        if short is not None:
                            self.shortened += 1
                            out.append(short)
                            continue
            lines = chunk.split("\r\n")
            # A plain loop measured faster than any one-call dict building (map, regex, even
            # the JSON scanner). Most lines come again and again (a channel's ids, name and
            # context are on each of its events; Privilege, Context, AppData on many), so a
            # line seen before is one lookup instead of a partition(); only lines without a
            # bare LF are remembered.
            frame = {}
            for ln in lines:
                kv = seen.get(ln)
                if kv is None:
                    k, sep, v = ln.partition(": ")
                    if not sep or "\n" in ln:   # _parse says what the line is
                        frame = None
                        break
                    kv = (k, v)
                    if len(seen) < SEEN_LINES and len(ln) <= SEEN_LINE_MAX:
                        seen[ln] = kv
                frame[kv[0]] = kv[1]
            if (frame is None or len(frame) != len(lines) or len(chunk) > limit
                    or not (good.issuperset(frame) or self._learn(frame))
                    or ("Event" not in frame and "Response" not in frame)):
                if chunk.count("\n") != chunk.count("\r\n"):     # (never with the filter)
                    # (chunks.index finds this chunk: an equal one before it would have
                    # stopped the loop already)
                    return _offset(text, chunks, chunks.index(chunk), pos)
                if not chunk.strip():
                    continue
                raw = chunk.encode("utf-8")
                if wanted is not None and self._unwanted(raw):
                    continue
                frame = self._parse(raw)
                if frame is None:
                    continue
            out.append(frame)
        return end

    def _unwanted(self, chunk: bytes) -> bool:
        """A whole frame's bytes: an event nobody reads (see the class doc)? An oversized one
        is not skipped here: _parse reports it whatever its name."""
        if len(chunk) > self.max_frame:
            return False
        c = chunk.lstrip(b"\r\n")
        if c[:7] != b"Event: ":
            return False
        i = c.find(b"\n")
        name = c[7:i] if i > 0 else c[7:]
        if name[-1:] == b"\r" and i > 0:
            name = name[:-1]
        if name.decode("utf-8", "replace") in self.wanted or b"\nActionID:" in chunk \
                or b"\nResponse:" in chunk:
            return False
        self.skipped += 1
        return True

    def _learn(self, frame: dict) -> bool:
        """Whether every key is a plain header name (no space, 1..64 characters); plain
        ones are remembered (a few hundred in practice, bounded) so the next frame is
        checked with one set comparison."""
        keys = [k for k in frame if k not in self._good_keys]
        if any(not k or k[0] == " " or " " in k or len(k) > 64 for k in keys):
            return False
        if len(self._good_keys) < GOOD_KEYS_MAX:
            self._good_keys.update(keys)
        return True

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


def _offset(text: str, chunks: list, n: int, pos: int) -> int:
    """The buffer position where chunks[n] (text split on CRLFCRLF, text read from pos) starts."""
    return pos + len(text[:sum(map(len, chunks[:n])) + 4 * n].encode("utf-8"))


# A short VarSet's whole frame text (see AmiFraming). A name no header read off the wire can
# have (both paths refuse a key with a space), so the key alone tells a short frame: the
# tracker takes one with a single lookup, before its dispatch.
RAW_KEY = "raw frame"


def _value(text: str, key: str) -> str | None:
    """The value of the first `key` line (key = "\r\nName:"), as _parse reads it; "" when there
    is none, None when that line is `Name:value` (only the whole parse reads it right)."""
    i = text.find(key)
    if i < 0:
        return ""
    i += len(key)
    if text[i:i + 1] != " ":
        return None
    j = text.find("\r\n", i)
    return text[i + 1:j] if j >= 0 else text[i + 1:]


def _short_varset(text: str, read: frozenset) -> Frame | None:
    """A VarSet of a variable not in `read`, as a short frame; None: the frame comes whole (a
    variable read, or none named, which the tracker ignores; no channel; a header it reads
    written `Name:value`, or a repeated Timestamp, which only the whole parse reads right).
    A repeated Uniqueid/Linkedid/Variable is read as the tracker reads it: the first one."""
    var = _value(text, "\r\nVariable:")
    if not var or var.lstrip("_") in read:
        return None
    uid, lid = _value(text, "\r\nUniqueid:"), _value(text, "\r\nLinkedid:")
    if not uid or lid is None:
        return None
    short: Frame = {"Event": "VarSet", "Uniqueid": uid, "Linkedid": lid, RAW_KEY: text}
    if "Timestamp:" in text:            # (timestampevents = yes)
        i = text.find("\r\nTimestamp:")
        if i >= 0:
            ts = _value(text, "\r\nTimestamp:")
            if ts is None or text.find("\r\nTimestamp:", i + 12) >= 0:
                return None             # a list whole: the tracker reads no time from it
            short["Timestamp"] = ts
    return short


def parse_raw(short: Frame) -> Frame | None:
    """A short VarSet's whole frame, as the framing would have made it (errors logged)."""
    return AmiFraming()._parse(short[RAW_KEY].encode("utf-8"))


def first(frame: Frame, key: str, default: str = "") -> str:
    """A header's value; the first one when the header was repeated."""
    v = frame.get(key, default)
    return v[0] if isinstance(v, list) else v


def frames_from_bytes(data: bytes) -> list[Frame]:
    return AmiFraming().feed(data)
