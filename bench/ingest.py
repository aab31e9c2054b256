"""Ingest benchmark: events/s through framing + tracker + classifier vs bare framing.

The recorded Asterisk traces are replicated (with Uniqueids/Linkedids rewritten per copy so
every copy is a distinct call) to at least --events events, fed in 64 KiB reads like a
socket would. Prints figures and the ratios; asserts nothing. "service filter" is the framing
as the service runs it: events outside SERVICE_AMI_EVENTS skipped after their first line, and
VarSets of variables the tracker does not read handed on short (ids and Timestamp only).
The last figure adds the AMI client's own hop (data_received -> queue -> consumer), in-process.
Times are the process's CPU time (the machine is shared: wall time counts others' turns).
    python bench/ingest.py [--events 1000000] [--pbx asterisk|freeswitch|all]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_textback.core.pbx.amiframe import AmiFraming  # noqa: E402
from pbx_textback.core.pbx.asterisk import SERVICE_AMI_EVENTS, AsteriskTracker  # noqa: E402
from pbx_textback.core.policy.classify import classify  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "asterisk"
SKIP = {"20-restart-part1.ami", "21-login-failed.ami", "messagesend.ami"}
_ID = re.compile(rb"\b(1\d{9})\.(\d+)\b")


def ami_template():
    """The call traces back to back, cut at every Uniqueid/Linkedid so each round can give
    them fresh ids cheaply."""
    body = b""
    for p in sorted(FIX.glob("*.ami")):
        if p.name in SKIP:
            continue
        raw = p.read_bytes()
        body += raw.split(b"\r\n", 1)[1] if raw.startswith(b"Asterisk") else raw
    per_round = body.count(b"\r\nEvent: ") + body.startswith(b"Event: ")
    pieces, ids, pos = [], [], 0
    lo = min(int(m.group(1)) for m in _ID.finditer(body))
    for m in _ID.finditer(body):
        pieces.append(body[pos:m.start()])
        # (the seconds part kept apart too: two traces may share a sequence number, e.g. the
        # one taken after a restart; one id for both made the later trace's calls stragglers)
        ids.append((int(m.group(1)) - lo, m.group(2)))
        pos = m.end()
    return pieces, ids, body[pos:], per_round


def ami_round(template, r: int) -> list[bytes]:
    pieces, ids, tail, _ = template
    base = 2000000000 + r * 1000000        # the traces span < 1e6 s
    out = bytearray()
    for piece, (sec, n) in zip(pieces, ids):
        out += piece
        out += b"%d.%s" % (base + sec, n)
    out += tail
    return [bytes(out[i:i + 65536]) for i in range(0, len(out), 65536)]   # 64 KiB socket reads


class NaiveFraming:
    """The baseline the issue names: `split(b"\\r\\n\\r\\n")` + `partition(": ")`, nothing
    checked (no LF-only ends, no limits, repeated headers overwritten, bad UTF-8 an exception)."""

    def __init__(self):
        self._rest = b""

    def feed(self, data: bytes) -> list[dict]:
        parts = (self._rest + data).split(b"\r\n\r\n")
        self._rest = parts.pop()
        out = []
        for p in parts:
            frame = {}
            for line in p.decode("utf-8").split("\r\n"):
                k, _, v = line.partition(": ")
                frame[k] = v
            out.append(frame)
        return out


class ClientHop:
    """The service's whole ingest in-process: the AMI client's _Protocol.data_received (framing
    as the service sets it) -> its queue -> its consumer -> on_event = tracker + classifier,
    on one event loop, read by read (no socket: the reads are given to data_received)."""

    def __init__(self):
        from pbx_textback.ami import client as C
        self.loop = asyncio.new_event_loop()
        self.tracker = AsteriskTracker()
        self.done = None
        self.src = C.AmiSource("127.0.0.1", 1, "u", "p", on_event=self._on_event,
                               wanted=SERVICE_AMI_EVENTS, wanted_vars=self.tracker.read_vars)

        class _Transport:
            def write(self, data): pass
            def close(self): pass
            def is_closing(self): return False
            def get_extra_info(self, *a, **k): return None

        async def setup():
            self.src._queue = asyncio.Queue()
            self.proto = C._Protocol()
            self.proto.connection_made(_Transport())
            self.proto.framing.wanted = self.src.wanted
            self.proto.framing.wanted_vars = self.src.wanted_vars
            self.proto.on_events = self.src._on_frames
            self.consumer = asyncio.ensure_future(self.src._consume())
        self.loop.run_until_complete(setup())

    def _on_event(self, ev):
        if ev.get("Event") == "_bench_end":
            self.done.set_result(None)
            return
        for rec in self.tracker.feed(ev):
            classify(rec)

    def feed(self, chunks) -> None:
        async def run():
            self.done = self.loop.create_future()
            for c in chunks:
                self.proto.data_received(c)
                await asyncio.sleep(0)          # the loop turns between reads, as on a socket
            self.src._queue.put_nowait([{"Event": "_bench_end"}])   # after every event queued
            await self.done
        self.loop.run_until_complete(run())

    def close(self) -> None:
        self.consumer.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


def bench_ami(min_events: int) -> None:
    """Naive, bare framing (unfiltered, and with the service's event filter) and the full path
    the service runs (filtered framing + tracker + classifier) over the same reads, round after
    round (interleaved, so all see the same machine); only the feeding is timed."""
    template = ami_template()
    rounds = -(-min_events // template[3])
    tr = AsteriskTracker()
    svc = dict(wanted=SERVICE_AMI_EVENTS, wanted_vars=tr.read_vars)   # as the service frames
    naive_f, bare_f, filt_f = NaiveFraming(), AmiFraming(), AmiFraming(**svc)
    full_f = AmiFraming(**svc)
    fullu_f, tru = AmiFraming(), AsteriskTracker()
    n = n_filt = size = calls = missed = n_naive = 0
    hop = ClientHop()
    t = dict.fromkeys(("naive", "bare", "filt", "full", "fullu", "hop"), 0.0)
    for r in range(rounds):
        chunks = ami_round(template, r)
        size += sum(map(len, chunks))
        t0 = time.process_time()
        for c in chunks:
            n_naive += len(naive_f.feed(c))
        t1 = time.process_time()
        for c in chunks:
            n += len(bare_f.feed(c))
        t2 = time.process_time()
        for c in chunks:
            n_filt += len(filt_f.feed(c))
        t3 = time.process_time()
        for c in chunks:
            for ev in full_f.feed(c):
                for rec in tr.feed(ev):
                    calls += 1
                    missed += classify(rec).missed
        t4 = time.process_time()
        for c in chunks:
            for ev in fullu_f.feed(c):
                for rec in tru.feed(ev):
                    classify(rec)
        t5 = time.process_time()
        hop.feed(chunks)
        t6 = time.process_time()
        for k, a, b in (("naive", t0, t1), ("bare", t1, t2), ("filt", t2, t3), ("full", t3, t4),
                        ("fullu", t4, t5), ("hop", t5, t6)):
            t[k] += b - a
    ok = lambda x, goal: f"{x:.2f} (goal >= {goal}: {'met' if x >= goal else 'NOT met'})"  # noqa: E731
    print(f"asterisk: {n:,} events ({size / 1e6:.0f} MB), {calls:,} calls ({missed:,} missed); "
          f"the service's filter passes {n_filt:,} of them ({filt_f.shortened:,} of those short VarSets, "
          f"see AmiFraming wanted_vars)")
    print(f"  naive split+partition (baseline):      {n_naive / t['naive']:10,.0f} events/s  ({t['naive']:.2f} s)")
    print(f"  bare framing, unfiltered:              {n / t['bare']:10,.0f} events/s  ({t['bare']:.2f} s)")
    print(f"  bare framing, service filter:          {n / t['filt']:10,.0f} events/s  ({t['filt']:.2f} s)")
    print(f"  full (service filter + tracker + classifier): {n / t['full']:10,.0f} events/s  ({t['full']:.2f} s)")
    print(f"  full unfiltered (framing + tracker + classifier): {n / t['fullu']:10,.0f} events/s  ({t['fullu']:.2f} s)")
    print(f"  the service's ingest through the AMI client (data_received -> queue -> on_event, "
          f"tracker + classifier): {n / t['hop']:10,.0f} events/s  ({t['hop']:.2f} s; "
          f"{t['hop'] / max(calls, 1) * 1e6:.0f} us per call)")
    hop.close()
    print(f"  bare framing / naive, unfiltered:      {ok(t['naive'] / t['bare'], 1.0)}")
    print(f"  bare framing / naive, service filter:  {ok(t['naive'] / t['filt'], 1.0)}")
    print(f"  full / bare, service filter:           {ok(t['filt'] / t['full'], 0.8)}")
    print(f"  full / bare, unfiltered:               {ok(t['bare'] / t['fullu'], 0.8)}")
    print(f"  full ingest per call (service filter): {t['full'] / max(calls, 1) * 1e6:.0f} us "
          f"({t['full'] / max(n, 1) * 1e6:.2f} us per event, {n / max(calls, 1):.0f} events per call)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--pbx", default="all", choices=["asterisk", "freeswitch", "all"])
    ap.add_argument("--esl-events", action="store_true",
                    help="give --events to the FreeSWITCH bench too (its default is smaller)")
    a = ap.parse_args()
    if a.pbx in ("asterisk", "all"):
        bench_ami(a.events)
    if a.pbx in ("freeswitch", "all"):
        esl = ROOT / "bench" / "ingest_esl.py"
        if esl.exists():
            import runpy
            sys.argv = [str(esl)] + (["--events", str(a.events)] if a.esl_events else [])
            runpy.run_path(str(esl), run_name="__main__")


if __name__ == "__main__":
    main()
