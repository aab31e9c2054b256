"""The Reports page: the seven numbers for a period, charts beside their tables, CSV of each
table. One report() call per page (pbx_textback/reporting/report.py); signed-in users only (the app's
auth middleware)."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from aiohttp import web

from pbx_textback.core.report.compute import GROUPINGS, last_week
from pbx_textback.core.report.tables import show, tables
from pbx_textback.reporting.report import period, report, table_names, to_csv
from .charts import hbars

RATE_COLS = ("Reply rate", "Call-back rate 24 h", "Recovered rate", "Opt-out rate")


def routes(webapp) -> list[web.RouteDef]:
    page = ReportsPage(webapp)
    return [web.get("/reports", page.page), web.get("/reports.csv", page.csv)]


class ReportsPage:
    def __init__(self, webapp):
        self.w = webapp

    def _query(self, request) -> tuple[dict, str, str, str]:
        """The report for the form's period; raises HTTPBadRequest with a clear message."""
        tz = self.w.cfg.business.timezone
        q = request.query
        by = q.get("by", "line")
        if by not in GROUPINGS:
            raise web.HTTPBadRequest(text=f"by must be one of {', '.join(GROUPINGS)}")
        lo, hi = last_week(self.w.clock(), tz)
        since = q.get("since") or _day(lo, tz)
        until = q.get("until") or _day(hi - 1, tz)
        try:
            start, end = period(since, until, tz, self.w.clock())
            rep = report(self.w.store, start, end, by, self.w.cfg)
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        return rep, since, until, by

    async def page(self, request):
        rep, since, until, by = self._query(request)
        tbs = tables(rep)
        return self.w._page("reports.html", request, since=since, until=until, by=by, groupings=GROUPINGS,
                            sections=_sections(tbs), show=show,
                            csv_query=f"since={since}&until={until}&by={by}")

    async def csv(self, request):
        rep, since, until, by = self._query(request)
        name = request.query.get("table", "")
        if name and name not in table_names():
            raise web.HTTPBadRequest(text=f"table must be one of {', '.join(table_names())}")
        fname = f"report-{name or 'all'}-{since}-{until}-by-{by}.csv"
        return web.Response(text=to_csv(rep, name or None), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{fname}"'})


def _day(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(ZoneInfo(tz)).date().isoformat()


def _col(tb, title: str) -> int:
    return [c.title for c in tb.columns].index(title)


def _sections(tbs) -> list[dict]:
    """Each table with the chart drawn from the very cells it shows."""
    by = {t.name: t for t in tbs}
    groups = lambda tb: tb.rows[:-1]        # noqa: E731  the last row is the total
    calls, rates, resp, buck = by["calls"], by["rates"], by["response"], by["buckets"]
    i = _col(calls, "Missed calls")
    missed = hbars("Missed calls", [(r[0], [(r[i], show(r[i], "n"))]) for r in groups(calls)], ["Missed calls"],
                   name="missed")
    idx = [_col(rates, c) for c in RATE_COLS]
    rate = hbars("Rates", [(r[0], [(r[j], show(r[j], "rate")) for j in idx]) for r in groups(rates)],
                 list(RATE_COLS), top=1.0, name="rates")
    m = _col(resp, "Median")
    bm = _col(resp, "Median, business hours")
    median = hbars("Median time to first human response",
                   [(r[0], [(r[m], show(r[m], "s")), (r[bm], show(r[bm], "s"))]) for r in groups(resp)],
                   ["Calendar time", "Business hours"], name="median")
    total = buck.rows[-1]
    n = (len(buck.columns) - 1) // 2
    dist = hbars("Time to first human response (all)",
                 [(buck.columns[1 + k].title, [(total[1 + k], show(total[1 + k], "n")),
                                               (total[1 + n + k], show(total[1 + n + k], "n"))]) for k in range(n)],
                 ["Calendar time", "Business hours"], name="buckets")
    charts = {"calls": missed, "rates": rate, "response": median, "buckets": dist}
    return [{"table": t, "chart": charts.get(t.name)} for t in tbs]
