"""Admin pages in a real browser (Debian's chromium driven by Playwright): the template preview
follows the typing with its segment count; a saved change says "from the page" and shows in the
history; an agent is turned away from every admin page.

The inbox runs in a thread with its own loop, on the config example's text and a fresh store."""
import asyncio
import re
import threading
import time
from pathlib import Path

import pytest

from pbx_textback.config import loads
from pbx_textback.store import db as st
from pbx_textback.store import settings as ss
from pbx_textback.store import web as sw
from pbx_textback.web.app import Inbox
from pbx_textback.web.passwords import hash_password

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
EXAMPLE = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
LINE = "+15125550100"
PW = "front desk 2026"


class Served:
    def __init__(self, tmp_path):
        text = re.sub(r'(?m)^path = .*$', f'path = "{tmp_path / "s.sqlite3"}"', EXAMPLE)
        self.cfg = loads(text, str(tmp_path / "config.toml"), secrets=False)
        self.store = st.open_store(self.cfg.store.path)
        sw.add_user(self.store, "ada", "admin", hash_password(PW), "100", time.time())
        sw.add_user(self.store, "maria", "agent", hash_password(PW), "101", time.time())
        self.port = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def _main(self):
        self.inbox = Inbox(self.cfg, self.store, send=lambda *a: 1)
        self.port = await self.inbox.start("127.0.0.1", 0)
        self.loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        self.ready.set()
        await self.done.wait()
        await self.inbox.stop()

    def stop(self):
        self.loop.call_soon_threadsafe(self.done.set)
        self.thread.join(10)
        self.store.close()


def sign_in(page, base, name):
    page.goto(base + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PW)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def test_admin_pages_in_a_real_browser(tmp_path):
    srv = Served(tmp_path)
    base = f"http://127.0.0.1:{srv.port}"
    key = f"line[{LINE}].template"
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            sign_in(page, base, "ada")
            page.click("text=Admin")
            page.click(f"text={LINE}")
            box = page.locator(f'.tpl[data-key="{key}"]')
            origin = box.locator(".origin")
            sync_api.expect(origin).to_have_text("from the file")

            # the preview follows the typing: the sample caller's text, its encoding and segments
            area = box.locator("textarea")
            area.fill("")
            area.type("{{ business.name }}: hi {{ caller.name }}, sorry we missed you. Reply STOP to opt out.",
                      delay=5)
            sync_api.expect(box.locator(".preview")).to_have_text(
                "Acme Dental: hi Sam Sample, sorry we missed you. Reply STOP to opt out.")
            sync_api.expect(box.locator(".sms")).to_have_text("GSM-7, 71 characters, 1 segment")
            sync_api.expect(box.locator(".lint li")).to_have_count(0)
            area.type(" Ça va? " + "Merci beaucoup pour votre appel, nous vous rappelons bientôt! " * 2, delay=1)
            # 71 + 8 + 2 × 62 characters, the last space trimmed: 202 UTF-16 units, 67 per part
            sync_api.expect(box.locator(".sms")).to_have_text(
                "Unicode (UCS-2), 202 characters, 4 segments (Unicode because of ô)")
            # a text that would be refused says why before it is saved
            area.fill("Call us back")
            area.type("!")
            sync_api.expect(box.locator(".lint li.lint-error").first).to_contain_text("business")
            page.fill("#sample-name", "Zoë")
            area.fill("{{ business.name }}: sorry we missed you, {{ caller.name }}. Reply STOP to opt out.")
            area.type(" ")
            sync_api.expect(box.locator(".preview")).to_have_text(
                "Acme Dental: sorry we missed you, Zoë. Reply STOP to opt out.")

            # saved: the value now comes from the page, and the history says who changed what
            page.click("text=Save texts")
            box = page.locator(f'.tpl[data-key="{key}"]')
            sync_api.expect(box.locator(".origin")).to_have_text("from the page")
            hist = page.locator(".history tbody tr").first
            sync_api.expect(hist.locator(".by")).to_have_text("ada")
            sync_api.expect(hist.locator(".key")).to_have_text(key)
            sync_api.expect(hist.locator(".new")).to_contain_text("sorry we missed you, {{ caller.name }}")
            assert ss.overrides(srv.store)[key].startswith("{{ business.name }}: sorry we missed you")

            # the business name on the settings page, then its history
            page.click("text=Settings & history")
            page.fill('input[name="business.phone"]', "+15125550199")
            page.click("form[action='/admin/settings'] button:text-is('Save')")
            sync_api.expect(page.locator("label:has(input[name='business.phone']) .origin")).to_have_text("from the page")
            sync_api.expect(page.locator(".history tbody tr").first.locator(".key")).to_have_text("business.phone")

            # an agent in another browser is turned away from every admin page, with the reason
            agent = browser.new_context().new_page()
            sign_in(agent, base, "maria")
            assert agent.locator("a[href='/admin']").count() == 0
            for path in ("/admin", "/admin/users", f"/admin/lines/{LINE}", "/admin/settings"):
                r = agent.goto(base + path)
                assert r.status == 403, path
                sync_api.expect(agent.locator(".error")).to_contain_text("Only an admin can open the admin pages")

            # the line page on a phone-sized screen: nothing wider than the screen
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.context.add_cookies(page.context.cookies())
            for path in ("/admin", f"/admin/lines/{LINE}", "/admin/users", "/admin/settings"):
                phone.goto(base + path)
                overflow = phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, path
            browser.close()
    finally:
        srv.stop()
