"""Compliance on replayed real traffic: caps across lines, quiet hours in the caller's zone,
STOP confirmation exactly once (duplicates, a crash in between), the CLI's records."""
import csv
import io
import json
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from pbx_textback.core.policy.consent import ConsentEvent
from pbx_textback.store import db as st
from tests.amisim import Sim
from tests.replay.test_timing import CALLER, Clock, Harness, rows, trace

LINES = ["+15125550140", "+15125550141", "+15125550142", "+15125550143"]
CFG = """
[business]
name = "Acme"
phone = "+15125550100"
timezone = "America/Chicago"
[compliance]
cross_line_cap = 3
""" + "".join(f'[[line]]\nnumber = "{n}"\n' for n in LINES)


def chicago(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=ZoneInfo("America/Chicago")).timestamp()


def test_cap_across_lines_under_concurrent_missed_calls(store_target, tmp_path):
    h = Harness(store_target, CFG, clock=Clock(chicago("2026-11-26 10:00")))
    stream = b"".join(trace("03-abandoned.ami", copy=i + 1).replace(b"+15125550140", n.encode())
                      for i, n in enumerate(LINES))
    verdicts = h.play(stream)                       # four missed calls, all at once
    assert [v.decision.action for v in verdicts] == ["text", "text", "text", "skip"]
    blocked = [c for c in verdicts[3].decision.checks if c.name == "cross-line-cap"][0]
    assert not blocked.ok and "limit 3" in blocked.detail
    assert len(rows()) == 3


def test_quiet_hours_hold_until_the_callers_morning_and_drop_if_called_back(store_target, tmp_path):
    h = Harness(store_target, CFG, clock=Clock(chicago("2026-11-26 22:30")))
    (v,) = h.play(trace("03-abandoned.ami"))
    assert v.decision.action == "text"
    q = [c for c in v.decision.checks if c.name == "quiet-hours"][0]
    assert "held until Fri 08:00 CST" in q.detail
    m = rows()[0]
    assert m.due_at == chicago("2026-11-27 08:00")
    h.clock.t = chicago("2026-11-27 07:59")
    h.drain()
    assert h.tx.sent == []
    s = Sim()                                        # 07:59: ext 100 calls back, answered
    phone = s.newchannel("PJSIP/100", context="from-internal", exten=CALLER, cid="100")
    trunk = s.newchannel("PJSIP/itsp", context="from-trunk", exten="s", cid="<unknown>",
                         linkedid=s.linkedid(phone), incoming=False)
    s.dial(phone, trunk)
    s.dialend(phone, trunk, "ANSWER")
    s.bridge("b", phone, trunk)
    s.hangup(trunk)
    s.hangup(phone)
    h.feed_events(s.events)
    h.clock.t = chicago("2026-11-27 08:01")
    h.drain()
    assert h.tx.sent == [] and rows()[0].state == st.CANCELLED


def test_quiet_hours_use_the_callers_zone_not_the_business(store_target):
    # 07:30 in Chicago is 08:30 in New York: a 212 caller may be texted, a 512 caller waits
    h = Harness(store_target, CFG, clock=Clock(chicago("2026-11-26 07:30")))
    (ny,) = h.play(trace("03-abandoned.ami").replace(CALLER.encode(), b"+12125550177"))
    (tx,) = h.play(trace("03-abandoned.ami", copy=5))
    qn = [c.detail for c in ny.decision.checks if c.name == "quiet-hours"][0]
    qt = [c.detail for c in tx.decision.checks if c.name == "quiet-hours"][0]
    assert qn.startswith("inside") and "America/New_York" in qn
    assert qt.startswith("held until") and "America/Chicago" in qt


def test_stop_twice_and_a_crash_between_opt_out_and_confirmation_give_one_confirmation(store_target, tmp_path):
    h = Harness(store_target, CFG, clock=Clock(chicago("2026-11-26 10:00")))
    h.play(trace("03-abandoned.ami"))
    h.drain()
    assert h.pipe.on_inbound(CALLER, "+15125550140", "STOP", now=h.clock.t)
    assert h.pipe.on_inbound(CALLER, "+15125550140", "stop.", now=h.clock.t + 5)
    confs = [m for m in rows() if m.kind == "confirmation"]
    assert len(confs) == 1
    # a crash right after an opt-out was stored, before its confirmation was queued
    other = "+15125550178"
    with h.store.write():
        h.store.add_consent(ConsentEvent("opt-out", other, h.clock.t, source="STOP"))
    h.restart()
    with h.store.write():
        assert h.pipe.queue_confirmations(h.clock.t + 10) == 1      # start-up heals it
    with h.store.write():
        assert h.pipe.queue_confirmations(h.clock.t + 20) == 0      # never twice
    h.clock.t += 30
    h.drain()
    sent = [(p, k) for p, k, _ in h.tx.sent if k == "confirmation"]
    assert sorted(sent) == sorted([(CALLER, "confirmation"), (other, "confirmation")])


def test_opted_out_caller_never_texted_by_a_later_missed_call(store_target, tmp_path):
    h = Harness(store_target, CFG, clock=Clock(chicago("2026-11-26 10:00")))
    h.pipe.on_inbound(CALLER, "+15125550141", "Unsubscribe", now=h.clock.t)
    (v,) = h.play(trace("03-abandoned.ami"))
    assert v.decision.action == "skip"
    assert [c for c in v.decision.checks if c.name == "consent"][0].detail.startswith("opted out (all lines)")


def test_ambiguous_reply_is_flagged_for_review_and_a_person_confirms(store_target, tmp_path):
    h = Harness(store_target, CFG, clock=Clock(chicago("2026-11-26 10:00")))
    h.play(trace("03-abandoned.ami"))
    h.pipe.on_inbound(CALLER, "+15125550140", "I want you to stop", now=h.clock.t)
    reply = [m for m in rows() if m.direction == "in"][0]
    assert reply.note.startswith("review") and "pbx-textback optout" in reply.note
    assert not [m for m in rows() if m.kind == "confirmation"]
    h.store.close()
    cfgf = tmp_path / "c.toml"
    cfgf.write_text(CFG + h.store_toml())
    run = lambda *a: subprocess.run([sys.executable, "-m", "pbx_textback.cli", *a, "-c", str(cfgf)],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    p = run("optout", CALLER, "--reason", "confirmed the cancel reply meant stop")
    assert p.returncode == 0 and "opt-out recorded; 1 confirmation text queued" in p.stdout
    exp = run("consent", "export", "--number", CALLER)
    rows_csv = list(csv.DictReader(io.StringIO(exp.stdout)))
    assert [r["event"] for r in rows_csv][-2:] == ["opt-out", "confirmation (opt-out)"]
    assert "staff: confirmed" in rows_csv[-2]["source"]
    e = run("explain", CALLER)
    assert "consent of +15125550177: opted-out" in e.stdout and "review" in e.stdout
    data = json.loads(run("export", CALLER).stdout)
    assert data["number"] == CALLER and data["calls"] and data["consent"]
    p = run("pause")
    assert "paused" in p.stdout
    assert "PAUSED" in run("explain", CALLER).stdout
    s = st.open_store(h.path, h.dsn)     # this test's calls, two days back: purge takes whole days
    with s.write():
        st.Call.update(created_at=time.time() - 2 * 86400).execute()
    s.close()
    purge = run("purge", "--older-than", "1", "--yes")
    assert "consent records are kept" in purge.stdout
    st.open_store(h.path, h.dsn)
    assert st.Call.select().count() == 0 and st.Consent.select().count() >= 3
