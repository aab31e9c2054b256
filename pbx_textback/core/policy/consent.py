"""Consent as a pure state machine over the stored history of consent events.

Events (ConsentEvent.kind):
- inbound-call: the caller called a line: "conversational" consent for a reply from that line.
  It never undoes an opt-out (calling again is not an opt-in: they must text START).
- opt-out: a STOP keyword/phrase, or a person confirming a `review` reply; source = the text.
  scope "business" (default: every line) or "line" (only the line it came in on).
- opt-in: START/UNSTOP after an opt-out (or a person recording written consent).
- confirmation: a confirmation text was queued (written to the outbox); confirms "opt-out"|"opt-in".

Confirmations (FCC 47 CFR 64.1200(a)(12); CTIA):
- exactly one per opt-out: a STOP that finds the number already opted out (duplicate STOP, a
  STOP re-delivered after a restart) is recorded but owes nothing new; whether a confirmation
  is still owed is computed from the history alone, so a crash between storing the opt-out and
  queuing its confirmation is healed on restart by calling `owed()` again;
- only within 5 minutes of the request (the rule's limit; measured from the latest STOP of the
  stretch): past that it is "expired", never sent late;
- an opt-out whose confirmation is not yet sent when START arrives is superseded: never send
  "you're unsubscribed" after they resubscribed;
- opt-in: one confirmation when START ends an opt-out (a START from a number that was never
  opted out changes nothing and owes nothing).
HELP: answered always, also when opted out — CTIA requires a HELP response whether or not the
number is subscribed; it is the consumer's own request and carries no marketing. It changes no
state; `should_answer_help` only keeps two auto-responders from looping.

Record the "confirmation" event in the SAME transaction as the outbox row of the text, so the
outbox (durable, never resends silently) owns delivery and `owed()` never owes it twice.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from pbx_textback.core.model import Check

INBOUND_CALL, OPT_OUT, OPT_IN, CONFIRMATION = "inbound-call", "opt-out", "opt-in", "confirmation"
KINDS = (INBOUND_CALL, OPT_OUT, OPT_IN, CONFIRMATION)
BUSINESS, LINE = "business", "line"
ALL_LINES = "*"                                   # the scope key of business-wide state

NONE, CONVERSATIONAL, OPTED_OUT, OPTED_IN = "none", "conversational", "opted-out", "opted-in"

OPT_OUT_CONFIRM_WINDOW = 300.0                    # FCC: within five minutes of the request
OPT_IN_CONFIRM_WINDOW = 3600.0                    # our choice: a late "welcome back" is noise


@dataclass(frozen=True)
class ConsentEvent:
    kind: str                 # inbound-call | opt-out | opt-in | confirmation
    number: str               # E.164
    at: float                 # epoch seconds
    scope: str = BUSINESS     # business | line (opt-out/opt-in); inbound-call is per line
    line: str = ""            # the line (DID) it happened on
    source: str = ""          # the reply text, the call id, "staff: …"
    confirms: str = ""        # confirmation only: opt-out | opt-in
    lang: str = "en"          # for the confirmation text (ReplyIntent.lang)
    id: str = ""              # the store's row id, shown in exports

    def key(self) -> str:
        return ALL_LINES if self.scope == BUSINESS and self.kind != INBOUND_CALL else (self.line or ALL_LINES)


@dataclass(frozen=True)
class ScopeState:
    number: str
    key: str                          # "*" (business-wide) or the line
    status: str = NONE                # none | conversational | opted-out | opted-in
    since: float | None = None
    source: str = ""                  # what set the status (reply text, call id)
    pending: str = ""                 # "" | opt-out | opt-in: a confirmation for this stretch
    requested_at: float | None = None  # the latest request of the stretch (window start)
    confirmed: bool = False
    lang: str = "en"
    events: tuple[ConsentEvent, ...] = field(default=(), repr=False)

    @property
    def scope(self) -> str:
        return BUSINESS if self.key == ALL_LINES else LINE

    def confirmation_status(self, now: float, *, opt_out_window: float = OPT_OUT_CONFIRM_WINDOW,
                            opt_in_window: float = OPT_IN_CONFIRM_WINDOW) -> str:
        """"" (none due) | owed | sent | expired."""
        if not self.pending:
            return ""
        if self.confirmed:
            return "sent"
        window = opt_out_window if self.pending == OPT_OUT else opt_in_window
        return "owed" if now - (self.requested_at or 0) <= window else "expired"


@dataclass(frozen=True)
class Confirmation:
    kind: str                 # opt-out | opt-in
    number: str
    scope: str                # business | line
    line: str                 # "" for business-wide
    requested_at: float
    send_by: float            # the window's end: send before this or not at all
    lang: str = "en"

    def to_dict(self) -> dict:
        return dict(kind=self.kind, number=self.number, scope=self.scope, line=self.line,
                    requested_at=self.requested_at, send_by=self.send_by, lang=self.lang)


def _ordered(history: Iterable[ConsentEvent]) -> list[ConsentEvent]:
    return sorted(history, key=lambda e: e.at)    # stable: same-second events keep store order


def replay(history: Iterable[ConsentEvent]) -> dict[tuple[str, str], ScopeState]:
    """The current state of every (number, scope key) the history mentions."""
    st: dict[tuple[str, str], ScopeState] = {}

    def get(number: str, key: str) -> ScopeState:
        return st.get((number, key)) or ScopeState(number, key)

    def put(s: ScopeState, ev: ConsentEvent, **kw) -> None:
        st[(s.number, s.key)] = replace(s, events=s.events + (ev,), **kw)

    for ev in _ordered(history):
        n = ev.number
        if ev.kind == INBOUND_CALL:
            s = get(n, ev.key())
            if s.status in (NONE, CONVERSATIONAL):
                put(s, ev, status=CONVERSATIONAL, since=ev.at, source=ev.source or "inbound call")
            else:
                put(s, ev)                        # an opt-out (or opt-in) stands
        elif ev.kind == OPT_OUT:
            key = ev.key()
            already = get(n, ALL_LINES).status == OPTED_OUT or get(n, key).status == OPTED_OUT
            s = get(n, key)
            if already:
                holder = s if s.status == OPTED_OUT else get(n, ALL_LINES)
                # a repeat: nothing new is owed; an unsent confirmation's window restarts
                put(holder, ev, requested_at=ev.at if not holder.confirmed else holder.requested_at)
                if holder.key != s.key:
                    put(s, ev)
            else:
                put(s, ev, status=OPTED_OUT, since=ev.at, source=ev.source, pending=OPT_OUT,
                    requested_at=ev.at, confirmed=False, lang=ev.lang)
        elif ev.kind == OPT_IN:
            key = ev.key()
            keys = [k for (num, k) in st if num == n] if key == ALL_LINES else [key, ALL_LINES]
            was_out = [k for k in keys if get(n, k).status == OPTED_OUT]
            for k in was_out:
                if k != key:                      # cleared; its unsent confirmation superseded
                    put(get(n, k), ev, status=OPTED_IN, since=ev.at, source=ev.source,
                        pending="", confirmed=False)
            s = get(n, key)
            if was_out:
                put(s, ev, status=OPTED_IN, since=ev.at, source=ev.source, pending=OPT_IN,
                    requested_at=ev.at, confirmed=False, lang=ev.lang)
            elif s.status == OPTED_IN:
                put(s, ev)                        # duplicate START: nothing new
            else:
                put(s, ev, status=OPTED_IN, since=ev.at, source=ev.source)
        elif ev.kind == CONFIRMATION:
            cands = [s for (num, _), s in st.items()
                     if num == n and s.pending == ev.confirms and not s.confirmed]
            # which request it confirms must not depend on the order the replay met their
            # scopes (an inbound call met a line first, and the standing's rows leave those
            # out): its own scope, else its line's, else the oldest request (ties: by line)
            exact = [s for s in cands if s.key == ev.key()] or [s for s in cands if s.key == ev.line]
            for s in (exact or sorted(cands, key=lambda s: (s.requested_at or 0.0, s.key)))[:1]:
                put(s, ev, confirmed=True)
        else:
            raise ValueError(f"unknown consent event kind {ev.kind!r}")
    return st


def owed(history: Iterable[ConsentEvent], now: float, *,
         opt_out_window: float = OPT_OUT_CONFIRM_WINDOW,
         opt_in_window: float = OPT_IN_CONFIRM_WINDOW) -> list[Confirmation]:
    """Confirmations to queue now. Call after storing each opt-out/opt-in and once at start."""
    out = []
    for s in replay(history).values():
        if s.confirmation_status(now, opt_out_window=opt_out_window,
                                 opt_in_window=opt_in_window) == "owed":
            window = opt_out_window if s.pending == OPT_OUT else opt_in_window
            out.append(Confirmation(s.pending, s.number, s.scope, "" if s.key == ALL_LINES else s.key,
                                    s.requested_at, s.requested_at + window, s.lang))
    # ties (two requests of one number at one instant) in a fixed order, not the order the
    # replay first met their scopes (an earlier inbound call on a line meets it first)
    return sorted(out, key=lambda c: (c.requested_at, c.number, c.scope, c.line, c.kind))


def standing(history: Iterable[ConsentEvent], number: str, line: str = "") -> ScopeState:
    """What applies to texting `number` from `line`: an opt-out (business-wide first, then the
    line's), else the line's state, else the business-wide state."""
    st = replay(e for e in history if e.number == number)
    biz = st.get((number, ALL_LINES)) or ScopeState(number, ALL_LINES)
    ln = st.get((number, line)) if line else None
    if biz.status == OPTED_OUT:
        return biz
    if ln is not None and (ln.status == OPTED_OUT or biz.status == NONE or
                           (ln.since or 0) >= (biz.since or 0)):
        return ln
    return biz


def is_opted_out(history: Iterable[ConsentEvent], number: str, line: str = "") -> bool:
    return standing(history, number, line).status == OPTED_OUT


def consent_check(history: Iterable[ConsentEvent], number: str, line: str = "") -> Check:
    """A Check for the decision (Facts.extra_checks): fails only when opted out."""
    s = standing(history, number, line)
    when = _iso(s.since)
    where = "all lines" if s.key == ALL_LINES else f"line {s.key}"
    if s.status == OPTED_OUT:
        return Check("consent", False, f"opted out ({where}) {when} by {s.source!r}")
    if s.status == OPTED_IN:
        return Check("consent", True, f"opted back in ({where}) {when} by {s.source!r}")
    if s.status == CONVERSATIONAL:
        return Check("consent", True, f"conversational: called {where} {when}")
    return Check("consent", True, "conversational: replying to the call that just came in")


def should_answer_help(last_help_reply_at: float | None, now: float, min_interval: float = 60.0) -> bool:
    """HELP is always answered (also when opted out), at most once per min_interval seconds."""
    return last_help_reply_at is None or now - last_help_reply_at >= min_interval


# --- confirmation texts -------------------------------------------------------------------------

TEXTS = {
    "en": {
        OPT_OUT: "{name}: You are unsubscribed and will get no more texts from us. "
                 "Reply START to resubscribe.",
        OPT_IN: "{name}: You are resubscribed and may get texts from us again. "
                "Reply STOP to opt out.",
        "help": "{name}: for help call us at {phone}. Reply STOP to opt out.",
        "help-nophone": "{name}: reply here and we will get back to you. Reply STOP to opt out.",
    },
    "es": {
        OPT_OUT: "{name}: Se ha dado de baja y no recibirá más mensajes nuestros. "
                 "Responda START para volver a suscribirse.",
        OPT_IN: "{name}: Se ha vuelto a suscribir y puede recibir nuestros mensajes. "
                "Responda STOP para darse de baja.",
        "help": "{name}: para ayuda llámenos al {phone}. Responda STOP para darse de baja.",
        "help-nophone": "{name}: responda aquí y le contestaremos. Responda STOP para darse de baja.",
    },
}


def confirmation_text(kind: str, business_name: str, business_phone: str = "", lang: str = "en") -> str:
    """kind: opt-out | opt-in | help. Unknown languages fall back to English. No marketing."""
    table = TEXTS.get(lang) or TEXTS["en"]
    if kind == "help" and not business_phone:
        kind = "help-nophone"
    if kind not in table:
        raise ValueError(f"confirmation kind must be opt-out, opt-in or help, not {kind!r}")
    return table[kind].format(name=business_name.strip(), phone=business_phone.strip())


# --- records ------------------------------------------------------------------------------------

CSV_FIELDS = ("number", "at", "event", "scope", "line", "source", "status_after", "id")


def export_rows(history: Iterable[ConsentEvent], number: str | None = None) -> list[dict]:
    """One row per event, oldest first, with the status it left (for the CSV export)."""
    rows, seen = [], {}
    for ev in _ordered(history):
        if number is not None and ev.number != number:
            continue
        mine = seen.setdefault(ev.number, [])
        mine.append(ev)
        after = standing(mine, ev.number, ev.line).status
        event = ev.kind if ev.kind != CONFIRMATION else f"confirmation ({ev.confirms})"
        rows.append({"number": ev.number, "at": _iso(ev.at), "event": event,
                     "scope": "" if ev.kind == INBOUND_CALL else ev.scope, "line": ev.line,
                     "source": ev.source, "status_after": after, "id": ev.id})
    return rows


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
