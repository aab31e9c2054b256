"""The service's own pipeline, outbox and gate driven by a simulated clock, with a transport
that records instead of sending: what `replay` and `whatif` report is what the service's code
does, not a second copy of its rules.

The clock only moves forward. Before each call is decided the outbox runs every text that
falls due up to that moment (a text goes out at its due time unless something before then
cancels, collapses, holds or expires it); after the last call it runs on until nothing waits.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from pbx_textback.core.times import iso
from pbx_textback.outbox import LogTransport, OutboxWorker
from pbx_textback.pipeline import Pipeline
from pbx_textback.store import db as st
from pbx_textback.store.history import texts

STEP = 0.001                  # no time in the trace: each call a millisecond after the one before
HORIZON = 8 * 86400.0         # after the last call: follow-ups, quiet hours, holds play out in this
MAX_ROUNDS = 20000            # outbox rounds, a guard against a row held again and again


class SimClock:
    def __init__(self, t: float):
        self.t = float(t)

    def __call__(self) -> float:
        return self.t


class RecordingTransport(LogTransport):
    """Takes every text the gate lets through and notes when; sends nothing."""
    name = "simulated"
    capacity = 64

    def __init__(self, clock: SimClock):
        super().__init__()
        self.clock = clock
        self.sent: list[tuple[int, float]] = []       # (message id, when)

    def deliver(self, msg) -> str:
        self.sent.append((msg.id, self.clock()))
        return f"sim-{next(self._ids)}"


@dataclass
class TextFate:
    """One text's story in a simulation."""
    id: int
    kind: str
    peer: str
    line: str
    state: str               # sent | cancelled | expired | held | failed | pending
    due_at: float            # when it was due when written (the decision's due time)
    decided_at: float
    sent_at: float | None
    calls_missed: int
    calls: list[str] = field(default_factory=list)     # the call ids it answers
    why: str = ""
    body: str = ""

    def to_json(self, tz: str | None = None) -> dict:
        return {"text": self.id, "kind": self.kind, "peer": self.peer, "line": self.line,
                "state": self.state, "due_at": iso(self.due_at, tz), "sent_at": iso(self.sent_at, tz),
                "calls_missed": self.calls_missed, "calls": self.calls, "why": self.why, "body": self.body}


class Simulation:
    """An in-memory store with the real Pipeline and OutboxWorker on a SimClock.

    Opens a store (peewee's models share one database binding): read any real store before."""

    def __init__(self, cfg, start: float, *, box: str = "simulation"):
        self.cfg = replace(cfg, store=replace(cfg.store, path=":memory:", dsn=""))
        self.clock = SimClock(start)
        self.store = st.open_store(":memory:", box=box)
        self.pipe = Pipeline(self.cfg, self.store, clock=self.clock, replay=True)
        self.tx = RecordingTransport(self.clock)
        self.worker = OutboxWorker(self.store, self.tx, clock=self.clock,
                                   max_age_s=self.cfg.policy.max_age_minutes * 60,
                                   gate_facts=self.pipe.gate_facts, gate_clear=self.pipe.gate_clear,
                                   after_sent=self.pipe.after_sent, capacity=RecordingTransport.capacity)
        self._due: dict[int, float] = {}        # message id -> due time when written
        self._calls: dict[int, list[str]] = {}  # message id -> calls it answers
        self._last_id = 0
        self._held: dict[int, str] = {}         # message id -> quiet hours moved its due time
        self.verdicts = []

    def close(self) -> None:
        self.store.close()

    async def advance(self, t: float) -> None:
        """Run the outbox on every text due up to `t`, in due order, then set the clock to t."""
        for _ in range(MAX_ROUNDS):
            nd = self.store.next_due()
            if nd is None or nd > t:
                break
            self.clock.t = max(self.clock.t, nd)
            await self.worker.drain()
            self._note_new()
        self.clock.t = max(self.clock.t, t)

    async def call(self, rec, *, at: float, now: float | None):
        """The call `rec` ends at `at` (sim time); `now` is what the decision is told (None:
        no clock, as `replay` without a time)."""
        await self.advance(at)
        v = self.pipe.on_record(rec, now=now)
        self._note_new(rec.call_id)
        if v.decision.action == "text":
            held = [c.detail for c in v.decision.checks if c.name == "quiet-hours" and c.detail.startswith("held")]
            if held:
                self._held[self._last_id] = held[0]
        collapse = v.extra.get("collapse_into")
        if collapse:
            self._calls.setdefault(collapse[0], []).append(rec.call_id)
        self.verdicts.append(v)
        return v

    def reply(self, source: str, dest: str, body: str, *, at: float, transport: str = "") -> None:
        self.clock.t = max(self.clock.t, at)
        self.pipe.on_inbound(source, dest, body, now=self.clock.t, transport=transport)
        self._note_new()

    async def finish(self, horizon: float = HORIZON) -> list[TextFate]:
        await self.advance(self.clock.t + horizon)
        return self.fates()

    def _note_new(self, call_id: str = "") -> None:
        for m in texts(self.store, self._last_id):
            self._last_id = m["id"]
            self._due[m["id"]] = m["due_at"]
            self._calls[m["id"]] = [m["call_id"] or call_id] if (m["call_id"] or call_id) else []

    def fates(self) -> list[TextFate]:
        sent_at = dict(self.tx.sent)
        out = []
        for m in texts(self.store):
            due = self._due.get(m["id"], m["due_at"])
            state = m["state"]
            if state in (st.SENT, st.DELIVERED):
                state = "sent"
            elif state == st.PENDING:
                state = "held" if m["note"] else "pending"
            f = TextFate(m["id"], m["kind"], m["peer"], m["line"], state, due, m["created_at"],
                         sent_at.get(m["id"]), m["calls_missed"], self._calls.get(m["id"], []),
                         body=m["body"])
            f.why = _why(f, m["note"], self.cfg.business.timezone, self._held.get(m["id"], ""))
            out.append(f)
        return out


def _why(f: TextFate, note: str, tz: str, held: str = "") -> str:
    many = f" it answers {f.calls_missed} missed calls ({', '.join(f.calls)})" if f.calls_missed > 1 else ""
    if f.state == "sent":
        wait = f.due_at - f.decided_at
        if held:
            s = f"held (quiet hours: {held}), sent {iso(f.sent_at, tz)}"
        elif f.sent_at is not None and f.sent_at > f.due_at + 1:
            s = f"due {iso(f.due_at, tz)}, held ({note or 'waited its turn'}), sent {iso(f.sent_at, tz)}"
        elif f.kind == "follow-up":
            s = "follow-up: the caller neither replied nor was reached"
        elif wait >= 1:
            s = f"sent when due, {wait:.0f} s after the call: nothing reached the caller or cancelled it meanwhile"
        else:
            s = "sent at once: no delay on this line"
        return s + ("; " + many.strip() if many else "")
    if f.state == "held":
        return f"still held at the end: {note}"
    if f.state == "pending":
        return "not due before the end of the simulation"
    return (note or f.state) + ("; " + many.strip() if many else "")
