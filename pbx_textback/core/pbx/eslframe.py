"""FreeSWITCH event-socket (ESL) framing, sans-IO: bytes in, header dicts out.

A frame is a block of `Key: Value` lines ended by an empty line; when it has a
`Content-Length`, that many bytes of body follow. What `feed()` returns per frame:

- `text/event-plain`: the *event's* headers, parsed from the body. Lines are split first and
  each value is URL-decoded on its own afterwards, so a `%0A` in a caller-controlled value
  (caller name) stays inside that value and can never inject a header (greenswitch decodes
  first and splits after: LIBRARY-NOTES). An inner `Content-Length` + body goes to `_body`.
- `text/event-json`: the JSON object, every value a string (below), `_body`
  kept as FreeSWITCH sent it.
- anything else (`auth/request`, `command/reply`, `api/response`, `text/disconnect-notice`,
  `log/data`, ...): the outer headers (not URL-decoded: FreeSWITCH does not encode them),
  with the body, if any, under `_body`.

Every value of a frame is a `str`: a JSON list becomes its one element, or FreeSWITCH's own
plain form of an array header (`ARRAY::a|:b`); anything else JSON can hold becomes text.

Bytes are kept until a frame is complete, and every decision is taken on whole header blocks,
whole bodies or whole matches of a frame start, so any split of the stream gives the same
frames. A garbage or oversized frame is dropped with a logged error and framing
resynchronizes on the next `Content-Type: ` / `Content-Length: ` (a frame start); a hostile
value (a Content-Length of "²", JSON nested 100,000 deep) costs its own frame, nothing more.
`feed()` never raises on bytes off the socket.
"""
from __future__ import annotations

import json
import logging
import re
from urllib.parse import unquote

log = logging.getLogger("pbx_textback.esl")

MAX_BODY = 4 * 1024 * 1024         # a real event is a few KB; `show channels` can be larger
MAX_HEADER = 64 * 1024             # the outer header block is two or three short lines
BODY_KEY = "_body"
CT_PLAIN, CT_JSON = "text/event-plain", "text/event-json"

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_\-.]*$")
# where a frame can start again after garbage: a header line of the outer block
_RESYNC = re.compile(rb"Content-(?:Type|Length): ")
_RESYNC_LONGEST = len(b"Content-Length: ")
_TERM_LONGEST = len(b"\r\n\r\n")
_MAX_DIGITS = 12                   # a Content-Length longer than this is garbage anyway
# the outer block of nearly every frame FreeSWITCH sends (see EslFraming._feed)
_EVENT_HEAD = re.compile(rb"Content-Length: ([0-9]{1,%d})\nContent-Type: (text/event-(?:plain|json))\n\n"
                         % _MAX_DIGITS)
_EVENT_HEADS = {CT.encode(): {"Content-Type": CT} for CT in (CT_PLAIN, CT_JSON)}
_CT_JSON_B = CT_JSON.encode()
_scan_json = json.JSONDecoder().scan_once

Frame = dict
_LINE = re.compile(r"^([^:\n]+):[ ]?([^\n\r]*)\r?$", re.M)
_UNQ: dict[str, str] = {}           # decoded values seen lately (caller ids, names repeat)


def _length(value) -> int | None:
    """A Content-Length: ASCII digits only ("²" and "١" are digits to str.isdigit)."""
    if isinstance(value, str) and 0 < len(value) <= _MAX_DIGITS and value.isascii() \
            and value.isdigit():
        return int(value)
    return None


class EslFraming:
    """Feed bytes as they come off the socket; get complete frames back."""

    def __init__(self, max_body: int = MAX_BODY, max_header: int = MAX_HEADER):
        self.max_body, self.max_header = max_body, max_header
        self.errors = 0                 # frames dropped (for tests and `doctor`)
        self.frames = 0                 # frames returned
        self.bugs = 0                   # exceptions caught inside the framing (must stay 0)
        self._buf = bytearray()
        self._head: dict | None = None  # outer headers of the frame whose body we wait for
        self._need = 0                  # body bytes still to come for _head
        self._skip = 0                  # bytes of an oversized body still to throw away
        self._seek = False              # after garbage: looking for the next frame start

    @property
    def pending(self) -> int:
        """Bytes held for a frame not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        try:
            self._feed(data if data.__class__ is bytes else bytes(data), out)
        except Exception as e:          # a bug here must not kill the reader: drop and go on
            self.bugs += 1
            self._error(f"framing failed ({type(e).__name__}: {e}); {len(self._buf)} "
                        "buffered bytes dropped")
            self._reset()
        self.frames += len(out)
        return out

    def eof(self) -> list[Frame]:
        """The peer closed: whatever is buffered is a truncated frame (logged and dropped)."""
        if self._head is not None or self._buf.strip() or self._skip:
            what = "body" if self._head is not None else "header block"
            self._error(f"connection closed inside a frame's {what} "
                        f"({len(self._buf)} bytes buffered): frame dropped")
        self._reset()
        return []

    # -- internals ------------------------------------------------------------------------

    def _reset(self) -> None:
        self._buf.clear()
        self._head, self._need, self._skip, self._seek = None, 0, 0, False

    def _feed(self, data: bytes, out: list[Frame]) -> None:
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        self._buf += data
        buf = self._buf
        pos = 0
        while True:
            if self._seek:
                # garbage before: the next frame starts at the next Content-Type/-Length; a
                # start cut by the end of this read is kept for the next one
                m = _RESYNC.search(buf, pos)
                if m is None:
                    pos = max(pos, len(buf) - (_RESYNC_LONGEST - 1))
                    break
                pos, self._seek = m.start(), False
            if self._head is not None:
                if len(buf) - pos < self._need:
                    break
                body = bytes(buf[pos:pos + self._need])
                head, self._head = self._head, None
                frame = self._finish(head, body)
                if frame is None:
                    # the body was not what its Content-Type says (a lying Content-Length
                    # swallowed the next frames, or garbage): look for a frame start inside
                    m = _RESYNC.search(buf, pos + 1, pos + self._need)
                    pos = m.start() if m else pos + self._need
                else:
                    pos += self._need
                    out.append(frame)
                continue
            m = _EVENT_HEAD.match(buf, pos)
            if m is not None:
                # the usual frame, `Content-Length: N` `Content-Type: text/event-...`, its body
                # in the buffer: what the careful way below does with it, without the checks
                # its two plain lines pass anyway (tests: fast == careful, any split)
                n = int(m.group(1))
                start = m.end()
                if 0 < n <= self.max_body:
                    if len(buf) - start < n:
                        # the body is still coming (the frame a read cut, once a read): wait
                        # for it as the careful way would, without parsing the block again
                        self._head, self._need = _EVENT_HEADS[m.group(2)], n
                        pos = start
                        continue
                    # (what _finish does with these two Content-Types, without its lookups)
                    try:
                        body = buf[start:start + n]
                        frame = self._json(body) if m.group(2) == _CT_JSON_B else \
                            self._plain(body)
                    except Exception as e:
                        frame = self._failed(e)
                    if frame is None:       # as below: a frame start inside the body?
                        r = _RESYNC.search(buf, start + 1, start + n)
                        pos = r.start() if r else start + n
                    else:
                        pos = start + n
                        out.append(frame)
                    continue
            # skip blank lines between frames
            while pos < len(buf) and buf[pos] in (10, 13):
                pos += 1
            end = buf.find(b"\n\n", pos)
            sep = 2
            # CRLF line ends (not FreeSWITCH's, but tolerated): only look inside this block
            end_crlf = buf.find(b"\r\n\r\n", pos, end + 2 if end >= 0 else len(buf))
            if end_crlf >= 0 and (end < 0 or end_crlf < end):
                end, sep = end_crlf, 4
            # a header block over the limit is dropped whether its end came in this read or
            # not: the same bytes give the same frames however the socket cut them
            if (end < 0 and len(buf) - pos > self.max_header + _TERM_LONGEST) or \
                    end - pos > self.max_header:
                self._error(f"header block over {self.max_header} bytes: dropped")
                pos += 1
                self._seek = True
                continue
            if end < 0:
                break
            block = bytes(buf[pos:end])
            head = self._outer(block)
            if head is None:
                m = _RESYNC.search(buf, pos + 1, end)
                pos = m.start() if m else end + sep
                continue
            pos = end + sep
            length = head.get("Content-Length")
            if length is None:
                if head.get("Content-Type") in (CT_PLAIN, CT_JSON):
                    self._error("event frame without Content-Length: dropped")
                else:
                    out.append(head)
                continue
            n = _length(length)
            if n is None:
                self._error(f"bad Content-Length {length[:20]!r}: frame dropped")
                continue
            if n > self.max_body:
                self._error(f"frame body of {n} bytes over {self.max_body}: dropped")
                have = len(buf) - pos
                if have >= n:
                    pos += n
                else:
                    self._skip = n - have
                    pos = len(buf)
                continue
            self._head, self._need = head, n
        del buf[:pos]

    def _outer(self, block: bytes) -> dict | None:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            self._error("frame header block is not text: dropped")
            return None
        head: dict = {}
        for line in text.split("\n"):
            line = line.rstrip("\r")
            key, sep, value = line.partition(":")
            if not sep or not _KEY.match(key):
                self._error("garbage in a frame header block: dropped")
                return None
            head[key] = value[1:] if value.startswith(" ") else value
        if "Content-Type" not in head and "Content-Length" not in head:
            self._error("frame without Content-Type or Content-Length: dropped")
            return None
        return head

    def _finish(self, head: dict, body: bytes) -> Frame | None:
        try:
            ctype = head.get("Content-Type", "")
            if ctype == CT_PLAIN:
                return self._plain(body)
            if ctype == CT_JSON:
                return self._json(body)
            if not ctype:
                self._error("frame with a body but no Content-Type: dropped")
                return None
            frame = dict(head)
            frame[BODY_KEY] = body.decode("utf-8", errors="replace")
            return frame
        except Exception as e:          # a bug on odd input costs this frame only
            return self._failed(e)

    def _failed(self, e: Exception) -> None:
        self.bugs += 1
        self._error(f"frame dropped: {type(e).__name__} while reading it")
        return None

    def _plain(self, body: bytes) -> Frame | None:
        text = body.decode("utf-8", errors="replace")
        head, sep, rest = text.partition("\n\n")
        ev = _plain_event(head)
        if "Event-Name" not in ev:
            self._error("text/event-plain frame without Event-Name: dropped")
            return None
        if sep:
            raw = rest.encode("utf-8", errors="replace")
            inner = _length(ev.get("Content-Length"))
            if inner is not None:
                raw = raw[:inner]
            if raw:
                ev[BODY_KEY] = raw.decode("utf-8", errors="replace")
        return ev

    def _json(self, body: bytes) -> Frame | None:
        try:
            obj = text = None
            if body.startswith(b'{"'):
                # what json.loads does with these bytes (UTF-8 by its detect_encoding, as
                # surrogatepass), without its encoding and whitespace probes: only when the
                # object is all the body; anything else goes to json.loads, which says why
                try:
                    text = body.decode("utf-8", "surrogatepass")
                    obj, end = _scan_json(text, 0)
                    if end != len(text):
                        obj = None
                except Exception:
                    obj = text = None
            if obj is None:
                obj = json.loads(body)
            if not isinstance(obj, dict) or "Event-Name" not in obj:
                self._error("text/event-json frame is not an event object: dropped")
                return None
            strings_only(obj, text or "")
            return obj
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            # not JSON, an integer over Python's 4300 digits, nesting deeper than the stack
            self._error(f"text/event-json frame is not JSON ({type(e).__name__}): dropped")
            return None

    def _error(self, msg: str) -> None:
        self.errors += 1
        log.error("ESL: %s", msg)


def _plain_lines(head: str) -> dict:
    """`Key: Value` lines -> dict, the later of a repeated key winning; a line _LINE does not
    match is skipped. The usual block (every line `Key: Value`, no CR, no colon in a key)
    is cut by str.split alone; anything else goes through _LINE, which decides."""
    if "\r" not in head:
        lines = head.split("\n")
        if lines[-1] == "":
            lines.pop()
        ev: dict | None = {}
        for ln in lines:                # (a partition() loop measured faster than split())
            k, sep, v = ln.partition(": ")
            if not sep:
                ev = None
                break
            ev[k] = v
        if ev is not None and "" not in ev and ":" not in "".join(ev):
            return ev
    return dict(_LINE.findall(head))


def _unquote(value: str) -> str:
    dec = _UNQ.get(value)
    if dec is None:
        dec = unquote(value, errors="replace")
        if len(_UNQ) > 8192:
            _UNQ.clear()
        _UNQ[value] = dec
    return dec


def _plain_event(head: str) -> dict:
    """An event-plain header block -> its headers, each value URL-decoded AFTER the split, on
    its own, so a %0A inside it stays inside it. The usual block is cut and decoded in one
    pass; anything else is what _plain_lines cuts, decoded after."""
    if "\r" not in head:
        lines = head.split("\n")
        if lines[-1] == "":
            lines.pop()
        ev: dict | None = {}
        seen = _UNQ.get
        for ln in lines:
            k, sep, v = ln.partition(": ")
            if not sep:
                ev = None
                break
            ev[k] = (seen(v) or _unquote(v)) if "%" in v else v
        if ev is not None and "" not in ev and ":" not in "".join(ev):
            return ev
    ev = _plain_lines(head)
    for k, v in ev.items():
        if "%" in v:
            ev[k] = _unquote(v)
    return ev


def strings_only(obj: dict, text: str) -> None:
    """Every value of obj made a str by _str, in place. text (obj's JSON, or "") is only a
    hint of where lists are: the result never depends on it."""
    # FreeSWITCH's array headers (variable_DP_MATCH on most calls' events): the value named
    # before each `[` (`"key":[`) first, so the check below mostly passes at once and the
    # walk of every value is rarely needed. A key read wrong here (escapes, a `[` inside a
    # string or a nested list, no `":` before it at all) converts some other list or
    # nothing: any order of conversions gives the same dict, so the `":` is not even looked
    # at. (One-char finds: a find of `":[` measured 30x slower than of `[`.)
    i = text.find("[")
    while i >= 0:
        key = text[text.rfind('"', 0, i - 2) + 1:i - 2]
        v = obj.get(key)
        if v.__class__ is list:
            # what _str gives a list, without its generator and a call per element, for a
            # list of strs (FreeSWITCH's); any other element goes through _str
            try:
                obj[key] = "ARRAY::" + "|:".join(v) if len(v) != 1 else \
                    v[0] if v[0].__class__ is str else _str(v)
            except TypeError:
                obj[key] = _str(v)
        i = text.find("[", i + 1)
    try:
        # every value a str? str.startswith given a tuple raises a TypeError on any item
        # that is not a str, checking each before it compares; from index 1 of "" nothing
        # can match, so every item is checked. (It measured ~20% under "".join(values),
        # which copies every value into a new string besides; a set of the values' types
        # costs more than either.)
        "".startswith(tuple(obj.values()), 1)
    except TypeError:
        # JSON keys are str already: only the values that are not get converted
        for k, v in obj.items():
            if v.__class__ is not str:
                obj[k] = _str(v)


def _str(v) -> str:
    """A JSON value as the string FreeSWITCH's plain format would show."""
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        if len(v) == 1:
            return _str(v[0])
        return "ARRAY::" + "|:".join(_str(x) for x in v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return json.dumps(v)
    return str(v)


def parse_stream(data: bytes) -> list[Frame]:
    """All frames of a whole recorded stream."""
    f = EslFraming()
    return f.feed(data) + f.eof()


def is_event(frame: Frame) -> bool:
    """An event (not a reply to a command of ours)."""
    return "Event-Name" in frame
