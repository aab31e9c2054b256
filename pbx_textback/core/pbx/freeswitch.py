"""FreeSWITCH call tracker: ESL event dicts -> one CallRecord per call, pure.

A call is the caller's channel and every channel bridged or originated from it. Legs are
joined by what FreeSWITCH puts in the events: `Channel-Call-UUID`, `Other-Leg-Unique-ID`,
`variable_originating_leg_uuid`, the loopback pair (`variable_other_loopback_leg_uuid` /
`..._from_uuid`), mod_callcenter's `variable_cc_member_session_uuid` /
`CC-Member-Session-UUID`, `variable_last_bridge_to`. A call is decided once every leg of it
was destroyed (`CHANNEL_DESTROY`): mod_callcenter's `member-queue-end` can come after the
caller's `CHANNEL_HANGUP_COMPLETE`. A call that entered a queue and has no `member-queue-end`
yet is held a little longer (event time, `Event-Date-Timestamp`, never the wall clock).

Who answered is read from the graph of bridges (and loopback pairs) from the caller's leg:
a person answered when an extension's (or an outside number's) leg that answered is
reachable. The PBX answering by itself (IVR, queue, voicemail — also voicemail through a
`loopback/` leg, which makes the caller's leg look bridged and answered) connects the caller
to no such leg, so it never counts.

The tracker only fills facts; `classify()` decides.
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from pbx_textback.core.pbx import dialplan_vars as dv
from pbx_textback.core.pbx.streams import split_at
from pbx_textback.core.model import (
    DIAL_ANSWER, DIAL_BUSY, DIAL_CANCEL, DIAL_NOANSWER, DIAL_UNAVAILABLE, INBOUND, INTERNAL,
    OUTBOUND, CallRecord, Leg, Marker)

log = logging.getLogger("pbx_textback.tracker")

RECONCILE_KEY = "_reconcile"
RECONCILE_ROW = "CHANNEL_RECONCILE"            # one row of `show channels as json`
RECONCILE_DONE = "CHANNEL_RECONCILE_DONE"      # the snapshot is complete ("Channel-UUIDs")

# Hangup causes of a dial attempt (a rung leg, or the caller leg's originate_disposition).
_NOANSWER = {"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT",
             "NOANSWER"}
# CALL_REJECTED is the phone's "decline" button (603): the person chose not to take it,
# which is what busy means to the caller.
_BUSY = {"USER_BUSY", "CALL_REJECTED", "BUSY"}
_UNAVAILABLE = {"SUBSCRIBER_ABSENT", "USER_NOT_REGISTERED", "UNALLOCATED_NUMBER",
                "NORMAL_TEMPORARY_FAILURE", "DESTINATION_OUT_OF_ORDER", "NO_ROUTE_DESTINATION",
                "RECOVERY_ON_TIMER_EXPIRE", "NETWORK_OUT_OF_ORDER", "SWITCH_CONGESTION",
                "INCOMPATIBLE_DESTINATION", "INVALID_NUMBER_FORMAT", "NO_ROUTE_TRANSIT_NET",
                "FACILITY_REJECTED", "SERVICE_UNAVAILABLE", "CHAN_NOT_IMPLEMENTED",
                "GATEWAY_DOWN", "MEDIA_TIMEOUT", "CHANUNAVAIL", "CONGESTION"}
_CANCEL = {"ORIGINATOR_CANCEL", "LOSE_RACE", "CANCEL"}
_ANSWER = {"SUCCESS", "PICKED_OFF", "ANSWER"}
_ANON = {"", "anonymous", "restricted", "private", "unknown", "unavailable", "withheld",
         "0000000000"}
_TRUNK_TECHS = {"freetdm", "gsmopen", "skypopen", "khomp", "dahdi"}
_PHONE_TECHS = {"user", "verto.rtc", "rtc"}
# Channel events: they describe one channel and may create it when we see it first.
_BIRTH = {"CHANNEL_CREATE", "CHANNEL_OUTGOING", "CHANNEL_ORIGINATE"}
_LINK_VARS = ("Channel-Call-UUID", "Other-Leg-Unique-ID", "variable_originating_leg_uuid",
              "variable_other_loopback_leg_uuid", "variable_other_loopback_from_uuid",
              "variable_loopback_from_uuid", "variable_cc_member_session_uuid",
              "variable_last_bridge_to")


FsMarker = Marker      # the one marker type (core/model.py); the name kept for callers


# Defaults: our own documented convention (dialplan_snippets/ sets it on the closed branch),
# plus the names dialplans commonly give the same facts: an open/closed flag set by a
# time-of-day condition, and the closed-hours announcement being played. A site's own
# names are added in the config ([[pbx.after_hours_markers]]).
_FLAG_OPEN = ("office_open", "business_open", "is_open", "office_hours_open")
_FLAG_CLOSED = ("textback_after_hours", "after_hours", "afterhours", "is_after_hours", "office_closed")
_CLOSED_PROMPTS = ("closed", "office-closed", "office_closed", "after-hours", "afterhours",
                   "after_hours", "closed-message", "we-are-closed")
DEFAULT_MARKERS = (
    tuple(Marker("variable", k, v, v == "false") for k in _FLAG_OPEN for v in ("false", "true"))
    + tuple(Marker("variable", k, v, v == "true") for k in _FLAG_CLOSED for v in ("true", "false"))
    # our snippet exports textback_after_hours=1 on its closed branch
    + (Marker("variable", dv.FS_VAR_AFTER_HOURS, "1", True),)
    + tuple(Marker("playback", "", p, True) for p in _CLOSED_PROMPTS)
)
_OUTCOME_MARKER = Marker("userevent", dv.FS_OUTCOME_SUBCLASS, f"{dv.H_AFTER_HOURS}=1", True)


def _marker(m) -> Marker:
    return m if isinstance(m, Marker) else Marker(*m)      # a Marker, or (kind, key, value[, closed])


@dataclass(frozen=True)
class FsTrackerSettings:
    inbound_contexts: tuple[str, ...] = ("public",)
    inbound_profiles: tuple[str, ...] = ("external",)
    internal_profiles: tuple[str, ...] = ("internal",)
    gateways: tuple[str, ...] = ()               # carrier gateways; () = any sofia/gateway/
    after_hours_markers: tuple = DEFAULT_MARKERS  # Marker or (kind, key, value[, closed])
    hold_seconds: float = 5.0      # a finished call in a queue waits this long (event time)
    hold_events: int = 500         # ... or this many events, for member-queue-end
    remember_finished: int = 20000  # late events of finished legs are ignored

    def __post_init__(self):
        object.__setattr__(self, "after_hours_markers",
                           tuple(_marker(m) for m in self.after_hours_markers))
        for name in ("inbound_contexts", "inbound_profiles", "internal_profiles", "gateways"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass
class _Leg:
    uid: str
    name: str = ""
    direction: str = ""              # Call-Direction
    profile: str = ""
    context: str = ""                # first context seen
    dest: str = ""                   # first destination seen
    dest_is_first: bool = False      # dest came from CHANNEL_CREATE / a reconcile row
    req_user: str = ""               # sip_req_user / sip_to_user
    cid_num: str = ""
    cid_name: str = ""
    user_name: str = ""              # authenticated user (a desk phone)
    gateway: str = ""
    hide_number: bool = False
    privacy: str = ""
    created: float | None = None
    answered: float | None = None
    ended: float | None = None       # CHANNEL_HANGUP_COMPLETE
    destroyed: bool = False
    cause: str = ""
    hangup_disposition: str = ""
    originate_disposition: str = ""
    dialstatus: str = ""
    app: str = ""                    # application running now
    app_data: str = ""
    app_answered: bool = False       # answered while an app other than a bridge ran
    bridge_open: bool = False
    bridge_data: str = ""
    loopback: str = ""               # A | B
    adopted: bool = False            # first seen mid-call (reconnect / reconcile row)
    seq: int = 0


@dataclass
class _Call:
    root: str
    legs: dict[str, _Leg] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)      # every uuid joined to this call
    edges: set[tuple[str, str]] = field(default_factory=set)   # bridges, loopback pairs
    bridged_at: dict[str, float] = field(default_factory=dict)  # leg -> first bridge time
    dials: list[tuple[str, str, str]] = field(default_factory=list)  # (result, raw, what)
    picked_off: list[str] = field(default_factory=list)
    queue: str = ""
    queue_started: bool = False
    queue_ended: bool = False
    queue_cause: str = ""
    queue_cancel_reason: str = ""
    queue_agent: str = ""
    queue_agent_uuid: str = ""
    voicemail: bool = False
    voicemail_lua: bool = False
    voicemail_left: bool = False
    vm_leg: str = ""
    closed_marks: list[str] = field(default_factory=list)
    open_marks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    done_ts: float | None = None
    held_at_event: int = 0
    last_ts: float | None = None
    gone_in_gap: bool = False


class FreeswitchTracker:
    def __init__(self, settings: FsTrackerSettings | None = None):
        self.s = settings or FsTrackerSettings()
        self._parent: dict[str, str] = {}
        self._calls: dict[str, _Call] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._held: dict[str, _Call] = {}
        self._events = 0
        self._seq = 0
        self.errors = 0
        self._reconcile_seen: set[str] | None = None

    # -- public -------------------------------------------------------------------------

    def feed(self, ev: dict) -> list[CallRecord]:
        """One event in; the calls that finished with it out (usually none)."""
        self._events += 1
        try:
            return self._feed(ev)
        except Exception as e:        # a bug on odd input must not stop the stream
            self.errors += 1
            log.error("FreeSWITCH tracker: %s on %s event (Unique-ID %s); event skipped",
                      type(e).__name__, _get(ev, "Event-Name") or "?",
                      _get(ev, "Unique-ID") or "-", exc_info=True)
            return []

    def open_calls(self) -> int:
        return len({id(c) for c in self._calls.values() if c.legs})

    def flush(self) -> list[CallRecord]:
        """Calls still open or held at the end of the input (replay may ignore them)."""
        out = [self._emit(c) for c in list(self._held.values())]
        self._held.clear()
        seen = set()
        for c in list(self._calls.values()):
            if id(c) in seen or not c.legs:
                continue
            seen.add(id(c))
            c.notes.append("still open at the end of the events")
            out.append(self._emit(c))
        self._calls.clear()
        self._parent.clear()
        return out

    def adopt_channel(self, row: dict) -> list[CallRecord]:
        """A row of `show channels as json` (after a (re)connect): a channel that is up now
        and whose earlier events we may have missed."""
        uid = str(row.get("uuid") or "")
        if not uid or uid in self._finished:
            return []
        if self._reconcile_seen is not None:
            self._reconcile_seen.add(uid)
        call = self._call_of(uid)
        leg = call.legs.get(uid) if call else None
        if leg is None:
            leg = self._new_leg(uid)
            leg.adopted = True
            leg.name = str(row.get("name") or "")
            leg.direction = str(row.get("direction") or "")
            leg.context = str(row.get("initial_context") or row.get("context") or "")
            leg.dest = str(row.get("initial_dest") or row.get("dest") or "")
            leg.dest_is_first = bool(row.get("initial_dest"))
            leg.cid_num = str(row.get("initial_cid_num") or row.get("cid_num") or "")
            leg.cid_name = str(row.get("initial_cid_name") or row.get("cid_name") or "")
            leg.profile = _profile_of(leg.name)
            leg.created = _epoch(row.get("created_epoch"))
            if str(row.get("callstate") or "") in ("ACTIVE", "HELD"):
                leg.answered = leg.created
            call = self._attach(uid, leg)
            call.notes.append(f"channel {leg.name or uid} was already up when we connected "
                              "(picked up from `show channels`)")
        for other in (row.get("call_uuid"),):
            if other and other != uid:
                self._union(uid, str(other))
        return []

    # -- dispatch ----------------------------------------------------------------------------

    def _feed(self, ev: dict) -> list[CallRecord]:
        name = _get(ev, "Event-Name")
        ts = _ts(ev)
        out: list[CallRecord] = []
        if ev.get(RECONCILE_KEY):
            if name == RECONCILE_DONE:
                out.extend(self._reconcile_done(ev, ts))
            elif name == RECONCILE_ROW:
                if self._reconcile_seen is None:
                    self._reconcile_seen = set()
                self.adopt_channel(ev)
            return out
        if name == "CUSTOM":
            sub = _get(ev, "Event-Subclass")
            if sub == "callcenter::info":
                self._on_callcenter(ev, ts)
            elif sub == "vm::maintenance":
                self._on_vm(ev, ts)
            elif sub == dv.FS_OUTCOME_SUBCLASS:
                self._on_outcome(ev)
            out.extend(self._release(ts))
            return out
        uid = _get(ev, "Unique-ID")
        if not uid or not name.startswith(("CHANNEL_", "PLAYBACK_", "RECORD_", "CALL_UPDATE")):
            out.extend(self._release(ts))
            return out
        if uid in self._finished:
            return out                  # a late event of a call already decided
        call = self._call_of(uid)
        leg = call.legs.get(uid) if call else None
        if leg is None:
            if name == "CHANNEL_STATE" and _get(ev, "Channel-State") in ("CS_DESTROY",
                                                                       "CS_REPORTING"):
                return out
            leg = self._new_leg(uid)
            self._fill(leg, ev, ts, first=True)
            if name not in _BIRTH and not (name == "CHANNEL_STATE" and _get(
                    ev, "Channel-State") in ("CS_NEW", "CS_INIT", "CS_ROUTING")):
                leg.adopted = True
                leg.dest_is_first = False
            call = self._attach(uid, leg)
            if leg.adopted and leg.direction == "inbound" and not leg.loopback:
                call.notes.append(f"joined {leg.name or uid} mid-call ({name} was the first "
                                  "event seen of it)")
        # links to other legs
        for key in _LINK_VARS:
            other = _get(ev, key)
            if other and other != uid:
                if key == "variable_last_bridge_to" and name != "CHANNEL_HANGUP_COMPLETE":
                    continue
                call = self._union(uid, other)
        call = self._call_of(uid)
        if ts is not None:
            call.last_ts = ts
        else:                   # no usable time on this event: the call's latest one stands in
            ts = call.last_ts
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, call, leg, ev, ts)
        else:
            self._vars(call, leg, ev)
        out.extend(self._check(call, ts))
        out.extend(self._release(ts))
        return out

    # -- legs and calls ------------------------------------------------------------------

    def _new_leg(self, uid: str) -> _Leg:
        self._seq += 1
        return _Leg(uid=uid, seq=self._seq)

    def _find(self, uid: str) -> str:
        p = self._parent
        root = uid
        while p.get(root, root) != root:
            root = p[root]
        while p.get(uid, uid) != root:           # path compression
            nxt = p[uid]
            p[uid] = root
            uid = nxt
        return root

    def _call_of(self, uid: str) -> _Call | None:
        if uid not in self._parent:
            return None
        return self._calls.get(self._find(uid))

    def _attach(self, uid: str, leg: _Leg) -> _Call:
        if uid not in self._parent:
            self._parent[uid] = uid
        root = self._find(uid)
        call = self._calls.get(root)
        if call is None:
            call = _Call(root=root)
            call.ids.add(uid)
            self._calls[root] = call
        call.legs[uid] = leg
        return call

    def _union(self, a: str, b: str) -> _Call | None:
        if b in self._finished:
            return self._call_of(a)
        for x in (a, b):
            if x not in self._parent:
                self._parent[x] = x
        ra, rb = self._find(a), self._find(b)
        ca, cb = self._calls.get(ra), self._calls.get(rb)
        if ra == rb:
            return ca
        if ca is None and cb is None:
            self._parent[rb] = ra
            return None
        if ca is None:
            ra, rb, ca, cb = rb, ra, cb, ca
        self._parent[rb] = ra
        ca.ids.add(b)
        ca.ids.add(a)
        if cb is not None:
            self._merge(ca, cb)
            self._calls.pop(rb, None)
            self._held.pop(rb, None)
        return ca

    @staticmethod
    def _merge(into: _Call, other: _Call) -> None:
        into.legs.update(other.legs)
        into.ids |= other.ids
        into.edges |= other.edges
        for k, v in other.bridged_at.items():
            into.bridged_at.setdefault(k, v)
        into.dials.extend(other.dials)
        into.picked_off.extend(other.picked_off)
        for f in ("queue", "queue_cause", "queue_cancel_reason", "queue_agent",
                  "queue_agent_uuid", "vm_leg"):
            if not getattr(into, f):
                setattr(into, f, getattr(other, f))
        for f in ("queue_started", "queue_ended", "voicemail", "voicemail_lua",
                  "voicemail_left", "gone_in_gap"):
            setattr(into, f, getattr(into, f) or getattr(other, f))
        into.closed_marks.extend(other.closed_marks)
        into.open_marks.extend(other.open_marks)
        into.notes.extend(other.notes)
        into.done_ts = None

    def _fill(self, leg: _Leg, ev: dict, ts: float | None, first: bool = False) -> None:
        g = ev.get
        if not leg.name:
            leg.name = g("Channel-Name") or g("Caller-Channel-Name") or ""
            leg.profile = _profile_of(leg.name)
        if not leg.direction:
            leg.direction = g("Call-Direction") or ""
        if not leg.context:
            leg.context = g("Caller-Context") or ""
        if not leg.dest:
            leg.dest = g("Caller-Destination-Number") or ""
            leg.dest_is_first = first
        if not leg.cid_num:
            leg.cid_num = g("Caller-Caller-ID-Number") or ""
            leg.cid_name = g("Caller-Caller-ID-Name") or ""
        if leg.created is None:
            leg.created = _usec(g("Caller-Channel-Created-Time")) or ts
        self._vars_leg(leg, ev)

    @staticmethod
    def _vars_leg(leg: _Leg, ev: dict) -> None:
        g = ev.get
        if not leg.req_user:
            leg.req_user = g("variable_sip_req_user") or g("variable_sip_to_user") or ""
        if not leg.user_name:
            leg.user_name = g("variable_user_name") or ""
        if not leg.gateway:
            leg.gateway = g("variable_sip_gateway_name") or g("variable_sip_gateway") or ""
        if not leg.profile:
            leg.profile = g("variable_sofia_profile_name") or ""
        if g("Caller-Privacy-Hide-Number") == "true":
            leg.hide_number = True
        p = g("variable_sip_Privacy") or g("variable_privacy")
        if p:
            leg.privacy = p
        if not leg.loopback:
            leg.loopback = g("variable_loopback_leg") or ""

    def _vars(self, call: _Call, leg: _Leg, ev: dict) -> None:
        self._vars_leg(leg, ev)
        if self.s.after_hours_markers:
            self._markers_vars(call, ev)

    # -- events -------------------------------------------------------------------------------

    def _on_create(self, call, leg, ev, ts):
        self._fill(leg, ev, ts, first=True)
        self._vars(call, leg, ev)
        self._markers_dest(call, leg, ev)

    def _on_answer(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        if leg.answered is None:
            leg.answered = ts if ts is not None else (leg.created or 0.0)
            if not (leg.bridge_open and not leg.bridge_data.startswith("loopback/")):
                leg.app_answered = leg.direction == "inbound" and bool(leg.app)

    def _on_bridge(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        other = _get(ev, "Other-Leg-Unique-ID")
        if other:
            call.edges.add((leg.uid, other))
            call.bridged_at.setdefault(leg.uid, ts or 0.0)
            call.bridged_at.setdefault(other, ts or 0.0)

    def _on_execute(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        app = _get(ev, "Application")
        data = _get(ev, "Application-Data")
        leg.app, leg.app_data = app, data
        if app == "bridge":
            leg.bridge_open = True
            leg.bridge_data = data
        elif app == "voicemail":
            first = data.split()[0] if data.split() else ""
            if first != "check":
                call.voicemail = True
                call.vm_leg = call.vm_leg or leg.uid
        elif app == "lua" and "voicemail" in data and " check" not in data:
            # FusionPBX: `lua app.lua voicemail` (it keeps its own messages: no vm events)
            call.voicemail = True
            call.voicemail_lua = True
            call.vm_leg = call.vm_leg or leg.uid
        elif app in ("set", "export", "multiset", "push", "unshift") and data:
            self._markers_set(call, data)
        elif app in ("playback", "play_and_get_digits", "endless_playback"):
            self._markers_play(call, data)
        elif app == "transfer":
            pass
        self._markers_dest(call, leg, ev)

    def _on_execute_complete(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        app = _get(ev, "Application")
        if app == "bridge" and leg.bridge_open:
            leg.bridge_open = False
            self._dial_done(call, leg, ev, _get(ev, "Application-Data") or leg.bridge_data)
        if app == leg.app:
            leg.app, leg.app_data = "", ""
        self._markers_dest(call, leg, ev)

    def _on_playback(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        path = _get(ev, "Playback-File-Path") or _get(ev, "variable_current_application_data")
        if path:
            self._markers_play(call, path)

    def _on_hangup_complete(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        if ts is None:       # no usable time on the event: the last one the call had
            ts = leg.ended or call.last_ts or leg.created or 0.0
        leg.ended = ts
        leg.cause = _get(ev, "Hangup-Cause") or leg.cause
        leg.hangup_disposition = _get(ev, "variable_sip_hangup_disposition")
        leg.originate_disposition = _get(ev, "variable_originate_disposition")
        leg.dialstatus = _get(ev, "variable_DIALSTATUS")
        if leg.answered is None:
            at = _usec(_get(ev, "Caller-Channel-Answered-Time"))
            if at:
                leg.answered = at
        if leg.bridge_open:
            # the caller hung up inside the bridge: its outcome is on this event
            leg.bridge_open = False
            self._dial_done(call, leg, ev, leg.bridge_data)
        last = _get(ev, "variable_last_bridge_to")
        if last and last != leg.uid:
            call.edges.add((leg.uid, last))
            bt = _usec(_get(ev, "Caller-Channel-Bridged-Time"))
            if bt:
                call.bridged_at.setdefault(leg.uid, bt)
                call.bridged_at.setdefault(last, bt)
        if leg.cause == "PICKED_OFF" or leg.originate_disposition == "PICKED_OFF":
            if leg.direction == "outbound":
                call.picked_off.append(leg.uid)
        other_lb = _get(ev, "variable_other_loopback_leg_uuid")
        if other_lb:
            call.edges.add((leg.uid, other_lb))
        self._markers_dest(call, leg, ev)

    def _on_create_or_originate(self, call, leg, ev, ts):
        self._on_create(call, leg, ev, ts)
        other_lb = _get(ev, "variable_other_loopback_leg_uuid")
        if other_lb:
            call.edges.add((leg.uid, other_lb))

    def _on_destroy(self, call, leg, ev, ts):
        if leg.ended is None:
            self._on_hangup_complete(call, leg, ev, ts)
        leg.destroyed = True

    def _on_callcenter(self, ev, ts):
        action = _get(ev, "CC-Action")
        member = _get(ev, "CC-Member-Session-UUID")
        if not member or member in self._finished:
            return
        uid = _get(ev, "Unique-ID")
        call = self._call_of(member)
        if call is None and uid:
            call = self._call_of(uid)
        if call is None:
            return                     # a member we never saw: nothing to attach it to
        if uid and uid != member:
            call = self._union(member, uid) or call
        if action == "member-queue-start":
            call.queue_started = True
            call.queue = call.queue or _get(ev, "CC-Queue")
        elif action == "member-queue-end":
            call.queue_started = True
            call.queue_ended = True
            call.queue = call.queue or _get(ev, "CC-Queue")
            call.queue_cause = _get(ev, "CC-Cause")
            call.queue_cancel_reason = _get(ev, "CC-Cancel-Reason")
            if _get(ev, "CC-Agent") and call.queue_cause == "Terminated":
                call.queue_agent = call.queue_agent or _get(ev, "CC-Agent")
        elif action == "bridge-agent-start":
            call.queue_agent = _get(ev, "CC-Agent")
            call.dials.append((DIAL_ANSWER, "bridge-agent-start", f"queue agent {call.queue_agent}"))
            call.queue_agent_uuid = _get(ev, "CC-Agent-UUID")
            if call.queue_agent_uuid:
                self._union(member, call.queue_agent_uuid)
        elif action == "bridge-agent-fail":
            raw = _get(ev, "CC-Hangup-Cause")
            res = _dial_result(raw)
            if res:
                call.dials.append((res, raw, f"queue agent {_get(ev, 'CC-Agent')}"))
        if ts is not None:
            call.last_ts = ts

    def _on_vm(self, ev, ts):
        if _get(ev, "VM-Action") != "leave-message":
            return
        vmu = _get(ev, "VM-UUID") or _get(ev, "Unique-ID")
        call = self._call_of(vmu) if vmu else None
        if call is None:
            if vmu and vmu in self._finished:
                log.warning("FreeSWITCH: a voicemail message was left on call leg %s after "
                            "the call was decided", vmu)
            return
        call.voicemail = True
        call.voicemail_left = True
        call.vm_leg = call.vm_leg or vmu

    def _on_outcome(self, ev):
        """Our snippet's closed branch (dialplan_snippets/freeswitch): the `event` app fires
        textback::outcome with AfterHours: 1 on the caller's channel."""
        call = self._call_of(_get(ev, "Unique-ID"))
        if call is not None and _get(ev, dv.H_AFTER_HOURS) == "1":
            self._mark(call, _OUTCOME_MARKER)

    def _dial_done(self, call: _Call, leg: _Leg, ev: dict, data: str) -> None:
        raw = (_get(ev, "variable_originate_disposition") or _get(ev, "variable_DIALSTATUS")
               or "")
        target = data or ""
        if target.startswith("loopback/") and "voicemail" in target:
            return                     # voicemail through a loopback leg: not a dial
        if raw.lower() == "failure":
            raw = _get(ev, "variable_originate_failed_cause") or raw
        res = _dial_result(raw)
        if res:
            call.dials.append((res, raw, f"bridge {_short(target)}"))

    # -- markers -------------------------------------------------------------------------------

    def _markers_set(self, call: _Call, data: str) -> None:
        if data.startswith("^^") and len(data) > 2:
            parts = data[3:].split(data[2])
        else:
            parts = [data]
        for part in parts:
            k, sep, v = part.partition("=")
            if not sep:
                continue
            k = k.strip()
            for m in self.s.after_hours_markers:
                if m.kind == "variable" and m.key == k and m.value == v.strip():
                    self._mark(call, m)

    def _markers_vars(self, call: _Call, ev: dict) -> None:
        for m in self.s.after_hours_markers:
            if m.kind == "variable" and ev.get("variable_" + m.key) == m.value:
                self._mark(call, m)

    def _markers_play(self, call: _Call, path: str) -> None:
        base = path.replace("\\", "/").rsplit("/", 1)[-1]
        stem = base.rsplit(".", 1)[0]
        for m in self.s.after_hours_markers:
            if m.kind == "playback" and m.value in (path, base, stem):
                self._mark(call, m)

    def _markers_dest(self, call: _Call, leg: _Leg, ev: dict) -> None:
        dest = ev.get("Caller-Destination-Number")
        if not dest:
            return
        for m in self.s.after_hours_markers:
            if m.kind == "destination" and m.value == dest and (
                    not m.key or m.key == ev.get("Caller-Context")):
                self._mark(call, m)

    @staticmethod
    def _mark(call: _Call, m: Marker) -> None:
        d = m.describe()
        lst = call.closed_marks if m.closed else call.open_marks
        if d not in lst:
            lst.append(d)

    # -- finishing -----------------------------------------------------------------------------

    def _check(self, call: _Call, ts: float | None) -> list[CallRecord]:
        if call is None or not call.legs:
            return []
        if not all(l.destroyed for l in call.legs.values()):
            return []
        origin = _origin(call, self.s)
        if origin is None or origin.ended is None:
            return []
        if call.queue_started and not call.queue_ended and not call.gone_in_gap:
            if call.root not in self._held:
                call.done_ts = ts
                call.held_at_event = self._events
                self._held[call.root] = call
            return []
        self._held.pop(call.root, None)
        return [self._emit(call)]

    def _release(self, ts: float | None) -> list[CallRecord]:
        if not self._held:
            return []
        out = []
        for root, call in list(self._held.items()):
            waited_events = self._events - call.held_at_event
            waited = (ts - call.done_ts) if (ts is not None and call.done_ts is not None) else 0
            if call.queue_ended or waited >= self.s.hold_seconds or \
                    waited_events >= self.s.hold_events:
                del self._held[root]
                if not call.queue_ended:
                    call.notes.append("no member-queue-end from mod_callcenter came after the "
                                      "caller hung up")
                out.append(self._emit(call))
        return out

    def _reconcile_done(self, ev: dict, ts: float | None) -> list[CallRecord]:
        seen = self._reconcile_seen or set()
        listed = _get(ev, "Channel-UUIDs")
        if listed:
            seen |= {u for u in listed.split(",") if u}
        self._reconcile_seen = None
        out = []
        for call in {id(c): c for c in self._calls.values() if c.legs}.values():
            gone = [l for l in call.legs.values() if not l.destroyed and l.uid not in seen]
            if not gone:
                continue
            for l in gone:
                l.destroyed = True
                if l.ended is None:
                    l.ended = ts if ts is not None else (call.last_ts or l.created or 0.0)
            call.gone_in_gap = True
            call.notes.append(f"{len(gone)} channel(s) ended while the event socket was "
                              "down: their hangup was not seen")
            out.extend(self._check(call, ts))
        return out

    def _forget(self, call: _Call) -> None:
        for uid in call.ids | set(call.legs):
            self._parent.pop(uid, None)
            self._calls.pop(uid, None)
            self._finished[uid] = None
        self._calls.pop(call.root, None)
        while len(self._finished) > self.s.remember_finished:
            self._finished.popitem(last=False)

    def _emit(self, call: _Call) -> CallRecord:
        rec = self._record(call)
        self._forget(call)
        return rec

    # -- the record -------------------------------------------------------------------------

    def _kind(self, leg: _Leg) -> tuple[str, str]:
        name = leg.name
        tech, _, rest = name.partition("/")
        if tech == "loopback":
            return "local", rest.split("-")[0]
        if tech == "sofia":
            prof, _, tail = rest.partition("/")
            if prof == "gateway":
                gw, _, num = tail.partition("/")
                return "trunk", num.split("@")[0]
            endpoint = tail.split("@")[0]
            if leg.direction == "outbound":
                if prof in self.s.inbound_profiles or (leg.gateway and self._is_gateway(leg)):
                    return "trunk", endpoint
                return "extension", endpoint
            if self._external_inbound(leg):
                return "caller", leg.cid_num or endpoint
            return "extension", leg.user_name or leg.cid_num or endpoint
        if tech in _PHONE_TECHS:
            return "extension", rest.split("@")[0]
        if tech in _TRUNK_TECHS:
            return "trunk", rest.rsplit("/", 1)[-1]
        return "other", rest

    def _is_gateway(self, leg: _Leg) -> bool:
        return not self.s.gateways or leg.gateway in self.s.gateways

    def _external_inbound(self, leg: _Leg) -> bool:
        if leg.direction != "inbound" or leg.loopback or leg.name.startswith("loopback/"):
            return False
        if leg.user_name:
            return False            # an authenticated desk phone
        if leg.gateway and self._is_gateway(leg):
            return True
        return leg.context in self.s.inbound_contexts or leg.profile in self.s.inbound_profiles

    def _record(self, call: _Call) -> CallRecord:
        s = self.s
        notes = list(call.notes)
        origin = _origin(call, s) or min(call.legs.values(), key=lambda l: l.seq)
        kinds = {uid: self._kind(l) for uid, l in call.legs.items()}
        okind = kinds[origin.uid][0]
        # direction
        if okind == "caller":
            direction = INBOUND
        else:
            trunk = any(k == "trunk" for k, _ in kinds.values())
            direction = OUTBOUND if trunk or (origin.direction == "outbound" and
                                              kinds[origin.uid][0] == "trunk") else INTERNAL
            who = origin.user_name or origin.cid_num or origin.name
            notes.append(f"started by {who} ({'authenticated user' if origin.user_name else 'context ' + (origin.context or '?')}"
                         f"{', ' + origin.profile + ' profile' if origin.profile else ''})"
                         + (": it went out through a trunk" if direction == OUTBOUND else
                            ": it stayed inside the PBX"))
        # called number: the DID as the caller dialled it
        if origin.dest_is_first and origin.dest:
            called = origin.dest
        else:
            called = origin.req_user or origin.dest
            if origin.adopted:
                notes.append("the dialled number comes from the SIP request (first events "
                             "of the call were not seen)")
        caller = origin.cid_num
        withheld = False
        why_withheld = ""
        if origin.hide_number:
            withheld, why_withheld = True, "Caller-Privacy-Hide-Number is true"
        elif "id" in re.split(r"[^a-z0-9-]+", origin.privacy.lower()):   # id;critical, ARRAY::id|:...
            withheld, why_withheld = True, f"SIP Privacy: {origin.privacy}"
        elif caller.strip().lower() in _ANON:
            withheld, why_withheld = True, f"caller number {caller or 'absent'!r}"
        if withheld:
            notes.append(f"the caller's number is withheld ({why_withheld})")
        # who answered: a person's leg reachable from the caller through bridges
        human, human_ts = self._human(call, origin, kinds)
        answered_by = ""
        if human is not None:
            answered_by = kinds[human.uid][1]
            kind = kinds[human.uid][0]
            via = " (queue agent)" if call.queue_agent_uuid == human.uid or (
                call.queue_agent and call.queue) else ""
            notes.append(f"bridged to {human.name}{via}: answered by a person"
                         if kind != "trunk" else
                         f"bridged to the outside number {answered_by} ({human.name}): "
                         "answered there")
        elif call.picked_off:
            leg = call.legs.get(call.picked_off[0])
            answered_by = kinds[leg.uid][1] if leg else ""
            human_ts = leg.ended if leg else None
            notes.append(f"the ringing phone {answered_by} was picked up from another phone "
                         "(PICKED_OFF): answered by a person")
        answered_by_human = human is not None or bool(call.picked_off)
        # system answer
        system_answered = bool(origin.answered is not None and (
            origin.app_answered or not answered_by_human or
            (human_ts is not None and origin.answered < human_ts - 0.5)))
        if system_answered and not answered_by_human:
            loop = any(k == "local" for k, _ in kinds.values())
            notes.append("the PBX answered the caller itself"
                         + (" (voicemail through a loopback leg)" if loop and call.voicemail
                            else ""))
        # times
        start = origin.created
        end = origin.ended
        talk = ring = None
        if answered_by_human and human_ts is not None and end is not None:
            talk = max(0.0, end - human_ts)
            if start is not None:
                ring = max(0.0, human_ts - start)
        elif start is not None:
            stop = origin.answered if origin.answered is not None else end
            if stop is not None:
                ring = max(0.0, stop - start)
        # dial results, in order
        dial_results = tuple(r for r, _, _ in call.dials)
        for r, raw, what in call.dials:
            notes.append(f"{what}: {raw} ({r})")
        # caller gave up; a PBX shutting down hangs up every channel with SYSTEM_SHUTDOWN and
        # cancels the ringing phones under the caller's bridge: that is not the caller
        shutdown = origin.cause == "SYSTEM_SHUTDOWN"
        cancelled = (not answered_by_human) and not shutdown and (
            origin.cause == "ORIGINATOR_CANCEL" or origin.hangup_disposition == "recv_cancel"
            or (bool(call.dials) and call.dials[-1][0] == DIAL_CANCEL
                and call.dials[-1][1] in ("ORIGINATOR_CANCEL", "CANCEL")))
        if cancelled:
            notes.append("the caller hung up while it was ringing")
        elif shutdown and not answered_by_human:
            notes.append("FreeSWITCH shut down (Hangup-Cause SYSTEM_SHUTDOWN) before anyone "
                         "answered: the caller did not hang up, the PBX cut the call")
        # queue
        queue_abandoned = False
        if call.queue_started:
            q = call.queue or "?"
            if answered_by_human:
                notes.append(f"queue {q}: an agent took it")
            elif call.queue_cause == "Cancel" and call.queue_cancel_reason not in (
                    "TIMEOUT", "NO_AGENT_TIMEOUT", "EXIT_WITH_KEY"):
                queue_abandoned = True
                notes.append(f"queue {q}: the caller left before an agent answered "
                             f"(member-queue-end {call.queue_cause}"
                             f"{'/' + call.queue_cancel_reason if call.queue_cancel_reason else ''})")
            elif call.queue_cause == "Cancel":
                notes.append(f"queue {q}: the queue gave up ({call.queue_cancel_reason}) and "
                             "the dialplan went on")
            elif not call.queue_ended and origin.ended is not None:
                queue_abandoned = True
                notes.append(f"queue {q}: the caller hung up in the queue (no member-queue-end "
                             "seen)")
            else:
                notes.append(f"queue {q}: left with {call.queue_cause or 'no cause'}")
        # voicemail
        voicemail_left: bool | None = None
        if call.voicemail:
            if call.voicemail_left:
                voicemail_left = True
                notes.append("a voicemail message was left (vm::maintenance leave-message)")
            elif call.voicemail_lua:
                notes.append("voicemail reached (FusionPBX voicemail: whether a message was "
                             "left is not on the event socket)")
            else:
                voicemail_left = False
                notes.append("voicemail reached, no message left")
        # after hours
        after: bool | None = None
        marker = ""
        if call.closed_marks:
            after, marker = True, call.closed_marks[0]
            notes.append(f"the PBX routed it as closed: {marker}")
        elif call.open_marks:
            after, marker = False, call.open_marks[0]
        legs = tuple(
            Leg(id=l.uid, name=l.name, kind=kinds[l.uid][0], endpoint=kinds[l.uid][1],
                answered=l.answered is not None, hangup_cause=l.cause)
            for l in sorted(call.legs.values(), key=lambda l: l.seq))
        return CallRecord(
            pbx="freeswitch", call_id=origin.uid, caller=caller, called=called,
            direction=direction, caller_name=origin.cid_name, withheld=withheld,
            started_at=start, ended_at=end, answered_by_human=answered_by_human,
            answered_by=answered_by, talk_seconds=talk, ring_seconds=ring,
            dial_results=dial_results, caller_cancelled=cancelled,
            hangup_cause=origin.cause, queue=call.queue, queue_abandoned=queue_abandoned,
            voicemail=call.voicemail, voicemail_left=voicemail_left,
            pbx_after_hours=after, after_hours_marker=marker,
            system_answered=system_answered, legs=legs, notes=tuple(notes))

    def _human(self, call: _Call, origin: _Leg, kinds: dict) -> tuple[_Leg | None, float | None]:
        adj: dict[str, set[str]] = {}
        for a, b in call.edges:
            adj.setdefault(a, set()).add(b)
            adj.setdefault(b, set()).add(a)
        seen = {origin.uid}
        todo = [origin.uid]
        best: tuple[_Leg, float | None] | None = None
        while todo:
            cur = todo.pop()
            for nxt in adj.get(cur, ()):
                if nxt in seen:
                    continue
                seen.add(nxt)
                todo.append(nxt)
                leg = call.legs.get(nxt)
                if leg is None:
                    continue
                kind = kinds[nxt][0]
                if kind in ("extension", "trunk") and leg.answered is not None and \
                        not leg.loopback:
                    t = call.bridged_at.get(nxt) or leg.answered
                    if best is None or (t is not None and best[1] is not None and t < best[1]):
                        best = (leg, t)
        return best if best is not None else (None, None)


def _origin(call: _Call, s: FsTrackerSettings) -> _Leg | None:
    legs = sorted(call.legs.values(), key=lambda l: l.seq)
    if not legs:
        return None
    for l in legs:
        if l.direction == "inbound" and not l.loopback and not l.name.startswith("loopback/"):
            if l.user_name or l.context in s.inbound_contexts or l.profile in s.inbound_profiles \
                    or l.gateway:
                if not l.user_name:
                    return l
    for l in legs:
        if l.direction == "inbound" and not l.loopback and not l.name.startswith("loopback/"):
            return l
    return legs[0]


def _dial_result(raw: str) -> str:
    raw = (raw or "").upper()
    if raw in _ANSWER:
        return DIAL_ANSWER
    if raw in _NOANSWER:
        return DIAL_NOANSWER
    if raw in _BUSY:
        return DIAL_BUSY
    if raw in _CANCEL:
        return DIAL_CANCEL
    if raw in _UNAVAILABLE:
        return DIAL_UNAVAILABLE
    return ""


_VARBLOCK = re.compile(r"\{[^}]*\}|\[[^\]]*\]|<[^>]*>")


def _short(s: str, n: int = 80) -> str:
    """A dial string, shortened to its targets: `user/1000@d` -> `user/1000`."""
    targets = []
    for t in re.split(r",|\||:_:", _VARBLOCK.sub("", s)):
        t = t.strip()
        if not t:
            continue
        tech, _, rest = t.partition("/")
        if tech == "sofia":
            prof, _, tail = rest.partition("/")
            tail = tail[4:] if tail.startswith("sip:") else tail
            t = f"sofia/{prof}/{tail.split('@')[0]}"
        else:
            t = t.split("@")[0]
        targets.append(t)
    out = ", ".join(targets) or s
    return out if len(out) <= n else out[:n - 1] + "…"


def _get(ev: dict, key: str) -> str:
    v = ev.get(key)
    if v is None:
        return ""
    if isinstance(v, list):
        return str(v[-1]) if v else ""
    return str(v)


_LAST_EPOCH = 253402300799          # 9999-12-31: later than this is not a time


def _usec(v) -> float | None:
    """FreeSWITCH's microsecond timestamps; None for anything else (a 300-digit number
    overflows a float: it must cost the timestamp, never the event)."""
    if not isinstance(v, str) or not v.isascii() or not v.isdigit() or len(v) > 19:
        return None
    n = int(v)
    return n / 1e6 if 0 < n <= _LAST_EPOCH * 1_000_000 else None


def _epoch(v) -> float | None:
    """A `show channels` epoch in seconds, or None."""
    try:
        t = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return t if 0 < t <= _LAST_EPOCH else None        # also false for nan and inf


def _ts(ev: dict) -> float | None:
    return _usec(ev.get("Event-Date-Timestamp"))


def _profile_of(name: str) -> str:
    if name.startswith("sofia/"):
        return name.split("/", 2)[1]
    return ""


_HANDLERS = {
    "CHANNEL_CREATE": FreeswitchTracker._on_create_or_originate,
    "CHANNEL_ORIGINATE": FreeswitchTracker._on_create_or_originate,
    "CHANNEL_ANSWER": FreeswitchTracker._on_answer,
    "CHANNEL_BRIDGE": FreeswitchTracker._on_bridge,
    "CHANNEL_EXECUTE": FreeswitchTracker._on_execute,
    "CHANNEL_EXECUTE_COMPLETE": FreeswitchTracker._on_execute_complete,
    "PLAYBACK_START": FreeswitchTracker._on_playback,
    "CHANNEL_HANGUP_COMPLETE": FreeswitchTracker._on_hangup_complete,
    "CHANNEL_DESTROY": FreeswitchTracker._on_destroy,
}


def records_from_stream(data: bytes, settings: FsTrackerSettings | None = None,
                        chunks: list[int] | None = None) -> list[CallRecord]:
    """Framing + tracker over a whole recorded ESL stream, in the order calls finish, then
    the calls still open at its end."""
    from pbx_textback.core.pbx.eslframe import EslFraming
    framing, tracker, out = EslFraming(), FreeswitchTracker(settings), []
    pieces = [data] if not chunks else split_at(data, chunks)
    for piece in pieces:
        for fr in framing.feed(piece):
            if "Event-Name" in fr:
                out.extend(tracker.feed(fr))
    framing.eof()
    return out + tracker.flush()


def inbound_sms(ev: dict, settings: FsTrackerSettings | None = None) -> tuple[str, str, str] | None:
    """A caller's text that reached FreeSWITCH from the carrier (RECV_MESSAGE on an inbound
    profile/context): (from, to, body), else None. Fired once per SIP MESSAGE; the MESSAGE
    events that follow are the chatplan's own re-deliveries of it."""
    s = settings or FsTrackerSettings()
    if ev.get("Event-Name") != "RECV_MESSAGE":
        return None
    if ev.get("context") not in s.inbound_contexts and ev.get("sip_profile") not in s.inbound_profiles:
        return None
    src, dst = ev.get("from_user") or "", ev.get("to_user") or ""
    if not src:
        return None
    return src, dst, ev.get("_body") or ""
