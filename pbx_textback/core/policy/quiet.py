"""Quiet hours in the RECIPIENT's local time, and what to do with a held text. Pure.

The allowed window is local wall-clock time [start, end) in the recipient's zone. Times in and
out are epoch seconds; the zone comes from the number (phonenumbers' time-zone data). DST:
- a window opening at 08:00 local on a change day opens at that day's 08:00 wall time, i.e.
  the UTC instant computed with the offset in force then (never "previous opening + 24 h");
- spring-forward gap: an opening whose wall time does not exist that day (e.g. 02:30 in New
  York on the second Sunday of March) opens at the transition itself (03:00 new time), the
  first instant whose wall clock reads past the opening;
- fall-back overlap: an opening whose wall time happens twice (e.g. 01:30 in New York on the
  first Sunday of November) opens at its first occurrence; if `at` falls after the window on
  the first pass, the repeated hour re-enters it (the rule is the wall clock, both passes).
FTSA (Florida, also Oklahoma's copy of it): 08:00-20:00 in the called party's zone and at most
3 texts per 24 h on the same subject — the preset below pairs the window with that cap.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers.timezone import time_zones_for_number

UTC = timezone.utc


def _hhmm(s: str) -> time:
    if s == "24:00":             # the end of the day, as in line hours: "00:00-24:00" = any time
        return time.max
    try:
        return time.fromisoformat(s)
    except (TypeError, ValueError):
        raise ValueError(f"quiet hours: {s!r} is not HH:MM") from None


@dataclass(frozen=True)
class QuietHours:
    """The ALLOWED window, local wall time of the recipient: start inclusive, end exclusive."""
    start: str = "08:00"
    end: str = "20:00"
    cap_24h: int | None = None      # at most this many automated texts per caller per 24 h
    name: str = ""

    def __post_init__(self):
        a, b = _hhmm(self.start), _hhmm(self.end)
        if not a < b:
            raise ValueError(f"quiet hours: start {self.start} must be before end {self.end} "
                             "(windows across midnight are not supported)")

    @property
    def window(self) -> tuple[time, time]:
        return _hhmm(self.start), _hhmm(self.end)

    def describe(self) -> str:
        return f"{self.start}-{self.end} recipient's local time" + (
            f", at most {self.cap_24h} per 24 h" if self.cap_24h else "") + (
            f" ({self.name})" if self.name else "")


DEFAULT = QuietHours("08:00", "20:00")
FTSA = QuietHours("08:00", "20:00", cap_24h=3, name="FTSA")
PRESETS = {"default": DEFAULT, "ftsa": FTSA}


# --- the recipient's zone ---------------------------------------------------------------------

# Sample instants (noon UTC every 7 days over two years) to tell whether several zones keep the
# same clock (e.g. a UK mobile: London, Jersey, Guernsey, Isle of Man). Fixed: no clock here.
_SAMPLES = tuple(datetime(2025, 1, 1, 12, tzinfo=UTC) + timedelta(days=d) for d in range(0, 731, 7))


@lru_cache(maxsize=512)
def _same_clock(zones: tuple[str, ...]) -> bool:
    zi = [ZoneInfo(z) for z in zones]
    return all(len({t.astimezone(z).utcoffset() for z in zi}) == 1 for t in _SAMPLES)


def recipient_zones(e164: str) -> tuple[str, ...]:
    """Every zone phonenumbers gives the number (empty when unknown or unparsable)."""
    try:
        n = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in time_zones_for_number(n) if z != "Etc/Unknown")
    good = []
    for z in zones:
        try:
            ZoneInfo(z)
            good.append(z)
        except Exception:            # zone name unknown to this system's tzdata
            continue
    return tuple(good)


def _home_zone(e164: str, zones: tuple[str, ...]) -> str:
    """Of equivalent zones, the one of the number's own country (London, not Guernsey, for GB)."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.FIXED_LINE)
        home = time_zones_for_number(example) if example else ()
    except Exception:
        home = ()
    return next((z for z in home if z in zones), zones[0])


@lru_cache(maxsize=1024)
def recipient_zone(e164: str, business_tz: str) -> tuple[str, str]:
    """(zone, why). One zone -> it. Several -> the business's zone (why says so), except when
    they all keep the same clock (then the first). None known -> the business's zone."""
    zones = recipient_zones(e164)
    if len(zones) == 1:
        return zones[0], f"{e164} is in {zones[0]}"
    if not zones:
        return business_tz, f"no time zone known for {e164}: using the business's zone {business_tz}"
    if business_tz in zones:
        return business_tz, (f"{e164} spans {len(zones)} zones ({', '.join(zones)}): using the "
                             f"business's zone {business_tz}")
    if _same_clock(zones):
        z = _home_zone(e164, zones)
        return z, f"{e164} spans {', '.join(zones)}, which keep the same clock: {z}"
    return business_tz, (f"{e164} spans {len(zones)} zones ({', '.join(zones)}): using the "
                         f"business's zone {business_tz}")


# --- the window --------------------------------------------------------------------------------

def _wall(at: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at, UTC).astimezone(tz).replace(tzinfo=None)


def inside(at: float, zone: str, qh: QuietHours) -> bool:
    start, end = qh.window
    t = _wall(at, ZoneInfo(zone)).time()
    return start <= t < end


def _openings(day: date, start: time, tz: ZoneInfo) -> list[float]:
    """UTC instants at which the wall clock reaches `start` on `day` (0, 1 or 2 of them)."""
    naive = datetime.combine(day, start)
    out = []
    for fold in (0, 1):
        aware = naive.replace(tzinfo=tz, fold=fold)
        ts = aware.timestamp()
        if _wall(ts, tz) == naive:
            out.append(ts)                       # exists (twice in an overlap: fold 0 and 1)
    if not out:
        # Spring-forward gap: the wall time is skipped. fold=1 gives the earlier candidate,
        # fold=0 the later; the transition lies between. Find the first second whose wall
        # clock is at or past `start`.
        lo = naive.replace(tzinfo=tz, fold=1).timestamp()
        hi = naive.replace(tzinfo=tz, fold=0).timestamp()
        lo, hi = min(lo, hi), max(lo, hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _wall(mid, tz) >= naive:
                hi = mid
            else:
                lo = mid
        out.append(float(hi))
    return sorted(set(out))


def next_allowed(at: float, zone: str, qh: QuietHours = DEFAULT) -> float:
    """`at` itself when inside the window, else the next instant the window opens."""
    tz = ZoneInfo(zone)
    start, _ = qh.window
    if inside(at, zone, qh):
        return at
    day = _wall(at, tz).date()
    for d in range(-1, 3):                       # -1: a late-night `at` still on yesterday's fold
        for ts in _openings(day + timedelta(days=d), start, tz):
            if ts > at and inside(ts, zone, qh):
                return ts
    raise ValueError(f"no opening of {qh.describe()} in {zone} within two days of {at}")  # pragma: no cover


# --- held texts ---------------------------------------------------------------------------------

SEND, HOLD, DROP = "send", "hold", "drop"


def hold_decision(due: float, now: float, caller_reached: bool, max_hold_hours: float, *,
                  held_since: float | None = None) -> tuple[str, str]:
    """(send|hold|drop, why) for a text that may go out at `due` (the window opening).

    held_since: when the text first became due (the call's end + delay); defaults to `due`.
    Dropped when the caller was reached meanwhile, or when it has waited — or would wait until
    `due` — more than max_hold_hours. Otherwise sent once now >= due, held before.
    """
    since = due if held_since is None else held_since
    limit = max_hold_hours * 3600
    if caller_reached:
        return DROP, "the caller was reached meanwhile"
    if due - since > limit:
        return DROP, (f"the window opens {_hours(due - since)} after the text was due: "
                      f"more than max_hold_hours ({max_hold_hours:g} h)")
    if now - since > limit:
        return DROP, f"held {_hours(now - since)}: more than max_hold_hours ({max_hold_hours:g} h)"
    if now >= due:
        return SEND, ("inside the recipient's window" if due <= since else
                      f"window open; held {_hours(now - since)}")
    return HOLD, f"quiet hours: held {_hours(due - now)} until the recipient's window opens"


def plan_send(now: float, zone: str, qh: QuietHours, *, held_since: float | None = None,
              caller_reached: bool = False, max_hold_hours: float = 12.0) -> tuple[str, str, float]:
    """For the outbox worker, each time it looks at a pending row: (action, why, due).

    Recomputes the window from `now` (a worker that was down past the window's end must hold
    again, not send at 21:00), then applies hold_decision. Store `due` as the row's due time.
    """
    due = next_allowed(now, zone, qh)
    since = now if held_since is None else held_since
    action, why = hold_decision(due, now, caller_reached, max_hold_hours, held_since=since)
    return action, f"{why} ({qh.describe()}, {zone})", due


def _hours(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, m = divmod(seconds // 60, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"
