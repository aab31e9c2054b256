"""Recorded traffic from a real FreeSWITCH 1.10.12 through ESL framing, the FreeSWITCH tracker
and the shared classifier: every call's verdict against the manifest
(tests/fixtures/freeswitch/scenarios.toml), plain and json, whole and split at random bytes."""
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pbx_textback.core.policy.classify import classify
from pbx_textback.core.pbx.freeswitch import FsMarker, FsTrackerSettings, records_from_stream

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"
MANIFEST = tomllib.loads((FIX / "scenarios.toml").read_text())["fixture"]
CALL_TRACES = [fx for fx in MANIFEST if fx.get("kind") != "sms"]
# What the recorded PBX's dialplan (pbx-config/dialplan/public.xml) sets on the closed
# branch of its wday/time-of-day condition: an admin configures this marker for their PBX.
SITE = FsTrackerSettings(after_hours_markers=(
    FsMarker("variable", "office_open", "false", True),
    FsMarker("variable", "office_open", "true", False)))
DATA = {fx["file"]: (FIX / fx["file"]).read_bytes() for fx in MANIFEST}


def expected(fx):
    return fx.get("calls") or [fx]


def verdicts(data: bytes, cuts=None, settings=SITE):
    out = {}
    for rec in records_from_stream(data, settings, chunks=cuts):
        o = classify(rec)
        out[rec.call_id] = (o.missed, o.reason, rec.direction, rec.caller, rec.called)
    return out


@pytest.mark.parametrize("fx", CALL_TRACES, ids=[fx["file"] for fx in CALL_TRACES])
def test_every_call_gets_the_manifest_verdict(fx):
    got = verdicts(DATA[fx["file"]])
    want = expected(fx)
    assert len(got) == len(want), got
    for w in want:
        missed, reason, direction, caller, called = got[w["caller_leg_uuid"]]
        assert (missed, reason) == (w["missed"], w["reason"]), w
        assert direction == "inbound"
        assert caller == w["caller"]
        assert called == w.get("called_did", fx["called_did"])


def test_fixture_count():
    calls = sum(len(expected(fx)) for fx in CALL_TRACES)
    assert calls == 16 and len(CALL_TRACES) == 13


def test_sms_trace_is_no_call():
    assert verdicts(DATA["sms-sip-message.esl"]) == {}


def test_after_hours_comes_from_the_pbxs_own_closed_route():
    """The dialplan's time-of-day condition set office_open=false and the system played its
    closed message: the default markers read both conventions. With no markers at all the
    same call is only a voicemail (nothing else in it says 'closed')."""
    r = records_from_stream(DATA["09-after-hours.esl"])[0]
    assert classify(r).reason == "after-hours"
    assert "office_open=false" in r.after_hours_marker
    bare = records_from_stream(DATA["09-after-hours.esl"], FsTrackerSettings(after_hours_markers=()))[0]
    assert bare.pbx_after_hours is None and classify(bare).reason == "voicemail"
    assert bare.system_answered and bare.voicemail and bare.voicemail_left is True
    # a site's own closed-hours destination or message are markers too
    for m in (FsMarker("destination", "default", "5999"), FsMarker("playback", "", "closed")):
        r2 = records_from_stream(DATA["09-after-hours.esl"],
                                 FsTrackerSettings(after_hours_markers=(m,)))[0]
        assert classify(r2).reason == "after-hours", m
        assert m.describe() in r2.after_hours_marker


def test_open_hours_calls_are_not_after_hours_by_default():
    for name in ("01-answered.esl", "03-abandoned.esl", "05-voicemail.esl"):
        r = records_from_stream(DATA[name])[0]
        assert r.pbx_after_hours is False, name      # office_open=true was set


def test_open_marker_is_recorded_as_open():
    r = records_from_stream(DATA["01-answered.esl"], SITE)[0]
    assert r.pbx_after_hours is False


def test_records_carry_the_facts():
    r = records_from_stream(DATA["02-no-answer.esl"], SITE)[0]
    assert not r.answered_by_human and r.voicemail and r.voicemail_left is False
    assert r.dial_results == ("noanswer",)
    assert {l.kind for l in r.legs} == {"caller", "extension", "local"}
    assert r.started_at and r.ended_at and r.ended_at > r.started_at
    r = records_from_stream(DATA["08-queue-answered.esl"], SITE)[0]
    assert r.answered_by_human and r.answered_by == "1002" and r.queue == "support@default"
    assert 6 < r.talk_seconds < 9 and 3 < r.ring_seconds < 9
    r = records_from_stream(DATA["03-abandoned.esl"], SITE)[0]
    assert r.caller_cancelled and r.hangup_cause == "ORIGINATOR_CANCEL"
    assert any("hung up while it was ringing" in n for n in r.notes)


@pytest.mark.parametrize("name", ["01-answered.esl", "01-answered.json.esl",
                                  "07-queue-abandon.json.esl", "14-concurrent.esl"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_byte_splits_give_identical_verdicts(name, data):
    raw = DATA[name]
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), min_size=1, max_size=300))
    assert verdicts(raw, cuts) == verdicts(raw)


@settings(max_examples=5, deadline=None)
@given(step=st.integers(1, 7))
def test_tiny_reads_give_identical_verdicts(step):
    raw = DATA["05-voicemail.json.esl"][:60000] + DATA["05-voicemail.json.esl"][60000:]
    cuts = list(range(step, len(raw), 97 * step))
    assert verdicts(raw, cuts) == verdicts(raw)
