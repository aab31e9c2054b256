"""The REST API over real HTTP: the inbox's app on a loopback port with a real store (aiohttp's
TestServer), and the running service sending a text the API queued to the real SMSC peer."""
import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import ClientSession

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.config import loads
from pbx_textback.service import Service
from pbx_textback.store import api as sa
from pbx_textback.store import db as st
from pbx_textback.store import web as sw
from pbx_textback.web.app import Inbox
from pbx_textback.web.passwords import hash_password
from tests.service_toml import smpp_service_toml
from tests.web_client import run

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
PEER = "+15125550177"
LINE = "+15125550140"


def cfg_for(tmp_path, extra=""):
    return loads(f"""
[business]
name = "Acme Dental"
timezone = "America/Chicago"
[store]
path = "{tmp_path / 's.sqlite3'}"
{extra}
""")


@pytest.fixture
def app(tmp_path):
    cfg = cfg_for(tmp_path, "[api]\nrate_per_minute = 40")
    store = st.open_store(cfg.store.path)
    sw.add_user(store, "maria", "agent", hash_password("pw pw pw pw"), "101", time.time())

    def send(peer, line, body, by):
        with store.write():
            return store.add_message(direction="out", kind="agent", line=line, peer=peer, body=body,
                                     state="pending", due_at=time.time(), note=f"by {by}")
    box = Inbox(cfg, store, send=send)
    box.read = sa.add_token(store, "dash", "read", time.time())
    box.write = sa.add_token(store, "crm", "write", time.time())
    yield box
    store.close()


def h(token):
    return {"Authorization": f"Bearer {token}"}


def missed_call(store, peer, at, n):
    with store.write():
        st.Call.create(call_id=f"c{n}", pbx="asterisk", caller=peer, caller_raw=peer, called=LINE, line=LINE,
                       direction="inbound", missed=True, reason="no-answer", why="nobody answered",
                       record="{}", created_at=at, started_at=at, ended_at=at + 20)


def test_no_token_a_bad_token_and_a_read_token_writing_get_json_errors(app):
    async def scenario(c):
        r1 = await c.get("/api/v1/calls")
        r2 = await c.get("/api/v1/calls", headers=h("pbxtb_not-a-token"))
        r3 = await c.post("/api/v1/messages", json={"to": PEER, "body": "hi"}, headers=h(app.read))
        r4 = await c.get("/api/v1/nothing-here", headers=h(app.read))
        return [(r.status, (await r.json())["error"]["message"]) for r in (r1, r2, r3, r4)]
    (s1, m1), (s2, m2), (s3, m3), (s4, m4) = run(app, scenario)
    assert s1 == 401 and "Authorization: Bearer" in m1 and "token add" in m1
    assert s2 == 401 and "unknown or was revoked" in m2
    assert s3 == 403 and "--scope write" in m3
    assert s4 == 404 and "openapi.json" in m4


def test_a_signed_in_browser_session_is_not_an_api_token(app):
    async def scenario(c):
        await c.post("/login", data={"name": "maria", "password": "pw pw pw pw"}, allow_redirects=False)
        assert (await c.get("/", allow_redirects=False)).status == 200       # the session works…
        return (await c.get("/api/v1/calls")).status                          # …not for the API
    assert run(app, scenario) == 401


def test_a_revoked_token_is_refused(app):
    sa.revoke(app.store, "dash", time.time())

    async def scenario(c):
        return (await c.get("/api/v1/calls", headers=h(app.read))).status
    assert run(app, scenario) == 401


def test_calls_page_newest_first_with_a_cursor_until_the_end(app):
    t0 = time.time() - 3600
    for i in range(5):
        missed_call(app.store, f"+1512555010{i}", t0 + i, i)

    async def scenario(c):
        seen, cursor, pages = [], None, 0
        while True:
            q = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
            body = await (await c.get("/api/v1/calls" + q, headers=h(app.read))).json()
            seen += [x["number"] for x in body["data"]]
            pages += 1
            cursor = body["next_cursor"]
            if not cursor:
                return seen, pages, (await c.get("/api/v1/calls?cursor=%%%", headers=h(app.read))).status
    seen, pages, bad = run(app, scenario)
    assert seen == [f"+1512555010{i}" for i in (4, 3, 2, 1, 0)] and pages == 3
    assert bad == 400


def test_conversations_list_get_assign_and_close(app):
    missed_call(app.store, PEER, time.time() - 60, 1)

    async def scenario(c):
        lst = await (await c.get("/api/v1/conversations?view=needs-reply", headers=h(app.read))).json()
        one = await (await c.get(f"/api/v1/conversations/{PEER}", headers=h(app.read))).json()
        nobody = await c.post(f"/api/v1/conversations/{PEER}/assign", json={"owner": "zed"}, headers=h(app.write))
        ok = await (await c.post(f"/api/v1/conversations/{PEER}/assign", json={"owner": "maria"},
                                 headers=h(app.write))).json()
        done = await (await c.post(f"/api/v1/conversations/{PEER}/state", json={"state": "done"},
                                   headers=h(app.write))).json()
        unknown = await c.get("/api/v1/conversations/+15125550999", headers=h(app.read))
        return lst, one, nobody.status, (await nobody.json())["error"]["message"], ok, done, unknown.status
    lst, one, nobody, why, ok, done, unknown = run(app, scenario)
    assert [x["number"] for x in lst["data"]] == [PEER] and lst["data"][0]["waiting"]
    assert one["data"]["recent_calls"][0]["reason"] == "no-answer"
    assert nobody == 400 and "zed" in why
    assert ok["data"]["owner"] == "maria" and done["data"]["state"] == "done"
    assert unknown == 404


def test_send_refused_after_an_opt_out_through_the_api_and_allowed_after_opt_in(app):
    async def scenario(c):
        out = await (await c.post(f"/api/v1/contacts/{PEER}/opt-out", json={"reason": "asked on the phone",
                                  "confirm": False}, headers=h(app.write))).json()
        refused = await c.post("/api/v1/messages", json={"to": PEER, "body": "Hi"}, headers=h(app.write))
        back = await (await c.post(f"/api/v1/contacts/{PEER}/opt-in", json={"reason": "signed form",
                                   "confirm": False}, headers=h(app.write))).json()
        sent = await c.post("/api/v1/messages", json={"to": "(512) 555-0177", "body": "Hi, Acme here",
                                                      "agent": "maria"}, headers=h(app.write))
        listed = await (await c.get("/api/v1/messages?number=%2B15125550177", headers=h(app.read))).json()
        empty = await c.post("/api/v1/messages", json={"to": PEER, "body": " "}, headers=h(app.write))
        notjson = await c.post("/api/v1/messages", data="to=x", headers=h(app.write))
        return out, refused.status, (await refused.json())["error"]["message"], back, sent.status, \
            await sent.json(), listed, empty.status, notjson.status
    out, refused, why, back, sent, body, listed, empty, notjson = run(app, scenario)
    assert out["data"]["consent"] == "opted-out" and not out["data"]["can_text"]
    assert refused == 409 and why.startswith("not sent:") and "opted out" in why
    assert back["data"]["consent"] == "opted-in"
    assert sent == 202 and body["data"]["number"] == PEER and body["data"]["state"] == "pending"
    assert body["data"]["note"] == "by maria" and body["data"]["kind"] == "agent"
    assert [m["body"] for m in listed["data"]] == ["Hi, Acme here"]
    assert empty == 400 and notjson == 400


def test_rate_limit_per_token_says_when_to_come_back(app):
    async def scenario(c):
        codes = [(await c.get("/api/v1/calls", headers=h(app.read))).status for _ in range(41)]
        last = await c.get("/api/v1/calls", headers=h(app.read))
        other = await c.get("/api/v1/calls", headers=h(app.write))      # another token: its own budget
        return codes, last.status, last.headers.get("Retry-After"), (await last.json()), other.status
    codes, last, retry, body, other = run(app, scenario)
    assert codes[:40] == [200] * 40 and codes[40] == 429 and last == 429
    assert retry and 1 <= int(retry) <= 60 and "at most 40 a minute" in body["error"]["message"]
    assert other == 200


def test_reports_say_clearly_they_are_not_available_here(app):
    async def scenario(c):
        r = await c.get("/api/v1/reports", headers=h(app.read))
        return r.status, await r.json()
    status, body = run(app, scenario)
    assert status in (200, 501)
    if status == 501:
        assert "report --json" in body["error"]["message"]


def test_every_api_route_is_in_the_openapi_document_and_back(app):
    async def scenario(c):
        return await (await c.get("/api/v1/openapi.json", headers=h(app.read))).json()
    doc = run(app, scenario)
    routes = {(r.method.lower(), r.resource.canonical) for r in app.app().router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    assert doc["openapi"].startswith("3.") and doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_curl_with_a_token_sends_a_text_that_reaches_the_smsc(tmp_path, smsc):
    cfg = loads(smpp_service_toml(tmp_path / "s.sqlite3", smsc.port, phone="",
                                  extra='[web]\nlisten = "127.0.0.1:0"'))
    store = st.open_store(cfg.store.path)
    token = sa.add_token(store, "crm", "write", time.time())
    store.close()
    caller = "+17375550188"           # 02-no-answer.ami's caller
    result = {}

    async def main():
        server = AmiReplayServer([FIX / "02-no-answer.ami"], username="t", secret="s")
        port = await server.start()
        svc = Service(replace(cfg, pbx=replace(cfg.pbx, ami=replace(cfg.pbx.ami, port=port))))

        async def client():
            while svc.web_port is None or not any(m["text"].startswith("Hi, this is Acme") for m in smsc.messages()):
                await asyncio.sleep(0.1)
            base = f"http://127.0.0.1:{svc.web_port}/api/v1"
            async with ClientSession() as http:
                convs = await (await http.get(f"{base}/conversations", headers=h(token))).json()
                r = await http.post(f"{base}/messages", json={"to": caller, "body": "Dr Lee can see you at 3"},
                                    headers=h(token))
                result["post"] = (r.status, await r.json())
                result["convs"] = convs
                for _ in range(100):
                    if any(m["text"] == "Dr Lee can see you at 3" for m in smsc.messages()):
                        break
                    await asyncio.sleep(0.1)
                mid = result["post"][1]["data"]["id"]
                for _ in range(50):
                    m = await (await http.get(f"{base}/messages/{mid}", headers=h(token))).json()
                    if m["data"]["state"] == "delivered":
                        break
                    await asyncio.sleep(0.1)
                result["final"] = m
            svc.stop()
        await asyncio.wait_for(svc.run(extra_tasks=[client()]), 60)
        await server.stop()
    asyncio.run(main())
    status, body = result["post"]
    assert [c["number"] for c in result["convs"]["data"]] == [caller]
    assert status == 202 and body["data"]["kind"] == "agent" and body["data"]["note"] == "by api:crm"
    got = [m for m in smsc.messages() if m["text"] == "Dr Lee can see you at 3"]
    assert len(got) == 1 and got[0]["destination_addr"].lstrip("+") == caller.lstrip("+")
    assert result["final"]["data"]["state"] == "delivered"


def test_send_as_an_agent_asks_first_while_another_agent_is_replying(app):
    from pbx_textback.core.policy.replylock import Lock
    from pbx_textback.store import desk
    sw.add_user(app.store, "joe", "agent", hash_password("pw pw pw pw"), "102", time.time())
    missed_call(app.store, PEER, time.time() - 60, 1)
    desk.put_lock(app.store, PEER, Lock("joe", time.time(), time.time()))

    async def scenario(c):
        first = await c.post("/api/v1/messages", json={"to": PEER, "body": "On our way", "agent": "maria"},
                             headers=h(app.write))
        again = await c.post("/api/v1/messages", json={"to": PEER, "body": "On our way", "agent": "maria",
                                                       "confirm": True}, headers=h(app.write))
        conv = await (await c.get(f"/api/v1/conversations/{PEER}", headers=h(app.read))).json()
        return first.status, (await first.json())["error"]["message"], again.status, conv
    status, why, again, conv = run(app, scenario)
    assert status == 409 and "joe is replying" in why and '"confirm": true' in why
    assert again == 202 and conv["data"]["owner"] == "maria"
    assert [m["body"] for m in conv["data"]["recent_messages"]] == ["On our way"]      # sent once
