"""One time format for people and JSON output: ISO-8601 to the second, with the offset (the
business zone when given, else UTC). Pure."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo


def iso(ts: float | None, tz: str | None = None) -> str | None:
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, timezone.utc)
    if tz:
        dt = dt.astimezone(ZoneInfo(tz))
    return dt.isoformat(timespec="seconds")
