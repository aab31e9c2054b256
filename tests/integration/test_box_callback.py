"""Call back through the PBX that owns the caller's line. Two processes on one store (SQLite
file, and a real PostgreSQL): `pbx-textback web -c FILE` (no PBX connection) and `pbx-textback
run` of PBX box B against its own loopback AMI server, which answers Originate the way a real
Asterisk 22 did (tests/fixtures/asterisk/originate/). The agent clicks Call back on the web
box; box B's service rings her desk phone through ITS PBX and the web box's timeline shows the
result. And in one service: a line another box owns is queued for that box, while a line this
box owns still originates at once from the request, as before."""
import asyncio
import re
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from pbx_textback.ami.replay_server import AmiReplayServer
from tests.harness import AMI_SECRET, AMI_USER, CallFeeder, ServiceProc, call_bytes, service_command, shipped_config
from tests.integration.test_web_only import WebProc, query, until
from tests.peers.smsc_peer import free_port

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "originate"
PW = "box call back 2026"
CALLER = "+15125551207"
LINE = "+15125550100"           # the shipped example's line (harness.call_bytes dials it)


class AnsweringFeeder(CallFeeder):
    """Box B's Asterisk: feeds its calls, and answers an Originate as the recorded one where the
    desk phone and then the caller answered."""

    def __init__(self):
        AmiReplayServer.__init__(self, [], username=AMI_USER, secret=AMI_SECRET,
                                 originate_traces={"*": FIX / "originate-answered.ami"})


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_call_back_clicked_on_the_web_box_rings_through_the_pbx_that_owns_the_line(kind, tmp_path, request):
    dsn = ""
    if kind == "postgres":
        from tests.integration.test_multipbx import fresh_schema
        dsn = request.getfixturevalue("pg_dsn")
        fresh_schema(dsn)
    asyncio.run(_scenario(kind, tmp_path, dsn))


async def _scenario(kind, tmp_path, dsn):
    feeder = AnsweringFeeder()
    port = await feeder.start()
    web_port = free_port()
    shared = tmp_path / "shared.sqlite3"
    common = {("compliance", "quiet_hours"): '""'}
    store_key = {("store", "dsn"): f'"{dsn}"'} if dsn else {}
    b = shipped_config(tmp_path / "b", ami_port=port, overrides={**common, **store_key, ("pbx", "id"): '"pbx-b"'})
    w = shipped_config(tmp_path / "w", ami_port=port, overrides={**common, **store_key, ("pbx", "id"): '"web-1"'},
                       extra=f'[web]\nlisten = "127.0.0.1:{web_port}"\n')
    if not dsn:         # one SQLite file for both
        for s in (b, w):
            s.config.write_text(s.config.read_text().replace(f'path = "{s.store}"', f'path = "{shared}"'))
    where = dsn or shared
    (tmp_path / "pw").write_text(PW + "\n")
    subprocess.run(service_command() + ["user", "add", "maria", "--role", "agent", "--extension", "100",
                                        "--password-file", str(tmp_path / "pw"), "-c", str(w.config)],
                   env=w.env, check=True, capture_output=True)
    svc = ServiceProc(b)
    web = None
    try:
        assert await feeder.wait_login(30), svc.tail()
        head, tail = call_bytes(CALLER, 1)
        assert await feeder.write(head + tail) is not None
        await until(lambda: query(kind, where, f"SELECT id FROM call WHERE caller = '{CALLER}' AND box = 'pbx-b'"),
                    20, "box B's record of the missed call")

        web = WebProc(w)
        await until(lambda: web.grep(r"web inbox only \(no PBX connection, no transport\)"), 20, "the web box")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            base = f"http://127.0.0.1:{web_port}"
            r = await http.post(base + "/login", data={"name": "maria", "password": PW}, allow_redirects=False)
            assert r.status == 303
            page = await (await http.get(f"{base}/c/{CALLER}")).text()
            button = re.search(r'<button type="submit" id="callback"[^>]*>', page).group(0)
            assert "disabled" not in button
            assert "rings your desk phone (100) first, through box pbx-b's PBX" in page
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            r = await http.post(f"{base}/c/{CALLER}/callback", data={"csrf": csrf}, allow_redirects=False)
            assert (r.status, r.headers.get("Location")) == (303, f"/c/{CALLER}"), await r.text()

            async def shows(words):
                end = time.monotonic() + 20
                while time.monotonic() < end:
                    page = await (await http.get(f"{base}/c/{CALLER}")).text()
                    if words in page:
                        return page
                    await asyncio.sleep(0.2)
                raise AssertionError(f"the web box's timeline never showed {words!r}:\n{page}")
            page = await shows("connected (PJSIP/100)")
        assert "Call back by maria from the inbox" in page
        # box B's PBX got the Originate: the agent's desk phone first, then the caller
        acts = [a for a in feeder.actions if a.get("Action") == "Originate"]
        assert len(acts) == 1
        a = acts[0]
        assert (a["Channel"], a["Context"], a["Exten"], a["Async"]) == ("PJSIP/100", "from-internal", CALLER, "true")
        assert a["CallerID"] == f'"Callback {CALLER}" <{CALLER}>'
        rows = query(kind, where, "SELECT * FROM callback")
        assert [(r["box"], r["state"], r["agent"], r["endpoint"]) for r in rows] == [
            ("pbx-b", "connected", "maria", "PJSIP/100")]
        assert svc.grep(r"call back \d+ by maria: ringing PJSIP/100")
        assert web.grep(r"call back \d+ asked for by maria from the inbox, queued for box pbx-b")
        assert feeder.connections == 1                        # the web box never connects to the PBX
        assert await web.stop() == 0, web.tail()
        assert await svc.stop() == 0, svc.tail()
    finally:
        for p in (svc, web):
            if p is not None and p.alive():
                print(p.tail(40))
                await p.stop(signal.SIGKILL)
        await feeder.stop()


def test_on_a_service_box_a_line_it_owns_originates_at_once_and_another_boxs_line_is_queued_for_that_box(tmp_path):
    from pbx_textback.store import callbacks as cbs
    from pbx_textback.store import db as st
    from tests.integration.test_callback import ANSWERS, LINE as OWN_LINE, run_service, sign_in
    other, other_line = "+15125550191", "+15125550160"

    async def scenario(svc, server, http, base, out):
        now = time.time()
        with svc.store.write():
            st.Call.update(box=svc.store.box).where(st.Call.line == OWN_LINE).execute()   # this box's line
            st.Call.create(box="pbx-a", call_id="a-1", pbx="asterisk", caller=other, caller_raw=other,
                           called=other_line, line=other_line, direction="inbound", missed=True,
                           reason="no-answer", record="{}", created_at=now - 60, started_at=now - 60)
        csrf = await sign_in(http, base, "alice")
        r = await http.post(f"{base}/c/{ANSWERS}/callback", data={"csrf": csrf}, allow_redirects=False)
        # the request itself started it: already ringing the channel, never queued
        out["own"] = (r.status, [(c.state, c.box, c.endpoint) for c in cbs.Callback.select().where(
            cbs.Callback.peer == ANSWERS)])
        out["other_page"] = await (await http.get(f"{base}/c/{other}")).text()
        r = await http.post(f"{base}/c/{other}/callback", data={"csrf": csrf}, allow_redirects=False)
        out["other_status"] = r.status
        await asyncio.sleep(1.5)                   # three polls of this box: not its call back to place
        out["other_rows"] = [(c.state, c.box, c.endpoint, c.agent) for c in cbs.Callback.select().where(
            cbs.Callback.peer == other)]
        out["other_after"] = await (await http.get(f"{base}/c/{other}")).text()
        out["exten"] = [a["Exten"] for a in server.actions if a.get("Action") == "Originate"]
    out, _ = run_service(tmp_path, scenario)
    status, rows = out["own"]
    assert status == 303
    assert len(rows) == 1 and rows[0][0] != "queued" and rows[0][1:] == (st.default_box(), "PJSIP/100")
    assert "rings your desk phone (100) first, through box pbx-a's PBX" in out["other_page"]
    assert out["other_status"] == 303
    assert out["other_rows"] == [("queued", "pbx-a", "100", "alice")]
    assert "waiting for box pbx-a&#39;s PBX to ring extension 100" in out["other_after"]
    assert out["exten"] == [ANSWERS]            # only the line this box owns went to its PBX
