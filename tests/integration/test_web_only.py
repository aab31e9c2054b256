"""`pbx-textback web -c FILE` on a box that only hosts the inbox, next to `pbx-textback run` of
PBX box B, both on one store (SQLite file, and a real PostgreSQL): the web box opens no PBX
connection and sends nothing itself; an agent's reply typed there is queued for box B (the box
that took the caller's call on that line), and B's service sends it."""
import asyncio
import re
import signal
import sqlite3
import subprocess
import threading
import time

import aiohttp
import pytest

from tests.harness import CallFeeder, ServiceProc, call_bytes, service_command, shipped_config
from tests.peers.smsc_peer import free_port

PW = "web only box 2026"
CALLER = "+15125551201"


class WebProc(ServiceProc):
    """`pbx-textback web -c FILE` as a child, stderr kept like the service's."""

    def __init__(self, setup):      # noqa: the parent's __init__ runs `run`; this runs `web`
        self.started = time.time()
        self.proc = subprocess.Popen(service_command() + ["web", "-c", str(setup.config)], env=setup.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


def query(kind, where, sql):
    if kind == "sqlite":
        with sqlite3.connect(f"file:{where}?mode=ro", uri=True, timeout=5) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(sql)]
    from tests.integration.test_multipbx import rows
    return rows(where, sql)


async def until(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = await asyncio.to_thread(pred)
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_reply_typed_on_the_web_box_goes_out_through_the_box_that_owns_the_line(kind, tmp_path, request):
    dsn = ""
    if kind == "postgres":
        from tests.integration.test_multipbx import fresh_schema
        dsn = request.getfixturevalue("pg_dsn")
        fresh_schema(dsn)
    asyncio.run(_scenario(kind, tmp_path, dsn))


async def _scenario(kind, tmp_path, dsn):
    feeder = CallFeeder()
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
    subprocess.run(service_command() + ["user", "add", "maria", "--role", "agent", "--password-file",
                                        str(tmp_path / "pw"), "-c", str(w.config)], env=w.env, check=True,
                   capture_output=True)
    svc = ServiceProc(b)
    web = None
    try:
        assert await feeder.wait_login(30), svc.tail()
        head, tail = call_bytes(CALLER, 1)
        assert await feeder.write(head + tail) is not None
        await until(lambda: query(kind, where, f"SELECT id FROM message WHERE peer = '{CALLER}' AND state = 'sent'"),
                    20, "box B's missed-call text")

        web = WebProc(w)
        await until(lambda: web.grep(r"web inbox only \(no PBX connection, no transport\)"), 20, "the web box")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            base = f"http://127.0.0.1:{web_port}"
            r = await http.post(base + "/login", data={"name": "maria", "password": PW}, allow_redirects=False)
            assert r.status == 303
            page = await (await http.get(f"{base}/c/{CALLER}")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            r = await http.post(f"{base}/c/{CALLER}/reply", data={"csrf": csrf, "body": "Yes, 3 pm works. See you!"},
                                allow_redirects=False)
            assert r.status == 303, await r.text()
        sent = await until(lambda: query(kind, where, "SELECT * FROM message WHERE kind = 'agent' AND state = 'sent'"),
                           20, "the agent's reply sent by box B")
        assert len(sent) == 1
        row = sent[0]
        assert (row["box"], row["line"], row["peer"], row["transport"]) == ("pbx-b", "+15125550100", CALLER, "log")
        assert "by maria (web box web-1)" in row["note"]
        assert svc.grep(r"TEXT to \+15125551201 from line \+15125550100 \[log-\d+\]: Yes, 3 pm works")
        assert not web.grep(r"TEXT to")                       # the web box sends nothing itself
        assert feeder.connections == 1                        # …and never connects to the PBX
        assert await web.stop() == 0, web.tail()
        assert await svc.stop() == 0, svc.tail()
    finally:
        for p in (svc, web):
            if p is not None and p.alive():
                print(p.tail(40))
                await p.stop(signal.SIGKILL)
        await feeder.stop()
