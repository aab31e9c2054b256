"""The Asterisk tracker across gaps in the event stream: calls whose end was never seen are
closed (reconcile, stale limit), a call is decided once, and an originated call (a *88
callback) knows whom it called."""
from pathlib import Path

from pbx_textback.core.pbx.asterisk import (
    GAP_UNSEEN_END, RECONCILE_KEY, AsteriskSettings, AsteriskTracker, records_from_stream)
from pbx_textback.core.policy.classify import classify
from tests.amisim import Sim

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"


def feed(t: AsteriskTracker, events) -> list:
    out = []
    for ev in events:
        out.extend(t.feed(ev))
    return out


def ringing_call(s: Sim, caller="+15125550177", did="+15125550140"):
    c = s.inbound(caller, did)
    ext = s.ring(c, "100")
    return c, ext


def reconnect(s: Sim, *listed: str) -> None:
    """What the AMI source hands on after a reconnect: FullyBooted, then the CoreShowChannels
    rows (marked) and their Complete."""
    s.emit("FullyBooted", Status="Fully Booted")
    for name in listed:
        s.emit("CoreShowChannel", name, **{RECONCILE_KEY: "1", "ActionID": "textback-reconcile-2"})
    s.emit("CoreShowChannelsComplete", **{RECONCILE_KEY: "1", "ActionID": "textback-reconcile-2",
                                          "EventList": "Complete", "ListItems": str(len(listed))})


def test_a_call_that_ended_in_the_gap_is_closed_by_the_reconcile():
    s = Sim()
    c, ext = ringing_call(s)
    reconnect(s)                      # Asterisk lists no channel: both hung up while we were away
    t = AsteriskTracker()
    recs = feed(t, s.events)
    assert len(recs) == 1 and t.open_calls() == 0
    rec = recs[0]
    assert rec.caller == "+15125550177" and rec.direction == "inbound"
    assert rec.recovered and rec.recovered_why == GAP_UNSEEN_END       # unsure: the CDR settles it
    assert any("reconcile" in n for n in rec.notes)
    # its late events open nothing
    s2 = Sim()
    s2.chans = s.chans
    s2.hangup(ext)
    s2.hangup(c)
    assert feed(t, s2.events) == [] and t.open_calls() == 0


def test_channels_still_up_or_new_since_the_reconnect_stay_open():
    s = Sim()
    c, ext = ringing_call(s)
    other, _ = ringing_call(s, "+12145550142", "+15125550110")
    s.emit("FullyBooted", Status="Fully Booted")
    born = s.newchannel("PJSIP/itsp", context="from-trunk", exten="+15125550120", cid="+13105550111")
    s.emit("CoreShowChannel", c, **{RECONCILE_KEY: "1"})
    s.emit("CoreShowChannel", ext, **{RECONCILE_KEY: "1"})
    s.emit("CoreShowChannelsComplete", **{RECONCILE_KEY: "1", "ListItems": "2"})
    t = AsteriskTracker()
    recs = feed(t, s.events)
    assert [r.caller for r in recs] == ["+12145550142"]       # only the call no longer listed
    assert set(t.calls) == {s.linkedid(c), s.linkedid(born)}


def test_an_unmarked_complete_event_retires_nothing():
    """A CoreShowChannelsComplete that is not our reconcile (a recording, another client's
    action) says nothing about what is gone."""
    s = Sim()
    ringing_call(s)
    s.emit("FullyBooted", Status="Fully Booted")
    s.emit("CoreShowChannelsComplete", EventList="Complete", ListItems="0")
    t = AsteriskTracker()
    assert feed(t, s.events) == [] and t.open_calls() == 1


def test_a_person_seen_answering_is_answered_even_when_the_end_was_lost():
    s = Sim()
    c, ext = ringing_call(s, "+15125550123")
    s.up(ext)
    s.dialend(c, ext, "ANSWER")
    s.bridge("br-1", c, ext)
    reconnect(s)
    (rec,) = feed(AsteriskTracker(), s.events)
    assert not rec.recovered and classify(rec).reason == "answered"


def test_a_stale_call_is_closed_and_the_open_calls_are_bounded():
    s = Sim()
    ringing_call(s)
    t = AsteriskTracker(AsteriskSettings(stale_seconds=3600))
    feed(t, s.events)
    assert t.expire(1000.0) == []
    assert t.expire(1000.0 + 3599) == [] and t.open_calls() == 1
    (rec,) = t.expire(1000.0 + 3600)
    assert rec.recovered and "no event for 60 min" in rec.notes[-1] and t.open_calls() == 0
    # a call that keeps getting events is not stale
    s = Sim()
    c, ext = ringing_call(s)
    t = AsteriskTracker(AsteriskSettings(stale_seconds=3600))
    t.expire(0.0)
    feed(t, s.events)
    t.expire(3000.0)
    s.events.clear()
    s.varset(c, "SOMETHING", "1")
    feed(t, s.events)
    assert t.expire(5000.0) == [] and t.open_calls() == 1
    # count bound: the least recently opened call closes first
    s = Sim()
    t = AsteriskTracker(AsteriskSettings(max_open_calls=3))
    for i in range(5):
        ringing_call(s, f"+1512555{i:04d}")
    closed = feed(t, s.events)
    assert [r.caller for r in closed] == ["+15125550000", "+15125550001"] and t.open_calls() == 3


def test_a_decided_call_is_decided_once():
    """A channel of an already-decided call seen later (its events reordered or its
    Newchannel lost in a gap) must not open a second record with an 'internal' verdict."""
    s = Sim()
    c, ext = ringing_call(s)
    s.dialend(c, ext, "NOANSWER")
    s.hangup(ext, "19")
    s.hangup(c)
    late = s.newchannel("PJSIP/101", context="from-internal", exten="s", cid="101",
                        linkedid=s.linkedid(c), incoming=False)
    s.varset(late, "DIALSTATUS", "CANCEL")
    s.hangup(late, "26")
    recs = feed(AsteriskTracker(), s.events)
    assert [(r.call_id, r.direction) for r in recs] == [(s.linkedid(c), "inbound")]


def test_a_star88_callback_is_an_outbound_call_to_the_caller_called_back():
    """Recorded: the callback the service originated starts in extension `s` on the desk phone;
    the number it calls is where the dialplan went when the phone answered."""
    recs = records_from_stream((FIX / "88-callback.ami").read_bytes())
    assert len(recs) == 3
    back = recs[2]
    assert (back.direction, back.called, back.answered_by_human) == ("outbound", "+15125550321", True)
    assert classify(recs[0]).reason == "no-answer"


def test_an_originated_call_without_dialplan_events_takes_the_originate_response():
    """An AMI user without the `dialplan` read class gets no Newexten: OriginateResponse
    (class call) names the extension the originated channel went on to."""
    s = Sim()
    s.originated_out("100", response_exten="+15125550321")
    (rec,) = feed(AsteriskTracker(), s.events)
    assert (rec.direction, rec.called, rec.answered_by_human) == ("outbound", "+15125550321", True)


def test_global_variables_open_no_call():
    """Asterisk sets global variables at boot with `Channel: none` / `Uniqueid: none`
    (recorded in 20-restart-part2): no call, so nothing for a reconcile to close."""
    t = AsteriskTracker()
    t.feed({"Event": "VarSet", "Privilege": "dialplan,all", "Channel": "none", "Uniqueid": "none",
            "Variable": "RINGGROUP_TIME", "Value": "20"})
    assert t.open_calls() == 0
    assert t.feed({"Event": "CoreShowChannelsComplete", RECONCILE_KEY: "1"}) == []
