"""Asterisk tracker + classifier on call shapes no recording shows (events shaped like the
recorded ones, see tests/amisim.py)."""
import logging

from pbx_textback.core.pbx.asterisk import AsteriskTracker
from pbx_textback.core.policy.classify import classify
from tests.amisim import Sim


def run(sim: Sim, tracker: AsteriskTracker | None = None):
    t = tracker or AsteriskTracker()
    out = []
    for ev in sim.events:
        out.extend(t.feed(ev))
    return out, t


def verdict(rec, **kw):
    o = classify(rec, **kw)
    return o.missed, o.reason


def test_ring_group_one_member_answers_while_others_ring_out():
    s = Sim()
    c = s.inbound("+15125550145", "+15125550100")
    a, b, d = s.ring(c, "100"), s.ring(c, "101"), s.ring(c, "102")
    s.dialend(c, a, "NOANSWER")
    s.dialend(c, d, "NOANSWER")
    s.up(b)
    s.dialend(c, b, "ANSWER")
    s.up(c)
    s.bridge("br-1", c, b)
    for ch in (a, d):
        s.hangup(ch, "19")
    s.unbridge("br-1", c, b)
    s.hangup(b)
    s.hangup(c)
    recs, _ = run(s)
    assert len(recs) == 1
    assert verdict(recs[0]) == (False, "answered")
    assert recs[0].answered_by == "101"


def test_queue_agent_answers_after_two_ring_out():
    s = Sim()
    c = s.inbound("+13105550121", "+15125550120")
    s.exten(c, "Answer", context="ext-queues", exten="700")
    s.up(c)
    s.exten(c, "Queue", "sales,t,,,300")
    s.emit("QueueCallerJoin", c, Queue="sales", Position="1", Count="1")
    for ext in ("100", "101"):
        leg = s.ring(c, ext)
        s.emit("AgentCalled", c, DestChannel=leg, Queue="sales")
        s.emit("AgentRingNoAnswer", c, DestChannel=leg, Queue="sales")
        s.dialend(c, leg, "NOANSWER")
        s.hangup(leg, "0")
    leg = s.ring(c, "102")
    s.up(leg)
    s.dialend(c, leg, "ANSWER")
    s.emit("AgentConnect", c, DestChannel=leg, DestUniqueid=s.uid(leg), Queue="sales",
           MemberName="Carol", Interface="PJSIP/102")
    s.bridge("br-q", c, leg)
    s.hangup(leg)
    s.hangup(c)
    recs, _ = run(s)
    assert verdict(recs[0]) == (False, "answered")


def test_queue_caller_gives_up_is_queue_abandon_even_though_queue_answered():
    s = Sim()
    c = s.inbound("+13105550122", "+15125550120")
    s.up(c)
    s.emit("QueueCallerJoin", c, Queue="sales")
    leg = s.ring(c, "100")
    s.dialend(c, leg, "CANCEL")
    s.hangup(leg, "0")
    s.emit("QueueCallerAbandon", c, Queue="sales", Position="1", OriginalPosition="1", HoldTime="20")
    s.hangup(c)
    recs, _ = run(s)
    assert verdict(recs[0]) == (True, "queue-abandon")
    assert recs[0].system_answered


def test_ivr_answer_then_transfer_to_a_person_is_answered():
    s = Sim()
    c = s.inbound("+15125550188", "+15125550130")
    s.exten(c, "Answer", context="ivr-support", exten="s")
    s.up(c)
    s.exten(c, "Background", "custom/ivr-menu")
    s.exten(c, "Goto", "ext-local,100,1", context="ivr-support", exten="1")
    leg = s.ring(c, "100")
    s.up(leg)
    s.dialend(c, leg, "ANSWER")
    s.bridge("br-2", c, leg)
    s.hangup(leg)
    s.hangup(c)
    recs, _ = run(s)
    assert verdict(recs[0]) == (False, "answered")


def test_ivr_answer_alone_is_not_a_person():
    s = Sim()
    c = s.inbound("+15125550189", "+15125550130")
    s.exten(c, "Answer", context="ivr-support", exten="s")
    s.up(c)
    s.exten(c, "Background", "custom/ivr-menu")
    s.hangup(c)
    recs, _ = run(s)
    assert verdict(recs[0]) == (True, "abandoned")
    assert recs[0].system_answered


def test_two_calls_from_the_same_caller_at_once_are_two_verdicts():
    s = Sim()
    c1 = s.inbound("+15125550123", "+15125550140")
    c2 = s.inbound("+15125550123", "+15125550110")
    l1 = s.ring(c1, "100")
    l2 = s.ring(c2, "101")
    s.up(l1)
    s.dialend(c1, l1, "ANSWER")
    s.bridge("br-a", c1, l1)
    s.dialend(c2, l2, "BUSY")
    s.varset(c2, "DIALSTATUS", "BUSY")
    s.hangup(l2, "17")
    s.hangup(c2, "17")
    s.hangup(l1)
    s.hangup(c1)
    recs, t = run(s)
    got = {r.called: verdict(r) for r in recs}
    assert got == {"+15125550110": (True, "busy"), "+15125550140": (False, "answered")}
    assert t.open_calls() == 0


def test_freepbx_ring_group_via_local_channels_answered_on_the_phone():
    s = Sim()
    c = s.inbound("+15125550150", "5125550100", trunk="PJSIP/trunk1", context="from-pstn")
    lid = s.linkedid(c)
    l1a, l1b = s.local_pair("100@from-internal/n", linkedid=lid)
    l2a, l2b = s.local_pair("101@from-internal/n", linkedid=lid)
    s.dial(c, l1a)
    s.dial(c, l2a)
    p100 = s.ring(l1b, "100")
    p101 = s.ring(l2b, "101")
    s.up(p101)
    s.dialend(l2b, p101, "ANSWER")          # the ;2 half first
    s.dialend(c, l2a, "ANSWER")             # then the caller's answer to ;1: the one that counts
    s.dialend(c, l1a, "CANCEL")
    s.dialend(l1b, p100, "CANCEL")
    s.bridge("br-x", c, l2a)
    s.bridge("br-y", l2b, p101)
    for ch in (p100, l1b, l1a, p101, l2b, l2a, c):
        s.hangup(ch)
    recs, _ = run(s)
    assert len(recs) == 1
    assert verdict(recs[0]) == (False, "answered")
    assert recs[0].answered_by == "101"
    assert recs[0].direction == "inbound"


def test_local_leg_answered_by_voicemail_is_not_a_person():
    s = Sim()
    c = s.inbound("+15125550151", "+15125550100")
    la, lb = s.local_pair("vmu100@ext-local", linkedid=s.linkedid(c))
    s.dial(c, la)
    s.exten(lb, "VoiceMail", "100@default,u", context="ext-local", exten="vmu100")
    s.up(lb)
    s.dialend(c, la, "ANSWER")
    s.bridge("br-v", c, la)
    s.varset(lb, "VMSTATUS", "SUCCESS")
    for ch in (lb, la, c):
        s.hangup(ch)
    recs, _ = run(s)
    assert verdict(recs[0]) == (True, "voicemail")
    assert recs[0].voicemail_left is True


def test_pickup_from_another_desk_is_answered():
    s = Sim()
    c = s.inbound("+15125550160", "+15125550140")
    ring100 = s.ring(c, "100")
    # ext 101 dials the pickup code: its own call first, then it joins the caller's
    picker = s.newchannel("PJSIP/101", context="from-internal", exten="*8", cid="101")
    s.exten(picker, "Pickup", "100@PICKUPMARK")
    s.chans[picker]["linkedid"] = s.linkedid(c)   # Asterisk moves it to the older Linkedid
    s.up(picker)
    s.dialend(c, ring100, "ANSWER")
    s.hangup(ring100)
    s.bridge("br-p", c, picker)
    s.hangup(picker)
    s.hangup(c)
    recs, _ = run(s)
    inbound = [r for r in recs if r.direction == "inbound"]
    assert len(inbound) == 1
    assert verdict(inbound[0]) == (False, "answered")


def test_outbound_call_trunk_leg_does_not_look_inbound():
    s = Sim()
    phone = s.newchannel("PJSIP/100", context="from-internal", exten="+13105550199", cid="100")
    s.exten(phone, "Dial", "PJSIP/+13105550199@itsp,60")
    trunk = s.newchannel("PJSIP/itsp", context="from-trunk", exten="s", cid="<unknown>",
                         linkedid=s.linkedid(phone), incoming=False)
    s.dial(phone, trunk)
    s.dialend(phone, trunk, "NOANSWER")
    s.varset(phone, "DIALSTATUS", "NOANSWER")
    s.hangup(trunk, "19")
    s.hangup(phone)
    recs, _ = run(s)
    assert len(recs) == 1
    assert recs[0].direction == "outbound"
    assert verdict(recs[0]) == (False, "outbound")


def test_internal_call_is_internal():
    s = Sim()
    phone = s.newchannel("PJSIP/100", context="from-internal", exten="101", cid="100")
    callee = s.ring(phone, "101")
    s.dialend(phone, callee, "NOANSWER")
    s.hangup(callee)
    s.hangup(phone)
    recs, _ = run(s)
    assert recs[0].direction == "internal"
    assert verdict(recs[0]) == (False, "internal")


def test_withheld_number_is_marked_even_when_the_number_is_known():
    s = Sim()
    c = s.inbound("+15125550170", "+15125550140")
    s.exten(c, "Set", "__CALLINGNUMPRES_SV=prohib_passed_screen")
    s.varset(c, "__CALLINGNUMPRES_SV", "prohib_passed_screen")
    leg = s.ring(c, "100")
    s.dialend(c, leg, "CANCEL")
    s.hangup(leg, "127")
    s.hangup(c, "127")
    recs, _ = run(s)
    assert recs[0].withheld and recs[0].caller == "+15125550170"
    assert verdict(recs[0])[0] is True


def test_freepbx_time_condition_false_branch_is_after_hours():
    s = Sim()
    c = s.inbound("+15125550171", "5125550100", trunk="PJSIP/trunk1", context="from-pstn")
    s.exten(c, "Set", "DB(TC/1/INUSESTATE)=INUSE", context="timeconditions", exten="1")
    s.exten(c, "GotoIfTime", "08:00-17:00,mon-fri,*,*?truestate")
    s.exten(c, "GotoIf", "0?truegoto")       # falsestate: not forced open
    s.exten(c, "Set", "DEVICE_STATE(Custom:TC1)=INUSE")
    s.exten(c, "GotoIf", "1?app-announcement-1,s,1")
    s.exten(c, "Answer", context="app-announcement-1", exten="s")
    s.up(c)
    s.exten(c, "Playback", "custom/closed")
    s.hangup(c)
    recs, _ = run(s)
    assert verdict(recs[0]) == (True, "after-hours")


def test_freepbx_time_condition_true_branch_is_not_after_hours():
    s = Sim()
    c = s.inbound("+15125550172", "5125550100", trunk="PJSIP/trunk1", context="from-pstn")
    s.exten(c, "GotoIfTime", "08:00-17:00,mon-fri,*,*?truestate", context="timeconditions", exten="1")
    s.exten(c, "GotoIf", "0?falsegoto")      # truestate: not forced closed
    s.exten(c, "GotoIf", "1?ext-group,600,1")
    leg = s.ring(c, "100")
    s.dialend(c, leg, "NOANSWER")
    s.varset(c, "DIALSTATUS", "NOANSWER")
    s.hangup(leg)
    s.hangup(c)
    recs, _ = run(s)
    assert verdict(recs[0]) == (True, "no-answer")


def test_end_order_agent_leg_hangs_up_after_the_caller():
    s = Sim()
    c = s.inbound("+15125550173", "+15125550140")
    leg = s.ring(c, "100")
    s.dialend(c, leg, "CANCEL")
    s.hangup(c, "127")           # caller gone first
    recs, t = run(s)
    assert recs == [] and t.open_calls() == 1     # not decided while a leg is still up
    s2 = Sim()
    s2.events = []
    out = t.feed({"Event": "Hangup", **s._common(leg), "Cause": "127"})
    assert len(out) == 1 and verdict(out[0]) == (True, "abandoned")


def test_bad_events_do_not_stop_the_tracker(caplog):
    s = Sim()
    t = AsteriskTracker()
    caplog.set_level(logging.WARNING)
    assert t.feed({"Event": "Hangup", "Uniqueid": "999.1", "Channel": "PJSIP/x-1"}) == []
    assert t.feed({"Event": "DialEnd"}) == []                 # no channel at all
    assert t.feed({"Event": ["Hangup", "Hangup"]}) == []      # repeated Event header
    assert t.feed({}) == []
    assert "never seen" in caplog.text
    c = s.inbound("+15125550174", "+15125550140")
    leg = s.ring(c, "100")
    s.dialend(c, leg, "NOANSWER")
    s.varset(c, "DIALSTATUS", "NOANSWER")
    s.hangup(leg)
    s.hangup(c)
    dup = list(s.events) + [s.events[-1]]     # a duplicated Hangup
    out = []
    for ev in dup:
        out += t.feed(ev)
    assert len(out) == 1 and verdict(out[0]) == (True, "no-answer")


def test_min_talk_seconds_turns_a_very_short_answer_into_missed():
    s = Sim()
    c = s.inbound("+15125550175", "+15125550140")
    leg = s.ring(c, "100")
    for ev in s.events:
        ev["Timestamp"] = "1795800000.0"
    s.up(leg)
    s.dialend(c, leg, "ANSWER")
    s.bridge("br-s", c, leg)
    s.hangup(leg)
    s.hangup(c)
    for ev in s.events[-5:]:
        ev["Timestamp"] = "1795800002.0"
    s.events[-6]["Timestamp"] = "1795800001.0"
    recs, _ = run(s)
    assert verdict(recs[0]) == (False, "answered")
    assert verdict(recs[0], min_talk_seconds=5)[0] is True
