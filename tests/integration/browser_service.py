"""What the browser tests share: the running service serving the inbox (missed calls replayed
from the recorded AMI traces, texts through the real SMSC) and Debian's chromium driven by
Playwright against it (test_web_browser.py, test_desk_browser.py, test_live_refresh_browser.py).

The service runs in a thread with its own loop; Playwright's sync API runs in the test's thread.
The test reads the store with plain sqlite3, never through the service's peewee proxy."""
import asyncio
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from pbx_textback.config import loads
from pbx_textback.store import db as st
from pbx_textback.store import web as sw
from pbx_textback.web.passwords import hash_password
from tests.service_thread import ServiceThread
from tests.service_toml import smpp_service_toml

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
PW = "front desk 2026"


class Running(ServiceThread):
    """The service with two agents (maria, joe); the traces after the first wait for go_on."""

    def __init__(self, tmp_path, smsc, traces, web_port, *, first=True):
        self.db = tmp_path / "s.sqlite3"
        if first:
            store = st.open_store(str(self.db))
            sw.add_user(store, "maria", "agent", hash_password(PW), "101", time.time())
            sw.add_user(store, "joe", "agent", hash_password(PW), "102", time.time())
            store.close()
        self.go_on = threading.Event()

        # the second call comes once the test has the page open (go_on): it must show up live
        async def hold(i):
            while not self.go_on.is_set():
                await asyncio.sleep(0.05)
        super().__init__(loads(smpp_service_toml(self.db, smsc.port, business='timezone = "America/Chicago"',
                                                 extra=f'[web]\nlisten = "127.0.0.1:{web_port}"')),
                         traces, pace=0.5, before_trace=hold)

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


class Served:
    """The service on a port of its own, restartable on the same port and store."""

    def __init__(self, tmp_path, smsc, traces):
        from tests.peers.smsc_peer import free_port
        self.tmp_path, self.smsc, self.web_port = tmp_path, smsc, free_port()
        self.run = Running(tmp_path, smsc, traces, self.web_port)
        self.base = f"http://127.0.0.1:{self.web_port}"

    def restart(self) -> None:
        """Stopped and started again: same store, same port, no more calls."""
        self.run.stop()
        self.run = Running(self.tmp_path, self.smsc, [], self.web_port, first=False)
        self.run.thread.start()
        assert self.run.ready.wait(20), "the service did not come back"


@contextmanager
def chromium_on_the_inbox(tmp_path, smsc, traces, first_caller, args=()):
    """(served, browser): the service up with the first trace's call stored, and chromium."""
    served = Served(tmp_path, smsc, traces)
    served.run.thread.start()
    try:
        assert served.run.ready.wait(20), "the service did not serve the inbox"
        served.run.wait_rows("SELECT id FROM call WHERE caller = ?", first_caller)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", *args])
            yield served, browser
            browser.close()
    finally:
        served.run.stop()


def agent(browser, base, name, init_script=None):
    """An agent signed in, in a browser context of their own that may raise notifications."""
    ctx = browser.new_context(permissions=["notifications"])
    if init_script:
        ctx.add_init_script(init_script)
    page = ctx.new_page()
    page.goto(base + "/login")
    sign_in(page, name)
    return page


def until(page, check, timeout) -> bool:
    """Let Playwright deliver the page's events (route handlers run in them) until check().
    Not wait_for_function: when its expression is not true at once it polls through eval,
    which the page's Content-Security-Policy (no unsafe-eval) refuses."""
    end = time.monotonic() + timeout
    while not check() and time.monotonic() < end:
        page.wait_for_timeout(50)
    return check()
