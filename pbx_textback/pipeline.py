"""A finished call -> verdict -> store (+ outbox row), the same for run, demo and replay; and
the store-side facts the outbox gate needs right before a text goes out."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from .core.decide import Facts, decide, find_line
from .core.gate import GateFacts
from .core.model import INBOUND, OUTBOUND, CallRecord, Check, Verdict
from .core.numbers import to_e164
from .core.templates import FOLLOW_UP_TEMPLATE, TemplateError, render

log = logging.getLogger("pbx_textback.calls")


def mask(number: str) -> str:
    """A number for logs that anyone may read: enough to tell callers apart, not to dial."""
    return number if len(number) <= 6 else number[:-4] + "****"


class Pipeline:
    def __init__(self, cfg, store, *, clock=time.time, replay: bool = False):
        self.cfg, self.store, self.clock, self.replay = cfg, store, clock, replay

    def e164(self, raw: str) -> str:
        return to_e164(raw, self.cfg.business.country) or raw

    def facts(self, rec: CallRecord, line, calls_missed: int = 1) -> Facts:
        if line is None:
            return Facts()
        return Facts(last_text_at=self.store.last_text_at(self.e164(rec.caller), line.number),
                     hours_override=self.store.hours_override(line.number),
                     calls_missed=calls_missed)

    def on_record(self, rec: CallRecord, *, now: float | None = None) -> Verdict:
        """now: the decision time; in replay it may be None (no clock in the trace)."""
        if not self.replay and now is None:
            now = self.clock()
        stamp = now if now is not None else (rec.ended_at or self.clock())
        if self.store.has_call(rec.call_id):
            log.info("call %s seen again (reconcile or replay): kept its first decision", rec.call_id)
        self._cancel_if_reached(rec, stamp)
        line = find_line(self.cfg, rec.called) if rec.direction == INBOUND else None
        pending = None
        if line is not None and not rec.withheld:
            pending = self.store.pending_for(self.e164(rec.caller), line.number)
        if pending is None:
            verdict = decide(rec, self.cfg, now=now, facts=self.facts(rec, line))
        else:
            verdict = self._collapse(rec, line, pending, now)
        self.store.record_verdict(verdict, now=stamp)
        self._log(verdict)
        return verdict

    def _collapse(self, rec, line, pending, now) -> Verdict:
        """Another missed call while a text for this caller still waits: one text, which now
        says how many calls were missed."""
        n = pending.calls_missed + 1
        facts = replace(self.facts(rec, line, n), last_text_at=None)
        v = decide(rec, self.cfg, now=now, facts=facts)
        if v.decision.action != "text":
            return v
        check = Check("dedupe", False, f"collapsed into the waiting text #{pending.id}, "
                                       f"now for {n} missed calls")
        checks = tuple(c for c in v.decision.checks if c.name != "dedupe") + (check,)
        dec = replace(v.decision, action="skip", checks=checks, body="", due_at=None)
        return replace(v, decision=dec, extra={**v.extra, "collapse_into": (pending.id, v.decision.body, n)})

    def _cancel_if_reached(self, rec: CallRecord, now: float) -> None:
        if not rec.answered_by_human:
            return
        if rec.direction == INBOUND and not rec.withheld:
            peer = self.e164(rec.caller)
        elif rec.direction == OUTBOUND:
            peer = self.e164(rec.called)
        else:
            return
        who = f" (answered by {rec.answered_by})" if rec.answered_by else ""
        n = self.store.cancel_pending(peer, f"caller reached by {rec.direction} call {rec.call_id}{who}", now)
        if n:
            log.info("%d waiting text(s) to %s cancelled: reached by %s call %s", n, mask(peer),
                     rec.direction, rec.call_id)

    # ---- the outbox gate's facts and what follows a sent text --------------------------------
    def gate_facts(self, row) -> GateFacts:
        since = row.created_at
        return GateFacts(reached_by=self.store.reached_since(row.peer, since),
                         replied=row.kind == "follow-up" and self.store.replied_since(row.peer, since),
                         paused=self.store.setting("paused") == "1")

    def after_sent(self, row, now: float) -> None:
        if row.kind != "missed-call":
            return
        line = next((ln for ln in self.cfg.line if ln.number == row.line), None)
        if line is None or not line.follow_up_after_hours:
            return
        try:
            body = render(line.follow_up_template or FOLLOW_UP_TEMPLATE, {
                "business": {"name": self.cfg.business.name, "phone": self.cfg.business.phone},
                "line": {"number": line.number, "name": line.name},
                "caller": {"number": row.peer, "name": ""}, "calls_missed": row.calls_missed})
        except TemplateError as e:      # checked at load; kept safe anyway
            log.error("follow-up template of line %s: %s", line.number, e)
            return
        fid = self.store.add_follow_up(row, body, now + line.follow_up_after_hours * 3600, now)
        log.info("follow-up #%d to %s due in %g h unless the caller replies or is reached",
                 fid, mask(row.peer), line.follow_up_after_hours)

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
