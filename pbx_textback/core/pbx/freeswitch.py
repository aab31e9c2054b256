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
from dataclasses import dataclass

from pbx_textback.core.model import DIAL_ANSWER, CallRecord, Marker
from pbx_textback.core.pbx import dialplan_vars as dv
from pbx_textback.core.pbx import freeswitch_markers as markers
from pbx_textback.core.pbx.freeswitch_call import (
    CallGraph, FsCall, FsLeg, epoch, get, profile_of, usec)
from pbx_textback.core.pbx.freeswitch_record import dial_result, origin_leg, record, short_dial
from pbx_textback.core.pbx.streams import split_at

log = logging.getLogger("pbx_textback.tracker")

RECONCILE_KEY = "_reconcile"
RECONCILE_ROW = "CHANNEL_RECONCILE"            # one row of `show channels as json`
RECONCILE_DONE = "CHANNEL_RECONCILE_DONE"      # the snapshot is complete ("Channel-UUIDs")

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


class FreeswitchTracker:
    def __init__(self, settings: FsTrackerSettings | None = None):
        self.s = settings or FsTrackerSettings()
        self.graph = CallGraph(self.s.remember_finished)
        self._var_keys = markers.var_keys(self.s.after_hours_markers)
        # the headers they read: most channel events carry none of them (one C-level test)
        self._var_heads = frozenset(h for h, _, _ in self._var_keys)
        self._var_plan = markers.by_header(self._var_keys)
        self._var_map = dict(self._var_plan)
        self._set_index = markers.set_index(self.s.after_hours_markers)
        self._play_index = markers.play_index(self.s.after_hours_markers)
        # on_dest reads only these (none by default), on every EXECUTE and EXECUTE_COMPLETE
        self._dest_markers = tuple(m for m in self.s.after_hours_markers if m.kind == "destination")
        self._held: dict[str, FsCall] = {}
        self._events = 0
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
                      type(e).__name__, get(ev, "Event-Name") or "?",
                      get(ev, "Unique-ID") or "-", exc_info=True)
            return []

    def open_calls(self) -> int:
        return len(self.graph.open_calls())

    def flush(self) -> list[CallRecord]:
        """Calls still open or held at the end of the input (replay may ignore them)."""
        out = [self._emit(c) for c in list(self._held.values())]
        self._held.clear()
        for c in self.graph.open_calls():
            c.notes.append("still open at the end of the events")
            out.append(self._emit(c))
        self.graph.clear()
        return out

    def adopt_channel(self, row: dict) -> list[CallRecord]:
        """A row of `show channels as json` (after a (re)connect): a channel that is up now
        and whose earlier events we may have missed."""
        uid = str(row.get("uuid") or "")
        if not uid or uid in self.graph.finished:
            return []
        if self._reconcile_seen is not None:
            self._reconcile_seen.add(uid)
        call = self.graph.call_of(uid)
        leg = call.legs.get(uid) if call else None
        if leg is None:
            leg = self.graph.new_leg(uid)
            leg.adopted = True
            leg.name = str(row.get("name") or "")
            leg.direction = str(row.get("direction") or "")
            leg.context = str(row.get("initial_context") or row.get("context") or "")
            leg.dest = str(row.get("initial_dest") or row.get("dest") or "")
            leg.dest_is_first = bool(row.get("initial_dest"))
            leg.cid_num = str(row.get("initial_cid_num") or row.get("cid_num") or "")
            leg.cid_name = str(row.get("initial_cid_name") or row.get("cid_name") or "")
            leg.profile = profile_of(leg.name)
            leg.created = epoch(row.get("created_epoch"))
            if str(row.get("callstate") or "") in ("ACTIVE", "HELD"):
                leg.answered = leg.created
            call = self.graph.attach(uid, leg)
            call.notes.append(f"channel {leg.name or uid} was already up when we connected "
                              "(picked up from `show channels`)")
        for other in (row.get("call_uuid"),):
            if other and other != uid:
                self._union(uid, str(other))
        return []

    # -- dispatch ----------------------------------------------------------------------------

    def _feed(self, ev: dict) -> list[CallRecord]:
        name = ev.get("Event-Name")
        if name.__class__ is not str:   # (get() only for what is not a plain str)
            name = get(ev, "Event-Name")
        ts = usec(ev.get("Event-Date-Timestamp"))
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
            sub = get(ev, "Event-Subclass")
            if sub == "callcenter::info":
                self._on_callcenter(ev, ts)
            elif sub == "vm::maintenance":
                self._on_vm(ev, ts)
            elif sub == dv.FS_OUTCOME_SUBCLASS:
                self._on_outcome(ev)
            out.extend(self._release(ts))
            return out
        uid = ev.get("Unique-ID")
        if uid.__class__ is not str:
            uid = get(ev, "Unique-ID")
        if not uid or not name.startswith(("CHANNEL_", "PLAYBACK_", "RECORD_", "CALL_UPDATE")):
            out.extend(self._release(ts))
            return out
        if uid in self.graph.finished:
            return out                  # a late event of a call already decided
        call = self.graph.call_of(uid)
        leg = call.legs.get(uid) if call else None
        if leg is None:
            if name == "CHANNEL_STATE" and get(ev, "Channel-State") in ("CS_DESTROY",
                                                                       "CS_REPORTING"):
                return out
            leg = self.graph.new_leg(uid)
            self._fill(leg, ev, ts, first=True)
            if name not in _BIRTH and not (name == "CHANNEL_STATE" and get(
                    ev, "Channel-State") in ("CS_NEW", "CS_INIT", "CS_ROUTING")):
                leg.adopted = True
                leg.dest_is_first = False
            call = self.graph.attach(uid, leg)
            if leg.adopted and leg.direction == "inbound" and not leg.loopback:
                call.notes.append(f"joined {leg.name or uid} mid-call ({name} was the first "
                                  "event seen of it)")
        # links to other legs
        raw = ev.get
        linked = False
        joined = leg.joined
        for key in _LINK_VARS:
            other = raw(key)            # get() only for what is not a plain str: most are absent
            if other is None:
                continue
            if other.__class__ is not str:
                other = get(ev, key)
            if other and other != uid and other not in joined:
                if key == "variable_last_bridge_to" and name != "CHANNEL_HANGUP_COMPLETE":
                    continue
                call = self._union(uid, other)
                if other not in self.graph.finished:   # a finished id was not joined: ask again
                    joined.add(other)
                linked = True
        if linked:              # a union may have moved this leg into another call
            call = self.graph.call_of(uid)
        if ts is not None:
            call.last_ts = ts
        else:                   # no usable time on this event: the call's latest one stands in
            ts = call.last_ts
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, call, leg, ev, ts)
        else:
            self._vars(call, leg, ev)
        # a call ends when all its legs are gone: while this event's own leg is up (nearly
        # every event), _check would say no after walking them all
        if leg.destroyed or call is None or call.legs.get(leg.uid) is not leg:
            out.extend(self._check(call, ts))
        if self._held:
            out.extend(self._release(ts))
        return out

    # -- legs and calls ------------------------------------------------------------------

    def _fill(self, leg: FsLeg, ev: dict, ts: float | None, first: bool = False) -> None:
        g = ev.get
        if not leg.name:
            leg.name = g("Channel-Name") or g("Caller-Channel-Name") or ""
            leg.profile = profile_of(leg.name)
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
            leg.created = usec(g("Caller-Channel-Created-Time")) or ts
        self._vars_leg(leg, ev)

    @staticmethod
    def _vars_leg(leg: FsLeg, ev: dict) -> None:
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

    def _vars(self, call: FsCall, leg: FsLeg, ev: dict) -> None:
        self._vars_leg(leg, ev)
        self._var_marks(call, ev)

    def _var_marks(self, call: FsCall, ev: dict) -> None:
        if self._var_keys:
            # the marker headers this event has (a dict view & a set: C walks the smaller);
            # one walk, not a test and then a walk: most channel events have some
            present = ev.keys() & self._var_heads
            if present:
                markers.on_var_present(self._var_map, present, call, ev)

    # -- events -------------------------------------------------------------------------------

    def _on_create(self, call, leg, ev, ts):
        self._fill(leg, ev, ts, first=True)
        self._var_marks(call, ev)       # (_fill read the leg's variables of this event)
        if self._dest_markers:
            markers.on_dest(self._dest_markers, call, ev)

    def _on_answer(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        if leg.answered is None:
            leg.answered = ts if ts is not None else (leg.created or 0.0)
            if not (leg.bridge_open and not leg.bridge_data.startswith("loopback/")):
                leg.app_answered = leg.direction == "inbound" and bool(leg.app)

    def _on_bridge(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        other = get(ev, "Other-Leg-Unique-ID")
        if other:
            call.edges.add((leg.uid, other))
            call.bridged_at.setdefault(leg.uid, ts or 0.0)
            call.bridged_at.setdefault(other, ts or 0.0)

    def _on_execute(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        app = get(ev, "Application")
        data = get(ev, "Application-Data")
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
            markers.on_set_indexed(self._set_index, call, data)
        elif app in ("playback", "play_and_get_digits", "endless_playback"):
            markers.on_play_indexed(self._play_index, call, data)
        elif app == "transfer":
            pass
        if self._dest_markers:
            markers.on_dest(self._dest_markers, call, ev)

    def _on_execute_complete(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        app = get(ev, "Application")
        if app == "bridge" and leg.bridge_open:
            leg.bridge_open = False
            self._dial_done(call, leg, ev, get(ev, "Application-Data") or leg.bridge_data)
        if app == leg.app:
            leg.app, leg.app_data = "", ""
        if self._dest_markers:
            markers.on_dest(self._dest_markers, call, ev)

    def _on_playback(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        path = get(ev, "Playback-File-Path") or get(ev, "variable_current_application_data")
        if path:
            markers.on_play_indexed(self._play_index, call, path)

    def _on_hangup_complete(self, call, leg, ev, ts):
        self._vars(call, leg, ev)
        if ts is None:       # no usable time on the event: the last one the call had
            ts = leg.ended or call.last_ts or leg.created or 0.0
        leg.ended = ts
        leg.cause = get(ev, "Hangup-Cause") or leg.cause
        leg.hangup_disposition = get(ev, "variable_sip_hangup_disposition")
        leg.originate_disposition = get(ev, "variable_originate_disposition")
        leg.dialstatus = get(ev, "variable_DIALSTATUS")
        if leg.answered is None:
            at = usec(get(ev, "Caller-Channel-Answered-Time"))
            if at:
                leg.answered = at
        if leg.bridge_open:
            # the caller hung up inside the bridge: its outcome is on this event
            leg.bridge_open = False
            self._dial_done(call, leg, ev, leg.bridge_data)
        last = get(ev, "variable_last_bridge_to")
        if last and last != leg.uid:
            call.edges.add((leg.uid, last))
            bt = usec(get(ev, "Caller-Channel-Bridged-Time"))
            if bt:
                call.bridged_at.setdefault(leg.uid, bt)
                call.bridged_at.setdefault(last, bt)
        if leg.cause == "PICKED_OFF" or leg.originate_disposition == "PICKED_OFF":
            if leg.direction == "outbound":
                call.picked_off.append(leg.uid)
        other_lb = get(ev, "variable_other_loopback_leg_uuid")
        if other_lb:
            call.edges.add((leg.uid, other_lb))
        if self._dest_markers:
            markers.on_dest(self._dest_markers, call, ev)

    def _on_create_or_originate(self, call, leg, ev, ts):
        self._on_create(call, leg, ev, ts)
        other_lb = get(ev, "variable_other_loopback_leg_uuid")
        if other_lb:
            call.edges.add((leg.uid, other_lb))

    def _on_destroy(self, call, leg, ev, ts):
        if leg.ended is None:
            self._on_hangup_complete(call, leg, ev, ts)
        leg.destroyed = True

    def _on_callcenter(self, ev, ts):
        action = get(ev, "CC-Action")
        member = get(ev, "CC-Member-Session-UUID")
        if not member or member in self.graph.finished:
            return
        uid = get(ev, "Unique-ID")
        call = self.graph.call_of(member)
        if call is None and uid:
            call = self.graph.call_of(uid)
        if call is None:
            return                     # a member we never saw: nothing to attach it to
        if uid and uid != member:
            call = self._union(member, uid) or call
        if action == "member-queue-start":
            call.queue_started = True
            call.queue = call.queue or get(ev, "CC-Queue")
        elif action == "member-queue-end":
            call.queue_started = True
            call.queue_ended = True
            call.queue = call.queue or get(ev, "CC-Queue")
            call.queue_cause = get(ev, "CC-Cause")
            call.queue_cancel_reason = get(ev, "CC-Cancel-Reason")
            if get(ev, "CC-Agent") and call.queue_cause == "Terminated":
                call.queue_agent = call.queue_agent or get(ev, "CC-Agent")
        elif action == "bridge-agent-start":
            call.queue_agent = get(ev, "CC-Agent")
            call.dials.append((DIAL_ANSWER, "bridge-agent-start", f"queue agent {call.queue_agent}"))
            call.queue_agent_uuid = get(ev, "CC-Agent-UUID")
            if call.queue_agent_uuid:
                self._union(member, call.queue_agent_uuid)
        elif action == "bridge-agent-fail":
            raw = get(ev, "CC-Hangup-Cause")
            res = dial_result(raw)
            if res:
                call.dials.append((res, raw, f"queue agent {get(ev, 'CC-Agent')}"))
        if ts is not None:
            call.last_ts = ts

    def _on_vm(self, ev, ts):
        if get(ev, "VM-Action") != "leave-message":
            return
        vmu = get(ev, "VM-UUID") or get(ev, "Unique-ID")
        call = self.graph.call_of(vmu) if vmu else None
        if call is None:
            if vmu and vmu in self.graph.finished:
                log.warning("FreeSWITCH: a voicemail message was left on call leg %s after "
                            "the call was decided", vmu)
            return
        call.voicemail = True
        call.voicemail_left = True
        call.vm_leg = call.vm_leg or vmu

    def _on_outcome(self, ev):
        """Our snippet's closed branch (dialplan_snippets/freeswitch): the `event` app fires
        textback::outcome with AfterHours: 1 on the caller's channel."""
        call = self.graph.call_of(get(ev, "Unique-ID"))
        if call is not None and get(ev, dv.H_AFTER_HOURS) == "1":
            markers.mark(call, _OUTCOME_MARKER)

    def _dial_done(self, call: FsCall, leg: FsLeg, ev: dict, data: str) -> None:
        raw = (get(ev, "variable_originate_disposition") or get(ev, "variable_DIALSTATUS")
               or "")
        target = data or ""
        if target.startswith("loopback/") and "voicemail" in target:
            return                     # voicemail through a loopback leg: not a dial
        if raw.lower() == "failure":
            raw = get(ev, "variable_originate_failed_cause") or raw
        res = dial_result(raw)
        if res:
            call.dials.append((res, raw, f"bridge {short_dial(target)}"))

    # -- finishing -----------------------------------------------------------------------------

    def _check(self, call: FsCall, ts: float | None) -> list[CallRecord]:
        if call is None or not call.legs:
            return []
        if not all(l.destroyed for l in call.legs.values()):
            return []
        origin = origin_leg(call, self.s)
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
        listed = get(ev, "Channel-UUIDs")
        if listed:
            seen |= {u for u in listed.split(",") if u}
        self._reconcile_seen = None
        out = []
        for call in self.graph.open_calls():
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

    def _emit(self, call: FsCall) -> CallRecord:
        rec = record(call, self.s)
        self.graph.forget(call)
        return rec

    def _union(self, a: str, b: str) -> FsCall | None:
        call, merged_away = self.graph.union(a, b)
        if merged_away:
            self._held.pop(merged_away, None)
        return call


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
