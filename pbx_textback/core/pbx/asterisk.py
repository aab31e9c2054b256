"""Asterisk call tracker: AMI event dicts -> one CallRecord per call (Linkedid), pure.

A call is decided when every channel of its Linkedid is gone: the order of Hangup, Cdr and
the agents' hangups at the end is not fixed. Who answered is read from the graph of what
was connected to the caller's channel (bridges, answered dials, Local channel pairs): a
person answered when an extension's channel, or an outside leg we dialled (follow-me), is
reachable from the caller. The PBX answering by itself (IVR, queue, voicemail) connects
the caller to nothing, so it never counts.

Gaps: after a reconnect the AMI source hands on the CoreShowChannels snapshot; a channel known
from before it that the snapshot does not list hung up unseen, and a call left with no channel
is closed with an unsure verdict (`recovered`, GAP_UNSEEN_END) for the CDR to settle. So is a
call with no event for `stale_seconds` (`expire`). A Linkedid once decided opens nothing again.
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from pbx_textback.core.pbx.amiframe import RAW_KEY, first, parse_raw
from pbx_textback.core.pbx.dialplan_vars import CTX_FREEPBX_TRUNK
from pbx_textback.core.numbers import is_anonymous
from pbx_textback.core.pbx.streams import split_at
from pbx_textback.core.model import (
    DIAL_ANSWER, DIAL_BUSY, DIAL_CANCEL, DIAL_NOANSWER, DIAL_UNAVAILABLE, INBOUND, INTERNAL,
    OUTBOUND, CallRecord, Leg, Marker, build)

log = logging.getLogger("pbx_textback.tracker")

FREEPBX_TRUNK_CONTEXTS = ("from-trunk", "from-pstn", "from-did-direct", "from-pstn-e164-us",
                          "from-pstn-toheader", "from-sip-external", CTX_FREEPBX_TRUNK)
PLAIN_TRUNK_CONTEXTS = ("from-external", "from-carrier", "incoming")
# Channel technologies that are never a person.
SYSTEM_TECHS = {"message", "surrogate", "recorder", "announcer", "cbann", "cbrec", "multicast",
                "audiosocket", "unicastrtp", "snoop", "bridge", "websocket"}

_DIALSTATUS = {"ANSWER": DIAL_ANSWER, "NOANSWER": DIAL_NOANSWER, "BUSY": DIAL_BUSY,
               "CHANUNAVAIL": DIAL_UNAVAILABLE, "CONGESTION": DIAL_UNAVAILABLE,
               "CANCEL": DIAL_CANCEL}
_TC_GOTOIF = re.compile(r"^\s*([01])\s*\?\s*(truegoto|falsegoto)\b")
_PRES_SET = re.compile(r"CALLERID\((?:num-)?pres\)\s*=\s*(\w+)|CALLERPRES\(\)\s*=\s*(\w+)", re.I)
_HEX_SUFFIX = re.compile(r"-[0-9a-fA-F]{6,}(;\d)?$")


RECONCILE_KEY = "_reconcile"      # the AMI source marks the rows of its CoreShowChannels with it
# recovered_why of a call whose end was never seen (the reconcile or the stale limit closed it)
GAP_UNSEEN_END = "its end was not seen (the event socket was down or silent)"

DEFAULT_MARKERS = (
    Marker("variable", "TCSTATE", "closed", True),
    Marker("variable", "TCSTATE", "open", False),
    Marker("userevent", "TextbackOutcome", "AfterHours=1", True),
)


@dataclass(frozen=True)
class AsteriskSettings:
    trunk_contexts: tuple[str, ...] = FREEPBX_TRUNK_CONTEXTS + PLAIN_TRUNK_CONTEXTS
    trunk_endpoints: tuple[str, ...] = ()
    markers: tuple[Marker, ...] = DEFAULT_MARKERS
    freepbx_timeconditions: bool = True          # read FreePBX's timeconditions branch
    timecondition_contexts: tuple[str, ...] = ("timeconditions",)
    internal_max_digits: int = 6
    remember_finished: int = 20000               # late events of finished calls are ignored
    stale_seconds: float = 6 * 3600              # a call with no event for this long is closed
    max_open_calls: int = 5000                   # beyond this the least recently active closes


@dataclass(slots=True)      # (slots: its fields are read and set on nearly every event)
class _Chan:
    uid: str
    name: str
    linkedid: str
    context: str = ""
    exten: str = ""
    cid: str = ""
    cid_name: str = ""
    incoming: bool | None = None      # Newchannel state Ring: it called us
    kind: str = "other"
    endpoint: str = ""
    up: bool = False
    gone: bool = False
    cause: str = ""
    adopted: bool = False             # first seen mid-call (reconcile, restart)
    answered_at: float | None = None
    dialled: str = ""                 # an originated channel: where its dialplan went on answer
    epoch: int = 0                    # the AMI session (FullyBooted count) it was last seen in


@dataclass(slots=True)
class _Call:
    id: str
    chans: dict[str, _Chan] = field(default_factory=dict)   # every channel ever in it
    live: set[str] = field(default_factory=set)
    order: list[str] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None
    dialstatus: dict[str, list[str]] = field(default_factory=dict)   # uid -> DIALSTATUS values
    dialend: dict[str, list[str]] = field(default_factory=dict)      # uid -> DialEnd statuses
    agent: str = ""
    queue: str = ""
    queue_abandoned: bool = False
    voicemail: bool = False
    vmstatus: str = ""
    after_hours: bool | None = None
    marker: str = ""
    withheld: bool = False
    from_did: str = ""
    hung_up: bool = False
    notes: list[str] = field(default_factory=list)
    touched: float | None = None      # the service clock at the last event (see expire)


class AsteriskTracker:
    def __init__(self, settings: AsteriskSettings | None = None):
        self.s = settings or AsteriskSettings()
        self._trunk_contexts = set(self.s.trunk_contexts)
        self._trunks = set(self.s.trunk_endpoints)
        self._tc_contexts = set(self.s.timecondition_contexts)
        self.calls: dict[str, _Call] = {}
        self.chans: dict[str, _Chan] = {}
        self._edges: dict[str, set[str]] = {}         # uid -> uids it was connected to
        self._bridges: dict[str, set[str]] = {}       # bridge id -> uids in it now
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._by_name: dict[str, str] = {}            # channel name -> uid (live)
        self.errors = 0
        self._epoch = 0                               # FullyBooted events seen
        self._reconcile_seen: set[str] | None = None  # uids listed by CoreShowChannels so far
        self._now: float | None = None                # the clock of the last expire() call
        self._pending_out: list[CallRecord] = []      # closed by the open-call limit
        # the markers by what they look at, so a VarSet/Newexten does one dict lookup
        self._var_marks: dict[str, list[Marker]] = {}
        self._ctx_marks: dict[str, list[Marker]] = {}
        for mk in self.s.markers:
            if mk.kind == "variable":
                self._var_marks.setdefault(mk.key, []).append(mk)
            elif mk.kind == "context":
                self._ctx_marks.setdefault(mk.key, []).append(mk)
        self._read_vars = self.read_vars

    @property
    def read_vars(self) -> frozenset[str]:
        """The channel variables _on_varset acts on (leading underscores stripped), with this
        tracker's markers: the service's framing hands every other VarSet on short (AmiFraming's
        wanted_vars), with only what moves its call on (ids, Timestamp) read."""
        return VARSET_READ | frozenset(self._var_marks)

    # ---- public API --------------------------------------------------------------------
    def feed(self, ev: dict) -> list[CallRecord]:
        # VarSets and Newextens are most of a call's events, and most of them set a variable
        # _on_varset does not read (a short one, AmiFraming wanted_vars, is one of those) or
        # run an application _on_newexten does not look at, or one it reads that changes
        # nothing this time (_idle_varset, _idle_newexten); DialBegin tells nothing more: of
        # a known channel still in the same call such an event only moves the call on
        # (_call_of's common case, inline). Any other goes to _dispatch (a short one is read
        # whole when need be), the careful way the tests hold this one to.
        if RAW_KEY in ev:
            name, quick = "", True
        else:
            name = ev.get("Event")
            if name == "VarSet":
                var = ev.get("Variable")
                if var.__class__ is str and var != "":
                    base = var.lstrip("_")
                    quick = base not in self._read_vars or self._idle_varset(base, ev)
                else:
                    quick = False
            elif name == "Newexten":
                app = ev.get("Application", "")
                quick = app.__class__ is str and not self._ctx_marks and (
                    app not in _NEWEXTEN_READ or self._idle_newexten(app, ev))
            else:
                quick = name == "DialBegin"
        if quick:
            try:
                uid = ev["Uniqueid"]
                ch = self.chans.get(uid)
                same = ch is not None and (ev["Linkedid"] or uid) == ch.linkedid
            except (KeyError, TypeError):   # a header missing or repeated: the dispatch says
                same = False
            if same and name == "Newexten" and ch.incoming is False and not ch.dialled \
                    and ch.exten in ("", "s"):
                same = False    # an originated channel: _on_newexten reads where it went
            if same:
                ch.epoch = self._epoch
                call = self.calls.get(ch.linkedid)
                if call is not None:
                    call.touched = self._now
                    t = ev.get("Timestamp")
                    if t:
                        try:
                            call.last_ts = float(t)
                        except (ValueError, TypeError):
                            pass
                return []
        return self._dispatch(ev)

    def _dispatch(self, ev: dict) -> list[CallRecord]:
        """An event to its handler (feed() without its shortcuts)."""
        name = ev.get("Event")
        try:
            handler = _HANDLERS.get(name)
        except TypeError:       # a repeated Event header is a list (unhashable): no handler
            return []
        if handler is None:
            return []
        try:
            out = handler(self, ev)
        except Exception:  # a malformed event must not stop the tracker
            self.errors += 1
            log.exception("tracker: could not apply %s event", name)
            out = None
        if self._pending_out:
            out, self._pending_out = self._pending_out + (out or []), []
        return out or []

    def open_calls(self) -> int:
        return len(self.calls)

    def expire(self, now: float) -> list[CallRecord]:
        """Close calls with no event for `stale_seconds` of the caller's clock (a Hangup lost
        in a gap must not keep a call open, and its memory, forever). Call it now and then."""
        self._now = now
        out = []
        for call in list(self.calls.values()):
            if call.touched is None:
                call.touched = now
            elif now - call.touched >= self.s.stale_seconds:
                out.append(self._retire(call, f"no event for {(now - call.touched) / 60:.0f} min"))
        return out

    def flush(self) -> list[CallRecord]:
        """Calls still open (end of a replay): their verdict on what was seen."""
        out = [self._record(c) for c in list(self.calls.values()) if c.hung_up]
        self.calls.clear()
        return out

    # ---- channels ------------------------------------------------------------------------
    def _kind(self, name: str, context: str) -> tuple[str, str]:
        tech_l, endpoint = channel_endpoint(name)
        if tech_l == "local":
            return "local", endpoint
        if tech_l in SYSTEM_TECHS:
            return "other", endpoint
        if endpoint in self._trunks:
            return "trunk", endpoint
        if context in self._trunk_contexts:
            self._trunks.add(endpoint)
            return "trunk", endpoint
        return "extension", endpoint

    def _chan(self, ev: dict, *, create: bool = True, adopted: bool = False) -> _Chan | None:
        uid = ev.get("Uniqueid", "")
        if uid.__class__ is not str:
            uid = first(ev, "Uniqueid")
        if not uid or uid == "none":     # "none": a global variable's VarSet, on no channel
            return None
        linkedid = ev.get("Linkedid", "")
        if linkedid.__class__ is not str:
            linkedid = first(ev, "Linkedid")
        linkedid = linkedid or uid
        ch = self.chans.get(uid)
        if ch is not None and ch.linkedid == linkedid:   # the common case: nothing to change
            ch.epoch = self._epoch
            return ch
        if ch is None:
            # a channel of a call already decided (late, reordered, after a gap): a call is
            # decided once, so its stragglers open nothing
            if not create or uid in self._finished or linkedid in self._finished:
                return None
            name = first(ev, "Channel")
            context = first(ev, "Context")
            ch = _Chan(uid, name, linkedid, context=context,
                       exten=first(ev, "Exten") or first(ev, "Extension"),
                       cid=first(ev, "CallerIDNum"), cid_name=first(ev, "CallerIDName"),
                       adopted=adopted)
            state = first(ev, "ChannelState")
            if not adopted and state:
                ch.incoming = state == "4"
            ch.kind, ch.endpoint = self._kind(name, context)
            self.chans[uid] = ch
            self._by_name[name] = uid
            call = self._call(linkedid, ev)
            call.chans[uid] = ch
            call.live.add(uid)
            call.order.append(uid)
            if adopted:
                call.notes.append(f"channel {name} picked up mid-call: its earlier events were lost")
        elif ch.linkedid != linkedid and not ch.gone and linkedid not in self._finished:
            self._move(ch, linkedid, ev)
        ch.epoch = self._epoch
        return ch

    def _call(self, linkedid: str, ev: dict) -> _Call:
        call = self.calls.get(linkedid)
        if call is None:
            call = self.calls[linkedid] = _Call(linkedid)
            if len(self.calls) > self.s.max_open_calls:
                self._limit_open()
        call.touched = self._now
        ts = _ts(ev)
        if ts is not None:
            call.first_ts = call.first_ts if call.first_ts is not None else ts
            call.last_ts = ts
        return call

    def _move(self, ch: _Chan, linkedid: str, ev: dict) -> None:
        """A channel joined another call (transfer, pickup): its story goes on there."""
        old = self.calls.get(ch.linkedid)
        new = self._call(linkedid, ev)
        if old is not None:
            old.live.discard(ch.uid)
            if not old.live and not old.hung_up:
                self.calls.pop(old.id, None)       # emptied by moves: merged, nothing to decide
                new.notes.extend(old.notes)
        ch.linkedid = linkedid
        new.chans[ch.uid] = ch
        new.live.add(ch.uid)
        new.order.append(ch.uid)

    def _connect(self, a: str, b: str) -> None:
        if a and b and a != b:
            self._edges.setdefault(a, set()).add(b)
            self._edges.setdefault(b, set()).add(a)

    def _call_of(self, ev: dict) -> tuple[_Chan | None, _Call | None]:
        # _chan()'s common case inline (a known channel, still in the same call): this runs
        # for nearly every event
        # (a repeated Uniqueid is a list: get() raises; a repeated Linkedid, a list, is not
        # equal to the str linkedid: both go to _chan(), which reads the first)
        uid = ev.get("Uniqueid")
        try:
            ch = self.chans.get(uid)
        except TypeError:
            ch = None
        if ch is not None and (ev.get("Linkedid", "") or uid) == ch.linkedid:
            ch.epoch = self._epoch
        else:
            ch = self._chan(ev)
            if ch is None:
                return None, None
        call = self.calls.get(ch.linkedid)
        if call is not None:
            call.touched = self._now
            t = ev.get("Timestamp")     # _ts() inline: this runs for nearly every event
            if t:
                try:
                    call.last_ts = float(t)
                except (ValueError, TypeError):     # (TypeError: a repeated one, a list)
                    pass
        return ch, call

    def _idle_varset(self, base: str, ev: dict) -> bool:
        """Whether a VarSet of a variable _on_varset reads changes nothing this time (it only
        moves its call on, like one of a variable nobody reads): an empty DIALSTATUS or
        VMSTATUS, a presentation that does not withhold, a FROM_DID after the call has one.
        Most of them are: every channel of a call inherits __FROM_DID and
        __CALLINGNUMPRES_SV. False when unsure (the handler decides)."""
        value = ev.get("Value", "")
        if value.__class__ is not str or base in self._var_marks:
            return False
        if base == "CALLINGNUMPRES_SV":
            return not _withheld_pres(value)
        if not value:
            return True         # (DIALSTATUS, VMSTATUS, FROM_DID: an empty one is not read)
        if base == "FROM_DID":
            uid = ev.get("Uniqueid")
            ch = self.chans.get(uid) if uid.__class__ is str else None
            call = self.calls.get(ch.linkedid) if ch is not None else None
            return call is not None and call.from_did != ""
        return False

    def _idle_newexten(self, app: str, ev: dict) -> bool:
        """Whether a Newexten of an application _on_newexten looks at changes nothing: a Set()
        that cannot set a presentation (no "("), a GotoIf outside the time-condition
        contexts. False when unsure (the handler decides)."""
        if app == "Set":
            data = ev.get("AppData", "")
            return data.__class__ is str and "(" not in data
        if app == "GotoIf":
            if not self.s.freepbx_timeconditions:
                return True
            context = ev.get("Context", "")
            return context.__class__ is str and context not in self._tc_contexts
        return False

    # ---- event handlers --------------------------------------------------------------------
    def _on_newchannel(self, ev):
        self._chan(ev)

    def _on_fully_booted(self, ev):
        self._epoch += 1          # a new AMI session: what came before may have a gap behind it

    def _on_reconcile(self, ev):
        if ev.get(RECONCILE_KEY):
            if self._reconcile_seen is None:
                self._reconcile_seen = set()
            self._reconcile_seen.add(first(ev, "Uniqueid"))
        ch = self._chan(ev, adopted=True)
        if ch is None:
            return
        if first(ev, "ChannelStateDesc") == "Up" or first(ev, "ChannelState") == "6":
            ch.up = True
        bridge = first(ev, "BridgeId")
        if bridge:
            self._bridge_enter(bridge, ch.uid)

    def _on_reconcile_done(self, ev):
        """The CoreShowChannels snapshot after a (re)connect is complete: a channel we knew from
        before that it does not list hung up while we saw nothing. A call with no channel left
        is closed here (the service decides it from the CDR where it can)."""
        if not ev.get(RECONCILE_KEY):
            return []
        seen, self._reconcile_seen = self._reconcile_seen or set(), None
        out = []
        for call in list(self.calls.values()):
            gone = [u for u in call.live if u not in seen and call.chans[u].epoch < self._epoch]
            if not gone:
                continue
            for u in gone:
                self._drop_chan(call, u)
            if not call.live:
                out.append(self._retire(call, "its channels were gone at the reconcile after a "
                                              "reconnect"))
        return out

    def _on_originate_response(self, ev):
        """Our own Originate (or another's) answered: its channel goes on in Exten."""
        ch = self.chans.get(first(ev, "Uniqueid"))
        exten = first(ev, "Exten")
        if ch is not None and first(ev, "Response") == "Success" and exten not in ("", "s"):
            ch.dialled = ch.dialled or exten

    def _on_newstate(self, ev):
        ch, call = self._call_of(ev)
        if ch and (first(ev, "ChannelState") == "6" or first(ev, "ChannelStateDesc") == "Up"):
            if not ch.up:
                ch.up = True
                ch.answered_at = _ts(ev)

    def _on_newexten(self, ev):
        ch, call = self._call_of(ev)
        if call is None:
            return
        # VarSet and Newexten are most of a call's events: a header is read only when what it
        # tells is needed, and without first()'s call unless it came repeated (a list)
        app = ev.get("Application", "")
        if app.__class__ is not str:
            app = first(ev, "Application")
        if ch.incoming is False and not ch.dialled and ch.exten in ("", "s"):
            exten = first(ev, "Exten")
            if exten not in ("", "s"):
                ch.dialled = exten    # an originated channel: the dialplan runs where it was sent
        if app == "VoiceMail":
            call.voicemail = True
        elif app == "Set":
            if ch.uid == _origin_uid(call):
                data = first(ev, "AppData")
                # (both of _PRES_SET's forms have a "(" and say "pres"; casefold() folds as
                # its re.I does; most Set()s have no "(", and the test for it copies nothing)
                m = _PRES_SET.search(data) if "(" in data and "pres" in data.casefold() else None
                if m and _withheld_pres(m.group(1) or m.group(2) or ""):
                    self._withheld(call, f"dialplan set presentation {data}")
        elif app == "GotoIf" and self.s.freepbx_timeconditions:
            if first(ev, "Context") in self._tc_contexts:
                m = _TC_GOTOIF.match(first(ev, "AppData"))
                if m:
                    closed = (m.group(1) == "0") == (m.group(2) == "truegoto")
                    self._after_hours(call, closed, f"FreePBX time condition {first(ev, 'Exten')} "
                                                    f"took its {'false' if closed else 'true'} branch")
        if self._ctx_marks:
            context = first(ev, "Context")
            for mk in self._ctx_marks.get(context, ()):
                self._after_hours(call, mk.closed, f"reached context {context}")

    def _on_varset(self, ev):
        var = ev.get("Variable", "")
        if var.__class__ is not str:
            var = first(ev, "Variable")
        if not var:
            if RAW_KEY not in ev:
                return
            # a short VarSet (a variable nobody reads, AmiFraming wanted_vars): it only moves
            # its channel's call on (feed() takes the common case); a channel met first here,
            # or moved, needs the whole frame
            uid, lid = ev["Uniqueid"], ev["Linkedid"] or ev["Uniqueid"]
            ch = self.chans.get(uid)
            if ch is not None and lid == ch.linkedid:
                self._call_of(ev)
                return
            if ch is None and (uid == "none" or uid in self._finished or lid in self._finished):
                return      # a global variable, or a straggler of a call decided: _chan()
                            # would open nothing, so the whole frame is not worth reading
            ev = parse_raw(ev)
            if ev is None:
                return
            var = first(ev, "Variable")
            if not var:
                return
        ch, call = self._call_of(ev)
        if call is None:
            return
        base = var.lstrip("_")
        if base not in self._read_vars:
            return          # most VarSets: the event only moved its call on
        value = ev.get("Value", "")
        if value.__class__ is not str:
            value = first(ev, "Value")
        if base == "DIALSTATUS":
            if value:
                call.dialstatus.setdefault(ch.uid, []).append(value)
        elif base == "VMSTATUS":
            if value:
                call.vmstatus = value
        elif base == "FROM_DID":
            if value and not call.from_did:
                call.from_did = value
        elif base == "CALLINGNUMPRES_SV":
            if ch.uid == _origin_uid(call) and _withheld_pres(value):
                self._withheld(call, f"caller's number presentation is {value}")
        for mk in self._var_marks.get(base, ()):
            if mk.value.lower() == value.lower():
                self._after_hours(call, mk.closed, f"{base}={value}")

    def _on_userevent(self, ev):
        ch, call = self._call_of(ev)
        if call is None:
            return
        name = first(ev, "UserEvent")
        for mk in self.s.markers:
            if mk.kind == "userevent" and mk.key == name:
                k, _, v = mk.value.partition("=")
                if first(ev, k).lower() == v.lower():
                    self._after_hours(call, mk.closed, f"UserEvent {name} {k}={v}")
        if name == "TextbackOutcome":
            vm = first(ev, "VoicemailLeft")
            if vm:
                call.vmstatus = "SUCCESS" if vm in ("1", "yes", "true") else call.vmstatus or "FAILED"

    def _on_dialend(self, ev):
        ch, call = self._call_of(ev)
        if call is None:
            return
        status = first(ev, "DialStatus")
        call.dialend.setdefault(ch.uid, []).append(status)
        if status == "ANSWER":
            dest = first(ev, "DestUniqueid") or self._by_name.get(first(ev, "DestChannel"), "")
            self._connect(ch.uid, dest)

    def _on_bridge_enter(self, ev):
        ch, call = self._call_of(ev)
        bridge = first(ev, "BridgeUniqueid")
        if ch is not None and bridge:
            self._bridge_enter(bridge, ch.uid)

    def _bridge_enter(self, bridge: str, uid: str) -> None:
        members = self._bridges.setdefault(bridge, set())
        for other in members:
            self._connect(uid, other)
        members.add(uid)

    def _on_bridge_leave(self, ev):
        bridge = first(ev, "BridgeUniqueid")
        members = self._bridges.get(bridge)
        if members is not None:
            members.discard(first(ev, "Uniqueid"))
            if not members:
                self._bridges.pop(bridge, None)

    def _on_bridge_destroy(self, ev):
        self._bridges.pop(first(ev, "BridgeUniqueid"), None)

    def _on_local_bridge(self, ev):
        a = first(ev, "LocalOneUniqueid")
        b = first(ev, "LocalTwoUniqueid")
        self._connect(a, b)

    def _on_agent_connect(self, ev):
        ch, call = self._call_of(ev)
        if call is None:
            return
        call.agent = first(ev, "MemberName") or first(ev, "Interface") or first(ev, "DestChannel")
        dest = first(ev, "DestUniqueid") or self._by_name.get(first(ev, "DestChannel"), "")
        self._connect(ch.uid, dest)

    def _on_queue_join(self, ev):
        ch, call = self._call_of(ev)
        if call is not None:
            call.queue = first(ev, "Queue") or call.queue

    def _on_queue_abandon(self, ev):
        ch, call = self._call_of(ev)
        if call is not None:
            call.queue = first(ev, "Queue") or call.queue
            call.queue_abandoned = True

    def _on_hangup(self, ev):
        uid = first(ev, "Uniqueid")
        ch = self.chans.get(uid)
        if ch is None:
            if uid not in self._finished and first(ev, "Linkedid") not in self._finished:
                self.errors += 1
                log.warning("tracker: Hangup for a channel never seen (%s): ignored",
                            first(ev, "Channel") or "?")
            return []
        ch.gone = True
        ch.cause = first(ev, "Cause")
        self._by_name.pop(ch.name, None)
        del self.chans[uid]
        self._forget(uid)
        call = self.calls.get(ch.linkedid)
        if call is None:
            return []
        ts = _ts(ev)
        if ts is not None:
            call.last_ts = ts
        call.hung_up = True
        call.touched = self._now
        call.live.discard(uid)
        if call.live:
            return []
        del self.calls[call.id]
        self._forget(call.id)
        rec = self._record(call)
        for u in call.chans:
            self._edges.pop(u, None)
        return [rec]

    def _drop_chan(self, call: _Call, uid: str) -> None:
        ch = self.chans.pop(uid, None)
        if ch is not None:
            ch.gone = True
            self._by_name.pop(ch.name, None)
        for members in self._bridges.values():
            members.discard(uid)
        call.live.discard(uid)
        self._forget(uid)

    def _retire(self, call: _Call, why: str) -> CallRecord:
        """Close a call whose end we did not see; its record says so. Unless a person was seen
        answering, its verdict is marked unsure (`recovered`) and the CDR may settle it."""
        for u in list(call.live):
            self._drop_chan(call, u)
        self.calls.pop(call.id, None)
        self._forget(call.id)
        call.notes.append(f"closed without its hangup: {why}")
        rec = self._record(call)
        for u in call.chans:
            self._edges.pop(u, None)
        if rec.answered_by_human:
            return rec
        return replace(rec, recovered=True, recovered_why=GAP_UNSEEN_END)

    def _limit_open(self) -> None:
        while len(self.calls) > self.s.max_open_calls:
            oldest = next(iter(self.calls.values()))
            log.warning("tracker: more than %d calls open: closing the oldest, %s",
                        self.s.max_open_calls, oldest.id)
            self._pending_out.append(self._retire(oldest, "too many calls open at once"))

    def _forget(self, key: str) -> None:
        self._finished[key] = None
        while len(self._finished) > self.s.remember_finished:
            self._finished.popitem(last=False)

    # ---- facts -----------------------------------------------------------------------------
    def _withheld(self, call: _Call, why: str) -> None:
        if not call.withheld:
            call.withheld = True
            call.notes.append(f"withheld: {why}")

    def _after_hours(self, call: _Call, closed: bool, why: str) -> None:
        call.after_hours = closed     # the last routing decision on the call wins
        call.marker = why

    def _reachable(self, start: str, call: _Call) -> list[_Chan]:
        seen, todo, found = {start}, [start], []
        while todo:
            u = todo.pop()
            for v in self._edges.get(u, ()):
                if v in seen:
                    continue
                seen.add(v)
                todo.append(v)
                ch = call.chans.get(v) or self.chans.get(v)
                if ch is not None:
                    found.append(ch)
        # Local pairs (;1/;2) are one path even without a LocalBridge event
        return found

    def _record(self, call: _Call) -> CallRecord:
        origin = call.chans[_origin_uid(call)]
        self._pair_locals(call)
        direction = self._direction(call, origin)
        reach = self._reachable(origin.uid, call)
        humans = [c for c in reach if c.kind == "extension"]
        outside = [c for c in reach if c.kind == "trunk" and c.uid != origin.uid]
        answered_by = ""
        if humans:
            answered_by = humans[0].endpoint
        elif call.agent:
            answered_by = call.agent
        elif outside:
            answered_by = f"outside leg {outside[0].endpoint}"
            call.notes.append("answered on an outside leg we dialled (follow-me or forward)")
        human = bool(answered_by)
        results = _dial_results(call, origin)
        caller = origin.cid if origin.cid not in ("<unknown>",) else ""
        called = origin.exten if origin.exten not in ("", "s") else origin.dialled
        if direction == INBOUND and call.from_did and (not called or not _looks_number(called)):
            called = call.from_did
        vm_left = None
        if call.vmstatus:
            vm_left = call.vmstatus == "SUCCESS"
        answer_ts = min((c.answered_at for c in humans if c.answered_at), default=None) \
            if humans else None
        talk = ring = None
        if answer_ts is not None and call.last_ts is not None:
            talk = max(0.0, call.last_ts - answer_ts)
        if call.first_ts is not None:
            ring = ((answer_ts or call.last_ts or call.first_ts) - call.first_ts)
        # (build(): a frozen dataclass's keyword __init__ cost more than the rest of this)
        legs = tuple(build(Leg, {
            "id": c.uid, "name": c.name, "kind": "caller" if c is origin else c.kind,
            "endpoint": c.endpoint, "answered": c.up, "hangup_cause": c.cause})
            for c in (call.chans[u] for u in call.order))
        return build(CallRecord, {
            "pbx": "asterisk", "call_id": call.id, "caller": caller, "called": called,
            "direction": direction,
            "caller_name": origin.cid_name if origin.cid_name != "<unknown>" else "",
            "withheld": call.withheld or _anonymous(origin.cid),
            "started_at": call.first_ts, "ended_at": call.last_ts, "answered_by_human": human,
            "answered_by": answered_by, "talk_seconds": talk, "ring_seconds": ring,
            "dial_results": tuple(results), "caller_cancelled": DIAL_CANCEL in results,
            "hangup_cause": origin.cause, "queue": call.queue,
            "queue_abandoned": call.queue_abandoned, "voicemail": call.voicemail,
            "voicemail_left": vm_left, "pbx_after_hours": call.after_hours,
            "after_hours_marker": call.marker, "system_answered": origin.up and not human,
            "recovered": False, "recovered_why": "", "legs": legs, "notes": tuple(call.notes)})

    def _pair_locals(self, call: _Call) -> None:
        byname = {c.name: c.uid for c in call.chans.values() if c.kind == "local"}
        for name, uid in byname.items():
            if name.endswith(";1"):
                twin = byname.get(name[:-1] + "2")
                if twin:
                    self._connect(uid, twin)

    def _direction(self, call: _Call, origin: _Chan) -> str:
        others = [c for c in call.chans.values() if c is not origin]
        if origin.kind == "trunk":
            if origin.incoming is False:
                return OUTBOUND           # originated towards the trunk (Down, not Ring)
            return INBOUND
        if any(c.kind == "trunk" for c in others) or _external(origin.exten, self.s.internal_max_digits):
            return OUTBOUND
        return INTERNAL


def channel_endpoint(name: str) -> tuple[str, str]:
    """'PJSIP/itsp-0000002a' -> ('pjsip', 'itsp'); Local halves keep their ;1/;2 off too."""
    tech, _, rest = name.partition("/")
    return tech.lower(), _HEX_SUFFIX.sub("", rest)


def _origin_uid(call: _Call) -> str:
    return call.id if call.id in call.chans else call.order[0]


def _dial_results(call: _Call, origin: _Chan) -> list[str]:
    """What the caller's own dials ended with (Asterisk's aggregate DIALSTATUS first)."""
    raw = call.dialstatus.get(origin.uid) or []
    if not raw:
        raw = call.dialend.get(origin.uid) or []
    if not raw:   # dials ran on other channels (Local halves, adopted calls)
        for uid in call.order:
            raw += call.dialstatus.get(uid, []) or call.dialend.get(uid, [])
    out = []
    for r in raw:
        n = _DIALSTATUS.get(r.upper())
        if n and n != DIAL_ANSWER:
            out.append(n)
    return out


def _withheld_pres(value: str) -> bool:
    """Asterisk presentation names: prohib_* = withheld, unavailable = no number to use."""
    v = value.strip().lower()
    return v.startswith("prohib") or v == "unavailable"


_ANON: dict[str, bool] = {}       # caller ids seen lately (callers call again) -> is_anonymous


def _anonymous(cid: str) -> bool:
    """is_anonymous, remembered: its cleaning costs a tenth of a call's record."""
    v = _ANON.get(cid)
    if v is None:
        if len(_ANON) >= 4096:
            _ANON.clear()
        v = _ANON[cid] = is_anonymous(cid)
    return v


def _looks_number(s: str) -> bool:
    if s.isdigit():             # (the usual DID: every character a digit, counted at once)
        return len(s) >= 3
    return sum(map(str.isdigit, s)) >= 3


def _external(exten: str, internal_max: int) -> bool:
    digits = "".join(ch for ch in exten if ch.isdigit())
    return not exten.startswith("*") and len(digits) > internal_max


def _ts(ev: dict) -> float | None:
    t = ev.get("Timestamp")
    if isinstance(t, str) and t:
        try:
            return float(t)
        except ValueError:
            return None
    return None


_HANDLERS = {
    "Newchannel": AsteriskTracker._on_newchannel,
    "FullyBooted": AsteriskTracker._on_fully_booted,
    "CoreShowChannel": AsteriskTracker._on_reconcile,
    "CoreShowChannelsComplete": AsteriskTracker._on_reconcile_done,
    "OriginateResponse": AsteriskTracker._on_originate_response,
    "Newstate": AsteriskTracker._on_newstate,
    "Newexten": AsteriskTracker._on_newexten,
    "VarSet": AsteriskTracker._on_varset,
    "UserEvent": AsteriskTracker._on_userevent,
    "DialEnd": AsteriskTracker._on_dialend,
    "DialBegin": lambda self, ev: self._call_of(ev) and None,
    "BridgeEnter": AsteriskTracker._on_bridge_enter,
    "BridgeLeave": AsteriskTracker._on_bridge_leave,
    "BridgeDestroy": AsteriskTracker._on_bridge_destroy,
    "LocalBridge": AsteriskTracker._on_local_bridge,
    "AgentConnect": AsteriskTracker._on_agent_connect,
    "QueueCallerJoin": AsteriskTracker._on_queue_join,
    "QueueCallerAbandon": AsteriskTracker._on_queue_abandon,
    "Hangup": AsteriskTracker._on_hangup,
}

# Every AMI event the service reads: the tracker's (above) and what the AMI source waits for
# itself (ami/client.py: FullyBooted, Shutdown, the CoreShowChannels rows, OriginateResponse).
# The service's framing skips any other event after its first line (AmiFraming(wanted=)), and
# bench/ingest.py measures with this same set.
SERVICE_AMI_EVENTS = frozenset(_HANDLERS) | {
    "FullyBooted", "Shutdown", "CoreShowChannel", "CoreShowChannelsComplete",
    "OriginateResponse"}


# The applications _on_newexten looks at (feed() lets a Newexten of any other only move its
# call on, when no context marker is set).
_NEWEXTEN_READ = frozenset({"VoiceMail", "Set", "GotoIf"})

# The variables _on_varset reads whatever the markers (see AsteriskTracker.read_vars).
VARSET_READ = frozenset({"DIALSTATUS", "VMSTATUS", "FROM_DID", "CALLINGNUMPRES_SV"})


def records_from_stream(data: bytes, settings: AsteriskSettings | None = None,
                        chunks: list[int] | None = None, *,
                        filtered: bool = True) -> list[CallRecord]:
    """Framing + tracker over a whole recorded stream, in the order calls finish. `filtered`:
    skip the events and VarSets the service skips (what `replay` shows is what it would do)."""
    from pbx_textback.core.pbx.amiframe import AmiFraming
    tracker, out = AsteriskTracker(settings), []
    framing = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=tracker.read_vars) \
        if filtered else AmiFraming()
    pieces = [data] if not chunks else split_at(data, chunks)
    for piece in pieces:
        for ev in framing.feed(piece):
            out.extend(tracker.feed(ev))
    return out + tracker.flush()

