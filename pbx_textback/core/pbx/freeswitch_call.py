"""One FreeSWITCH call as the tracker builds it: its legs, and the graph that joins them. Pure.

Legs join by the ids FreeSWITCH puts in the events (see freeswitch.py); a union-find keeps
every leg id pointing at its call, so a late link merges two calls into one."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass


class FsLeg:
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
    # ids already joined to this leg's call: joined once, they stay in one call until it is
    # forgotten, so a later event naming them again (a b-leg names its a-leg on every
    # event) needs no union (an id of a finished call is not joined: never remembered)
    joined: set = field(default_factory=set, repr=False, compare=False)


@dataclass


class FsCall:
    root: str
    legs: dict[str, FsLeg] = field(default_factory=dict)
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
    # the variable-marker hits already marked on this call (id -> the hit, held so its id
    # stays its own): a set variable is on every later event of its channel, and marking it
    # again changes nothing (marks are only ever added); see markers.on_var_present
    var_hits: dict = field(default_factory=dict, repr=False, compare=False)
    notes: list[str] = field(default_factory=list)
    done_ts: float | None = None
    held_at_event: int = 0
    last_ts: float | None = None
    gone_in_gap: bool = False


class CallGraph:
    """Which call each leg id belongs to; the ids of finished calls are remembered a while
    so their late events are ignored."""
    def __init__(self, remember_finished: int):
        self.remember = remember_finished
        self._parent: dict[str, str] = {}
        self.calls: dict[str, FsCall] = {}
        self.finished: OrderedDict[str, None] = OrderedDict()
        self._seq = 0

    def open_calls(self) -> list[FsCall]:
        return list({id(c): c for c in self.calls.values() if c.legs}.values())

    def clear(self) -> None:
        self.calls.clear()
        self._parent.clear()

    def new_leg(self, uid: str) -> FsLeg:
        self._seq += 1
        return FsLeg(uid=uid, seq=self._seq)

    def find(self, uid: str) -> str:
        p = self._parent
        root = uid
        while p.get(root, root) != root:
            root = p[root]
        while p.get(uid, uid) != root:           # path compression
            nxt = p[uid]
            p[uid] = root
            uid = nxt
        return root

    def call_of(self, uid: str) -> FsCall | None:
        if uid not in self._parent:
            return None
        return self.calls.get(self.find(uid))

    def attach(self, uid: str, leg: FsLeg) -> FsCall:
        if uid not in self._parent:
            self._parent[uid] = uid
        root = self.find(uid)
        call = self.calls.get(root)
        if call is None:
            call = FsCall(root=root)
            call.ids.add(uid)
            self.calls[root] = call
        call.legs[uid] = leg
        return call

    def union(self, a: str, b: str) -> tuple[FsCall | None, str]:
        """The call both ids now belong to, and the root of a call merged away into it ('' if none)."""
        if b in self.finished:
            return self.call_of(a), ""
        for x in (a, b):
            if x not in self._parent:
                self._parent[x] = x
        ra, rb = self.find(a), self.find(b)
        ca, cb = self.calls.get(ra), self.calls.get(rb)
        if ra == rb:
            return ca, ""
        if ca is None and cb is None:
            self._parent[rb] = ra
            return None, ""
        if ca is None:
            ra, rb, ca, cb = rb, ra, cb, ca
        self._parent[rb] = ra
        ca.ids.add(b)
        ca.ids.add(a)
        if cb is not None:
            self.merge(ca, cb)
            self.calls.pop(rb, None)
            return ca, rb
        return ca, ""

    @staticmethod
    def merge(into: FsCall, other: FsCall) -> None:
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

    def forget(self, call: FsCall) -> None:
        for uid in call.ids | set(call.legs):
            self._parent.pop(uid, None)
            self.calls.pop(uid, None)
            self.finished[uid] = None
        self.calls.pop(call.root, None)
        while len(self.finished) > self.remember:
            self.finished.popitem(last=False)


def get(ev: dict, key: str) -> str:
    v = ev.get(key)
    if v.__class__ is str:      # nearly every value: no isinstance()/str() calls for it
        return v
    if v is None:
        return ""
    if isinstance(v, list):
        return str(v[-1]) if v else ""
    return str(v)


_LAST_EPOCH = 253402300799          # 9999-12-31: later than this is not a time
_LAST_USEC = _LAST_EPOCH * 1_000_000


def usec(v) -> float | None:
    """FreeSWITCH's microsecond timestamps; None for anything else (a 300-digit number
    overflows a float: it must cost the timestamp, never the event)."""
    if v.__class__ is str and len(v) == 16 and v.isdigit() and v.isascii():
        n = int(v)              # the usual value (2001..2286): below _LAST_USEC
        return n / 1e6 if n else None
    if not isinstance(v, str) or not v.isascii() or not v.isdigit() or len(v) > 19:
        return None
    n = int(v)
    return n / 1e6 if 0 < n <= _LAST_USEC else None


def epoch(v) -> float | None:
    """A `show channels` epoch in seconds, or None."""
    try:
        t = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return t if 0 < t <= _LAST_EPOCH else None        # also false for nan and inf


def event_time(ev: dict) -> float | None:
    return usec(ev.get("Event-Date-Timestamp"))


def profile_of(name: str) -> str:
    if name.startswith("sofia/"):
        return name.split("/", 2)[1]
    return ""
