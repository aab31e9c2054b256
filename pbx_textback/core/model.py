"""The one normalized call model every PBX tracker builds, and what the core decides about it.

Plain frozen dataclasses: no I/O, no clock. Asterisk and FreeSWITCH differ only in the tracker
that fills a CallRecord; the classifier and the decision never look at PBX headers.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

INBOUND, OUTBOUND, INTERNAL = "inbound", "outbound", "internal"

# Missed reasons, in precedence order (the first that applies wins; "answered" beats all).
ANSWERED = "answered"
AFTER_HOURS = "after-hours"
QUEUE_ABANDON = "queue-abandon"
VOICEMAIL = "voicemail"
BUSY = "busy"
UNAVAILABLE = "unavailable"
NO_ANSWER = "no-answer"
ABANDONED = "abandoned"
MISSED_REASONS = (AFTER_HOURS, QUEUE_ABANDON, VOICEMAIL, BUSY, UNAVAILABLE, NO_ANSWER, ABANDONED)
REASONS = (ANSWERED,) + MISSED_REASONS

# What one dial attempt ended with, normalized across PBXs.
DIAL_ANSWER, DIAL_NOANSWER, DIAL_BUSY, DIAL_UNAVAILABLE, DIAL_CANCEL = (
    "answer", "noanswer", "busy", "unavailable", "cancel")


@dataclass(frozen=True)
class Marker:
    """A PBX-side sign of the after-hours route, for any PBX's tracker.

    kind: variable (a channel variable set to a value), context (Asterisk: a dialplan context
    reached), userevent (Asterisk: UserEvent `key` with header=value), destination
    (FreeSWITCH: a Caller-Destination-Number reached; key its context or "" for any),
    playback (FreeSWITCH: a file played; value matched against path, name or stem).
    closed: what the marker says about the hours (True: closed, False: open).
    """
    kind: str
    key: str
    value: str = ""
    closed: bool = True

    def describe(self) -> str:
        if self.kind == "destination":
            return f"reached {self.value}" + (f" in context {self.key}" if self.key else "")
        if self.kind == "playback":
            return f"played {self.value}"
        if self.kind == "context":
            return f"reached context {self.key}"
        if self.kind == "userevent":
            return f"UserEvent {self.key} {self.value}"
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class Leg:
    """One channel of a call, as the tracker saw it."""
    id: str                      # Uniqueid (Asterisk) / Unique-ID (FreeSWITCH)
    name: str                    # channel name, e.g. PJSIP/100-0000002a
    kind: str                    # caller | extension | trunk | local | other
    endpoint: str = ""           # e.g. 100, itsp
    answered: bool = False
    hangup_cause: str = ""


@dataclass(frozen=True)
class CallRecord:
    pbx: str                     # asterisk | freeswitch | cdr
    call_id: str                 # Linkedid / the caller leg's Unique-ID
    caller: str                  # caller number as the PBX gave it ("" when absent)
    called: str                  # the number the caller dialled (DID)
    direction: str               # inbound | outbound | internal
    caller_name: str = ""
    withheld: bool = False       # presentation restricted / privacy: never text
    started_at: float | None = None   # epoch seconds, when the trace carries time
    ended_at: float | None = None
    answered_by_human: bool = False
    answered_by: str = ""        # endpoint that answered (extension, agent)
    talk_seconds: float | None = None
    ring_seconds: float | None = None
    dial_results: tuple[str, ...] = ()   # DIAL_* per finished dial attempt, in order
    caller_cancelled: bool = False       # caller hung up while something was ringing
    hangup_cause: str = ""               # caller leg's cause, as the PBX names it
    queue: str = ""
    queue_abandoned: bool = False
    voicemail: bool = False              # reached a voicemail greeting
    voicemail_left: bool | None = None   # None: unknown
    pbx_after_hours: bool | None = None  # the PBX's own time routing said closed (True) / open (False)
    after_hours_marker: str = ""         # which marker said so
    system_answered: bool = False        # the PBX itself answered (IVR, announcement, queue, voicemail)
    recovered: bool = False              # rebuilt from CDR after a gap, not from live events
    recovered_why: str = ""              # why a recovered verdict is ambiguous ("" = unambiguous)
    legs: tuple[Leg, ...] = ()
    notes: tuple[str, ...] = ()          # what the tracker inferred and why, for explain

    def to_dict(self) -> dict:
        """asdict(self), without its deep copy of every field (once per call, on the hot
        path): the fields are immutable, only the legs become dicts."""
        d = dict(self.__dict__)
        d["legs"] = tuple(dict(leg.__dict__) for leg in self.legs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CallRecord":
        """to_dict's output (or its JSON) back; fields a newer or older version did not know
        are dropped or defaulted."""
        names = {f.name for f in fields(cls)}
        leg_names = {f.name for f in fields(Leg)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["legs"] = tuple(Leg(**{k: v for k, v in leg.items() if k in leg_names})
                           for leg in d.get("legs") or ())
        for k in ("dial_results", "notes"):
            kw[k] = tuple(kw.get(k) or ())
        return cls(**kw)


@dataclass(frozen=True)
class Outcome:
    missed: bool
    reason: str                  # one of REASONS, or the direction for non-inbound calls
    why: str = ""                # one short sentence for explain


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Decision:
    action: str                  # text | skip | hold (hours unknown / held for later)
    checks: tuple[Check, ...] = ()
    line: str = ""               # the configured line (DID) that matched
    to: str = ""                 # E.164 destination when texting
    body: str = ""
    template: str = ""
    due_at: float | None = None  # when the text may go out (epoch seconds)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


@dataclass(frozen=True)
class Verdict:
    """Everything the core concluded about one finished call."""
    call: CallRecord
    outcome: Outcome
    decision: Decision
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        c, o, d = self.call, self.outcome, self.decision
        return {
            "call_id": c.call_id, "pbx": c.pbx, "caller": self.extra.get("caller", c.caller),
            "called": self.extra.get("called", c.called), "direction": c.direction,
            "missed": o.missed, "reason": o.reason, "voicemail_left": c.voicemail_left,
            "decision": d.action, "checks": [ch.to_dict() for ch in d.checks], "body": d.body,
            "why": o.why, "recovered": c.recovered,
        }



_PLAN: dict[type, tuple[dict, frozenset, tuple]] = {}  # class -> (its fields in order, their
                                                        # names, the names in order)


def build(cls, values: dict):
    """cls(**values) for a frozen dataclass of this module, with `values` naming every field,
    made the cheap way: the instance dict filled at once. A frozen dataclass's generated
    __init__ sets each field through object.__setattr__ (that is how it stays frozen), one
    slow call per field, after a keyword call that costs as much again: a CallRecord (27
    fields) cost more to make than all the rest the tracker does at the end of a call. The
    result equals cls(**values), field for field and in the same order (tests/unit/
    test_model_build.py). Values that do not name every field and nothing else go to
    cls(**values), which says what is wrong. Only for classes without __post_init__ or
    default factories (checked once). Values named in declaration order (the trackers' call
    sites write them so) become the instance dict in one copy, checked by one tuple
    comparison."""
    plan = _PLAN.get(cls)
    if plan is None:
        fs = fields(cls)
        if hasattr(cls, "__post_init__") or any(f.default_factory is not MISSING for f in fs):
            raise TypeError(f"build() cannot make a {cls.__name__}")
        plan = _PLAN[cls] = (dict.fromkeys(f.name for f in fs), frozenset(f.name for f in fs),
                             tuple(f.name for f in fs))
    order, names, in_order = plan
    if tuple(values) == in_order:
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", values.copy())    # (a copy: the caller's stays its own)
        return obj
    if len(values) != len(names) or not names.issuperset(values):
        return cls(**values)
    obj = object.__new__(cls)
    d = obj.__dict__
    d.update(order)             # (the fields in declaration order, as __init__ sets them)
    d.update(values)
    return obj
