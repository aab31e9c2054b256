"""The last look before a due text goes out: send, hold, cancel or expire. Pure.

One scheduling mechanism for every wait (a line's delay, quiet hours, a pause): an outbox
row carries the time it is due, and this gate runs on it right before any transport sees it.
"""
from __future__ import annotations

from dataclasses import dataclass

SEND, HOLD, CANCEL, EXPIRE = "send", "hold", "cancel", "expire"
REQUIRED = ("confirmation", "help")      # replies the rules require; never automated marketing
PERSONAL = ("agent",)                    # a person at the front desk answering a person


@dataclass(frozen=True)
class GateFacts:
    reached_by: str = ""          # a call that reached the caller after the missed call
    replied: bool = False         # the caller replied after our text (follow-ups only)
    opted_out: bool = False
    paused: bool = False
    allowed_at: float | None = None   # quiet hours: the earliest time it may go (None: now)
    over_hourly_cap: str = ""         # the SMS-pumping guard says wait (why)


@dataclass(frozen=True)
class GateResult:
    action: str
    why: str
    until: float | None = None


def regardless(kind: str) -> GateResult | None:
    """The gate's answer for a text of `kind` that no fact can change, else None (the facts
    decide). The gate's first rule, and the outbox's reason to take such a row without
    reading any fact."""
    if kind in REQUIRED:
        # the answer to the caller's own STOP/START/HELP: owed even when suppressed or paused
        return GateResult(SEND, f"{kind} reply to the caller's own request")
    return None


def gate(kind: str, due_at: float, now: float, facts: GateFacts, *, max_age_s: float,
         created_at: float | None = None, max_hold_s: float | None = None) -> GateResult:
    """due_at: when the row is scheduled now; created_at: when the missed call was decided."""
    first = regardless(kind)
    if first is not None:
        return first
    if kind in PERSONAL:
        # not automated: a pause, the hourly cap and quiet hours do not hold it, and a call
        # that reached the caller does not cancel it; an opt-out always does
        if facts.opted_out:
            return GateResult(CANCEL, "caller opted out")
        late = now - due_at
        if max_age_s and late > max_age_s:
            return GateResult(EXPIRE, f"due {late / 60:.0f} min ago, over max_age_minutes {max_age_s / 60:.0f}")
        return GateResult(SEND, "a person's reply")
    if facts.reached_by:
        return GateResult(CANCEL, f"caller reached before the text went out ({facts.reached_by})")
    if kind == "follow-up" and facts.replied:
        return GateResult(CANCEL, "caller replied: no follow-up needed")
    if facts.opted_out:
        return GateResult(CANCEL, "caller opted out")
    late = now - due_at
    if max_age_s and late > max_age_s:
        return GateResult(EXPIRE, f"due {late / 60:.0f} min ago, over max_age_minutes "
                                  f"{max_age_s / 60:.0f}: a late 'sorry we missed you' does more harm than good")
    if facts.paused:
        return GateResult(HOLD, "automated texting is paused", now + 60)
    if facts.over_hourly_cap:
        return GateResult(HOLD, facts.over_hourly_cap, now + 300)
    if facts.allowed_at is not None and facts.allowed_at > now:
        if max_hold_s is not None and facts.allowed_at - (created_at or due_at) > max_hold_s:
            return GateResult(EXPIRE, "quiet hours would hold it longer than max_hold_hours")
        return GateResult(HOLD, "quiet hours at the recipient's location", facts.allowed_at)
    return GateResult(SEND, "due")
