"""Several recorded calls joined into one stream, at chosen times, for replay and the service.

Asterisk: the recorded AMI frames, with the `Timestamp:` header Asterisk adds with
`timestampevents = yes` (after `Privilege:`, as manager.c writes it); a copy of a call gets
other Uniqueids/Linkedids and channel names. FreeSWITCH: the recorded ESL events, their own
microsecond `Event-Date-Timestamp`s shifted (same digit count, so Content-Length holds).
Numbers are swapped only for numbers of the same length.
"""
from __future__ import annotations

import re
from pathlib import Path

from pbx_textback.ami.replay_server import rewrite_ids, trace_frames

FIX = Path(__file__).resolve().parent / "fixtures"
_CHAN = re.compile(rb"(PJSIP/[A-Za-z0-9_]+)-([0-9a-f]{8})")
_SKIP = (b"Event: FullyBooted\r", b"Event: SuccessfulAuth\r")
_USEC = re.compile(rb"(?<![0-9])1[0-9]{15}(?![0-9])")


def ami_call(name: str, *, start: float | None, span: float = 10.0, copy: int = 0,
             swap: dict[str, str] | None = None) -> bytes:
    """The calls of one recorded AMI trace; with `start`, its events stamped evenly from start
    to start + span (else unstamped, as Asterisk without timestampevents)."""
    frames = [f for f in trace_frames((FIX / "asterisk" / name).read_bytes()) if not f.startswith(_SKIP)]
    chans: dict[bytes, bytes] = {}

    def chan(m):
        if m.group(0) not in chans:
            chans[m.group(0)] = m.group(1) + b"-%08x" % ((copy * 64 + len(chans)) & 0xFFFFFFFF)
        return chans[m.group(0)]
    out = []
    for i, f in enumerate(frames):
        if copy:
            f = _CHAN.sub(chan, rewrite_ids(f, copy))
        for old, new in (swap or {}).items():
            assert len(old) == len(new)
            f = f.replace(old.encode(), new.encode())
        if start is not None and f.startswith(b"Event:"):
            t = start + span * i / max(1, len(frames) - 1)
            head, sep, rest = f.partition(b"\r\n")
            if rest.startswith(b"Privilege:"):
                priv, sep2, rest = rest.partition(b"\r\n")
                head, rest = head + sep + priv, rest
            f = head + b"\r\n" + b"Timestamp: %.6f\r\n" % t + rest
        out.append(f)
    return b"".join(out)


def ami_trace(*calls: bytes) -> bytes:
    return b"Asterisk Call Manager/11.0.0\r\n" + b"".join(calls)


def esl_call(name: str, *, start: float, swap: dict[str, str] | None = None) -> bytes:
    """The event frames of one recorded ESL trace (no handshake, no goodbye), its times moved
    so its first event is at `start` (epoch seconds)."""
    raw = (FIX / "freeswitch" / name).read_bytes()
    i = raw.index(b"Content-Type: text/event-plain")
    i = raw.rindex(b"Content-Length:", 0, i)
    j = raw.find(b"Content-Type: command/reply\nReply-Text: +OK bye")
    body = raw[i:j if j > 0 else len(raw)]
    first = min(int(m.group()) for m in _USEC.finditer(body))
    shift = int(start * 1_000_000) - first
    body = _USEC.sub(lambda m: str(int(m.group()) + shift).encode(), body)
    for old, new in (swap or {}).items():
        assert len(old) == len(new)
        body = body.replace(old.encode(), new.encode())
    return body


def esl_trace(*calls: bytes) -> bytes:
    return (b"Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n"
            b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n" + b"".join(calls))


def esl_span(name: str) -> float:
    """Seconds from a recorded ESL trace's first event to its last."""
    stamps = [int(m.group()) for m in _USEC.finditer(esl_call(name, start=1e9))]
    return (max(stamps) - min(stamps)) / 1e6
