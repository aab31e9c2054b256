"""The front-desk inbox over real HTTP (aiohttp's test server on a loopback port): who may see
what, sessions, CSRF, sign-in limits, the views, the timeline and the reply box."""
import asyncio
import re
import subprocess
import sys
import time

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer

from pbx_textback.config import loads
from pbx_textback.core.policy import consent
from pbx_textback.store import db as st
from pbx_textback.store import web as sw
from pbx_textback.web.app import PUBLIC, Inbox
from pbx_textback.web.passwords import hash_password
from tests.web_client import run

PEER = "+15125550177"
LINE = "+15125550140"
PW = "correct horse battery"


def cfg_for(tmp_path):
    return loads(f"""
[business]
name = "Acme Dental"
phone = "+15125550100"
timezone = "America/Chicago"
[store]
path = "{tmp_path / 's.sqlite3'}"
""")


@pytest.fixture
def inbox(tmp_path):
    cfg = cfg_for(tmp_path)
    store = st.open_store(cfg.store.path)
    sw.add_user(store, "maria", "agent", hash_password(PW), "101", time.time())
    sent = []

    def send(peer, line, body, by):
        with store.write():
            mid = store.add_message(direction="out", kind="agent", line=line, peer=peer, body=body,
                                    state="pending", due_at=time.time(), note=f"by {by}")
        sent.append((peer, line, body, by))
        return mid
    box = Inbox(cfg, store, send=send)
    box.sent = sent
    yield box
    store.close()


async def sign_in(client, name="maria", password=PW):
    return await client.post("/login", data={"name": name, "password": password}, allow_redirects=False)


async def csrf_of(client, path="/"):
    page = await (await client.get(path)).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def missed_call(store, peer, at, call_id=None, line=LINE):
    with store.write():
        st.Call.create(call_id=call_id or f"c{at}", pbx="asterisk", caller=peer, caller_raw=peer, called=line,
                       line=line, direction="inbound", missed=True, reason="no-answer",
                       why="nobody answered within 20 s", record="{}", created_at=at, started_at=at)


def reply(store, peer, body, at):
    with store.write():
        store.add_message(direction="in", kind="reply", line=LINE, peer=peer, body=body, state="received",
                          due_at=at, created_at=at, note="message")


def test_every_route_but_sign_in_and_health_needs_a_session(inbox):
    routes = [(r.method, r.resource.canonical) for r in inbox.app().router.routes()
              if r.method != "HEAD"]
    assert PUBLIC == {("GET", "/login"), ("POST", "/login"), ("GET", "/health"), ("GET", "/static/style.css")}
    private = [r for r in routes if r not in PUBLIC]
    assert len(private) >= 8

    async def scenario(client):
        out = {}
        for method, path in private:
            r = await client.request(method, path.replace("{peer}", PEER), allow_redirects=False)
            out[(method, path)] = (r.status, r.headers.get("Location", ""))
        out["health"] = (await client.get("/health")).status
        return out
    got = run(inbox, scenario)
    assert got.pop("health") == 200
    for route, (status, where) in got.items():
        assert (status, where) in ((303, "/login"), (401, "")), route


def test_sign_in_gives_a_new_http_only_lax_session_and_logout_ends_it(inbox):
    async def scenario(client):
        client.session.cookie_jar.update_cookies({"pbxtb_session": "planted-by-someone-else"})
        r = await sign_in(client)
        cookie = r.headers["Set-Cookie"]
        token = r.cookies["pbxtb_session"].value
        inbox_page = await client.get("/", allow_redirects=False)
        csrf = re.search(r'name="csrf" value="([^"]+)"', await inbox_page.text()).group(1)
        out = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
        client.session.cookie_jar.update_cookies({"pbxtb_session": token})
        after = await client.get("/", allow_redirects=False)
        tls = await client.post("/login", data={"name": "maria", "password": PW},
                                headers={"X-Forwarded-Proto": "https"}, allow_redirects=False)
        return r.status, cookie, token, inbox_page.status, out.status, after.status, tls.headers["Set-Cookie"]
    status, cookie, token, page, out, after, tls_cookie = run(inbox, scenario)
    assert status == 303 and page == 200
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert token != "planted-by-someone-else" and len(token) >= 40
    assert out == 303 and after == 303          # the old cookie no longer opens the inbox
    assert "Secure" in tls_cookie               # behind a TLS proxy on this box


def test_sign_out_everywhere_ends_every_session_of_the_user(inbox):
    async def scenario(client):
        async with TestClient(TestServer(inbox.app())) as phone:
            await sign_in(phone)
            await sign_in(client)
            csrf = await csrf_of(client)
            await client.post("/logout", data={"csrf": csrf, "everywhere": "1"})
            return (await phone.get("/", allow_redirects=False)).status
    assert run(inbox, scenario) == 303


def test_a_post_without_the_csrf_token_is_refused_and_sends_nothing(inbox):
    missed_call(inbox.store, PEER, time.time() - 60)

    async def scenario(client):
        await sign_in(client)
        bare = await client.post(f"/c/{PEER}/reply", data={"body": "hello"}, allow_redirects=False)
        wrong = await client.post(f"/c/{PEER}/reply", data={"body": "hello", "csrf": "x" * 43},
                                  allow_redirects=False)
        odd = await client.post(f"/c/{PEER}/reply", data={"body": "hello", "csrf": "é" * 43},
                                allow_redirects=False)
        return bare.status, wrong.status, odd.status
    assert run(inbox, scenario) == (403, 403, 403)
    assert inbox.sent == []


def test_sign_in_is_limited_per_user_and_per_address(inbox):
    async def scenario(client):
        wrong = [(await sign_in(client, password="nope-nope")).status for _ in range(5)]
        right = await sign_in(client)
        other_user = await sign_in(client, name="nobody", password="whatever1")
        return wrong, right.status, await right.text(), other_user.status
    wrong, right, text, other = run(inbox, scenario)
    assert wrong == [401] * 5
    assert right == 429 and "Too many failed sign-ins" in text    # even the right password, for now
    assert other == 429                                            # the same address


def test_views_count_and_order_and_done_reopens_on_a_new_reply(inbox):
    now = time.time()
    missed_call(inbox.store, "+15125550101", now - 600)
    missed_call(inbox.store, "+15125550102", now - 300)
    missed_call(inbox.store, "+15125550103", now - 900)
    sw.set_state(inbox.store, "+15125550103", sw.DONE, "maria", now - 100)

    async def scenario(client):
        await sign_in(client)
        first = await (await client.get("/")).text()
        done = await (await client.get("/?view=done")).text()
        reply(inbox.store, "+15125550103", "are you open saturday?", time.time())
        again = await (await client.get("/")).text()
        found = await (await client.get("/?view=open&q=0102")).text()
        return first, done, again, found
    first, done, again, found = run(inbox, scenario)
    assert re.findall(r'class="peer">([^<]+)', first) == ["+15125550101", "+15125550102"]  # oldest waiting first
    assert 'data-view="needs-reply">2<' in first and 'data-view="done">1<' in first
    assert re.findall(r'class="peer">([^<]+)', done) == ["+15125550103"]
    # reopened by its new reply, waiting since that reply: last in line
    assert re.findall(r'class="peer">([^<]+)', again) == ["+15125550101", "+15125550102", "+15125550103"]
    assert re.findall(r'class="peer">([^<]+)', found) == ["+15125550102"]


def test_a_callers_script_html_and_rtl_override_show_as_plain_text(inbox):
    missed_call(inbox.store, PEER, time.time() - 60)
    reply(inbox.store, PEER, '<script>alert("x")</script><b>bold</b> \u202egnp.exe', time.time())

    async def scenario(client):
        await sign_in(client)
        return await (await client.get(f"/c/{PEER}")).text()
    page = run(inbox, scenario)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<b>bold" not in page and "\u202e" not in page and "[U+202E]gnp.exe" in page


def test_the_reply_box_queues_an_agent_text_and_an_opted_out_caller_is_closed(inbox):
    missed_call(inbox.store, PEER, time.time() - 60)
    other = "+15125550188"
    missed_call(inbox.store, other, time.time() - 60)
    with inbox.store.write():
        inbox.store.add_consent(consent.ConsentEvent(consent.OPT_OUT, other, time.time(), source="STOP"))

    async def scenario(client):
        await sign_in(client)
        csrf = await csrf_of(client, f"/c/{PEER}")
        ok = await client.post(f"/c/{PEER}/reply", data={"body": "We can see you at 3 today", "csrf": csrf},
                               allow_redirects=False)
        closed_page = await (await client.get(f"/c/{other}")).text()
        refused = await client.post(f"/c/{other}/reply", data={"body": "hello", "csrf": csrf})
        info = await (await client.get("/sms-info", params={"text": "Café ✓"})).json()
        return ok.status, closed_page, refused.status, await refused.text(), info
    ok, closed_page, refused, refused_text, info = run(inbox, scenario)
    assert ok == 303
    assert inbox.sent == [(PEER, LINE, "We can see you at 3 today", "maria")]
    assert "This caller opted out" in closed_page and "<textarea id=\"body\"" not in closed_page   # notes stay open
    assert refused == 400 and "opted out" in refused_text
    assert info == {"encoding": "ucs2", "units": 6, "segments": 1, "ucs2_chars": ["✓"]}


def test_user_commands_add_list_passwd_disable(tmp_path):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(f'[business]\nname = "Acme"\n[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    pw = tmp_path / "pw"
    pw.write_text(PW + "\n")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args, "-c", str(cfg_path)],
                              capture_output=True, text=True)
    add = cli("user", "add", "maria", "--role", "agent", "--extension", "101", "--password-file", str(pw))
    assert add.returncode == 0, add.stderr
    assert cli("user", "add", "maria", "--role", "agent", "--password-file", str(pw)).returncode == 2
    short = tmp_path / "short"
    short.write_text("abc")
    bad = cli("user", "add", "joe", "--role", "admin", "--password-file", str(short))
    assert bad.returncode == 2 and "at least 8" in bad.stderr
    assert cli("user", "list").stdout.splitlines() == ["maria\tagent\t101\tactive"]
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    token, _ = sw.new_session(store, sw.user(store, "maria").id, time.time())
    assert sw.session(store, token, time.time()) is not None
    assert cli("user", "disable", "maria").returncode == 0
    assert sw.session(store, token, time.time()) is None          # signed out everywhere
    assert cli("user", "list").stdout.splitlines() == ["maria\tagent\t101\tdisabled"]
    store.close()


def _serve(tmp_path, extra=""):
    """The service (no PBX: type mail) as it starts: does it open the inbox's port?"""
    from tests.peers.smsc_peer import free_port
    from pbx_textback.service import Service
    port = free_port()
    cfg = loads(f"""
[business]
name = "Acme Dental"
[pbx]
type = "mail"
[store]
path = "{tmp_path / 's.sqlite3'}"
[web]
listen = "127.0.0.1:{port}"
{extra}
""")
    seen = {}

    async def main():
        svc = Service(cfg)

        async def probe():
            await asyncio.sleep(0.5)
            try:
                async with ClientSession() as http:
                    async with http.get(f"http://127.0.0.1:{port}/health") as r:
                        seen["health"] = r.status
                    async with http.get(f"http://127.0.0.1:{port}/c/{PEER}", allow_redirects=False) as r:
                        seen["page"] = r.status
            except OSError:
                seen["health"] = None
            svc.stop()
        await svc.run(extra_tasks=[probe()])
    asyncio.run(main())
    return seen["health"]


def test_the_inbox_opens_a_port_only_once_a_user_exists_and_not_when_disabled(tmp_path, caplog):
    caplog.set_level("INFO", logger="pbx_textback")
    assert _serve(tmp_path) is None
    assert "web inbox off: no user yet" in caplog.text
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    sw.add_user(store, "maria", "agent", hash_password(PW), "", time.time())
    store.close()
    caplog.clear()
    caplog.set_level("DEBUG")
    assert _serve(tmp_path) == 200
    assert "web inbox on http://127.0.0.1:" in caplog.text
    assert "5550177" not in caplog.text                 # no access log: URLs hold callers' numbers
    assert _serve(tmp_path, "enabled = false") is None


def test_claim_assign_and_snooze_until_the_caller_writes(inbox):
    sw.add_user(inbox.store, "joe", "agent", hash_password(PW), "102", time.time())
    missed_call(inbox.store, PEER, time.time() - 120)
    other = "+15125550188"
    missed_call(inbox.store, other, time.time() - 60)

    def peers(page):
        return re.findall(r'class="peer">([^<]+)', page)

    async def scenario(client):
        await sign_in(client)
        csrf = await csrf_of(client, f"/c/{PEER}")
        await client.post(f"/c/{PEER}/owner", data={"owner": "me", "csrf": csrf})
        await client.post(f"/c/{other}/owner", data={"owner": "joe", "csrf": csrf})
        bad = await client.post(f"/c/{other}/owner", data={"owner": "nobody", "csrf": csrf})
        out = {"needs": await (await client.get("/")).text(), "mine": await (await client.get("/?view=mine")).text(),
               "page": await (await client.get(f"/c/{other}")).text(), "bad": bad.status}
        await client.post(f"/c/{PEER}/state", data={"state": "snoozed", "for": "reply", "csrf": csrf})
        out["snoozed"] = await (await client.get("/?view=snoozed")).text()
        out["open"] = await (await client.get("/?view=open")).text()
        reply(inbox.store, PEER, "still there?", time.time())
        out["after"] = await (await client.get("/?view=mine")).text()
        return out
    out = run(inbox, scenario)
    assert peers(out["needs"]) == []                       # both have an owner now
    assert peers(out["mine"]) == [PEER]
    assert '<span class="owner">joe</span>' in out["page"]
    assert out["bad"] == 400
    assert peers(out["snoozed"]) == [PEER] and PEER not in peers(out["open"])
    assert peers(out["after"]) == [PEER]                   # the caller wrote: open (and mine) again


def test_a_timed_snooze_ends_by_itself_and_views_work_on_postgresql_too(store_factory):
    store = store_factory()
    missed_call(store, PEER, 1000.0)
    reply(store, "+15125550188", "hello", 1500.0)
    sw.set_state(store, PEER, sw.SNOOZED, "maria", 2000.0, until=5600.0)
    assert [c["peer"] for c in sw.view(store, "snoozed", 5599.0)] == [PEER]
    assert [c["peer"] for c in sw.view(store, "needs-reply", 5601.0)] == [PEER, "+15125550188"]
    assert sw.counts(store, 5599.0)["snoozed"] == 1 and sw.counts(store, 5601.0)["needs-reply"] == 2
    before = sw.change_mark(store)
    sw.set_owner(store, PEER, "maria", "maria", 5700.0)
    assert sw.change_mark(store) != before          # an owner change reaches the live pages
    store.close()


def test_the_timeline_says_what_happened_to_each_text_and_why(tmp_path):
    from datetime import datetime
    from zoneinfo import ZoneInfo
    cfg = cfg_for(tmp_path)
    store = st.open_store(cfg.store.path)
    sw.add_user(store, "maria", "agent", hash_password(PW), "", time.time())
    # 22:30 in Austin: outside the shipped quiet hours (08:00-20:00) for a 512 caller
    night = datetime(2026, 11, 26, 22, 30, tzinfo=ZoneInfo("America/Chicago")).timestamp()
    missed_call(store, PEER, night - 300, call_id="c1")
    with store.write():
        store.add_message(direction="out", kind="missed-call", line=LINE, peer=PEER, body="Sorry we missed you",
                          state="pending", due_at=night + 9.5 * 3600, created_at=night - 290,
                          note="quiet hours at the recipient's location")
        store.add_message(direction="out", kind="follow-up", line=LINE, peer=PEER, body="Still need us?",
                          state="cancelled", due_at=night, created_at=night - 200,
                          note="caller reached by inbound call c2 (answered by PJSIP/101)")
        store.add_consent(consent.ConsentEvent(consent.OPT_IN, PEER, night - 100, source="START"))
    box = Inbox(cfg, store, clock=lambda: night, send=lambda *a: 1)

    async def scenario(client):
        await sign_in(client)
        return await (await client.get(f"/c/{PEER}")).text()
    page = run(box, scenario)
    store.close()
    assert "Missed call (no-answer)" in page and "nobody answered within 20 s" in page
    assert "held until 08:00 CST in the caller&#39;s time zone (quiet hours)" in page
    assert "cancelled: caller reached by inbound call c2 (answered by PJSIP/101)" in page
    assert "Consent: opted back in" in page
    assert "It is 22:30 CST for the caller, outside 08:00-20:00" in page      # a warning, the box stays open
    assert "<textarea" in page


def test_a_long_view_shows_a_hundred_callers_and_show_more_adds_the_rest(inbox):
    now = time.time()
    with inbox.store.write():
        for n in range(105):
            inbox.store.add_message(direction="in", kind="reply", line=LINE, peer=f"+1512555{n:04d}", body="hi",
                                    state="received", due_at=now - 1000 + n, created_at=now - 1000 + n)

    async def scenario(client):
        await sign_in(client)
        first = await (await client.get("/")).text()
        more = re.search(r'<a href="(/\?view=needs-reply&amp;q=&amp;n=200)">Show more</a>', first)
        rest = await (await client.get(more.group(1).replace("&amp;", "&"))).text() if more else ""
        return first, more, rest
    first, more, rest = run(inbox, scenario)
    peers = re.findall(r'class="peer">([^<]+)', first)
    assert len(peers) == 100 and peers[0] == "+15125550000"            # oldest waiting first
    assert 'data-view="needs-reply">105<' in first and more
    assert len(re.findall(r'class="peer">([^<]+)', rest)) == 105 and "Show more" not in rest


def test_new_until_seen_per_agent_and_mark_all_seen_for_a_view(inbox):
    """A caller's row is new until the agent opens it or marks the view seen; a later reply
    makes it new again; another agent's marks are their own."""
    now = time.time()
    sw.add_user(inbox.store, "joe", "agent", hash_password(PW), "", now)
    missed_call(inbox.store, "+15125550101", now - 600)
    missed_call(inbox.store, "+15125550102", now - 300)
    new = lambda page: re.findall(r'<li class="new"><a href="/c/([^"]+)"', page)      # noqa: E731

    async def scenario(client):
        await sign_in(client)
        pages = [await (await client.get("/")).text()]
        await client.get("/c/+15125550101")                                  # maria opens one
        pages.append(await (await client.get("/")).text())
        await asyncio.sleep(0.01)
        reply(inbox.store, "+15125550101", "still there?", time.time())       # it is new again
        pages.append(await (await client.get("/")).text())
        token = await csrf_of(client)
        refused = await client.post("/seen", data={"view": "needs-reply"}, allow_redirects=False)
        bad = await client.post("/seen", data={"view": "nope", "csrf": token}, allow_redirects=False)
        done = await client.post("/seen", data={"view": "needs-reply", "csrf": token}, allow_redirects=False)
        pages.append(await (await client.get("/")).text())
        pages.append(await (await client.get("/?view=open")).text())          # another view: its own mark
        await client.post("/logout", data={"csrf": token})
        await sign_in(client, "joe")
        pages.append(await (await client.get("/")).text())
        return pages, refused.status, bad.status, (await bad.text()), done.status, done.headers.get("Location")
    pages, refused, bad, bad_text, done, location = run(inbox, scenario)
    assert new(pages[0]) == ["+15125550101", "+15125550102"] and "Mark all seen" in pages[0]
    assert new(pages[1]) == ["+15125550102"]
    assert new(pages[2]) == ["+15125550101", "+15125550102"]
    assert refused == 403 and bad == 400 and "nope" in bad_text
    assert done == 303 and location == "/?view=needs-reply"
    assert new(pages[3]) == [] and re.findall(r'class="peer">([^<]+)', pages[3]) == ["+15125550101", "+15125550102"]
    assert sorted(new(pages[4])) == ["+15125550101", "+15125550102"]
    assert new(pages[5]) == ["+15125550101", "+15125550102"]                  # joe has seen nothing
