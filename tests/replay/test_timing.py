"""Timing (delay, cancel when reached, collapse, follow-up, restart) on recorded Asterisk
traffic joined into one stream. The clock is an argument: nothing sleeps."""
import asyncio
import re
from pathlib import Path

from pbx_textback.config import loads
from pbx_textback.core.pbx.amiframe import AmiFraming
from pbx_textback.core.pbx.asterisk import AsteriskTracker
from pbx_textback.outbox import OutboxWorker, SendResult
from pbx_textback.pipeline import Pipeline
from pbx_textback.service import asterisk_settings
from pbx_textback.store import db as st
from tests.amisim import Sim

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
CALLER = "+15125550177"          # the caller of 03-abandoned and 20-restart-part2

CFG = """
[business]
name = "Acme"
[policy]
max_age_minutes = 120
[[line]]
number = "+15125550140"
delay_seconds = 60
template = "Acme: sorry we missed {% if calls_missed > 1 %}your {{ calls_missed }} calls{% else %}your call{% endif %}. Reply STOP to opt out."
follow_up_after_hours = 24
"""


def trace(name: str, *, copy: int = 0, caller: str | None = None) -> bytes:
    raw = (FIX / name).read_bytes()
    raw = raw.split(b"\r\n", 1)[1] if raw.startswith(b"Asterisk") else raw
    if copy:   # a distinct call: other Uniqueids/Linkedids, same recorded events
        raw = re.sub(rb"\b1(\d{9})\.(\d+)\b", lambda m: b"2%s.%s" % (str(copy).zfill(9).encode(), m.group(2)), raw)
    if caller:   # the same recorded call, placed by another number (same length)
        raw = raw.replace(b"+15125550123", caller.encode())
    return raw


class Clock:
    def __init__(self, t=1_800_028_800.0):    # a Friday, 10:00 in Chicago: inside quiet hours
        self.t = t

    def __call__(self):
        return self.t


class Recorder:
    name = "recorder"

    def __init__(self):
        self.sent = []

    async def send(self, msg, last_look):
        if not last_look():
            return SendResult("retry")
        self.sent.append((msg.peer, msg.kind, msg.body))
        return SendResult("sent", f"r-{len(self.sent)}")


class Harness:
    """target: the store_target fixture (SQLite file or PostgreSQL DSN)."""

    def __init__(self, target, cfg_text=CFG, clock=None):
        self.cfg = loads(cfg_text)
        self.clock = clock or Clock()
        self.path, self.dsn = target["path"], target["dsn"]
        self.start()

    def store_toml(self) -> str:
        return f'[store]\ndsn = "{self.dsn}"\n' if self.dsn else f'[store]\npath = "{self.path}"\n'

    def start(self):
        self.store = st.open_store(self.path, self.dsn)
        self.pipe = Pipeline(self.cfg, self.store, clock=self.clock)
        self.framing, self.tracker = AmiFraming(), AsteriskTracker(asterisk_settings(self.cfg))
        self.tx = Recorder()
        self.worker = OutboxWorker(self.store, self.tx, clock=self.clock,
                                   max_age_s=self.cfg.policy.max_age_minutes * 60,
                                   gate_facts=self.pipe.gate_facts, after_sent=self.pipe.after_sent)

    def play(self, data: bytes):
        out = []
        for ev in self.framing.feed(data):
            for rec in self.tracker.feed(ev):
                out.append(self.pipe.on_record(rec))
        return out

    def feed_events(self, events):
        return [self.pipe.on_record(r) for ev in events for r in self.tracker.feed(ev)]

    def drain(self):
        return asyncio.run(self.worker.drain())

    def restart(self):
        self.store.close()
        self.start()
        n = self.store.recover_interrupted(self.clock())
        return n


def rows():
    return list(st.Message.select().order_by(st.Message.id))


def test_delay_then_redial_answered_cancels_the_text(store_target):
    h = Harness(store_target)
    (v,) = h.play(trace("03-abandoned.ami"))
    assert v.decision.action == "text" and any(c.name == "delay" for c in v.decision.checks)
    h.clock.t += 30
    assert h.drain() == 0                                  # not due before the delay
    (ans,) = h.play(trace("01-answered.ami", caller=CALLER))
    assert ans.outcome.reason == "answered"
    h.clock.t += 60
    h.drain()
    assert h.tx.sent == []
    (m,) = rows()
    assert m.state == st.CANCELLED and f"inbound call {ans.call.call_id}" in m.note and "100" in m.note
    explained = h.store.calls_for(CALLER)
    assert explained[0]["messages"][0]["note"].startswith("caller reached by inbound call")


def test_without_a_redial_the_text_goes_after_the_delay(store_target):
    h = Harness(store_target)
    h.play(trace("03-abandoned.ami"))
    h.clock.t += 59
    h.drain()
    assert h.tx.sent == []
    h.clock.t += 2
    h.drain()
    assert h.tx.sent == [(CALLER, "missed-call", "Acme: sorry we missed your call. Reply STOP to opt out.")]


def test_answered_outbound_callback_cancels_the_waiting_text(store_target):
    h = Harness(store_target)
    h.play(trace("03-abandoned.ami"))
    s = Sim()                                  # ext 100 calls the caller back, who answers
    phone = s.newchannel("PJSIP/100", context="from-internal", exten=CALLER, cid="100")
    trunk = s.newchannel("PJSIP/itsp", context="from-trunk", exten="s", cid="<unknown>",
                         linkedid=s.linkedid(phone), incoming=False)
    s.dial(phone, trunk)
    s.up(trunk)
    s.dialend(phone, trunk, "ANSWER")
    s.bridge("cb-1", phone, trunk)
    s.hangup(trunk)
    s.hangup(phone)
    (cb,) = h.feed_events(s.events)
    assert cb.call.direction == "outbound" and cb.call.answered_by_human
    h.clock.t += 120
    h.drain()
    assert h.tx.sent == [] and rows()[0].state == st.CANCELLED
    assert "outbound call" in rows()[0].note


def test_three_missed_calls_from_one_caller_give_one_text_that_counts_them(store_target):
    h = Harness(store_target)
    first = h.play(trace("03-abandoned.ami"))
    h.clock.t += 10
    second = h.play(trace("20-restart-part2.ami"))
    h.clock.t += 10
    third = h.play(trace("03-abandoned.ami", copy=3))
    assert [v.decision.action for v in first + second + third] == ["text", "skip", "skip"]
    assert "collapsed into the waiting text" in [c.detail for c in third[0].decision.checks
                                                if c.name == "dedupe"][0]
    h.clock.t += 60
    h.drain()
    assert h.tx.sent == [(CALLER, "missed-call", "Acme: sorry we missed your 3 calls. Reply STOP to opt out.")]
    assert len(rows()) == 1 + 1            # the text and its follow-up


def test_follow_up_once_unless_the_caller_replied(store_target):
    h = Harness(store_target)
    h.play(trace("03-abandoned.ami"))
    h.clock.t += 61
    h.drain()
    follow = rows()[1]
    assert follow.kind == "follow-up" and follow.state == st.PENDING
    h.clock.t += 24 * 3600 - 10
    h.drain()
    assert len(h.tx.sent) == 1                      # not yet
    h.clock.t += 20
    h.drain()
    assert [k for _, k, _ in h.tx.sent] == ["missed-call", "follow-up"]
    assert len(rows()) == 2                          # a follow-up never gets its own follow-up


def test_follow_up_cancelled_when_the_caller_replied(store_target):
    h = Harness(store_target)
    h.play(trace("03-abandoned.ami"))
    h.clock.t += 61
    h.drain()
    st.Message.create(direction="in", kind="reply", line="+15125550140", peer=CALLER, body="ok thanks",
                      state="received", due_at=h.clock.t, created_at=h.clock.t + 5, updated_at=h.clock.t + 5)
    h.clock.t += 25 * 3600
    h.drain()
    assert [k for _, k, _ in h.tx.sent] == ["missed-call"]
    assert rows()[1].state == st.CANCELLED and "replied" in rows()[1].note


def test_restart_never_loses_a_due_row_never_sends_early_or_twice(store_target):
    h = Harness(store_target, CFG + '[[line]]\nnumber = "+15125550110"\n')
    h.play(trace("03-abandoned.ami"))                           # due at t0+60
    h.play(trace("02-no-answer.ami"))                           # other line: no delay, due now
    (claimed,) = h.store.claim_due(h.clock.t)
    assert h.store.mark_written(claimed.id, h.clock.t)          # the service dies mid-send
    h.restart()                                                  # 10 s later
    h.clock.t += 10
    assert rows()[1].state == st.UNKNOWN                         # written: not resent silently
    h.drain()
    assert h.tx.sent == []                                       # the delayed one is not due yet
    h.clock.t += 60
    h.drain()
    assert [p for p, _, _ in h.tx.sent] == [CALLER]              # exactly once


def test_rows_due_long_ago_expire_visibly_after_a_long_outage(store_target):
    h = Harness(store_target)
    h.play(trace("03-abandoned.ami"))
    h.restart()
    h.clock.t += 3 * 3600                                       # down for three hours
    h.drain()
    assert h.tx.sent == []
    m = rows()[0]
    assert m.state == st.EXPIRED and "max_age_minutes" in m.note


def test_pause_holds_rows_and_nothing_is_lost(store_target):
    h = Harness(store_target)
    h.play(trace("03-abandoned.ami"))
    h.store.set_setting("paused", "1", h.clock.t)
    h.clock.t += 61
    h.drain()
    assert h.tx.sent == [] and rows()[0].state == st.PENDING and "paused" in rows()[0].note
    h.store.set_setting("paused", "0", h.clock.t)
    h.clock.t += 61
    h.drain()
    assert len(h.tx.sent) == 1


def test_a_call_seen_again_after_a_restart_is_never_texted_twice(store_target):
    """Reconnect and reconcile can hand the same call over again: its first decision stands."""
    h = Harness(store_target)
    (v1,) = h.play(trace("03-abandoned.ami"))
    h.restart()                                           # a new tracker, the same store
    (v2,) = h.play(trace("03-abandoned.ami"))
    assert v1.decision.action == "text" and v2.decision.action == "skip"
    assert [c.name for c in v2.decision.checks] == ["duplicate"]
    assert len(rows()) == 1 and st.Consent.select().count() == 1


def test_a_follow_up_template_gets_the_same_variables_the_load_check_allowed(store_target):
    cfg = CFG.replace("follow_up_after_hours = 24", 'follow_up_after_hours = 24\n'
                      'follow_up_template = "{{ business.name }} again about your call ({{ reason }}, '
                      '{{ calls_missed }} missed). Reply STOP to opt out."')
    h = Harness(store_target, cfg)
    h.play(trace("03-abandoned.ami"))
    h.clock.t += 61
    h.drain()
    follow = rows()[1]
    assert follow.kind == "follow-up"
    assert follow.body == "Acme again about your call (abandoned, 1 missed). Reply STOP to opt out."
