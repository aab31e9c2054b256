"""One business day of traffic for the report tests: recorded Asterisk calls replayed through
the real pipeline and outbox (tests/replay/test_timing.Harness), plus scripted replies, agent
texts, a call back and delivery receipts. Times are offsets from T0, Friday 2027-01-15 10:00
in Chicago. The expected numbers are worked out by hand in the tests that use it."""
from __future__ import annotations

import re

from pbx_textback.store import web as sw
from pbx_textback.store.callbacks import CONNECTED, Callback
from pbx_textback.store.db import Message
from pbx_textback.web.passwords import hash_password
from tests.replay.test_timing import FIX, Clock, Harness

T0 = 1_800_028_800.0          # Fri 2027-01-15 10:00 America/Chicago
DAY_START = T0 - 10 * 3600     # that day's local midnight
A, B, C, D = "+17375550188", "+15125550177", "+12145550142", "+15125550199"
E, F, G, H, I = "+15125550166", "+15125550123", "+15125550145", "+15125550155", "+17375550100"

CFG = """
[business]
name = "Acme Dental"
timezone = "America/Chicago"
[policy]
max_age_minutes = 120
[[line]]
number = "+15125550140"
name = "Google Ads"
[line.hours]
mon = ["08:00-18:00"]
tue = ["08:00-18:00"]
wed = ["08:00-18:00"]
thu = ["08:00-18:00"]
fri = ["08:00-18:00"]
sat = []
sun = []
[[line]]
number = "+15125550110"
name = "Google Ads"
[[line]]
number = "+15125550100"
name = "Main line"
[[line]]
number = "+15125550120"
name = "Sales"
"""


def trace(name: str, copy: int = 0, swap: tuple[str, str] | None = None) -> bytes:
    raw = (FIX / name).read_bytes()
    raw = raw.split(b"\r\n", 1)[1] if raw.startswith(b"Asterisk") else raw
    if copy:   # a distinct call: other Uniqueids/Linkedids, same recorded events
        raw = re.sub(rb"\b1(\d{9})\.(\d+)\b", lambda m: b"2%s.%s" % (str(copy).zfill(9).encode(), m.group(2)), raw)
    if swap:   # the same recorded call placed by another number of the same length
        raw = raw.replace(swap[0].encode(), swap[1].encode())
    return raw


def agent_text(h: Harness, peer: str, line: str, by: str, body: str) -> None:
    """What the inbox's send does (Service.queue_manual with kind agent)."""
    with h.store.write():
        h.store.add_message(direction="out", kind="agent", line=line, peer=peer, body=body, state="pending",
                            due_at=h.clock.t, created_at=h.clock.t, note=f"by {by}")
    h.drain()


def at(h: Harness, offset: float) -> None:
    h.clock.t = T0 + offset


def play_day(target) -> Harness:
    h = Harness(target, CFG, clock=Clock(T0))
    sw.add_user(h.store, "maria", "agent", hash_password("maria-secret-1"), "100", T0)
    sw.add_user(h.store, "ben", "agent", hash_password("ben-secret-12"), "101", T0)
    script = [
        (0, lambda: h.play(trace("02-no-answer.ami"))),                      # A -> 110 no-answer
        (60, lambda: h.play(trace("03-abandoned.ami"))),                     # B -> 140 abandoned
        (120, lambda: h.play(trace("04-busy.ami"))),                         # C -> 110 busy
        (180, lambda: h.play(trace("05-ringgroup-voicemail.ami"))),          # D -> 100 voicemail
        (240, lambda: h.play(trace("07-queue-abandon.ami"))),                # E -> 120 queue-abandon
        (300, lambda: h.play(trace("01-answered.ami"))),                     # F -> 140 answered
        (300, lambda: h.pipe.on_inbound(A, "+15125550110", "Hi, can you call me back?", now=h.clock.t)),
        (360, lambda: h.play(trace("06-ringgroup-answered.ami"))),           # G -> 100 answered
        (400, lambda: h.pipe.on_inbound(E, "+15125550120", "yes please", now=h.clock.t)),
        (600, lambda: h.play(trace("03-abandoned.ami", copy=1))),            # B again: no second text
        (720, lambda: agent_text(h, A, "+15125550110", "maria", "Sure, calling you in a minute")),
        (900, lambda: h.play(trace("09-after-hours.ami"))),                  # H -> 100 after-hours
        (1000, lambda: h.pipe.on_inbound(C, "+15125550110", "STOP", now=h.clock.t)),
        (1860, lambda: Callback.create(peer=B, endpoint="PJSIP/101", feature="*88", state=CONNECTED,
                                       created_at=h.clock.t, updated_at=h.clock.t)),
        (2000, lambda: h.pipe.on_inbound(D, "+15125550100", "what time are you open?", now=h.clock.t)),
        (5900, lambda: h.play(trace("06-ringgroup-answered.ami", copy=2, swap=(G, H)))),   # H redials, answered
        (11200, lambda: agent_text(h, E, "+15125550120", "maria", "Our sales team will call you")),
        (28200, lambda: h.pipe.on_inbound(B, "+15125550140", "one more question", now=h.clock.t)),   # 17:50
        (30000, lambda: agent_text(h, B, "+15125550140", "ben", "Answer to your question")),         # 18:20
        (39600, lambda: h.play(trace("02-no-answer.ami", copy=3, swap=(A, I)))),    # I at 21:00: quiet hours
    ]
    for offset, step in script:
        at(h, offset)
        step()
        h.drain()
    # receipts: A, B and D delivered, E failed; C and H none (sent)
    by_peer = {m.peer: m for m in Message.select().where(Message.kind == "missed-call")}
    for peer, state in ((A, "delivered"), (B, "delivered"), (D, "delivered"), (E, "failed")):
        h.store.apply_dlr([by_peer[peer].transport_id], state, "", T0 + 40000, transport=by_peer[peer].transport)
    sw.set_owner(h.store, A, "maria", "maria", T0 + 40000)
    return h
