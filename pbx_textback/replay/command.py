"""`pbx-textback replay`: a recorded PBX event stream through the service's pipeline, outbox and
gate on the trace's own clock. The calls are printed as they are decided (one line each; with
--json one object each), then every text and what became of it (sent, cancelled, expired,
held) and why.

The clock: the events' own timestamps when the trace has them (FreeSWITCH always; Asterisk
with `timestampevents = yes`), moved so the first call starts at --at when given; else --at
(or, without it, the time of the replay) plus the order of events, a millisecond per call.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

from pbx_textback.replay.simulate import STEP, Simulation, iso


def _shift(rec, by: float):
    if not by:
        return rec
    return replace(rec, started_at=None if rec.started_at is None else rec.started_at + by,
                   ended_at=None if rec.ended_at is None else rec.ended_at + by)


def clock_of(records, at: float | None, wall: float) -> tuple[float, float, str]:
    """(start, shift, how): when the simulation starts, what to add to trace times, and the
    clock in words."""
    stamped = [r.started_at if r.started_at is not None else r.ended_at
               for r in records if r.ended_at is not None or r.started_at is not None]
    if stamped:
        first = min(stamped)
        if at is not None:
            return at, at - first, "the trace's timestamps, moved to start at --at"
        return first, 0.0, "the trace's timestamps"
    if at is not None:
        return at, 0.0, "--at plus the order of events (the trace has no timestamps)"
    return wall, 0.0, ("the time of this replay plus the order of events (the trace has no "
                       "timestamps; --at sets the time)")


async def replay(records, cfg, *, at: float | None, on_call, wall: float | None = None):
    """Decide every record and run the outbox on the trace's clock. on_call(verdict) is called
    as each call is decided. Returns (fates, clock in words)."""
    start, shift, how = clock_of(records, at, time.time() if wall is None else wall)
    sim = Simulation(cfg, start)
    try:
        t = start
        for rec in records:
            if rec.ended_at is not None or rec.started_at is not None:
                rec = _shift(rec, shift)
                t = max(t, rec.ended_at if rec.ended_at is not None else rec.started_at)
                now = t
            else:
                t += STEP
                if at is not None:
                    rec = replace(rec, started_at=t, ended_at=t)
                    now = t
                else:
                    now = None       # the decision has no clock, as before (hours unknown)
            on_call(await sim.call(rec, at=t, now=now))
        return await sim.finish(), how
    finally:
        sim.close()


def run(records, cfg, *, at: float | None, as_json: bool, human_call) -> int:
    tz = cfg.business.timezone

    def on_call(v):
        print(json.dumps(v.to_json(), ensure_ascii=False) if as_json else human_call(v), flush=True)

    fates, how = asyncio.run(replay(records, cfg, at=at, on_call=on_call))
    if as_json:
        for f in fates:
            print(json.dumps(f.to_json(tz), ensure_ascii=False), flush=True)
        return 0
    print(f"\ntexts ({len(fates)}), on {how}:" if fates else f"\nno texts (clock: {how})")
    for f in fates:
        head = (f"  text #{f.id} {f.kind} to {f.peer} from line {f.line}: {f.state.upper()}"
                + (f" {iso(f.sent_at, tz)}" if f.sent_at else "") + f" (due {iso(f.due_at, tz)}, "
                f"{f.calls_missed} missed call{'s' if f.calls_missed != 1 else ''})")
        print(head + f"\n      {f.why}" + (f"\n      \"{f.body}\"" if f.state == "sent" else ""))
    return 0
