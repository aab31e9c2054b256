"""The inbox in a real browser (Debian's chromium driven by Playwright) against the running
service: missed calls replayed from the recorded AMI traces, texts through the real SMSC.

The service runs in a thread with its own loop; Playwright's sync API runs in the test's thread.
The test reads the store with plain sqlite3, never through the service's peewee proxy."""
import asyncio
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.config import loads
from pbx_textback.service import Service
from pbx_textback.store import db as st
from pbx_textback.store import web as sw
from pbx_textback.web.passwords import hash_password

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
FIRST, SECOND = "+17375550188", "+15125550177"     # 02-no-answer.ami, then 03-abandoned.ami
PW = "front desk 2026"


class Running:
    def __init__(self, tmp_path, smsc, traces, web_port, *, first=True):
        self.db = tmp_path / "s.sqlite3"
        self.traces = traces
        if first:
            store = st.open_store(str(self.db))
            sw.add_user(store, "maria", "agent", hash_password(PW), "101", time.time())
            sw.add_user(store, "joe", "agent", hash_password(PW), "102", time.time())
            store.close()
        self.cfg = loads(f"""
[business]
name = "Acme Dental"
phone = "+15125550100"
timezone = "America/Chicago"
[store]
path = "{self.db}"
[compliance]
quiet_hours = ""
[transport]
type = "smpp"
[transport.smpp]
host = "127.0.0.1"
port = {smsc.port}
system_id = "acme"
password = "pw"
[web]
listen = "127.0.0.1:{web_port}"
""")
        self.svc = None
        self.ready = threading.Event()
        self.go_on = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self):
        # the second call comes once the test has the page open (go_on): it must show up live
        async def hold(i):
            while not self.go_on.is_set():
                await asyncio.sleep(0.05)
        server = AmiReplayServer(self.traces, username="t", secret="s", pace=0.5, before_trace=hold)
        port = await server.start()
        cfg = replace(self.cfg, pbx=replace(self.cfg.pbx, ami=replace(self.cfg.pbx.ami, port=port,
                                                                       username="t", secret="s")))
        self.svc = Service(cfg)
        self.loop = asyncio.get_running_loop()

        async def mark_ready():
            while self.svc.web_port is None:
                await asyncio.sleep(0.05)
            self.ready.set()
        await self.svc.run(extra_tasks=[mark_ready()])
        await server.stop()

    def rows(self, sql, *args):
        with sqlite3.connect(self.db, timeout=5) as c:
            return c.execute(sql, args).fetchall()

    def wait_rows(self, sql, *args, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.rows(sql, *args)
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError(f"nothing for {sql} {args} within {timeout} s")

    def stop(self):
        if self.svc is not None:
            self.loop.call_soon_threadsafe(self.svc.stop)
        self.thread.join(15)


def sign_in(page, name):
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PW)
    page.click("button[type=submit]")


def mo_after_bind(smsc, from_, to, text, timeout=10.0):
    """The caller's text, once the restarted service is bound again (the SMSC refuses it before)."""
    end = time.monotonic() + timeout
    while True:
        got = smsc.mo(from_, to, text)
        if got.get("http_status", 200) != 409 or time.monotonic() > end:
            return got
        time.sleep(0.1)


def test_front_desk_in_a_real_browser(tmp_path, smsc):
    from tests.peers.smsc_peer import free_port
    web_port = free_port()
    run = Running(tmp_path, smsc, [FIX / "02-no-answer.ami", FIX / "03-abandoned.ami"], web_port)
    run.thread.start()
    try:
        assert run.ready.wait(20), "the service did not serve the inbox"
        base = f"http://127.0.0.1:{run.svc.web_port}"
        run.wait_rows("SELECT id FROM call WHERE caller = ?", FIRST)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(base + "/")                                   # sent to sign in first
            assert page.url.endswith("/login")
            sign_in(page, "maria")
            convs = page.locator(".convs .peer")
            sync_api.expect(convs).to_have_text([FIRST])            # Needs reply, from the replayed trace
            run.go_on.set()

            # the next missed call appears on the open page, no reload, within a second of being stored
            run.wait_rows("SELECT id FROM call WHERE caller = ?", SECOND)
            sync_api.expect(convs).to_have_text([FIRST, SECOND], timeout=1000)

            # a second agent in another browser sees maria claim the caller, live
            joe = browser.new_context().new_page()
            joe.goto(base + "/?view=open")
            sign_in(joe, "joe")
            joe.goto(base + "/?view=open")
            page.click(f"text={SECOND}")
            page.click("button:has-text('Claim')")
            sync_api.expect(page.locator(".state .owner")).to_have_text("maria")
            sync_api.expect(joe.locator(f".convs li:has-text('{SECOND}') .meta")).to_contain_text("maria", timeout=1000)

            # a reply typed in the box goes through the outbox to the real SMSC
            page.fill("#body", "We can fit you in at 3 today")
            sync_api.expect(page.locator("#segments")).to_have_text("GSM-7, 28 characters, 1 segment")
            page.click("text=Send")
            smsc.wait_for(lambda: any(m["text"] == "We can fit you in at 3 today"
                                      and m["destination_addr"].lstrip("+") == SECOND[1:]
                                      for m in smsc.messages()), timeout=10)
            run.wait_rows("SELECT id FROM message WHERE kind = 'agent' AND state = 'delivered'")

            # the caller answers with markup: it shows live, as text, and runs nothing
            mo_after_bind(smsc, SECOND[1:], "15125550140", '<script>window.pwned = 1</script><b>thanks!</b>')
            sync_api.expect(page.locator(".item.reply .body").last).to_have_text(
                '<script>window.pwned = 1</script><b>thanks!</b>', timeout=5000)
            assert page.evaluate("window.pwned") is None
            assert page.locator(".item.reply b").count() == 0

            # the service restarts: the open page's live stream reconnects by itself
            run.stop()
            run = Running(tmp_path, smsc, [], web_port, first=False)
            run.thread.start()
            assert run.ready.wait(20)
            mo_after_bind(smsc, SECOND[1:], "15125550140", "are you there?")
            sync_api.expect(page.locator(".item.reply .body").last).to_have_text("are you there?", timeout=8000)

            # a phone-sized screen: nothing wider than the screen
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.context.add_cookies(page.context.cookies())
            for path in ("/", f"/c/{SECOND}"):
                phone.goto(base + path)
                overflow = phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, path
            assert phone.locator("textarea#body").is_visible()
            browser.close()
    finally:
        run.stop()
