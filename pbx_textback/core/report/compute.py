"""The manager's seven numbers, from the rows store/reports.py returns. Pure: no clock, no SQL.

Definitions (the README says each in one sentence):
- a missed call is an inbound call no person answered; a missed caller is a number with at
  least one missed call in the period (five missed calls from one number: one caller);
  withheld numbers are missed calls but never callers;
- an automated text is any text no person wrote (missed-call, follow-up, *89, resend);
- a reply is a caller's text other than a bare STOP/START/HELP keyword;
- a human response is an agent's text, a connected call back, or a call in which a person
  spoke with the caller; the clock starts at the caller's first reply, or at the first
  missed call when the agent acts before any reply, and each response (or closing the
  conversation) ends it: the caller's next call or text starts a new one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pbx_textback.core.policy.hours import DAYS, _span

REASONS = ("no-answer", "abandoned", "busy", "unavailable", "voicemail", "queue-abandon", "after-hours",
           "anonymous")
NOT_SENT = ("opted-out", "cap", "dedupe", "withheld", "reached", "replied", "expired", "not-textable",
            "off", "paused", "quiet-hours", "other")
BUCKETS = (("< 5 min", 300), ("5–15 min", 900), ("15–60 min", 3600), ("1–4 h", 14400), ("> 4 h", math.inf))
GROUPINGS = ("line", "agent", "campaign", "day", "week")
SLOT_S = 900
STALE_S = 7 * 86400      # a clock opened by missed calls alone, with no reply, runs at most a week


@dataclass(frozen=True)
class LineInfo:
    """What a report needs of a configured line: its label (campaign) and its hours."""
    number: str
    name: str = ""
    hours: object = None        # config.Hours, None: always open
    timezone: str = "UTC"


class Report:
    def __init__(self, by: str, tz: str, lines: dict[str, LineInfo], extensions: dict[str, str]):
        if by not in GROUPINGS:
            raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
        self.by, self.tz, self.zone, self.lines, self.ext = by, tz, ZoneInfo(tz), lines, extensions

    # ---- grouping ------------------------------------------------------------------------------
    def group(self, key) -> str:
        """The SQL's key (a line, an owner, a 15-minute slot) as the group a person reads."""
        if self.by in ("day", "week"):
            return self.period_of(int(key) * SLOT_S)
        if self.by == "agent":
            return key or "(unassigned)"
        if self.by == "campaign":
            info = self.lines.get(key or "")
            return (info.name if info and info.name else key) or "(no line)"
        return key or "(no line)"

    def period_of(self, at: float) -> str:
        d = datetime.fromtimestamp(at, timezone.utc).astimezone(self.zone).date()
        if self.by == "week":
            return (d - timedelta(days=d.weekday())).isoformat()   # the week's Monday
        return d.isoformat()

    def label(self, group: str) -> str:
        if self.by == "line" and group in self.lines and self.lines[group].name:
            return f"{self.lines[group].name} ({group})"
        if self.by == "week":
            return f"week of {group}"
        return group

    def responder(self, who: str, kind: str) -> str:
        if kind == "text":                            # the agent text's note: "by NAME"
            return who[3:] if who.startswith("by ") else "(unknown)"
        ext = who.rsplit("/", 1)[-1]                  # PJSIP/100, user/100 or 100
        return self.ext.get(ext, f"ext {ext}" if ext else "(phone)")


def build(rows, *, since: float, until: float, by: str, tz: str, lines: dict[str, LineInfo]) -> dict:
    """The report as a dict (JSON, CSV, the page and the API all read this)."""
    r = Report(by, tz, lines, rows.extensions)
    groups: dict[str, dict] = {}
    total = _empty()

    def acc(key):
        g = r.group(key)
        if g not in groups:
            groups[g] = _empty()
        return groups[g]

    for key, reason, missed, n in rows.calls:
        for m in (acc(key), total):
            m["calls"]["inbound"] += n
            if missed:
                m["calls"]["missed"] += n
                m["calls"]["by_reason"][reason] = m["calls"]["by_reason"].get(reason, 0) + n
    for key, state, why, held, n in rows.texts:
        for m in (acc(key), total):
            _count_text(m["texts"], state, why, n)
            m["texts"]["held"] += n if held else 0    # held at some point; counted by its fate too
    for key, why, n in rows.skipped:
        for m in (acc(key), total):
            m["texts"]["not_sent"][why] = m["texts"]["not_sent"].get(why, 0) + n
    for _, key, first, reached, replied in rows.missed_callers:
        for m in (acc(key), total):
            c = m["calls"]
            c["missed_callers"] += 1
            cb = m["callbacks"]
            if reached is not None and reached - first <= 3600:
                cb["within_1h"] += 1
            if reached is not None and reached - first <= 86400:
                cb["within_24h"] += 1
            if reached is not None or replied is not None:
                m["recovered"]["recovered"] += 1
    for _, key, first, replied, opted in rows.texted:
        for m in (acc(key), total):
            m["replies"]["callers_texted"] += 1
            m["replies"]["replied"] += replied is not None
            m["opt_outs"]["opted_out"] += opted is not None
    times: dict[str, list] = {}
    spans: dict = {}
    for ep in episodes(rows.events, rows.closes):
        if not since <= ep["start"] < until:
            continue
        g = (r.period_of(ep["start"]) if by in ("day", "week") else
             r.responder(ep["who"], ep["kind"]) if by == "agent" and ep["end"] is not None else
             "(unassigned)" if by == "agent" else r.group(ep["line"]))
        if g not in groups:
            groups[g] = _empty()
        if ep["end"] is None:
            groups[g]["response"]["waiting"] += 1
            total["response"]["waiting"] += 1
            continue
        info = lines.get(ep["line"])
        biz = open_seconds(ep["start"], ep["end"], info.hours if info else None, info.timezone if info else tz, spans)
        for name in (g, None):
            times.setdefault(name, []).append((ep["end"] - ep["start"], biz))
    for name, m in list(groups.items()) + [(None, total)]:
        _finish(m, times.get(name, []))
    order = sorted(groups) if by in ("day", "week") else sorted(groups, key=lambda g: (-groups[g]["calls"]["missed"], g))
    return {"since": since, "until": until, "by": by, "timezone": tz,
            "groups": [{"group": g, "label": r.label(g), **groups[g]} for g in order],
            "total": total}


def _empty() -> dict:
    return {"calls": {"inbound": 0, "missed": 0, "missed_callers": 0, "by_reason": {}},
            "texts": {"automated": 0, "sent": 0, "delivered": 0, "failed": 0, "unknown": 0, "waiting": 0,
                      "held": 0, "not_sent": {}},
            "replies": {"callers_texted": 0, "replied": 0},
            "response": {"count": 0, "waiting": 0},
            "callbacks": {"within_1h": 0, "within_24h": 0},
            "recovered": {"recovered": 0},
            "opt_outs": {"opted_out": 0}}


def _count_text(t: dict, state: str, why: str, n: int) -> None:
    t["automated"] += n
    if state in ("sent", "delivered", "no-receipt"):
        t["sent"] += n
        t["delivered"] += n if state == "delivered" else 0
    elif state in ("failed", "unknown"):
        t[state] += n
    elif state in ("pending", "sending"):
        t["waiting"] += n
    else:                                 # cancelled or expired: why, from its note
        reason = "expired" if state == "expired" else why if why in ("reached", "opted-out", "replied") else "other"
        t["not_sent"][reason] = t["not_sent"].get(reason, 0) + n


def _rate(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _finish(m: dict, times: list) -> None:
    c = m["calls"]
    c["missed_rate"] = _rate(c["missed"], c["inbound"])
    c["by_reason"] = {k: c["by_reason"][k] for k in sorted(c["by_reason"], key=_reason_order)}
    m["texts"]["not_sent"] = {k: m["texts"]["not_sent"][k] for k in NOT_SENT if k in m["texts"]["not_sent"]}
    m["replies"]["rate"] = _rate(m["replies"]["replied"], m["replies"]["callers_texted"])
    n = c["missed_callers"]
    m["callbacks"]["missed_callers"] = n
    m["callbacks"]["rate_1h"] = _rate(m["callbacks"]["within_1h"], n)
    m["callbacks"]["rate_24h"] = _rate(m["callbacks"]["within_24h"], n)
    m["recovered"]["missed_callers"] = n
    m["recovered"]["rate"] = _rate(m["recovered"]["recovered"], n)
    m["opt_outs"]["callers_texted"] = m["replies"]["callers_texted"]
    m["opt_outs"]["rate"] = _rate(m["opt_outs"]["opted_out"], m["replies"]["callers_texted"])
    cal = sorted(t for t, _ in times)
    biz = sorted(b for _, b in times)
    resp = m["response"]
    resp.update(count=len(times), median_s=percentile(cal, 50), p90_s=percentile(cal, 90),
                business_median_s=percentile(biz, 50), business_p90_s=percentile(biz, 90),
                buckets=buckets(cal), business_buckets=buckets(biz))


def _reason_order(reason: str) -> tuple:
    return (REASONS.index(reason) if reason in REASONS else len(REASONS), reason)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    if not values:
        return None
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def buckets(values: list[float]) -> dict[str, int]:
    out = {name: 0 for name, _ in BUCKETS}
    for v in values:
        out[next(name for name, hi in BUCKETS if v < hi)] += 1
    return out


def episodes(events, closes) -> list[dict]:
    """Response clocks per caller. events: (peer, at, kind, line, who) with kind missed|reply
    (start) or text|callback|answered|call (stop); closes: (peer, at) of a conversation set done.
    Each: start, end (None: still waiting for a person), line, kind and who of the response.
    A clock opened only by missed calls and never answered is no episode (nobody wrote); one
    whose first missed call is over a week old when the caller calls or writes again starts
    anew (store/reports.LOOKBACK_S reads a week back)."""
    per: dict[str, list] = {}
    for peer, at, kind, line, who in events:
        per.setdefault(peer, []).append((at, 0 if kind in ("missed", "reply") else 1, kind, line or "", who or ""))
    for peer, at in closes:
        if peer in per:
            per[peer].append((at, 2, "close", "", ""))
    out = []
    for peer, evs in per.items():
        evs.sort(key=lambda e: (e[0], e[1]))
        open_ = None
        for at, _, kind, line, who in evs:
            if kind == "close":
                open_ = None
            elif kind in ("missed", "reply"):
                if open_ is not None and open_["reply"] is None and at - open_["missed"] > STALE_S:
                    open_ = None          # missed calls nobody answered for a week: a new clock
                if open_ is None:
                    open_ = {"missed": None, "reply": None, "line": line}
                if open_[kind] is None:
                    open_[kind] = at
                open_["line"] = open_["line"] or line
            elif open_ is not None:
                start = open_["reply"] if open_["reply"] is not None else open_["missed"]
                out.append({"peer": peer, "start": start, "end": at, "line": open_["line"], "kind": kind, "who": who})
                open_ = None
        if open_ is not None and open_["reply"] is not None:
            out.append({"peer": peer, "start": open_["reply"], "end": None, "line": open_["line"], "kind": "", "who": ""})
    return out


def open_seconds(start: float, end: float, hours, tz: str, cache: dict | None = None) -> float:
    """Seconds of [start, end) during which the line was open (no hours: always open).
    Holidays are closed; a manual override of one day is not history, so it is not applied.
    cache: a dict kept for one report (a year of responses asks for the same days often)."""
    if hours is None or end <= start:
        return max(0.0, end - start)
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(start, timezone.utc).astimezone(zone).date()
    last = datetime.fromtimestamp(end, timezone.utc).astimezone(zone).date()
    cache = {} if cache is None else cache
    total = 0.0
    while day <= last:
        key = (id(hours), tz, day)           # the hours of this report's config: ids stay put
        spans = cache.get(key)
        if spans is None:
            spans = cache[key] = _open_spans(hours, tz, day)
        for lo, hi in spans:
            total += max(0.0, min(hi, end) - max(lo, start))
        day += timedelta(days=1)
    return total


def _open_spans(hours, tz: str, day: date) -> tuple[tuple[float, float], ...]:
    """A day's open intervals in epoch seconds."""
    if day.isoformat() in hours.holidays:
        return ()
    zone = ZoneInfo(tz)
    out = []
    for span in getattr(hours, DAYS[day.weekday()]):
        a, b = _span(span)
        lo = datetime.combine(day, a, zone).timestamp()
        hi = (datetime.combine(day, b, zone) if b is not None
              else datetime.combine(day + timedelta(days=1), time(0, 0), zone)).timestamp()
        out.append((lo, hi))
    return tuple(out)


def parse_day(s: str, tz: str, end: bool = False) -> float:
    """YYYY-MM-DD (local midnight in tz; end: the midnight after it, so the day is included)
    or an ISO date-time; a clear error for anything else."""
    try:
        if len(s) == 10:
            day = date.fromisoformat(s) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(0, 0), ZoneInfo(tz)).timestamp()
        d = datetime.fromisoformat(s)
        return (d if d.tzinfo else d.replace(tzinfo=ZoneInfo(tz))).timestamp()
    except (ValueError, OverflowError):       # 9999-12-31 has no day after it
        raise ValueError(f"{s!r} is not a date: give YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


def last_week(now: float, tz: str) -> tuple[float, float]:
    """Monday 00:00 to Monday 00:00 of the week before the one `now` is in (local time)."""
    zone = ZoneInfo(tz)
    today = datetime.fromtimestamp(now, timezone.utc).astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(days=7)
    return (datetime.combine(start, time(0, 0), zone).timestamp(),
            datetime.combine(monday, time(0, 0), zone).timestamp())


def fmt_duration(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def fmt_rate(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f} %"
