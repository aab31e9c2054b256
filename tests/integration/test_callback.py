"""Call back from the inbox and replies pushed to desk phones, through the whole service over
real sockets: the real panoramisk AMI client against the loopback AMI server, which answers
each Originate the way a real Asterisk 22 did (tests/fixtures/asterisk/originate/: the desk
phone and the caller answer / the desk phone never answers / the caller is busy), the tracker
and pipeline, the SQLite store and the inbox over HTTP."""
import asyncio
import re
import time
from dataclasses import replace
from pathlib import Path

from aiohttp import ClientSession, CookieJar

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.config import loads
from pbx_textback.service import Service
from pbx_textback.store import callbacks as cbs
from pbx_textback.store import db as st
from pbx_textback.store import web as sw
from pbx_textback.web.passwords import hash_password
from tests.peers.smsc_peer import free_ports

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "originate"
LINE = "+15125550140"
ANSWERS, NO_ANSWER, BUSY = "+15125550188", "+15125550189", "+15125550190"
PW = "correct horse battery"
TRACES = {ANSWERS: FIX / "originate-answered.ami", NO_ANSWER: FIX / "originate-no-answer.ami",
          BUSY: FIX / "originate-callee-busy.ami"}


def config(tmp_path, ami_port, web_port, extra=""):
    return loads(f"""
[business]
name = "Acme Dental"
phone = "+15125550100"
timezone = "America/Chicago"
[pbx]
type = "asterisk"
[pbx.ami]
port = {ami_port}
username = "t"
secret = "s"
[store]
path = "{tmp_path / 's.sqlite3'}"
[web]
listen = "127.0.0.1:{web_port}"
[[line]]
number = "{LINE}"
{extra}
""")


def seed(path, now):
    store = st.open_store(str(path))
    sw.add_user(store, "alice", "agent", hash_password(PW), "100", now)
    sw.add_user(store, "bob", "agent", hash_password(PW), "", now)
    for i, peer in enumerate((ANSWERS, NO_ANSWER, BUSY)):
        with store.write():
            st.Call.create(call_id=f"missed-{i}", pbx="asterisk", caller=peer, caller_raw=peer, called=LINE,
                           line=LINE, direction="inbound", missed=True, reason="no-answer",
                           why="nobody answered within 20 s", record="{}", created_at=now - 600 + i,
                           started_at=now - 600 + i)
    with store.write():      # a text for the caller that answers, still waiting (e.g. held by a delay)
        waiting = store.add_message(direction="out", kind="missed-call", line=LINE, peer=ANSWERS,
                                    body="Sorry we missed your call", state="pending", due_at=now + 3600,
                                    created_at=now - 590)
    store.close()
    return waiting


async def sign_in(http, base, name):
    await http.post(f"{base}/login", data={"name": name, "password": PW})
    page = await (await http.get(f"{base}/")).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def run_service(tmp_path, scenario, extra=""):
    ami_port, web_port = free_ports(2)
    now = time.time()
    waiting = seed(tmp_path / "s.sqlite3", now)
    cfg = config(tmp_path, ami_port, web_port, extra)
    out = {}

    async def main():
        server = AmiReplayServer([], username="t", secret="s", port=ami_port, originate_traces=TRACES)
        await server.start()
        svc = Service(cfg)

        async def drive():
            try:
                for _ in range(100):          # logged in to AMI and serving the inbox
                    await asyncio.sleep(0.05)
                    if svc.pbx_state == "connected" and svc.web_port:
                        break
                async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
                    await scenario(svc, server, http, f"http://127.0.0.1:{web_port}", out)
            except Exception as e:           # the scenario's failure, not a quiet stop
                out["error"] = e
            finally:
                svc.stop()
        await svc.run(extra_tasks=[drive()])
        await server.stop()
    asyncio.run(main())
    if "error" in out:
        raise out["error"]
    return out, waiting


async def timeline_when(http, base, peer, words, timeout=10.0):
    """The conversation page once the call back's result reads `words` (a user reloading)."""
    for _ in range(int(timeout / 0.1)):
        page = await (await http.get(f"{base}/c/{peer}")).text()
        if words in page:
            return page
        await asyncio.sleep(0.1)
    return page


def test_call_back_rings_the_agents_desk_phone_then_the_caller_and_shows_each_result(tmp_path):
    async def scenario(svc, server, http, base, out):
        csrf = await sign_in(http, base, "alice")
        page = await (await http.get(f"{base}/c/{ANSWERS}")).text()
        out["button"] = re.search(r'<button type="submit" id="callback"[^>]*>', page).group(0)
        for peer in (ANSWERS, NO_ANSWER, BUSY):
            r = await http.post(f"{base}/c/{peer}/callback", data={"csrf": csrf}, allow_redirects=False)
            out.setdefault("status", []).append((r.status, r.headers.get("Location")))
        out["pages"] = {
            ANSWERS: await timeline_when(http, base, ANSWERS, "connected (PJSIP/100)"),
            NO_ANSWER: await timeline_when(http, base, NO_ANSWER, "desk phone did not answer"),
            BUSY: await timeline_when(http, base, BUSY, "caller busy (PJSIP/100)"),
        }
        out["actions"] = [a for a in server.actions if a.get("Action") == "Originate"]
    out, waiting = run_service(tmp_path, scenario)
    assert "disabled" not in out["button"]
    assert out["status"] == [(303, f"/c/{p}") for p in (ANSWERS, NO_ANSWER, BUSY)]
    # the Originate as recorded: the agent's desk phone, then the caller through the outbound route
    acts = {a["Exten"]: a for a in out["actions"]}
    assert set(acts) == {ANSWERS, NO_ANSWER, BUSY}
    for peer, a in acts.items():
        assert (a["Channel"], a["Context"], a["Priority"], a["Timeout"], a["Async"]) == (
            "PJSIP/100", "from-internal", "1", "20000", "true")
        assert a["CallerID"] == f'"Callback {peer}" <{peer}>'
    assert "Call back by alice from the inbox" in out["pages"][ANSWERS]
    assert "connected (PJSIP/100)" in out["pages"][ANSWERS]
    assert "the desk phone did not answer (PJSIP/100)" in out["pages"][NO_ANSWER]
    assert "caller busy (PJSIP/100)" in out["pages"][BUSY]
    # the call the call back made is told once, by the call back's own item
    assert all(" - outbound" not in page for page in out["pages"].values())
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    # the connected call back reached the caller: the waiting text is cancelled, with why
    m = st.Message.get_by_id(waiting)
    assert m.state == st.CANCELLED and "caller reached by outbound call" in m.note
    # the one that never reached the caller leaves them waiting for *88; the others do not
    rows = {c.peer: (c.state, c.agent, c.channel_id) for c in cbs.Callback.select()}
    assert rows[NO_ANSWER] == ("failed", "alice", "")
    assert rows[ANSWERS][:2] == ("connected", "alice") and rows[ANSWERS][2]
    # *88 still offers the callers the page did not reach (busy, desk phone unanswered), not the one it did
    claimed = [cbs.claim_oldest_waiting(store, endpoint="PJSIP/100", now=time.time(), window_s=3600)
               for _ in range(3)]
    assert [c[0].caller if c else None for c in claimed] == [NO_ANSWER, BUSY, None]
    # the caller's conversation is now alice's (she called them)
    assert {s.peer: s.owner for s in sw.ConversationState.select()}[ANSWERS] == "alice"
    store.close()


def test_without_an_extension_the_button_says_why_and_nothing_is_dialled(tmp_path):
    async def scenario(svc, server, http, base, out):
        csrf = await sign_in(http, base, "bob")
        out["page"] = await (await http.get(f"{base}/c/{ANSWERS}")).text()
        r = await http.post(f"{base}/c/{ANSWERS}/callback", data={"csrf": csrf}, allow_redirects=False)
        out["post"] = (r.status, await r.text())
        r = await http.post(f"{base}/c/{ANSWERS}/callback", allow_redirects=False)      # no CSRF token
        out["no_csrf"] = r.status
        out["actions"] = [a for a in server.actions if a.get("Action") == "Originate"]
    out, _ = run_service(tmp_path, scenario)
    assert re.search(r'id="callback" disabled', out["page"])
    assert "you have no extension" in out["page"]
    assert out["post"][0] == 400 and "you have no extension" in out["post"][1]
    assert out["no_csrf"] == 403
    assert out["actions"] == []


def test_a_reply_is_pushed_to_the_owners_desk_phone_once_a_minute_and_to_every_agent_unassigned(tmp_path):
    async def scenario(svc, server, http, base, out):
        sw.add_user(svc.store, "carol", "agent", hash_password(PW), "102", time.time())
        # unassigned: every agent with a desk phone (alice 100, carol 102; bob has none)
        svc.pipeline.on_inbound(NO_ANSWER, LINE, "Can you call me back about my crown? \u00e9\u202e\U0001f600")
        sw.set_owner(svc.store, ANSWERS, "carol", "carol", time.time())
        svc.pipeline.on_inbound(ANSWERS, LINE, "first")
        svc.pipeline.on_inbound(ANSWERS, LINE, "second, within the minute")
        svc.pipeline.on_inbound(BUSY, LINE, "STOP")               # handled, not for a person to read
        for _ in range(60):
            await asyncio.sleep(0.1)
            if len([a for a in server.actions if a.get("Action") == "MessageSend"]) >= 3:
                break
        await asyncio.sleep(1.5)                                   # one more poll: nothing else goes
        out["sent"] = [(a["Destination"], a["Body"]) for a in server.actions if a.get("Action") == "MessageSend"]
        out["held"] = dict(svc.desk.throttle.held)
    out, _ = run_service(tmp_path, scenario)
    sent = out["sent"]
    body = "Reply +15125550189: Can you call me back about my crown? e"
    assert sorted(sent) == sorted([("pjsip:100", body), ("pjsip:102", body), ("pjsip:102", "Reply +15125550188: first")])
    assert all(len(b) <= 100 and b.isascii() for _, b in sent)
    assert out["held"] == {ANSWERS: ("second, within the minute", 1)}       # goes once the minute is over


def test_freeswitch_call_back_and_reply_push_go_over_the_event_socket(tmp_path):
    """FreeSWITCH: `bgapi originate` to the agent's user, the caller's number dialled by the
    phone's dialplan, its answer in the BACKGROUND_JOB event; the reply pushed with `chat`. No
    FreeSWITCH originate was recorded: the loopback event socket answers `originate` and `chat`
    with FreeSWITCH's reply forms (+OK <uuid>, Sent)."""
    from pbx_textback.esl.replay_server import EslReplayServer
    web_port, = free_ports(1)
    now = time.time()
    seed(tmp_path / "s.sqlite3", now)
    cfg = loads(f"""
[business]
name = "Acme Dental"
timezone = "America/Chicago"
[pbx]
type = "freeswitch"
[pbx.esl]
port = 1
password = "s3cret"
[store]
path = "{tmp_path / 's.sqlite3'}"
[web]
listen = "127.0.0.1:{web_port}"
[deskphones]
message_to = "{{ext}}@pbx.example.com"
[[line]]
number = "{LINE}"
""")
    out = {}

    async def main():
        server = EslReplayServer([], password="s3cret", api_replies={
            "originate": "+OK 7f4b3c2e-5f1a-4c3e-9d7b-2a1c0e9f8b11\n", "chat": "Sent\n"})
        port = await server.start()
        svc = Service(replace(cfg, pbx=replace(cfg.pbx, esl=replace(cfg.pbx.esl, port=port))))

        async def drive():
            try:
                for _ in range(200):
                    await asyncio.sleep(0.05)
                    if svc.pbx_state == "connected" and svc.web_port:
                        break
                base = f"http://127.0.0.1:{web_port}"
                async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
                    csrf = await sign_in(http, base, "alice")
                    r = await http.post(f"{base}/c/{ANSWERS}/callback", data={"csrf": csrf}, allow_redirects=False)
                    out["status"] = r.status
                    out["page"] = await timeline_when(http, base, ANSWERS, "calling the caller")
                svc.pipeline.on_inbound(BUSY, LINE, "are you open saturday?")
                for _ in range(50):
                    await asyncio.sleep(0.1)
                    if any(c.startswith("api chat") for c in server.commands):
                        break
                out["commands"] = list(server.commands)
            except Exception as e:
                out["error"] = e
            finally:
                svc.stop()
        await svc.run(extra_tasks=[drive()])
        await server.stop()
    asyncio.run(main())
    if "error" in out:
        raise out["error"]
    assert out["status"] == 303
    originate = [c for c in out["commands"] if "originate" in c]
    assert originate == [f"bgapi originate {{origination_caller_id_name='Callback {ANSWERS}',"
                         f"origination_caller_id_number={ANSWERS},originate_timeout=20}}"
                         f"user/100 {ANSWERS} XML default"]
    assert "desk phone answered: calling the caller (user/100)" in out["page"]
    chats = [c for c in out["commands"] if c.startswith("api chat")]
    assert chats == ["api chat sip|textback@pbx.example.com|100@pbx.example.com|"
                     "Reply +15125550190: are you open saturday?"]


def test_an_inbox_without_a_pbx_connection_says_so_on_the_button_and_star88_shows_on_the_timeline(tmp_path):
    """`pbx-textback web`-style: an inbox with no PBX connection; and a *88 call back (made on
    the desk phone, not the page) on the caller's timeline with its result."""
    from aiohttp.test_utils import TestClient, TestServer
    from pbx_textback.web.app import Inbox
    now = time.time()
    seed(tmp_path / "s.sqlite3", now)
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    call, cb = cbs.claim_oldest_waiting(store, endpoint="PJSIP/100", now=now, window_s=3600)
    cbs.finish_callback(store, cb.id, cbs.FAILED, now=now, detail="the desk phone did not answer")
    box = Inbox(config(tmp_path, 1, 1), store)

    async def main():
        async with TestClient(TestServer(box.app())) as client:
            await client.post("/login", data={"name": "alice", "password": PW})
            page = await (await client.get(f"/c/{call.caller}")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            r = await client.post(f"/c/{call.caller}/callback", data={"csrf": csrf}, allow_redirects=False)
            return page, r.status, await r.text()
    page, status, answer = asyncio.run(main())
    store.close()
    assert re.search(r'id="callback" disabled', page)
    assert "Call back needs the running service&#39;s PBX connection" in page
    assert status == 400 and "Call back needs the running service" in answer
    assert "Call back by *88 on the desk phone" in page
    assert "the desk phone did not answer (PJSIP/100)" in page
