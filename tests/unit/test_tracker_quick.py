"""The Asterisk tracker's shortcuts (feed(): events that only move their call on) against its
careful way (every event through _dispatch to its handler): the same records, field for field,
and the same errors, on every recorded trace and on made-up call streams built to hit each
shortcut's edges (a Set that sets a presentation, a GotoIf in a time-condition context, a
FROM_DID before and after the call has one, a withheld presentation, markers on the variables
and contexts the shortcuts skip)."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings, strategies as hs

from pbx_textback.core.model import Marker
from pbx_textback.core.pbx.amiframe import AmiFraming
from pbx_textback.core.pbx.asterisk import (
    DEFAULT_MARKERS, SERVICE_AMI_EVENTS, AsteriskSettings, AsteriskTracker)
from pbx_textback.core.pbx.streams import split_at

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
TRACES = sorted(list(FIX.glob("*.ami")) + list(FIX.glob("originate/*.ami")))


class Careful(AsteriskTracker):
    """The tracker with no shortcut: every event to its handler."""
    def feed(self, ev):
        return self._dispatch(ev)


def run(tracker_cls, pieces, settings=None, filtered=True):
    t = tracker_cls(settings)
    f = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=t.read_vars) if filtered else AmiFraming()
    out = [rec for piece in pieces for ev in f.feed(piece) for rec in t.feed(ev)]
    return out + t.expire(0.0) + t.expire(10.0 ** 9) + t.flush(), t.errors


# markers on the variables and contexts the shortcuts pass over, and the default ones
MARKED = AsteriskSettings(markers=DEFAULT_MARKERS + (
    Marker("variable", "FROM_DID", "5125550140", True),
    Marker("context", "closed-ctx", "", True)))
NO_TC = AsteriskSettings(freepbx_timeconditions=False)


def test_every_recorded_trace_gives_the_same_records():
    for p in TRACES:
        data = p.read_bytes()
        for s in (None, MARKED, NO_TC):
            for filtered in (True, False):
                fast = run(AsteriskTracker, [data], s, filtered)
                assert fast == run(Careful, [data], s, filtered), (p.name, s, filtered)


def test_the_shortcuts_are_taken():
    """(So the property compares two ways, not one way twice.)"""
    t = AsteriskTracker()
    seen = {"handled": 0}
    orig = t._dispatch

    def counted(ev):
        seen["handled"] += 1
        return orig(ev)
    t._dispatch = counted
    f = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=t.read_vars)
    evs = [ev for p in TRACES for ev in f.feed(p.read_bytes())]
    for ev in evs:
        t.feed(ev)
    quick = {(ev.get("Event"), ev.get("Application") or ev.get("Variable")) for ev in evs}
    assert ("Newexten", "Set") in quick and ("VarSet", "__FROM_DID") in quick
    assert seen["handled"] < len(evs) / 3


_ids = hs.sampled_from(["1.1", "1.1", "1.2", "2.1"])
_link = hs.sampled_from(["", "1.1", "1.1", "2.1"])


def _frame(head: str, uid: str, lid: str, rest: str) -> str:
    return f"Event: {head}\r\nChannel: PJSIP/itsp-{uid}\r\nUniqueid: {uid}\r\nLinkedid: {lid}\r\n{rest}"


_VARS = ["DIALSTATUS", "__FROM_DID", "_FROM_DID", "VMSTATUS", "__CALLINGNUMPRES_SV", "TCSTATE",
         "RINGTIME"]
_VALUES = ["", "BUSY", "SUCCESS", "closed", "5125550140", "5125550199", "prohib_passed_screen",
           "allowed_not_screened", " Unavailable"]
_APPS = [("Set", "CALLERID(num-pres)=prohib"), ("Set", "X=1"), ("Set", "CALLERPRES()=allowed"),
         ("Set", "__FROM_DID=1"), ("GotoIf", "1?truegoto"), ("GotoIf", "0 ? falsegoto,s,1"),
         ("GotoIf", "$[1]?a:b"), ("NoOp", ""), ("VoiceMail", "100@default"), ("Dial", "PJSIP/100")]
_CONTEXTS = ["timeconditions", "from-trunk", "closed-ctx"]


def _varset(uid, lid, var, value):
    return _frame("VarSet", uid, lid, f"Variable: {var}\r\nValue: {value}")


def _newexten(uid, lid, app_data, context, exten="s"):
    return _frame("Newexten", uid, lid, f"Application: {app_data[0]}\r\nContext: {context}\r\n"
                                        f"AppData: {app_data[1]}\r\nExten: {exten}")


_ev = hs.one_of(
    hs.tuples(_ids, _link, hs.sampled_from(["4", "0"]), hs.sampled_from(["", "s", "5125550140"])).map(
        lambda t: _frame("Newchannel", t[0], t[1],
                         f"ChannelState: {t[2]}\r\nContext: from-trunk\r\nExten: {t[3]}\r\n"
                         f"CallerIDNum: 5125550123")),
    hs.tuples(_ids, _link, hs.sampled_from(_VARS), hs.sampled_from(_VALUES)).map(
        lambda t: _varset(*t)),
    hs.tuples(_ids, _link, hs.sampled_from(_APPS), hs.sampled_from(_CONTEXTS),
              hs.sampled_from(["s", "", "100"])).map(lambda t: _newexten(*t)),
    hs.tuples(_ids, _link).map(lambda t: _frame("DialBegin", t[0], t[1], "DestChannel: PJSIP/100-1")),
    hs.tuples(_ids, _link, hs.sampled_from(["ANSWER", "NOANSWER", "BUSY"])).map(
        lambda t: _frame("DialEnd", t[0], t[1], f"DialStatus: {t[2]}\r\nDestUniqueid: 1.2")),
    hs.tuples(_ids, _link).map(lambda t: _frame("Hangup", t[0], t[1], "Cause: 16")),
)


# a call from the trunk to "s" (so a FROM_DID names the number called), its channels hung
# up at the end; any events in between, some on other channels and calls
_START = _frame("Newchannel", "1.1", "", "ChannelState: 4\r\nContext: from-trunk\r\nExten: s\r\n"
                                         "CallerIDNum: 5125550123")
_END = [_frame("Hangup", u, "1.1", "Cause: 16") for u in ("1.2", "1.1", "2.1")]


@settings(max_examples=600, deadline=None)
@given(hs.lists(_ev, min_size=1, max_size=12), hs.sampled_from([None, MARKED, NO_TC]),
       hs.booleans(), hs.lists(hs.integers(0, 10 ** 4), max_size=3))
def test_made_up_streams_give_the_same_records(evs, s, filtered, cuts):
    data = "".join(e + "\r\n\r\n" for e in [_START] + evs + _END).encode("utf-8")
    pieces = split_at(data, [c % (len(data) + 1) for c in cuts])
    assert run(AsteriskTracker, pieces, s, filtered) == run(Careful, pieces, s, filtered)


def _edges():
    """Every VarSet and Newexten the shortcuts look at, on the caller's channel."""
    for var in _VARS:
        for value in _VALUES:
            yield _varset("1.1", "1.1", var, value)
    for app_data in _APPS:
        for context in _CONTEXTS:
            yield _newexten("1.1", "1.1", app_data, context)


def test_each_event_the_shortcuts_look_at_gives_the_same_record():
    """Each one alone in a call, and after a FROM_DID already set (one event at a time is
    where a shortcut that drops a fact shows)."""
    did = _varset("1.1", "1.1", "__FROM_DID", "5125550111")
    for ev in _edges():
        for before in ([], [did]):
            data = "".join(e + "\r\n\r\n" for e in [_START] + before + [ev] + _END).encode()
            for s in (None, MARKED, NO_TC):
                assert run(AsteriskTracker, [data], s) == run(Careful, [data], s), (ev, s)

