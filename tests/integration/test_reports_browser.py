"""The Reports page in a real browser (Debian's chromium driven by Playwright): the replayed day
of tests/report_day.py served by the web app on loopback; every bar of every chart must show the
number of its table cell, the numbers are the ones counted by hand, and each table's CSV holds
them too. The web app runs in a thread with its own loop; Playwright's sync API in the test's."""
import asyncio
import csv
import io
import threading

import pytest

from pbx_textback.web.app import Inbox
from tests.report_day import play_day

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
QUERY = "since=2027-01-15&until=2027-01-15"
# the median chart's series -> the response table's columns
MEDIAN_COLS = {"Calendar time": "Median", "Business hours": "Median, business hours"}


class Served:
    def __init__(self, h):
        self.inbox = Inbox(h.cfg, h.store)
        self.port, self.ready = None, threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        self.port = await self.inbox.start("127.0.0.1", 0)
        self.ready.set()
        await self.done.wait()
        await self.inbox.stop()

    def stop(self):
        self.loop.call_soon_threadsafe(self.done.set)
        self.thread.join(10)


READ_TABLES = """() => Object.fromEntries([...document.querySelectorAll('table[data-table]')].map(t =>
  [t.dataset.table, Object.fromEntries([...t.querySelectorAll('tbody tr')].map(r =>
    [r.querySelector('th').textContent, Object.fromEntries([...r.querySelectorAll('td')].map(
      d => [d.dataset.col, d.innerText]))]))]))"""
READ_BARS = """els => els.map(e => [e.closest('svg').dataset.chart, e.dataset.row, e.dataset.series,
                                 e.querySelector('text.value').textContent])"""


def cell(page, table, row, col):
    return page.evaluate(READ_TABLES)[table][row][col]


def bar_text(page, chart, row, series=None):
    return [b[3] for b in page.eval_on_selector_all("svg.chart g.bar", READ_BARS)
            if b[0] == chart and b[1] == row and (series is None or b[2] == series)][0]


def test_charts_and_tables_show_the_same_numbers(tmp_path):
    h = play_day({"path": str(tmp_path / "r.sqlite3"), "dsn": ""})
    served = Served(h)
    served.thread.start()
    try:
        assert served.ready.wait(10)
        base = f"http://127.0.0.1:{served.port}"
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(base + f"/reports?{QUERY}")
            assert page.url.endswith("/login")                # signed-in users only
            page.fill("input[name=name]", "maria")
            page.fill("input[name=password]", "maria-secret-1")
            page.click("button[type=submit]")
            for by in ("agent", "campaign", "day", "week", "line"):      # line last: checked below
                page.goto(base + f"/reports?{QUERY}&by={by}")
                assert page.locator("h1").inner_text() == "Reports"
                bars = page.eval_on_selector_all("svg.chart g.bar", READ_BARS)
                cells = page.evaluate(READ_TABLES)
                assert len(bars) >= 14, by
                seen = set()
                for chart, row, series, shown in bars:
                    if chart == "missed":
                        want = cells["calls"][row]["Missed calls"]
                    elif chart == "rates":
                        want = cells["rates"][row][series]
                    elif chart == "median":
                        want = cells["response"][row][MEDIAN_COLS[series]]
                    else:
                        col = row + (" (business hours)" if series == "Business hours" else "")
                        want = cells["buckets"]["Total"][col]
                    assert shown == want, (by, chart, row, series)
                    seen.add(chart)
                assert seen == {"missed", "rates", "median", "buckets"}, by

            # the hand-counted numbers (tests/replay/test_reports_day.py) on the page
            assert cell(page, "calls", "Total", "Missed calls") == "8"
            assert cell(page, "calls", "Total", "Missed callers") == "7"
            assert cell(page, "rates", "Total", "Reply rate") == "60.0 %"
            assert cell(page, "rates", "Google Ads (+15125550140)", "Call-back rate 1 h") == "100.0 %"
            assert cell(page, "response", "Total", "Median") == "30 min"
            assert cell(page, "response", "Google Ads (+15125550140)", "Median, business hours") == "10 min"
            assert bar_text(page, "missed", "Google Ads (+15125550110)") == "3"
            assert bar_text(page, "buckets", "1–4 h", "Calendar time") == "2"

            # campaign: the form's choice reaches the page
            page.select_option("select[name=by]", "campaign")
            page.click("form.report-period button[type=submit]")
            assert "by=campaign" in page.url
            assert bar_text(page, "missed", "Google Ads") == "5"

            # each table's CSV: the same numbers, raw
            resp = page.request.get(base + f"/reports.csv?{QUERY}&by=campaign&table=calls")
            assert resp.ok and resp.headers["content-type"].startswith("text/csv")
            assert "attachment" in resp.headers["content-disposition"]
            rows = list(csv.reader(io.StringIO(resp.text())))
            assert rows[0][:5] == ["Campaign", "Inbound calls", "Missed calls", "Missed share", "Missed callers"]
            assert [r for r in rows if r[0] == "Google Ads"][0][1:3] == ["6", "5"]
            bad = page.request.get(base + "/reports?since=last+week&until=2027-01-15")
            assert bad.status == 400 and "'last week' is not a date" in bad.text()
            browser.close()
    finally:
        served.stop()
        h.store.close()
