"""A finished call -> verdict -> store (+ outbox row), the same for run, demo and replay."""
from __future__ import annotations

import logging
import time

from .core.decide import Facts, decide, find_line
from .core.model import CallRecord, Verdict
from .core.numbers import to_e164

log = logging.getLogger("pbx_textback.calls")


def mask(number: str) -> str:
    """A number for logs that anyone may read: enough to tell callers apart, not to dial."""
    return number if len(number) <= 6 else number[:-4] + "****"


class Pipeline:
    def __init__(self, cfg, store, *, clock=time.time, replay: bool = False):
        self.cfg, self.store, self.clock, self.replay = cfg, store, clock, replay

    def facts(self, rec: CallRecord) -> Facts:
        line = find_line(self.cfg, rec.called)
        if line is None:
            return Facts()
        peer = to_e164(rec.caller, self.cfg.business.country) or rec.caller
        return Facts(last_text_at=self.store.last_text_at(peer, line.number),
                     hours_override=self.store.hours_override(line.number))

    def on_record(self, rec: CallRecord, *, now: float | None = None) -> Verdict:
        """now: the decision time; in replay it may be None (no clock in the trace)."""
        if not self.replay and now is None:
            now = self.clock()
        if self.store.has_call(rec.call_id):
            log.info("call %s seen again (reconcile or replay): kept its first decision", rec.call_id)
        verdict = decide(rec, self.cfg, now=now, facts=self.facts(rec))
        stamp = now if now is not None else (rec.ended_at or self.clock())
        self.store.record_verdict(verdict, now=stamp)
        self._log(verdict)
        return verdict

    def _log(self, v: Verdict) -> None:
        c, o, d = v.call, v.outcome, v.decision
        who = mask(v.extra.get("caller") or c.caller or "anonymous")
        if not o.missed:
            log.info("call %s from %s to %s: %s (%s), no text", c.call_id, who, c.called or "?",
                     o.reason, c.direction)
            return
        blocked = ", ".join(f"{ch.name}: {ch.detail}" for ch in d.failed)
        if d.action == "text":
            log.info("call %s from %s to %s missed (%s): text queued", c.call_id, who, c.called, o.reason)
        else:
            log.info("call %s from %s to %s missed (%s): no text (%s)", c.call_id, who, c.called,
                     o.reason, blocked)
