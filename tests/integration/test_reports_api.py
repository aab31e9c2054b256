"""GET /api/v1/reports with a token, over real HTTP, on the replayed day of tests/report_day.py:
the same numbers as `report --json` (counted by hand in tests/replay/test_reports_day.py)."""
import asyncio
import time

from aiohttp.test_utils import TestClient, TestServer

from pbx_textback.store import api as sa
from pbx_textback.web.app import Inbox
from tests.report_day import play_day


def test_reports_through_the_api(tmp_path):
    h = play_day({"path": str(tmp_path / "a.sqlite3"), "dsn": ""})
    box = Inbox(h.cfg, h.store)
    token = sa.add_token(h.store, "dash", "read", time.time())
    auth = {"Authorization": f"Bearer {token}"}

    async def main():
        async with TestClient(TestServer(box.app())) as c:
            ok = await c.get("/api/v1/reports?from=2027-01-15&to=2027-01-15&by=campaign", headers=auth)
            bad = await c.get("/api/v1/reports?from=yesterday", headers=auth)
            worse = await c.get("/api/v1/reports?from=2027-01-15&to=2027-01-15&by=month", headers=auth)
            anon = await c.get("/api/v1/reports")
            return (ok.status, await ok.json()), (bad.status, await bad.json()), \
                (worse.status, await worse.json()), anon.status
    (s1, b1), (s2, b2), (s3, b3), s4 = asyncio.run(main())
    assert s1 == 200
    t = b1["data"]["total"]
    assert (t["calls"]["missed"], t["calls"]["missed_callers"], t["replies"]["replied"]) == (8, 7, 3)
    assert {g["group"] for g in b1["data"]["groups"]} == {"Google Ads", "Main line", "Sales"}
    assert s2 == 400 and "'yesterday' is not a date" in b2["error"]["message"]
    assert s3 == 400 and "by must be one of line, agent, campaign, day, week" in b3["error"]["message"]
    assert s4 == 401
    h.store.close()
