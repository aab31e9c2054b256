"""Business hours of a line: several intervals per day, holidays, a manual override. Pure."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OPEN, CLOSED, UNKNOWN = "open", "closed", "unknown"


def _span(s: str) -> tuple[time, time | None]:
    a, b = s.split("-")
    end = None if b == "24:00" else time.fromisoformat(b)
    return time.fromisoformat(a), end


def state_at(hours, tz: str, at: float | None, override: str = "auto") -> tuple[str, str]:
    """(open|closed|unknown, why). hours None: always open. at: epoch seconds or None."""
    if override in (OPEN, CLOSED):
        return override, f"manual override: {override}"
    if hours is None:
        return OPEN, "no business hours set: always open"
    if at is None:
        return UNKNOWN, "no clock for this call (no --at, no timestamps in the events)"
    local = datetime.fromtimestamp(at, timezone.utc).astimezone(ZoneInfo(tz))
    stamp = local.strftime("%a %Y-%m-%d %H:%M %Z")
    if local.date().isoformat() in hours.holidays:
        return CLOSED, f"{stamp}: holiday"
    now = local.time().replace(tzinfo=None)
    for span in getattr(hours, DAYS[local.weekday()]):
        start, end = _span(span)
        if now >= start and (end is None or now < end):
            return OPEN, f"{stamp}: inside {span}"
    return CLOSED, f"{stamp}: outside business hours"


def describe(hours, day: date | None = None) -> str:
    """Short text for templates: today's hours, or the week."""
    if hours is None:
        return "open"
    if day is not None:
        spans = getattr(hours, DAYS[day.weekday()])
        return ", ".join(spans) if spans else "closed"
    parts = [f"{d.capitalize()} {', '.join(getattr(hours, d))}" for d in DAYS if getattr(hours, d)]
    return "; ".join(parts) or "closed"
