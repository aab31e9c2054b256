"""A finished call -> verdict -> store (+ outbox row), the same for run, demo and replay; and
the store-side facts the outbox gate needs right before a text goes out."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from functools import lru_cache
from typing import NamedTuple

from .core.policy import caps, consent, quiet
from .core.policy.decide import Facts, decide, e164_of, find_line, template_vars
from .core.policy.gate import GateFacts
from .core.model import INBOUND, OUTBOUND, CallRecord, Check, Verdict
from .core.numbers import number_info
from .core.policy.replies import classify_reply
from .core.text.templates import FOLLOW_UP_TEMPLATE, TemplateError, render
from .store import db as st
from .store import fast, sendpath
from .store.consent_owed import requests_since

log = logging.getLogger("pbx_textback.calls")


def _local(ts: float, zone: str) -> str:
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(ZoneInfo(zone)).strftime("%a %H:%M %Z")


def mask(number: str) -> str:
    """A number for logs that anyone may read: enough to tell callers apart, not to dial."""
    return number if len(number) <= 6 else number[:-4] + "****"


def person_text_refusals(cfg, store, to: str, line: str) -> list:
    """Why a text a person sends (send-test, an agent's reply) to `to` would be refused:
    consent, allowed countries, denylist, number type — the checks of automated texts that
    also bind a person; quiet hours, caps and pauses do not."""
    c = cfg.compliance
    info = number_info(to, cfg.business.country, allowed_countries=cfg.allowed_countries)
    checks = [consent.consent_check(store.consent_standing(to), to, line)]
    checks += caps.destination_rules(info, cfg.allowed_countries, c.denylist, c.allowlist)
    return [ch for ch in checks if not ch.ok]


_NO_CONSENT_HISTORY = consent.consent_check((), "", "")


class Recorded(NamedTuple):
    """What recording one finished call gives back."""
    verdict: Verdict
    # its text's outbox row when that text is due now and was the only one due: the outbox may
    # start it as written, without reading the due rows back (store/sendpath.py); else None
    queued: object = None


@lru_cache(maxsize=64)
def _window(spans: str):
    a, b = spans.split("-")
    return quiet.QuietHours(a, b)


class Pipeline:
    def __init__(self, cfg, store, *, clock=time.time, replay: bool = False):
        self.cfg, self.store, self.clock, self.replay = cfg, store, clock, replay
        self.on_arrival = None     # (peer, line, queue, now): the inbox picks an owner (web/ownership.py)
        self.on_reached = None     # (peer, endpoint, now): an agent's phone talked to the caller

    def e164(self, raw: str) -> str:
        """E.164 where it parses (decide.e164_of: the caller check's parse, shared)."""
        return e164_of(raw, self.cfg)

    def facts(self, rec: CallRecord, line, calls_missed: int = 1, now: float | None = None,
              known: fast.CallFacts | None = None) -> Facts:
        """known: what the store said about this call (read once per call by on_record)."""
        if line is None:
            return Facts()
        peer = self.e164(rec.caller)
        if known is None:
            known = fast.call_facts(self.store, rec.call_id, peer, line.number)
        return Facts(last_text_at=known.last_text_at,
                     hours_override=fast.hours_mode(known, time.time()),
                     calls_missed=calls_missed,
                     extra_checks=self.compliance_checks(peer, line, now, paused=known.paused,
                                                         consent_events=known.consent_events))

    # ---- compliance ------------------------------------------------------------------------------
    def quiet_hours(self, line):
        """The allowed window for texts from `line` (a LineView or None), None when off."""
        c = self.cfg.compliance
        spans = (line.quiet_hours if line is not None and line.quiet_hours else c.quiet_hours)
        if c.preset == "ftsa":
            return quiet.FTSA
        if not spans:
            return None
        return _window(spans)

    def compliance_checks(self, peer: str, line, now: float | None, *,
                          paused: bool | None = None, consent_events: bool = True) -> tuple[Check, ...]:
        """line: the LineView the text would go out on. paused: the setting when already read.
        consent_events False: the store said just now that the caller has none (call_facts)."""
        c = self.cfg.compliance
        t = now if now is not None else self.clock()
        # no consent event on record (a first-time caller): the check of an empty history,
        # the same for every number and line, made once (~15 us a call)
        out = [consent.consent_check(self.store.consent_standing(peer), peer, line.number)
               if consent_events else _NO_CONSENT_HISTORY]
        # with no denylist the check passes whatever the number: no parse of it for that
        info = number_info(peer, self.cfg.business.country, allowed_countries=self.cfg.allowed_countries) \
            if c.denylist else None
        out += [ch for ch in caps.destination_rules(info, self.cfg.allowed_countries, c.denylist, c.allowlist)
                if ch.name == "denylist"]
        qh = self.quiet_hours(line)
        limit = c.cross_line_cap
        if qh is not None and qh.cap_24h:
            limit = min(limit, qh.cap_24h) if limit else qh.cap_24h
        # no cap: its check says so without the times (the query is skipped)
        times = self.store.auto_text_times(peer, t - caps.DAY) if limit and limit > 0 else ()
        out.append(caps.cross_line_cap(times, t, limit))
        if paused is None:
            paused = fast.paused(self.store)
        if paused:
            out.append(Check("paused", True, "automated texting is paused: the text waits for "
                                             "`pbx-textback resume`, nothing is lost"))
        return tuple(out)

    def _schedule_quiet(self, v: Verdict, line) -> Verdict:
        """A text due outside the recipient's window waits until it opens (one scheduling
        mechanism: the row's due time)."""
        d = v.decision
        qh = self.quiet_hours(line)
        if d.action != "text" or qh is None or d.due_at is None:
            return v
        zone, why = quiet.recipient_zone(d.to, line.timezone)
        allowed = quiet.next_allowed(d.due_at, zone, qh)
        if allowed > d.due_at + 1:
            check = Check("quiet-hours", True, f"held until {_local(allowed, zone)} ({qh.describe()} in "
                                               f"{zone}: {why})")
            return replace(v, decision=replace(d, due_at=allowed, checks=d.checks + (check,)))
        return replace(v, decision=replace(d, checks=d.checks + (
            Check("quiet-hours", True, f"inside {qh.describe()} in {zone} ({why})"),)))

    def on_record(self, rec: CallRecord, *, now: float | None = None) -> Verdict:
        """record_call's verdict: what replay, whatif and the tests ask of a call."""
        return self.record_call(rec, now=now).verdict

    def record_call(self, rec: CallRecord, *, now: float | None = None) -> Recorded:
        """now: the decision time; in replay it may be None (no clock in the trace).
        The call's context (line, the caller's E.164, the store's facts) is built once here
        and handed down: one read of the store, one decision, one write transaction."""
        if not self.replay and now is None:
            now = self.clock()
        stamp = now if now is not None else (rec.ended_at or self.clock())
        line = find_line(self.cfg, rec.called) if rec.direction == INBOUND else None
        peer = self.e164(rec.caller)
        known = fast.call_facts(self.store, rec.call_id, peer, line.number if line is not None else "", stamp)
        if known.seen:
            log.info("call %s seen again (reconcile or replay): kept its first decision", rec.call_id)
            v = decide(rec, self.cfg, now=now, facts=Facts(), line=line)
            dup = Check("duplicate", False, "this call was already decided: its first decision stands")
            return Recorded(replace(v, decision=replace(v.decision, action="skip", checks=(dup,), body="",
                                                        due_at=None)))
        if rec.answered_by_human and self._cancel_if_reached(rec, stamp):
            known = fast.call_facts(self.store, rec.call_id, peer, line.number if line is not None else "", stamp)
        pending = known.pending_id if line is not None and not rec.withheld else None
        if pending is None:
            verdict = decide(rec, self.cfg, now=now, facts=self.facts(rec, line, now=stamp, known=known),
                             line=line)
        else:
            verdict = self._collapse(rec, line, known, now)
        if line is not None:
            verdict = self._schedule_quiet(verdict, line)
        ev = None
        if rec.direction == INBOUND and line is not None and rec.caller and not rec.withheld:
            ev = consent.ConsentEvent(consent.INBOUND_CALL, peer, stamp, line=line.number,
                                      source=f"call {rec.call_id}")
        # known.seen was read just now, on this connection, with no await since: the call is new
        call_id, msg_id = self.store.record_verdict(verdict, now=stamp, consent=ev, checked=True)
        d = verdict.decision
        queued = None
        if msg_id is not None and not known.other_due and (d.due_at is None or d.due_at <= stamp):
            # due now and the only text due: the outbox may start it as written (store/sendpath.py)
            queued = sendpath.queued_row(self.store, msg_id, call_id, d, verdict.extra, stamp)
        self._log(verdict)
        if rec.direction == INBOUND and verdict.outcome.missed and rec.caller and not rec.withheld:
            self._arrived(self.e164(rec.caller), line.number if line is not None else self.e164(rec.called),
                          rec.queue, stamp)
        elif self.on_reached is not None and rec.answered_by_human:
            inbound = rec.direction == INBOUND
            peer = self.e164(rec.caller if inbound else rec.called) if (rec.caller and not rec.withheld) or not inbound else ""
            try:
                if peer:
                    self.on_reached(peer, rec.answered_by if inbound else rec.caller, stamp)
            except Exception:
                log.exception("could not note who talked to a caller")
        return Recorded(verdict, queued)

    def _arrived(self, peer: str, line: str, queue: str, now: float) -> None:
        """A missed call or a reply opened a conversation: the inbox may give it an owner.
        Never the texting's problem: a failure here is logged and the call or reply stands."""
        if self.on_arrival is None:
            return
        try:
            self.on_arrival(peer, line, queue, now)
        except Exception:
            log.exception("could not pick an owner for a conversation")

    def _collapse(self, rec, line, known, now) -> Verdict:
        """Another missed call while a text for this caller still waits: one text, which now
        says how many calls were missed."""
        n = known.pending_calls + 1
        facts = replace(self.facts(rec, line, n, now=now, known=known), last_text_at=None)
        v = decide(rec, self.cfg, now=now, facts=facts, line=line)
        if v.decision.action != "text":
            return v
        check = Check("dedupe", False, f"collapsed into the waiting text #{known.pending_id}, "
                                       f"now for {n} missed calls")
        checks = tuple(c for c in v.decision.checks if c.name != "dedupe") + (check,)
        dec = replace(v.decision, action="skip", checks=checks, body="", due_at=None)
        return replace(v, decision=dec, extra={**v.extra, "collapse_into": (known.pending_id, v.decision.body, n)})

    def _cancel_if_reached(self, rec: CallRecord, now: float) -> int:
        if not rec.answered_by_human:
            return 0
        if rec.direction == INBOUND and not rec.withheld:
            peer = self.e164(rec.caller)
        elif rec.direction == OUTBOUND:
            peer = self.e164(rec.called)
        else:
            return 0
        who = f" (answered by {rec.answered_by})" if rec.answered_by else ""
        n = self.store.cancel_pending(peer, f"caller reached by {rec.direction} call {rec.call_id}{who}", now)
        if n:
            log.info("%d waiting text(s) to %s cancelled: reached by %s call %s", n, mask(peer),
                     rec.direction, rec.call_id)
        return n

    # ---- the outbox gate's facts and what follows a sent text --------------------------------
    def gate_facts(self, row, now: float) -> GateFacts:
        """now: the outbox's one clock reading for this decision. Reading the clock again here
        made quiet hours answer "allowed from a microsecond later" and hold every text forever."""
        allowed, over_cap = self._gate_window(row, now)
        reached, paused, ever_out, replied = fast.last_look_reads(self.store, row.peer, row.created_at,
                                                                 row.kind == "follow-up")
        # no opt-out event ever: not opted out, and the standing needs no reading (most numbers)
        opted_out = ever_out and consent.is_opted_out(self.store.consent_standing(row.peer), row.peer, row.line)
        return GateFacts(reached_by=reached, replied=replied, opted_out=opted_out, paused=paused,
                         allowed_at=allowed, over_hourly_cap=over_cap)

    def gate_clear(self, row, now: float) -> GateFacts:
        """gate_facts as they are when nothing of the number's history stands in the way (not
        reached, no reply, never opted out, not paused): the outbox takes the row on the
        condition that this is so (store/sendpath.py) and reads them only when it is not."""
        allowed, over_cap = self._gate_window(row, now)
        return GateFacts(allowed_at=allowed, over_hourly_cap=over_cap)

    def _gate_window(self, row, now: float) -> tuple[float | None, str]:
        """(when quiet hours allow the text, None: any time; why the hourly cap says wait, or "")."""
        allowed = None
        line = find_line(self.cfg, row.line)
        qh = self.quiet_hours(line)
        if qh is not None:
            zone, _ = quiet.recipient_zone(row.peer, line.timezone if line else self.cfg.business.timezone)
            allowed = quiet.next_allowed(now, zone, qh)
        limit = self.cfg.compliance.global_hourly_cap
        # no cap: nothing to count (the check passes whatever the count)
        cap = caps.global_hourly_cap(self.store.texts_since(now - 3600) if limit and limit > 0 else 0, limit)
        return allowed, "" if cap.ok else cap.detail

    # ---- callers' replies ----------------------------------------------------------------------
    def on_inbound(self, source: str, dest: str, text: str, *, now: float | None = None,
                   transport: str = "", transport_id: str = "") -> bool:
        """A caller's text. Stored first (nothing a caller sends is lost), then STOP/START/HELP
        acted on in the same transaction. Returns False when it could not be stored, so the
        transport answers with a temporary error and the sender delivers it again."""
        now = now if now is not None else self.clock()
        peer, line = self.e164(source), self.e164(dest)
        c = self.cfg.compliance
        intent = classify_reply(text or "", extra_keywords=dict(c.keywords) or None)
        try:
            with self.store.write():
                call = self.store.latest_call_from(peer)
                note = f"{intent.intent}" + (f" ({intent.matched!r})" if intent.matched else "")
                if intent.intent == "review":
                    note += ": may mean 'stop texting me' - confirm with `pbx-textback optout " + peer + "`"
                self.store.add_message(call=call, direction="in", kind="reply", line=line, peer=peer,
                                       body=text or "", state="received", due_at=now, created_at=now,
                                       transport=transport, transport_id=transport_id, note=note)
                if intent.intent in ("stop", "start"):
                    self._consent_change(peer, line, intent, text, now)
                elif intent.intent == "help" and consent.should_answer_help(self.store.last_help_at(peer), now):
                    self.store.add_message(call=call, direction="out", kind="help", line=self.sender_for(peer, line), peer=peer,
                                           body=consent.confirmation_text("help", self.cfg.business.name,
                                                                          self.cfg.business.phone, intent.lang),
                                           state=st.PENDING, due_at=now, created_at=now)
        except Exception:
            log.exception("could not store a reply from %s: the sender will be asked to retry", mask(peer))
            return False
        log.info("reply from %s to %s: %s", mask(peer), line, intent.intent)
        if intent.intent not in ("stop", "help"):
            self._arrived(peer, line, "", now)
        return True

    def _consent_change(self, peer, line, intent, text, now) -> None:
        c = self.cfg.compliance
        kind = consent.OPT_OUT if intent.intent == "stop" else consent.OPT_IN
        scope = c.opt_out_scope
        self.store.add_consent(consent.ConsentEvent(kind, peer, now, scope=scope, line=line,
                                                    source=text or "", lang=intent.lang))
        if kind == consent.OPT_OUT:
            self.store.cancel_pending(peer, f"caller opted out: {text!r}", now)
        self.queue_confirmations(now, number=peer)

    def queue_confirmations(self, now: float, number: str | None = None) -> int:
        """Queue every confirmation still owed (call inside write(); also at start-up, which
        heals a crash between an opt-out and its confirmation)."""
        hist = (self.store.consent_standing(number) if number
                else requests_since(self.store, now - 3 * 3600))     # not every inbound call of those hours
        n = 0
        for conf in consent.owed(hist, now):
            body = consent.confirmation_text(conf.kind, self.cfg.business.name, self.cfg.business.phone, conf.lang)
            self.store.add_message(direction="out", kind="confirmation", line=self.sender_for(conf.number, conf.line),
                                   peer=conf.number, body=body, state=st.PENDING, due_at=now, created_at=now)
            self.store.add_consent(consent.ConsentEvent(consent.CONFIRMATION, conf.number, now, scope=conf.scope,
                                                        line=conf.line, confirms=conf.kind, lang=conf.lang))
            n += 1
        return n

    def sender_for(self, peer: str, line: str = "") -> str:
        """Every text has a sender (and so a transport): the line given, else the line the
        caller last wrote to or called, else the business number. A business-wide STOP is
        stored with no line, and its confirmation went out with an empty sender."""
        return line or self.store.last_line_for(peer) or self.e164(self.cfg.business.phone)

    def after_sent(self, row, now: float) -> None:
        if row.kind != "missed-call":
            return
        line = find_line(self.cfg, row.line)
        if line is None or not line.configured or not line.follow_up_after_hours:
            return
        call = st.Call.get_or_none(st.Call.id == row.call_id) if row.call_id else None
        try:
            body = render(line.follow_up_template or FOLLOW_UP_TEMPLATE, template_vars(
                self.cfg, line, caller=row.peer, caller_name="", reason=call.reason if call else "no-answer",
                at=now, calls_missed=row.calls_missed, voicemail_left=bool(call and call.voicemail_left)))
        except TemplateError as e:      # checked at load; kept safe anyway
            log.error("follow-up template of line %s: %s", line.number, e)
            return
        fid = self.store.add_follow_up(row, body, now + line.follow_up_after_hours * 3600, now)
        log.info("follow-up #%d to %s due in %g h unless the caller replies or is reached",
                 fid, mask(row.peer), line.follow_up_after_hours)

    def _log(self, v: Verdict) -> None:
        if not log.isEnabledFor(logging.INFO):      # the line's values are not worked out for nothing
            return
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
