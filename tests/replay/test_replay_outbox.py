"""`pbx-textback replay` runs the outbox and its gate on the trace's own clock and says what
became of each text: recorded calls joined into one stream (tests/tracejoin.py), run through
the CLI as a user runs it."""
import json
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.tracejoin import ami_call, ami_trace, esl_call, esl_span, esl_trace

CALLER = "+15125550177"          # the caller of 03-abandoned.ami
T0 = 1_800_028_800.0             # a Friday, 10:00 in Chicago
CFG = """
[business]
name = "Acme"
timezone = "America/Chicago"
[compliance]
quiet_hours = "08:00-20:00"
[[line]]
number = "{line}"
delay_seconds = {delay}
template = "Acme: sorry we missed {{% if calls_missed > 1 %}}your {{{{ calls_missed }}}} calls{{% else %}}your call{{% endif %}}. Reply STOP to opt out."
"""


def replay(tmp_path, data: bytes, *, pbx="asterisk", delay=0, line="+15125550140", extra=(), json_out=True):
    trace = tmp_path / ("t.ami" if pbx == "asterisk" else "t.esl")
    trace.write_bytes(data)
    cfg = tmp_path / "c.toml"
    cfg.write_text(CFG.format(line=line, delay=delay))
    p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "replay", str(trace), "--pbx", pbx,
                        "-c", str(cfg), *extra] + (["--json"] if json_out else []),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    if not json_out:
        return p.stdout
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    calls = [r for r in rows if "call_id" in r]
    texts = [r for r in rows if "text" in r]
    assert rows == calls + texts            # the call lines first, then one line per text
    return calls, texts


def redial(gap: float) -> bytes:
    """03-abandoned, then the same caller's answered call (01-answered) `gap` s after it ends."""
    return ami_trace(ami_call("03-abandoned.ami", start=T0, span=8),
                     ami_call("01-answered.ami", start=T0 + 8 + gap, span=12, swap={"+15125550123": CALLER}))


def test_no_delay_the_first_missed_call_of_a_caller_who_redials_is_texted(tmp_path):
    calls, texts = replay(tmp_path, redial(10), delay=0)
    assert [(c["reason"], c["decision"]) for c in calls] == [("abandoned", "text"), ("answered", "skip")]
    (t,) = texts
    assert set(t) >= {"peer", "line", "state", "due_at", "calls_missed", "why"}
    assert (t["peer"], t["line"], t["state"], t["calls_missed"]) == (CALLER, "+15125550140", "sent", 1)
    assert t["calls"] == [calls[0]["call_id"]]
    # sent when the abandoned call ended (within its 8 s from 10:00 Chicago), before the redial
    assert t["sent_at"] == t["due_at"] and t["due_at"].startswith("2027-01-15T10:00:0")


def test_a_delay_longer_than_the_gap_is_cancelled_by_the_redial(tmp_path):
    calls, texts = replay(tmp_path, redial(10), delay=60)
    (t,) = texts
    assert t["state"] == "cancelled" and t["sent_at"] is None
    assert t["due_at"].startswith("2027-01-15T10:01:0")
    assert f"reached by inbound call {calls[1]['call_id']}" in t["why"] and "answered by 100" in t["why"]


def test_a_delay_shorter_than_the_gap_still_sends(tmp_path):
    calls, texts = replay(tmp_path, redial(40), delay=30)
    (t,) = texts
    assert t["state"] == "sent" and t["sent_at"].startswith("2027-01-15T10:00:3")
    assert "30 s after the call" in t["why"]


def test_three_abandoned_calls_give_one_text_that_says_three(tmp_path):
    data = ami_trace(*(ami_call("03-abandoned.ami", start=T0 + 15 * i, span=8, copy=i) for i in range(3)))
    calls, texts = replay(tmp_path, data, delay=60)
    assert [c["decision"] for c in calls] == ["text", "skip", "skip"]
    (t,) = texts
    assert t["state"] == "sent" and t["calls_missed"] == 3
    assert t["body"] == "Acme: sorry we missed your 3 calls. Reply STOP to opt out."
    assert t["calls"] == [c["call_id"] for c in calls] and len(set(t["calls"])) == 3
    assert t["sent_at"].startswith("2027-01-15T10:01:0")     # the first call's due time stands
    assert "3 missed calls" in t["why"]


def test_without_a_delay_three_abandoned_calls_give_one_text_and_two_dedupes(tmp_path):
    data = ami_trace(*(ami_call("03-abandoned.ami", start=T0 + 15 * i, span=8, copy=i) for i in range(3)))
    calls, texts = replay(tmp_path, data, delay=0)
    assert [c["decision"] for c in calls] == ["text", "skip", "skip"]
    assert [ch["name"] for c in calls[1:] for ch in c["checks"] if not ch["ok"]] == ["dedupe", "dedupe"]
    (t,) = texts
    assert t["state"] == "sent" and t["calls_missed"] == 1


@pytest.mark.parametrize("delay,state", [(0, "sent"), (60, "cancelled")])
def test_freeswitch_redial_on_its_own_recorded_timestamps(tmp_path, delay, state):
    # 03-abandoned.esl: +15125550125 -> +15125550101; 01-answered.esl answered on the same DID
    end = T0 + esl_span("03-abandoned.esl")
    data = esl_trace(esl_call("03-abandoned.esl", start=T0),
                     esl_call("01-answered.esl", start=end + 5, swap={"15125550123": "15125550125"}))
    calls, texts = replay(tmp_path, data, pbx="freeswitch", delay=delay, line="+15125550101")
    assert [(c["caller"], c["reason"]) for c in calls] == [("+15125550125", "abandoned"),
                                                           ("+15125550125", "answered")]
    (t,) = texts
    assert t["state"] == state


@pytest.mark.parametrize("delay,state", [(0, "sent"), (60, "cancelled")])
def test_no_timestamps_at_plus_the_order_of_events(tmp_path, delay, state):
    data = ami_trace(ami_call("03-abandoned.ami", start=None),
                     ami_call("01-answered.ami", start=None, swap={"+15125550123": CALLER}))
    calls, texts = replay(tmp_path, data, delay=delay, extra=["--at", "2026-11-26T11:00:00-06:00"])
    (t,) = texts
    assert t["state"] == state and t["due_at"].startswith("2026-11-26T11:0" + ("0" if not delay else "1"))


def test_quiet_hours_hold_a_text_until_they_open(tmp_path):
    data = ami_trace(ami_call("03-abandoned.ami", start=T0 - 12 * 3600, span=8))     # 22:00 Chicago
    calls, texts = replay(tmp_path, data, delay=0)
    (t,) = texts
    assert t["state"] == "sent" and t["sent_at"] == "2027-01-15T08:00:00-06:00"
    assert "held (quiet hours" in t["why"]


def test_the_human_output_tells_the_same_story(tmp_path):
    out = replay(tmp_path, redial(10), delay=60, json_out=False)
    assert "MISSED abandoned" in out and "not missed: answered" in out
    assert f"text #1 missed-call to {CALLER} from line +15125550140: CANCELLED" in out
    assert "caller reached by inbound call" in out
    assert "on the trace's timestamps" in out


def test_shipped_defaults_on_the_real_clock(tmp_path):
    """No config, no --at, a trace without timestamps: the calls are taken as happening now,
    and the shipped quiet hours (08:00-20:00 where the caller is) decide whether the text
    goes at once or waits."""
    trace = tmp_path / "t.ami"
    trace.write_bytes(ami_trace(ami_call("02-no-answer.ami", start=None)))
    before = datetime.now(ZoneInfo("America/Chicago"))        # +1737: Austin, Texas
    p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "replay", str(trace), "--json"],
                       capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    after = datetime.now(ZoneInfo("America/Chicago"))
    assert p.returncode == 0, p.stderr
    call, text = (json.loads(x) for x in p.stdout.splitlines())
    assert call["reason"] == "no-answer" and text["peer"] == "+17375550188" and text["state"] == "sent"
    if before.hour == after.hour and 8 <= before.hour < 20:
        assert text["why"] == "sent at once: no delay on this line"
    elif before.hour == after.hour:
        assert "held (quiet hours" in text["why"] and "T08:00:00" in text["sent_at"]


def test_at_moves_a_timestamped_trace_and_keeps_its_gaps(tmp_path):
    """--at on a trace with timestamps: the first call starts then, the redial still comes 10 s
    after the first call ends (so a 60 s delay is still cancelled), and the hours follow."""
    calls, texts = replay(tmp_path, redial(10), delay=60, extra=["--at", "2026-11-26T15:00:00-06:00"])
    (t,) = texts
    assert t["state"] == "cancelled" and t["due_at"].startswith("2026-11-26T15:01:0")
    calls, texts = replay(tmp_path, redial(10), delay=0, extra=["--at", "2026-11-26T21:00:00-06:00"])
    (t,) = texts              # after 20:00 quiet hours hold it till morning: the redial cancels it
    assert t["state"] == "cancelled" and t["due_at"] == "2026-11-27T08:00:00-06:00"
    alone = ami_trace(ami_call("03-abandoned.ami", start=T0, span=8))
    calls, texts = replay(tmp_path, alone, delay=0, extra=["--at", "2026-11-26T21:00:00-06:00"])
    (t,) = texts
    assert t["state"] == "sent" and t["sent_at"] == "2026-11-27T08:00:00-06:00"


def test_the_recorded_four_call_freeswitch_trace_on_its_own_clock(tmp_path):
    """14-concurrent.esl as recorded (Thu 17:17 in Chicago): A answered, B, C, D missed; each
    missed caller's text goes out when their call ends, in that order, none to A."""
    from pathlib import Path
    data = (Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch" / "14-concurrent.esl").read_bytes()
    trace = tmp_path / "t.esl"
    trace.write_bytes(data)
    p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "replay", str(trace), "--pbx", "freeswitch",
                        "--json"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    calls = {r["caller"]: r for r in rows if "call_id" in r}
    texts = [r for r in rows if "text" in r]
    assert sorted(t["peer"] for t in texts) == ["+15125550142", "+15125550143", "+15125550144"]
    assert all(t["state"] == "sent" and t["sent_at"] == t["due_at"] for t in texts)
    assert [t["sent_at"] for t in texts] == sorted(t["sent_at"] for t in texts)
    assert all(t["calls"] == [calls[t["peer"]]["call_id"]] for t in texts)
    assert all(t["due_at"].startswith("2026-11-26T17:") for t in texts)
