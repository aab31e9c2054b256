"""FreeSWITCH tracker on cases no fixture shows. Events are small header dicts shaped exactly
like the recorded ones (header names copied from tests/fixtures/freeswitch/*.esl)."""
import logging
import uuid

from pbx_textback.core.policy.classify import classify
from pbx_textback.core.pbx.freeswitch import (
    RECONCILE_DONE, RECONCILE_ROW, FreeswitchTracker, FsMarker, FsTrackerSettings)

DID = "+15125550101"
T0 = 1795734814.0


class Leg:
    def __init__(self, name, direction, context="default", dest="", cid="+15125550123",
                 cid_name="JOHN SMITH", profile=None, call_uuid=None, **variables):
        self.uid = str(uuid.uuid4())
        self.name, self.direction, self.context, self.dest = name, direction, context, dest
        self.cid, self.cid_name = cid, cid_name
        self.profile = profile if profile is not None else (
            name.split("/")[1] if name.startswith("sofia/") else "")
        self.call_uuid = call_uuid or self.uid
        self.vars = {f"variable_{k}": v for k, v in variables.items()}
        self.hide = "false"


class Sim:
    def __init__(self, settings=None):
        self.t = T0
        self.tr = FreeswitchTracker(settings)
        self.out = []

    def ev(self, name, leg=None, dt=0.0, **kw):
        self.t += dt
        e = {"Event-Name": name, "Core-UUID": "3150d247-a4e5-43ca-9e0c-23f8f87ad02e",
             "Event-Date-Timestamp": str(int(self.t * 1e6))}
        if leg is not None:
            e.update({
                "Channel-Name": leg.name, "Unique-ID": leg.uid, "Call-Direction": leg.direction,
                "Channel-Call-UUID": leg.call_uuid, "Caller-Caller-ID-Number": leg.cid,
                "Caller-Caller-ID-Name": leg.cid_name, "Caller-Destination-Number": leg.dest,
                "Caller-Context": leg.context, "Caller-Unique-ID": leg.uid,
                "Caller-Privacy-Hide-Number": leg.hide,
                "Caller-Channel-Created-Time": str(int(T0 * 1e6)),
            })
            if leg.profile:
                e["variable_sofia_profile_name"] = leg.profile
            e.update(leg.vars)
        e.update({k.replace("__", "-").replace("_H_", "-"): v for k, v in kw.items()})
        self.out.extend(self.tr.feed(e))
        return e

    def create(self, leg, dt=0.0, **kw):
        return self.ev("CHANNEL_CREATE", leg, dt, **kw)

    def execute(self, leg, app, data="", dt=0.0, complete=True, **kw):
        self.ev("CHANNEL_EXECUTE", leg, dt, Application=app, Application_H_Data=data, **kw)
        if complete:
            self.ev("CHANNEL_EXECUTE_COMPLETE", leg, 0.0, Application=app,
                    Application_H_Data=data, **kw)

    def answer(self, leg, dt=0.0):
        self.ev("CHANNEL_ANSWER", leg, dt, Answer_H_State="answered")

    def bridge(self, a, b, dt=0.0):
        self.ev("CHANNEL_BRIDGE", a, dt, Other_H_Leg_H_Unique_H_ID=b.uid,
                Other_H_Leg_H_Channel_H_Name=b.name)

    def hangup(self, leg, cause="NORMAL_CLEARING", dt=0.0, **kw):
        self.ev("CHANNEL_HANGUP_COMPLETE", leg, dt, Hangup_H_Cause=cause, **kw)
        self.ev("CHANNEL_DESTROY", leg, 0.0, Hangup_H_Cause=cause, **kw)


def caller(cid="+15125550123", **kw):
    return Leg(f"sofia/external/{cid}@127.0.0.1", "inbound", context="public", dest=DID,
               cid=cid, sip_req_user=DID, **kw)


def ext(n, origin, **kw):
    return Leg(f"sofia/internal/{n}@127.0.0.1:5360", "outbound", dest=n, cid=origin.cid,
               call_uuid=origin.uid, originating_leg_uuid=origin.uid, **kw)


def one(sim):
    assert len(sim.out) == 1, sim.out
    return sim.out[0], classify(sim.out[0])


def start_inbound(sim, c, target="1000"):
    sim.create(c)
    sim.execute(c, "transfer", f"{target} XML default")
    c.dest = target
    c.context = "default"


# -- cases --------------------------------------------------------------------------------------

def test_ring_group_one_member_answers_others_no_answer():
    sim = Sim()
    c = caller()
    start_inbound(sim, c, "2000")
    sim.execute(c, "bridge", "[^^:x=1]user/1000@d,user/1001@d,user/1002@d", complete=False)
    legs = {n: ext(n, c) for n in ("1000", "1001", "1002")}
    for leg in legs.values():
        sim.create(leg)
    sim.answer(legs["1001"], dt=4)
    sim.answer(c)
    sim.bridge(c, legs["1001"])
    sim.hangup(legs["1000"], "NO_ANSWER")
    sim.hangup(legs["1002"], "NO_ANSWER")
    sim.ev("CHANNEL_EXECUTE_COMPLETE", c, dt=6, Application="bridge",
           variable_originate_disposition="SUCCESS")
    sim.hangup(legs["1001"])
    sim.hangup(c, variable_last_bridge_to=legs["1001"].uid)
    r, o = one(sim)
    assert (o.missed, o.reason) == (False, "answered")
    assert r.answered_by == "1001" and r.answered_by_human and not r.system_answered
    assert 5.9 < r.talk_seconds < 6.1 and 3.9 < r.ring_seconds < 4.1
    assert r.called == DID and r.call_id == c.uid


def test_queue_agent_answers_after_two_ring_out():
    sim = Sim()
    c = caller()
    start_inbound(sim, c, "7000")
    sim.execute(c, "answer")
    sim.answer(c)
    sim.execute(c, "callcenter", "support@default", complete=False)
    cc = dict(Event_H_Subclass="callcenter::info", CC_H_Queue="support@default",
              CC_H_Member_H_Session_H_UUID=c.uid)
    sim.ev("CUSTOM", c, CC_H_Action="member-queue-start", **cc)
    a1 = Leg("sofia/internal/1001@127.0.0.1:5360", "outbound", dest="1001",
             cc_member_session_uuid=c.uid)
    a2 = Leg("sofia/internal/1002@127.0.0.1:5360", "outbound", dest="1002",
             cc_member_session_uuid=c.uid)
    for a in (a1, a2):
        sim.create(a)
    for a, n in ((a1, "1001"), (a2, "1002")):
        sim.hangup(a, "NO_ANSWER", dt=15)
        sim.ev("CUSTOM", None, CC_H_Action="bridge-agent-fail", CC_H_Agent=f"{n}@default",
               CC_H_Hangup_H_Cause="NO_ANSWER", **cc)
    a3 = Leg("sofia/internal/1003@127.0.0.1:5360", "outbound", dest="1003",
             cc_member_session_uuid=c.uid)
    sim.create(a3, dt=1)
    sim.answer(a3, dt=3)
    sim.ev("CUSTOM", a3, CC_H_Action="bridge-agent-start", CC_H_Agent="1003@default",
           CC_H_Agent_H_UUID=a3.uid, **cc)
    sim.bridge(c, a3)
    sim.hangup(a3, dt=8)
    sim.ev("CHANNEL_HANGUP_COMPLETE", c, Hangup_H_Cause="NORMAL_CLEARING")
    assert sim.out == []                              # not before every leg is gone
    sim.ev("CUSTOM", c, CC_H_Action="member-queue-end", CC_H_Cause="Terminated",
           CC_H_Agent="1003@default", **cc)
    sim.ev("CHANNEL_DESTROY", c)
    r, o = one(sim)
    assert (o.missed, o.reason) == (False, "answered")
    assert r.answered_by == "1003" and r.queue == "support@default" and not r.queue_abandoned
    assert r.dial_results.count("noanswer") == 2 and "answer" in r.dial_results


def test_queue_end_after_every_leg_is_gone_still_counts():
    """member-queue-end after the last CHANNEL_DESTROY: the call waits for it (event time)."""
    sim = Sim()
    c = caller()
    start_inbound(sim, c, "7000")
    sim.answer(c)
    cc = dict(Event_H_Subclass="callcenter::info", CC_H_Queue="support@default",
              CC_H_Member_H_Session_H_UUID=c.uid)
    sim.ev("CUSTOM", c, CC_H_Action="member-queue-start", **cc)
    sim.hangup(c, dt=20)
    assert sim.out == [] and sim.tr.open_calls() == 1     # held, not decided yet
    sim.ev("CUSTOM", c, dt=0.1, CC_H_Action="member-queue-end", CC_H_Cause="Cancel",
           CC_H_Cancel_H_Reason="BREAK_OUT", **cc)
    r, o = one(sim)
    assert (o.missed, o.reason) == (True, "queue-abandon")


def test_queue_without_end_is_released_by_event_time():
    sim = Sim(FsTrackerSettings(hold_seconds=5))
    c = caller()
    start_inbound(sim, c, "7000")
    sim.answer(c)
    sim.ev("CUSTOM", c, Event_H_Subclass="callcenter::info", CC_H_Action="member-queue-start",
           CC_H_Queue="q@d", CC_H_Member_H_Session_H_UUID=c.uid)
    sim.hangup(c, dt=10)
    sim.ev("HEARTBEAT", None, dt=1)
    assert sim.out == []
    sim.ev("HEARTBEAT", None, dt=20)
    r, o = one(sim)
    assert o.reason == "queue-abandon"
    assert any("no member-queue-end" in n for n in r.notes)


def test_ivr_answer_then_transfer_to_a_person():
    sim = Sim()
    c = caller()
    start_inbound(sim, c, "5000")
    sim.execute(c, "answer", complete=False)
    sim.answer(c)
    sim.ev("CHANNEL_EXECUTE_COMPLETE", c, Application="answer")
    sim.execute(c, "ivr", "acme_main", dt=6)
    sim.execute(c, "transfer", "1000 XML default")
    sim.execute(c, "bridge", "user/1000@d", complete=False)
    e = ext("1000", c)
    sim.create(e)
    sim.answer(e, dt=3)
    sim.bridge(c, e)
    sim.hangup(e, dt=30)
    sim.hangup(c, variable_originate_disposition="SUCCESS")
    r, o = one(sim)
    assert (o.missed, o.reason) == (False, "answered")
    assert r.system_answered and r.answered_by == "1000" and r.called == DID


def test_ivr_answer_and_caller_leaves_in_the_menu():
    sim = Sim()
    c = caller()
    start_inbound(sim, c, "5000")
    sim.execute(c, "answer", complete=False)
    sim.answer(c)
    sim.execute(c, "ivr", "acme_main", complete=False)
    sim.hangup(c, dt=9)
    r, o = one(sim)
    assert o.missed and o.reason == "abandoned" and r.system_answered


def test_withheld_number():
    for how in ("hide", "privacy", "anonymous"):
        sim = Sim()
        c = caller(cid="anonymous" if how == "anonymous" else "+15125550199")
        if how == "hide":
            c.hide = "true"
        if how == "privacy":
            c.vars["variable_sip_Privacy"] = "id"
        start_inbound(sim, c)
        sim.execute(c, "bridge", "user/1000@d", complete=False)
        e = ext("1000", c)
        sim.create(e)
        sim.hangup(e, "NO_ANSWER", dt=20)
        sim.hangup(c, "NO_ANSWER", variable_originate_disposition="NO_ANSWER")
        r, o = one(sim)
        assert r.withheld, how
        assert o.missed and o.reason == "no-answer"
        assert any("withheld" in n for n in r.notes)


def desk(n):
    return Leg(f"sofia/internal/{n}@127.0.0.1", "inbound", context="default", dest="",
               cid=n, cid_name=f"Ext {n}", user_name=n, sip_req_user="")


def test_outbound_call_from_a_desk_phone_via_a_gateway_is_never_missed():
    for answered in (True, False):
        sim = Sim(FsTrackerSettings(gateways=("carrier",)))
        p = desk("1000")
        p.dest = "+15125550199"
        sim.create(p)
        sim.execute(p, "bridge", "sofia/gateway/carrier/+15125550199", complete=False)
        g = Leg("sofia/gateway/carrier/+15125550199", "outbound", dest="+15125550199",
                cid="+15125550100", call_uuid=p.uid, originating_leg_uuid=p.uid,
                sip_gateway_name="carrier")
        sim.create(g)
        if answered:
            sim.answer(g, dt=5)
            sim.bridge(p, g)
            sim.hangup(g, dt=30)
            sim.hangup(p)
        else:
            sim.hangup(g, "NO_ANSWER", dt=45)
            sim.hangup(p, "NO_ANSWER", variable_originate_disposition="NO_ANSWER")
        r, o = one(sim)
        assert r.direction == "outbound" and not o.missed and o.reason == "outbound"
        assert r.caller == "1000"


def test_outbound_through_the_external_profile_without_a_gateway():
    sim = Sim()
    p = desk("1001")
    sim.create(p)
    t = Leg("sofia/external/+15125550199@127.0.0.1:5380", "outbound", dest="+15125550199",
            call_uuid=p.uid, originating_leg_uuid=p.uid)
    sim.create(t)
    sim.hangup(t, "USER_BUSY", dt=2)
    sim.hangup(p, "USER_BUSY")
    r, o = one(sim)
    assert r.direction == "outbound" and not o.missed


def test_internal_ext_to_ext():
    sim = Sim()
    p = desk("1000")
    p.dest = "1001"
    sim.create(p)
    sim.execute(p, "bridge", "user/1001@d", complete=False)
    e = ext("1001", p)
    sim.create(e)
    sim.hangup(e, "NO_ANSWER", dt=20)
    sim.hangup(p, "NO_ANSWER")
    r, o = one(sim)
    assert r.direction == "internal" and not o.missed and o.reason == "internal"
    assert r.called == "1001"


def test_pickup_picked_off():
    for with_bridge in (True, False):
        sim = Sim()
        c = caller()
        start_inbound(sim, c)
        sim.execute(c, "bridge", "user/1000@d", complete=False)
        e = ext("1000", c)
        sim.create(e)
        picker = desk("1001")
        picker.dest = "**1000"
        sim.create(picker, dt=5)
        sim.execute(picker, "answer")
        sim.answer(picker)
        sim.execute(picker, "intercept", c.uid, complete=False)
        sim.hangup(e, "PICKED_OFF", variable_originate_disposition="PICKED_OFF")
        if with_bridge:
            sim.answer(c)
            sim.bridge(c, picker)
            sim.bridge(picker, c)
        sim.hangup(picker, dt=20)
        sim.hangup(c, variable_originate_disposition="PICKED_OFF")
        # the picker's own leg is its own call unless the bridge joined it
        recs = sim.out
        inbound = [r for r in recs if r.direction == "inbound"]
        assert len(inbound) == 1
        r = inbound[0]
        o = classify(r)
        assert (o.missed, o.reason) == (False, "answered"), with_bridge
        assert r.answered_by in ("1000", "1001")


def test_loopback_voicemail_message_left_after_the_caller_hung_up():
    sim = Sim()
    c = caller()
    start_inbound(sim, c)
    sim.execute(c, "bridge", "user/1000@d", complete=False)
    e = ext("1000", c)
    sim.create(e)
    sim.hangup(e, "NO_ANSWER", dt=20)
    sim.ev("CHANNEL_EXECUTE_COMPLETE", c, Application="bridge",
           variable_originate_disposition="NO_ANSWER")
    sim.execute(c, "answer")
    sim.answer(c)
    sim.execute(c, "bridge", "loopback/app=voicemail:default d 1000", complete=False)
    la = Leg("loopback/voicemail-a", "outbound", dest="voicemail", call_uuid=c.uid,
             originating_leg_uuid=c.uid, loopback_leg="A", loopback_from_uuid=c.uid)
    lb = Leg("loopback/voicemail-b", "inbound", dest="voicemail", loopback_leg="B",
             other_loopback_from_uuid=c.uid)
    la.vars["variable_other_loopback_leg_uuid"] = lb.uid
    lb.vars["variable_other_loopback_leg_uuid"] = la.uid
    sim.create(la)
    sim.create(lb)
    sim.execute(lb, "voicemail", "default d 1000", complete=False)
    sim.bridge(c, la)
    sim.hangup(c, dt=12, variable_last_bridge_to=la.uid)
    sim.hangup(la, "ORIGINATOR_CANCEL")
    assert sim.out == []                 # the loopback B leg is still recording
    sim.ev("CUSTOM", lb, dt=0.2, Event_H_Subclass="vm::maintenance",
           VM_H_Action="leave-message", VM_H_UUID=lb.uid)
    sim.hangup(lb, "ORIGINATOR_CANCEL")
    r, o = one(sim)
    assert (o.missed, o.reason) == (True, "voicemail") and r.voicemail_left is True
    assert not r.answered_by_human and r.system_answered


def test_busy_unavailable_and_rejected_causes():
    for cause, reason in (("USER_BUSY", "busy"), ("CALL_REJECTED", "busy"),
                          ("USER_NOT_REGISTERED", "unavailable"),
                          ("RECOVERY_ON_TIMER_EXPIRE", "unavailable"),
                          ("NO_USER_RESPONSE", "no-answer")):
        sim = Sim()
        c = caller()
        start_inbound(sim, c)
        sim.execute(c, "bridge", "user/1000@d", complete=False)
        sim.ev("CHANNEL_EXECUTE_COMPLETE", c, dt=1, Application="bridge",
               variable_originate_disposition=cause)
        sim.hangup(c, cause)
        r, o = one(sim)
        assert o.reason == reason, cause


def test_a_pbx_shutdown_while_ringing_is_not_the_caller_hanging_up():
    """`fsctl shutdown` (or a restart) hangs up every channel with SYSTEM_SHUTDOWN; the rung
    phone's leg is cancelled under the caller's bridge (issue 10 finding 20)."""
    sim = Sim()
    c = caller()
    start_inbound(sim, c)
    e = ext("1000", c)
    sim.execute(c, "bridge", "user/1000@d", complete=False)
    sim.create(e, dt=0.1)
    sim.hangup(e, "ORIGINATOR_CANCEL", dt=6)
    sim.ev("CHANNEL_EXECUTE_COMPLETE", c, Application="bridge",
           variable_originate_disposition="ORIGINATOR_CANCEL")
    sim.hangup(c, "SYSTEM_SHUTDOWN", variable_sip_hangup_disposition="send_bye")
    r, o = one(sim)
    assert not r.caller_cancelled and r.hangup_cause == "SYSTEM_SHUTDOWN"
    assert not any("caller hung up" in n for n in r.notes)
    assert any("FreeSWITCH shut down" in n for n in r.notes)
    assert o.missed and "PBX shut down" in o.why and "caller hung up" not in o.why


def test_site_markers():
    m = (FsMarker("destination", "", "5999"),)
    sim = Sim(FsTrackerSettings(after_hours_markers=m))
    c = caller()
    start_inbound(sim, c, "5999")
    sim.ev("CHANNEL_EXECUTE_COMPLETE", c, Application="transfer")
    sim.answer(c)
    sim.hangup(c, dt=5)
    r, o = one(sim)
    assert o.reason == "after-hours" and r.after_hours_marker == "reached 5999"
    # our own dialplan convention is on by default
    sim = Sim()
    c = caller()
    start_inbound(sim, c, "5999")
    sim.execute(c, "set", "textback_after_hours=true")
    sim.hangup(c, dt=5)
    assert one(sim)[1].reason == "after-hours"


def test_the_freeswitch_snippets_closed_branch_marks_the_call():
    """dialplan_snippets/freeswitch/textback.xml: `export textback_after_hours=1`, then the
    `event` app fires CUSTOM textback::outcome AfterHours=1 on the caller's channel. Each of
    the two alone marks the call (issue 10 finding 19)."""
    from pbx_textback.core.pbx import dialplan_vars as dv
    steps = {"textback_after_hours=1": lambda sim, c: sim.execute(
                 c, "export", f"{dv.FS_VAR_AFTER_HOURS}=1"),
             f"UserEvent {dv.FS_OUTCOME_SUBCLASS} AfterHours=1": lambda sim, c: sim.ev(
                 "CUSTOM", c, Event_H_Subclass=dv.FS_OUTCOME_SUBCLASS, AfterHours="1")}
    for marker, step in steps.items():
        sim = Sim()
        c = caller()
        start_inbound(sim, c, "1000")
        step(sim, c)
        sim.hangup(c, dt=5)
        rec, out = one(sim)
        assert out.reason == "after-hours" and rec.after_hours_marker == marker


# -- bad input --------------------------------------------------------------------------------

def test_events_of_unknown_calls_and_duplicates(caplog):
    caplog.set_level(logging.WARNING)
    sim = Sim()
    ghost = caller(cid="+15125550777")
    sim.ev("CUSTOM", None, Event_H_Subclass="callcenter::info", CC_H_Action="member-queue-end",
           CC_H_Member_H_Session_H_UUID="no-such-call")
    sim.ev("CUSTOM", None, Event_H_Subclass="vm::maintenance", VM_H_Action="leave-message",
           VM_H_UUID="no-such-call")
    sim.ev("CHANNEL_HANGUP_COMPLETE", ghost, Hangup_H_Cause="NORMAL_CLEARING",
           variable_sip_req_user=DID)
    sim.ev("CHANNEL_DESTROY", ghost)
    assert len(sim.out) == 1 and sim.out[0].caller == "+15125550777"
    assert any("mid-call" in n for n in sim.out[0].notes)
    sim.out.clear()
    sim.ev("CHANNEL_DESTROY", ghost)           # duplicate after the decision: ignored
    sim.ev("CHANNEL_STATE", ghost, Channel_H_State="CS_DESTROY")
    assert sim.out == [] and sim.tr.open_calls() == 0
    # a normal call right after, every event fed twice
    c = caller()
    e = ext("1000", c)
    events = []
    orig_feed = sim.tr.feed

    def twice(ev):
        return orig_feed(ev) + orig_feed(dict(ev))
    sim.tr.feed = twice
    start_inbound(sim, c)
    sim.execute(c, "bridge", "user/1000@d", complete=False)
    sim.create(e)
    sim.answer(e, dt=2)
    sim.bridge(c, e)
    sim.hangup(e, dt=5)
    sim.hangup(c)
    r, o = one(sim)
    assert (o.missed, o.reason) == (False, "answered")
    assert sim.tr.open_calls() == 0


def test_garbage_events_do_not_raise():
    tr = FreeswitchTracker()
    for ev in ({}, {"Event-Name": None}, {"Event-Name": "CHANNEL_CREATE"},
               {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "x", "Event-Date-Timestamp": "zz"},
               {"Event-Name": "CUSTOM", "Event-Subclass": "callcenter::info"},
               {"Event-Name": "CHANNEL_BRIDGE", "Unique-ID": "x", "Other-Leg-Unique-ID": "x"},
               {"Event-Name": "CHANNEL_DESTROY", "Unique-ID": ["a", "b"]}):
        assert isinstance(tr.feed(ev), list)
    tr.flush()
    assert tr.open_calls() == 0


def test_reconcile_adopts_channels_and_ends_the_ones_gone_in_the_gap():
    sim = Sim()
    c = caller()
    start_inbound(sim, c)
    sim.execute(c, "bridge", "user/1000@d", complete=False)
    e = ext("1000", c)
    sim.create(e)
    # the socket drops; when it is back, `show channels` lists neither leg
    assert sim.tr.feed({"Event-Name": RECONCILE_DONE, "_reconcile": "1",
                        "Channel-UUIDs": ""}) != []
    # a channel up since before we connected
    tr = FreeswitchTracker()
    row = {"uuid": "aaaa", "direction": "inbound", "created_epoch": str(int(T0)),
           "name": "sofia/external/+15125550188@127.0.0.1", "state": "CS_EXECUTE",
           "cid_num": "+15125550188", "dest": "1000", "initial_dest": DID,
           "initial_context": "public", "context": "default", "callstate": "RINGING",
           "call_uuid": "aaaa"}
    assert tr.feed({"Event-Name": RECONCILE_ROW, "_reconcile": "1", **row}) == []
    assert tr.feed({"Event-Name": RECONCILE_DONE, "_reconcile": "1",
                    "Channel-UUIDs": "aaaa"}) == []
    assert tr.open_calls() == 1
    out = tr.feed({"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Unique-ID": "aaaa",
                   "Channel-Name": row["name"], "Call-Direction": "inbound",
                   "Hangup-Cause": "ORIGINATOR_CANCEL",
                   "Event-Date-Timestamp": str(int((T0 + 9) * 1e6))})
    out += tr.feed({"Event-Name": "CHANNEL_DESTROY", "Unique-ID": "aaaa",
                    "Event-Date-Timestamp": str(int((T0 + 9) * 1e6))})
    assert len(out) == 1
    rec = out[0]
    assert rec.direction == "inbound" and rec.called == DID and rec.caller == "+15125550188"
    assert classify(rec).reason == "abandoned"
