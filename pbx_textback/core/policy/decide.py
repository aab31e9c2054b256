"""Outcome + line config + facts from the store -> Decision with every check explained. Pure.

Checks run in a fixed order and all run, so `explain` shows every reason at once, not only
the first that blocked. Opt-out, quiet hours and caps plug in through `Facts` (compliance).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from pbx_textback.core.policy import hours as hours_mod
from pbx_textback.core.policy.classify import classify
from pbx_textback.core.model import INBOUND, MISSED_REASONS, CallRecord, Check, Decision, Outcome, Verdict
from pbx_textback.core.numbers import number_info, to_e164
from pbx_textback.core.text.templates import DEFAULT_TEMPLATE, TemplateError, render, variables


@dataclass(frozen=True)
class Facts:
    """What the store knows that bears on this call (all optional)."""
    last_text_at: float | None = None      # last automated text to this caller on this line
    hours_override: str = "auto"           # open | closed | auto (pbx-textback hours set)
    calls_missed: int = 1                  # missed calls this text answers (collapsed)
    extra_checks: tuple[Check, ...] = ()   # compliance checks (consent, caps, denylist, ...)


@dataclass(frozen=True)
class LineView:
    """The line a call came in on, resolved from the config."""
    number: str
    name: str
    enabled: bool
    reasons: tuple[str, ...]
    timezone: str
    template: str
    templates: dict = field(default_factory=dict)
    hours: object = None
    configured: bool = True
    delay_seconds: float = 0.0
    delays: dict = field(default_factory=dict)
    follow_up_after_hours: float = 0.0
    follow_up_template: str = ""
    quiet_hours: str = ""            # the line's own window, else the compliance default

    def delay_for(self, reason: str) -> float:
        return self.delays.get(reason, self.delay_seconds)


_LINES: dict[int, tuple] = {}      # id(cfg) -> (cfg, {called: LineView | None}); configs are frozen
_LINES_MAX, _CALLED_MAX = 8, 1024


def find_line(cfg, called: str) -> LineView | None:
    """The line `called` rang, resolved once per config and number (bounded): every call
    asks, and the answer only changes with the config."""
    return _kept(_LINES, cfg, called, _find_line)


def _kept(table: dict, cfg, key, work):
    """work(cfg, key), kept per config (configs are frozen: id and identity) and key, both
    bounded; an unhashable key is worked out each time."""
    entry = table.get(id(cfg))
    if entry is None or entry[0] is not cfg:
        if len(table) >= _LINES_MAX:
            table.clear()
        entry = table[id(cfg)] = (cfg, {})
    known = entry[1]
    try:
        return known[key]
    except KeyError:
        pass
    except TypeError:
        return work(cfg, key)
    if len(known) >= _CALLED_MAX:
        known.clear()
    out = known[key] = work(cfg, key)
    return out


def _find_line(cfg, called: str) -> LineView | None:
    region = cfg.business.country
    want = to_e164(called, region) or called
    for ln in cfg.line:
        if ln.number == called or (to_e164(ln.number, region) or ln.number) == want:
            return LineView(ln.number, ln.name, ln.enabled, ln.reasons,
                            ln.timezone or cfg.business.timezone,
                            ln.template or DEFAULT_TEMPLATE, dict(ln.templates), ln.hours,
                            True, ln.delay_seconds, dict(ln.delays), ln.follow_up_after_hours,
                            ln.follow_up_template, ln.quiet_hours)
    if cfg.every_inbound_number and called:
        return LineView(want, "", True, MISSED_REASONS, cfg.business.timezone,
                        DEFAULT_TEMPLATE, {}, None, configured=False)
    return None


def hours_state(line: LineView | None, call: CallRecord, now: float | None, facts: Facts):
    if line is None:
        return hours_mod.UNKNOWN, "no line"
    at = call.started_at if call.started_at is not None else now
    return hours_mod.state_at(line.hours, line.timezone, at, facts.hours_override)


_RESOLVE = object()


def decide(call: CallRecord, cfg, *, now: float | None = None, facts: Facts = Facts(),
           line: LineView | None = _RESOLVE) -> Verdict:
    """now: the decision time (epoch seconds), None when unknown (replay without a clock).
    line: the call's line when the caller has resolved it already (None: no line)."""
    if line is _RESOLVE:
        line = find_line(cfg, call.called) if call.direction == INBOUND else None
    h_state, h_why = hours_state(line, call, now, facts)
    outcome = classify(call, service_closed=(h_state == hours_mod.CLOSED) if line else None,
                       min_talk_seconds=cfg.policy.min_talk_seconds)
    checks: list[Check] = []
    add = lambda name, ok, detail="": checks.append(Check(name, bool(ok), detail))  # noqa: E731

    add("missed", outcome.missed, outcome.why)
    if not outcome.missed:
        return Verdict(call, outcome, Decision("skip", tuple(checks)), _shown(call, cfg))
    if call.recovered and cfg.policy.text_recovered == "never":
        add("recovered", False, "rebuilt from the CDR after a gap; policy.text_recovered = never")
    elif call.recovered and call.recovered_why and cfg.policy.text_recovered != "all":
        add("recovered", False, f"rebuilt from the CDR, verdict ambiguous ({call.recovered_why}); "
                                "policy.text_recovered = unambiguous")
    elif call.recovered:
        add("recovered", True, "rebuilt from the CDR" + (" (ambiguous, texted: policy.text_recovered = all)"
                                                         if call.recovered_why else "; its verdict is unambiguous"))
    add("line", line is not None,
        (f"line {line.number}" + ("" if line.configured else " (every inbound number is a line)"))
        if line else f"{call.called or 'no number'} is not a configured line")
    if line is not None:
        add("line-enabled", line.enabled, f"line {line.number} is {'enabled' if line.enabled else 'disabled'}")
        add("reason-enabled", outcome.reason in line.reasons,
            f"texts for {outcome.reason} are {'on' if outcome.reason in line.reasons else 'off'} for this line")
        add("hours", True, f"{h_state}: {h_why}")

    to = _caller_check(call, cfg, add)
    _dedupe_check(cfg, facts, now, add)
    checks.extend(facts.extra_checks)

    body, template = "", ""
    if line is not None:
        template = line.templates.get(outcome.reason) or line.template
        try:
            body = render(template, _vars(cfg, line, call, outcome, now, facts.calls_missed))
            add("template", bool(body), f"{len(body)} characters" if body else "renders empty")
        except TemplateError as e:
            add("template", False, str(e))
            body = ""
    ok = all(c.ok for c in checks)
    due = None
    if ok:
        base = call.ended_at if call.ended_at is not None else now
        delay = line.delay_for(outcome.reason)
        due = None if base is None else base + delay
        if delay:
            add("delay", True, f"due {delay:g} s after the call ends: cancelled if the caller is reached first")
    decision = Decision("text" if ok else "skip", tuple(checks), line.number if line else "",
                        to or "", body if ok else "", template, due)
    return Verdict(call, outcome, decision, _shown(call, cfg))


def _caller_check(call: CallRecord, cfg, add) -> str | None:
    if call.withheld and not cfg.policy.text_withheld:
        add("caller", False, "anonymous: the caller withheld their number")
        return None
    info = number_info(call.caller, cfg.business.country, allowed_countries=cfg.allowed_countries,
                       internal_max_digits=cfg.policy.internal_max_digits)
    if not info.textable:
        add("caller", False, f"{info.why}: {call.caller or 'no number'}"
            + (f" ({info.type})" if info.type else ""))
        return None
    note = ""
    if info.type == "fixed_line_or_mobile":
        note = " (fixed-line or mobile: the numbering plan cannot tell)"
    add("caller", True, f"{info.e164} {info.type or ''}{note}".strip())
    return info.e164


def _dedupe_check(cfg, facts: Facts, now: float | None, add) -> None:
    window = cfg.policy.dedupe_hours * 3600
    if facts.last_text_at is None:
        add("dedupe", True, f"no text to this caller on this line in {cfg.policy.dedupe_hours:g} h")
        return
    if now is None or now - facts.last_text_at < window:
        add("dedupe", False, f"already texted on this line within {cfg.policy.dedupe_hours:g} h")
    else:
        add("dedupe", True, f"last text {int((now - facts.last_text_at) / 3600)} h ago")


def _vars(cfg, line: LineView, call: CallRecord, outcome: Outcome, now, calls_missed=1) -> dict:
    return template_vars(cfg, line, caller=call.caller, caller_name=call.caller_name,
                         reason=outcome.reason, at=call.started_at if call.started_at is not None else now,
                         calls_missed=calls_missed, voicemail_left=bool(call.voicemail_left))


def template_vars(cfg, line: LineView, *, caller: str, caller_name: str, reason: str,
                  at: float | None, calls_missed: int = 1, voicemail_left: bool = False) -> dict:
    """Template variables for a text on `line`; `at` picks the day whose hours are shown."""
    day = None
    if at is not None:
        day = datetime.fromtimestamp(at, timezone.utc).astimezone(ZoneInfo(line.timezone)).date()
    return variables(business_name=cfg.business.name, business_phone=cfg.business.phone,
                     line_number=line.number, line_name=line.name, caller_number=caller,
                     caller_name=caller_name, reason=reason, hours=hours_mod.describe(line.hours, day),
                     calls_missed=calls_missed, voicemail_left=voicemail_left)


_E164: dict[int, tuple] = {}      # id(cfg) -> (cfg, {raw: e164}); as _LINES


def e164_of(raw: str, cfg) -> str:
    """`raw` as E.164 where it parses, else as given: to_e164's answer through the caller
    check's own parse (number_info with the same arguments, one cache entry), so a new
    caller's number is parsed once per call, not once per question. Both parse and format
    alike; only a short number number_info calls internal goes through to_e164 itself.
    A call asks this five times of its caller: the answer is kept per config and number
    (bounded), each later ask one lookup instead of number_info's arguments built again."""
    return _kept(_E164, cfg, raw, _e164_of)


def _e164_of(cfg, raw: str) -> str:
    region = cfg.business.country
    info = number_info(raw, region, allowed_countries=cfg.allowed_countries,
                       internal_max_digits=cfg.policy.internal_max_digits)
    if info.why == "internal":
        return to_e164(raw, region) or raw
    return info.e164 or raw


def _shown(call: CallRecord, cfg) -> dict:
    """Caller and called as E.164 where they parse, for output and matching."""
    return {"caller": e164_of(call.caller, cfg) if not call.withheld else call.caller,
            "called": e164_of(call.called, cfg)}
