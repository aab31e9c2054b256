"""Business hours of a line: several intervals per day, holidays, a manual override. Pure."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OPEN, CLOSED, UNKNOWN = "open", "closed", "unknown"


def _span(s: str) -> tuple[time, time | None]:
    a, b = s.split("-")
    end = None if b == "24:00" else time.fromisoformat(b)
    return time.fromisoformat(a), end


def state_at(hours, tz: str, at: float | None, override: str = "auto",
             until: float | None = None) -> tuple[str, str]:
    """(open|closed|unknown, why). hours None: always open. at: epoch seconds or None.
    until: when the override ends (shown in why)."""
    if override in (OPEN, CLOSED):
        ends = (" until " + datetime.fromtimestamp(until, timezone.utc).astimezone(ZoneInfo(tz))
                .strftime("%a %Y-%m-%d %H:%M %Z")) if until is not None else " until changed by hand"
        return override, f"manual override: {override}{ends}"
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


def next_change(hours, tz: str, at: float) -> float | None:
    """The first instant after `at` at which the line's scheduled state (no override) changes:
    where `hours set LINE closed` for today ends. None: it never changes (always open, or closed
    every day of the week)."""
    if hours is None:
        return None
    zone = ZoneInfo(tz)
    start_day = datetime.fromtimestamp(at, timezone.utc).astimezone(zone).date()
    now_state = state_at(hours, tz, at)[0]
    candidates = []
    for n in range(0, 16):       # two weeks: past a holiday on the only open day
        day = start_day + timedelta(days=n)
        marks = [time(0, 0)]
        for span in getattr(hours, DAYS[day.weekday()]):
            start, end = _span(span)
            marks += [start] + ([end] if end is not None else [])
        candidates += [datetime.combine(day, m, zone).timestamp() for m in marks]
    for c in sorted(set(candidates)):
        if c > at and state_at(hours, tz, c)[0] != now_state:
            return c
    return None


def override_end(hours, tz: str, at: float) -> float:
    """When `hours set LINE open|closed` ends by itself: at the line's next opening or closing,
    or at the next local midnight when its hours never change (an override is for a day)."""
    change = next_change(hours, tz, at)
    if change is not None:
        return change
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(at, timezone.utc).astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(0, 0), zone).timestamp()


def week_lines(hours) -> list[str]:
    """The week as an admin reads it: one line per day."""
    if hours is None:
        return ["always open (no [line.hours])"]
    return [f"{d.capitalize()}  {', '.join(getattr(hours, d)) or 'closed'}" for d in DAYS]
