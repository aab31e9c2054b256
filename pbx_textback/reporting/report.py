"""Reports: the store's rows (store/reports.py) through the pure math (core/report/compute.py).

`report(store, since, until, by)` is the one entry point: the CLI, the web page and the REST
API all call it, so they show the same numbers.
"""
from __future__ import annotations

import csv
import io
import json
import sys
import time

from pbx_textback.core.report import compute as core
from pbx_textback.core.report.tables import csv_rows, tables, text
from pbx_textback.store import reports as sql


def line_infos(cfg) -> dict[str, core.LineInfo]:
    """The configured lines by number: a DID's name is its campaign; its hours stop the clock."""
    if cfg is None:
        return {}
    tz = cfg.business.timezone
    return {ln.number: core.LineInfo(ln.number, ln.name, ln.hours, ln.timezone or tz) for ln in cfg.line}


def report(store, since: float, until: float, by: str = "line", cfg=None) -> dict:
    """The seven numbers for [since, until) (epoch seconds) per group (line | agent |
    campaign | day | week) and in total, as a plain dict (README "Reports")."""
    if by not in core.GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(core.GROUPINGS)}, not {by!r}")
    if until <= since:
        raise ValueError("the period is empty: until must come after since")
    tz = cfg.business.timezone if cfg is not None else "UTC"
    rows = sql.report_rows(store, since, until, by)
    return core.build(rows, since=since, until=until, by=by, tz=tz, lines=line_infos(cfg))


def period(since: str | None, until: str | None, tz: str, now: float) -> tuple[float, float]:
    """--since/--until as local dates, both days included (a date-time for --until is the
    exclusive end); neither: last week, Monday to Sunday."""
    if not since and not until:
        return core.last_week(now, tz)
    lo = core.parse_day(since, tz) if since else core.last_week(now, tz)[0]
    hi = core.parse_day(until, tz, end=True) if until else now
    if hi <= lo:
        raise ValueError(f"--until ({until or 'now'}) must come after --since ({since})")
    return lo, hi


def to_csv(rep: dict, table: str | None = None) -> str:
    """One table (by name) or every table one after another, each with its title row."""
    out = io.StringIO()
    w = csv.writer(out)
    for tb in tables(rep):
        if table and tb.name != table:
            continue
        if not table:
            w.writerow([tb.title])
        w.writerows(csv_rows(tb))
        if not table:
            w.writerow([])
    return out.getvalue()


def table_names() -> tuple[str, ...]:
    return ("calls", "texts", "rates", "response", "buckets")


def run_cli(a, cfg, store) -> int:
    """`pbx-textback report`."""
    tz = cfg.business.timezone
    try:
        since, until = period(a.since, a.until, tz, time.time())
        rep = report(store, since, until, a.by, cfg)
    except ValueError as e:
        print(f"pbx-textback report: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(rep, indent=2, ensure_ascii=False))
    elif a.csv:
        sys.stdout.write(to_csv(rep, a.table))
    else:
        print(f"{_local(since, tz)} to {_local(until, tz)} ({tz}), by {a.by}\n")
        print(text(rep))
    return 0


def _local(ts: float, tz: str) -> str:
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M")


def api_report(inbox, request) -> dict:
    """GET /api/v1/reports?from=YYYY-MM-DD&to=YYYY-MM-DD&by=line|agent|campaign|day|week
    (web/api.py calls it): {"data": the report}, both days included; neither: last week."""
    from pbx_textback.web.api import ApiError
    q = request.query
    tz = inbox.cfg.business.timezone
    by = q.get("by", "line")
    try:
        since, until = period(q.get("from") or q.get("since"), q.get("to") or q.get("until"), tz, inbox.clock())
        return {"data": report(inbox.store, since, until, by, inbox.cfg)}
    except ValueError as e:
        raise ApiError(400, str(e)) from None
