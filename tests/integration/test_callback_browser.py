"""Call back in a real browser (Debian's chromium driven by Playwright) against the running
service, whose AMI peer answers the Originate the way the recorded Asterisk did."""
import asyncio
import threading
import time
from dataclasses import replace

import pytest

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.service import Service
from pbx_textback.store import db as st
from tests.integration.test_callback import ANSWERS, NO_ANSWER, PW, TRACES, config, seed
from tests.peers.smsc_peer import free_port

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"


def test_call_back_button_in_a_real_browser(tmp_path):
    web_port = free_port()
    waiting = seed(tmp_path / "s.sqlite3", time.time())
    cfg = config(tmp_path, 1, web_port)
    ready, box = threading.Event(), {}

    async def main():
        server = AmiReplayServer([], username="t", secret="s", originate_traces=TRACES)
        port = await server.start()
        svc = Service(replace(cfg, pbx=replace(cfg.pbx, ami=replace(cfg.pbx.ami, port=port))))
        box.update(svc=svc, server=server, loop=asyncio.get_running_loop())

        async def mark_ready():
            while svc.web_port is None or svc.pbx_state != "connected":
                await asyncio.sleep(0.05)
            ready.set()
        await svc.run(extra_tasks=[mark_ready()])
        await server.stop()
    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    try:
        assert ready.wait(20)
        base = f"http://127.0.0.1:{web_port}"
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for who in ("bob", "alice"):
                page = browser.new_context().new_page()
                page.goto(base + "/login")
                page.fill("input[name=name]", who)
                page.fill("input[name=password]", PW)
                page.click("button[type=submit]")
                page.goto(f"{base}/c/{ANSWERS}")
                if who == "bob":          # no extension: the button is off and says why
                    sync_api.expect(page.locator("#callback")).to_be_disabled()
                    sync_api.expect(page.locator("#callback-why")).to_contain_text("you have no extension")
            sync_api.expect(page.locator("#callback")).to_be_enabled()
            page.click("#callback")
            sync_api.expect(page.locator(".item.callback")).to_contain_text("Call back by alice from the inbox")
            sync_api.expect(page.locator(".item.callback .detail")).to_have_text("connected (PJSIP/100)", timeout=5000)
            # the waiting text reads cancelled on the same page, live
            sync_api.expect(page.locator(".item.text .detail")).to_contain_text("cancelled: caller reached", timeout=5000)
            # the desk phone that never answers: the page updates by itself
            page.goto(f"{base}/c/{NO_ANSWER}")
            page.click("#callback")
            sync_api.expect(page.locator(".item.callback .detail")).to_have_text(
                "the desk phone did not answer (PJSIP/100)", timeout=5000)
            # a phone-sized screen: the button is reachable and nothing is wider than the screen
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.context.add_cookies(page.context.cookies())
            phone.goto(f"{base}/c/{ANSWERS}")
            assert phone.locator("#callback").is_visible()
            assert phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
            browser.close()
        originates = [a for a in box["server"].actions if a.get("Action") == "Originate"]
        assert [(a["Channel"], a["Exten"], a["CallerID"]) for a in originates] == [
            ("PJSIP/100", ANSWERS, f'"Callback {ANSWERS}" <{ANSWERS}>'),
            ("PJSIP/100", NO_ANSWER, f'"Callback {NO_ANSWER}" <{NO_ANSWER}>')]
    finally:
        if "svc" in box:
            box["loop"].call_soon_threadsafe(box["svc"].stop)
        thread.join(15)
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    assert st.Message.get_by_id(waiting).state == st.CANCELLED
    store.close()
