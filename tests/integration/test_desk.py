"""The front desk's tools over real HTTP (aiohttp's test server on a loopback port): locks,
notes, saved replies, the review click, notification choice and the live reply feed, and the
ownership rules applied when the pipeline stores a missed call or a reply."""
import asyncio
import json
import re
import time
from dataclasses import replace

from aiohttp.test_utils import TestClient, TestServer

from pbx_textback.config import loads
from pbx_textback.core.policy import consent
from pbx_textback.core.policy.ownership import OwnerRule
from pbx_textback.pipeline import Pipeline
from pbx_textback.store import db as st
from pbx_textback.store import desk
from pbx_textback.store import web as sw
from pbx_textback.web.app import Inbox
from pbx_textback.web.ownership import on_arrival
from pbx_textback.web.passwords import hash_password
from tests.integration.test_web import LINE, PEER, PW, cfg_for, csrf_of, inbox, missed_call, reply, sign_in  # noqa: F401 (inbox: a fixture)

import pytest


@pytest.fixture
def two(inbox):            # noqa: F811  maria (agent) and joe (admin) on one inbox
    sw.add_user(inbox.store, "joe", "admin", hash_password(PW), "102", time.time())
    missed_call(inbox.store, PEER, time.time() - 60)
    return inbox


def both(box, scenario):
    async def main():
        async with TestClient(TestServer(box.app())) as maria, TestClient(TestServer(box.app())) as joe:
            await sign_in(maria)
            await sign_in(joe, "joe")
            return await scenario(maria, joe)
    return asyncio.run(main())


def test_typing_holds_the_conversation_the_other_agent_sees_it_and_sending_asks_first(two):
    async def scenario(maria, joe):
        mc, jc = await csrf_of(maria, f"/c/{PEER}"), await csrf_of(joe, f"/c/{PEER}")
        took = await (await maria.post(f"/c/{PEER}/typing", data={"csrf": mc, "active": "1"})).json()
        joe_tries = await (await joe.post(f"/c/{PEER}/typing", data={"csrf": jc, "active": "1"})).json()
        joe_page = await (await joe.get(f"/c/{PEER}")).text()
        joe_list = await (await joe.get("/")).text()
        maria_page = await (await maria.get(f"/c/{PEER}")).text()
        asked = await joe.post(f"/c/{PEER}/reply", data={"csrf": jc, "body": "On my way"})
        asked_page = await asked.text()
        sent_before = list(two.sent)
        anyway = await joe.post(f"/c/{PEER}/reply", data={"csrf": jc, "body": "On my way", "confirm": "1"},
                                allow_redirects=False)
        return took, joe_tries, joe_page, joe_list, maria_page, asked.status, asked_page, sent_before, anyway.status
    took, joe_tries, joe_page, joe_list, maria_page, asked, asked_page, before, anyway = both(two, scenario)
    assert took == {"holder": ""} and joe_tries == {"holder": "maria"}
    assert "<strong>maria</strong> is replying" in joe_page and "Break the lock" in joe_page   # joe is an admin
    assert "maria is replying" in joe_list
    assert "is replying" not in maria_page                      # her own lock is no news to her
    assert asked == 409 and "maria is replying to this caller right now." in asked_page
    assert "Send anyway" in asked_page and "On my way</textarea>" in asked_page        # the draft is kept
    assert before == []
    assert anyway == 303 and two.sent == [(PEER, LINE, "On my way", "joe")]
    assert desk.owner_of(two.store, PEER)[1] == "joe"          # the last who answered owns it


def test_the_lock_lapses_after_the_configured_idle_time_and_only_an_admin_breaks_it(tmp_path):
    cfg = cfg_for(tmp_path)
    cfg = replace(cfg, web=replace(cfg.web, reply_lock_minutes=1.0))
    store = st.open_store(cfg.store.path)
    for name, role in (("maria", "agent"), ("joe", "admin"), ("ann", "agent")):
        sw.add_user(store, name, role, hash_password(PW), "", time.time())
    missed_call(store, PEER, time.time() - 60)
    now = [time.time()]
    box = Inbox(cfg, store, clock=lambda: now[0], send=lambda *a: 1)

    async def main():
        async with TestClient(TestServer(box.app())) as maria, TestClient(TestServer(box.app())) as ann, \
                TestClient(TestServer(box.app())) as joe:
            for c, n in ((maria, "maria"), (ann, "ann"), (joe, "joe")):
                await sign_in(c, n)
            mc, ac, jc = [await csrf_of(c, f"/c/{PEER}") for c in (maria, ann, joe)]
            await maria.post(f"/c/{PEER}/typing", data={"csrf": mc, "active": "1"})
            out = {"ann_breaks": (await ann.post(f"/c/{PEER}/lock/break", data={"csrf": ac},
                                                 allow_redirects=False)).status}
            now[0] += 61
            out["lapsed"] = await (await ann.get(f"/c/{PEER}")).text()
            out["ann_takes"] = await (await ann.post(f"/c/{PEER}/typing", data={"csrf": ac, "active": "1"})).json()
            out["joe_breaks"] = (await joe.post(f"/c/{PEER}/lock/break", data={"csrf": jc},
                                                allow_redirects=False)).status
            out["after"] = await (await maria.get(f"/c/{PEER}")).text()
            return out
    out = asyncio.run(main())
    store.close()
    assert out["ann_breaks"] == 403
    assert "is replying" not in out["lapsed"]
    assert out["ann_takes"] == {"holder": ""}
    assert out["joe_breaks"] == 303 and "is replying" not in out["after"]


def test_private_notes_show_on_the_timeline_as_text_and_never_go_out(two):
    async def scenario(maria, joe):
        mc = await csrf_of(maria, f"/c/{PEER}")
        ok = await maria.post(f"/c/{PEER}/note", data={"csrf": mc, "note": "Wants <b>Tuesday</b> 9am"},
                              allow_redirects=False)
        empty = await maria.post(f"/c/{PEER}/note", data={"csrf": mc, "note": "  "})
        return ok.status, empty.status, await empty.text(), await (await joe.get(f"/c/{PEER}")).text()
    ok, empty, empty_text, page = both(two, scenario)
    assert ok == 303 and empty == 400 and "The note is empty." in empty_text
    assert "Note by maria" in page and "Wants &lt;b&gt;Tuesday&lt;/b&gt; 9am" in page
    assert two.sent == []


def test_saved_replies_are_kept_edited_and_filled_in_for_the_caller(two):
    async def scenario(maria, joe):
        mc = await csrf_of(maria, "/saved")
        await maria.post("/saved", data={"csrf": mc, "name": "On the way",
                                         "body": "Hi {{ caller.number }}, {{ agent.name }} from {{ business.name }} here."})
        bad = await maria.post("/saved", data={"csrf": mc, "name": "Broken", "body": "{{ caller.nme }}"})
        loop = await maria.post("/saved", data={"csrf": mc, "name": "Loop", "body": "{% for x in y %}{% endfor %}"})
        dup = await maria.post("/saved", data={"csrf": mc, "name": "On the way", "body": "x"})
        rid = desk.saved_replies(two.store)[0].id
        filled = await (await joe.get(f"/c/{PEER}/saved/{rid}")).json()
        jc = await csrf_of(joe, "/saved")
        await joe.post("/saved", data={"csrf": jc, "id": str(rid), "name": "On the way", "body": "Joe was here"})
        edited = await (await maria.get(f"/c/{PEER}/saved/{rid}")).json()
        page = await (await maria.get(f"/c/{PEER}")).text()
        await maria.post(f"/saved/{rid}/delete", data={"csrf": mc})
        return await bad.text(), bad.status, await loop.text(), await dup.text(), filled, edited, page
    bad, bad_status, loop, dup, filled, edited, page = both(two, scenario)
    assert bad_status == 400 and "The saved reply cannot be used" in bad and "nme" in bad
    assert "loops" in loop and "already a saved reply named" in dup
    assert filled == {"text": f"Hi {PEER}, joe from Acme Dental here."}
    assert edited == {"text": "Joe was here"}
    assert 'aria-label="Saved reply"' in page and ">On the way</option>" in page
    assert desk.saved_replies(two.store) == []


def test_a_reply_flagged_for_review_is_settled_in_one_click(two):
    cfg, store = two.cfg, two.store
    pipe = Pipeline(cfg, store)
    pipe.on_inbound(PEER, LINE, "I want you to stop", now=time.time())
    other = "+15125550188"
    missed_call(store, other, time.time() - 30)
    pipe.on_inbound(other, LINE, "Stop with the reminders, I'll call", now=time.time())
    flagged = {m["peer"]: m["id"] for p in (PEER, other) for m in store.messages_to(p) if m["direction"] == "in"}

    async def scenario(maria, joe):
        mc = await csrf_of(maria, f"/c/{PEER}")
        before = await (await maria.get(f"/c/{PEER}")).text()
        await maria.post(f"/c/{PEER}/review", data={"csrf": mc, "id": str(flagged[PEER]), "verdict": "optout"})
        await maria.post(f"/c/{other}/review", data={"csrf": mc, "id": str(flagged[other]), "verdict": "not"})
        again = await maria.post(f"/c/{other}/review", data={"csrf": mc, "id": str(flagged[other]), "verdict": "not"})
        return before, await (await joe.get(f"/c/{PEER}")).text(), await (await joe.get(f"/c/{other}")).text(), again.status
    before, out, ok, again = both(two, scenario)
    assert ">Opt out</button>" in before and ">Not an opt-out</button>" in before
    assert consent.is_opted_out(store.consent_history(PEER), PEER)
    assert "Consent: opted out" in out and "This caller opted out" in out and ">Opt out</button>" not in out
    assert [m["kind"] for m in store.messages_to(PEER) if m["direction"] == "out"] == ["confirmation"]
    assert not consent.is_opted_out(store.consent_history(other), other)
    assert "not an opt-out, checked by maria" in ok and ">Opt out</button>" not in ok
    assert again == 400


def test_an_ordinary_request_with_stop_in_it_raises_no_flag(two):
    Pipeline(two.cfg, two.store).on_inbound(PEER, LINE, "The leak won't stop, please hurry", now=time.time())

    async def scenario(maria, joe):
        return await (await maria.get(f"/c/{PEER}")).text()
    page = both(two, scenario)
    assert "The leak won&#39;t stop, please hurry" in page
    assert ">Opt out</button>" not in page and "may mean" not in page


def _events(client, seconds):
    async def read():
        got = []
        async with client.get("/events") as r:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    line = await asyncio.wait_for(r.content.readline(), end - time.monotonic())
                except asyncio.TimeoutError:
                    break
                got.append(line.decode())
        return got
    return read()


def test_every_reply_reaches_each_agents_stream_as_they_chose(two):
    sw.set_owner(two.store, PEER, "joe", "joe", time.time())
    other = "+15125550188"
    missed_call(two.store, other, time.time() - 30)
    desk.set_notify_choice(two.store, "maria", "mine")

    async def scenario(maria, joe):
        async def later():
            await asyncio.sleep(0.8)
            reply(two.store, PEER, "joe's caller writes", time.time())
            reply(two.store, other, "unassigned caller writes", time.time())
        m, j, _ = await asyncio.gather(_events(maria, 2.5), _events(joe, 2.5), later())
        mc = await csrf_of(maria, "/me")
        bad = await maria.post("/me", data={"csrf": mc, "notify": "some"})
        await maria.post("/me", data={"csrf": mc, "notify": "all"})
        return m, j, bad.status
    m, j, bad = both(two, scenario)

    def replies(lines):
        return [json.loads(line[6:])["body"] for i, line in enumerate(lines)
                if line.startswith("data: {") and lines[i - 1] == "event: reply\n"]
    assert replies(j) == ["joe's caller writes", "unassigned caller writes"]       # all (the default)
    assert replies(m) == ["unassigned caller writes"]                              # mine and unassigned
    assert bad == 400 and desk.notify_choice(two.store, "maria") == "all"


def test_the_chime_is_a_short_wav_of_our_own(two):
    async def scenario(maria, joe):
        r = await maria.get("/sound/reply.wav")
        return r.status, r.headers["Content-Type"], await r.read()
    status, ctype, data = both(two, scenario)
    assert status == 200 and ctype == "audio/wav"
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and 1000 < len(data) < 8000


# ---- ownership rules, through the pipeline as the service wires them ----------------------------
def _rules_cfg(tmp_path, rules):
    return loads(f"""
[business]
name = "Acme Dental"
phone = "+15125550100"
timezone = "America/Chicago"
[store]
path = "{tmp_path / 's.sqlite3'}"
[[line]]
number = "{LINE}"
name = "Spring promo"
{rules}
""")


def _wired(cfg):
    store = st.open_store(cfg.store.path)
    pipe = Pipeline(cfg, store)
    pipe.on_arrival = lambda peer, line, queue, now: on_arrival(cfg, store, peer, line, queue, now)
    for name in ("maria", "joe", "lee"):
        sw.add_user(store, name, "agent", hash_password(PW), "", time.time())
    return store, pipe


def test_a_new_conversation_goes_to_the_first_rule_whose_agent_is_signed_in(tmp_path):
    cfg = _rules_cfg(tmp_path, """
[[web.owner_rules]]
by = "campaign"
match = "spring promo"
agent = "maria"
[[web.owner_rules]]
by = "territory"
match = "512"
agent = "joe"
""")
    store, pipe = _wired(cfg)
    now = time.time()
    pipe.on_inbound("+15125550111", LINE, "hello?", now=now)               # nobody signed in
    assert desk.owner_of(store, "+15125550111") is None
    sw.new_session(store, sw.user(store, "joe").id, now)                   # joe signs in
    pipe.on_inbound("+15125550112", LINE, "anyone there?", now=now)
    sw.new_session(store, sw.user(store, "maria").id, now)
    pipe.on_inbound("+15125550113", LINE, "hi", now=now)
    pipe.on_inbound("+17375550114", LINE, "hi", now=now)                   # campaign matches all on this line
    pipe.on_inbound("+15125550112", LINE, "again", now=now)               # already joe's: stays
    assert desk.owner_of(store, "+15125550112") == ("open", "joe")
    assert desk.owner_of(store, "+15125550113") == ("open", "maria")
    assert desk.owner_of(store, "+17375550114") == ("open", "maria")
    pipe.on_inbound("+15125550115", LINE, "STOP", now=now)                 # handled before anyone sees it
    assert desk.owner_of(store, "+15125550115") is None
    store.close()


def test_sticky_gives_a_reopened_conversation_back_to_its_previous_owner(tmp_path):
    cfg = _rules_cfg(tmp_path, """
[[web.owner_rules]]
by = "sticky"
[[web.owner_rules]]
by = "line"
match = "+15125550140"
agent = "lee"
""")
    store, pipe = _wired(cfg)
    now = time.time()
    for name in ("maria", "lee"):
        sw.new_session(store, sw.user(store, name).id, now)
    caller = "+15125550121"
    pipe.on_inbound(caller, LINE, "hi", now=now)
    assert desk.owner_of(store, caller)[1] == "lee"                        # no previous owner: the line's rule
    sw.set_owner(store, caller, "maria", "maria", now + 1)
    sw.set_state(store, caller, sw.DONE, "maria", now + 2)
    pipe.on_inbound(caller, LINE, "one more thing", now=now + 3)
    assert desk.owner_of(store, caller) == (sw.DONE, "maria")             # reopened (derived), maria's again
    sw.set_state(store, caller, sw.DONE, "maria", now + 4)
    sw.end_session(store, "x", everywhere=False)
    from pbx_textback.store.web import WebSession, WebUser
    WebSession.delete().where(WebSession.user == WebUser.get(WebUser.name == "maria").id).execute()
    pipe.on_inbound(caller, LINE, "hello again", now=now + 5)
    assert desk.owner_of(store, caller)[1] == "lee"                        # maria signed out: next rule
    store.close()


def test_a_missed_call_opens_a_conversation_with_an_owner_and_the_page_rules_replace_the_files(tmp_path):
    from pbx_textback.core.model import CallRecord
    cfg = _rules_cfg(tmp_path, """
[[web.owner_rules]]
by = "queue"
match = "sales"
agent = "joe"
""")
    store, pipe = _wired(cfg)
    now = time.time()
    for name in ("joe", "lee"):
        sw.new_session(store, sw.user(store, name).id, now)
    rec = CallRecord("asterisk", "q1", "+15125550131", LINE, "inbound", queue="sales", queue_abandoned=True,
                     started_at=now - 40, ended_at=now - 5)
    pipe.on_record(rec, now=now)
    assert desk.owner_of(store, "+15125550131") == ("open", "joe")
    desk.replace_owner_rules(store, [OwnerRule("territory", "lee", "512")], "admin", now)
    pipe.on_record(replace(rec, call_id="q2", caller="+15125550132"), now=now)
    assert desk.owner_of(store, "+15125550132") == ("open", "lee")
    desk.replace_owner_rules(store, [], "admin", now)                      # "no rules" on the page wins too
    pipe.on_record(replace(rec, call_id="q3", caller="+15125550133"), now=now)
    assert desk.owner_of(store, "+15125550133") is None
    desk.forget_owner_rules(store)
    pipe.on_record(replace(rec, call_id="q4", caller="+15125550134"), now=now)
    assert desk.owner_of(store, "+15125550134") == ("open", "joe")         # back to the file's
    store.close()


def test_the_agent_whose_desk_phone_talked_to_the_caller_owns_the_conversation(tmp_path):
    from pbx_textback.core.model import CallRecord
    from pbx_textback.web.ownership import extension_of, on_reached
    cfg = _rules_cfg(tmp_path, "")
    store = st.open_store(cfg.store.path)
    sw.add_user(store, "maria", "agent", hash_password(PW), "101", time.time())
    sw.add_user(store, "joe", "agent", hash_password(PW), "102", time.time())
    pipe = Pipeline(cfg, store)
    pipe.on_reached = lambda peer, endpoint, now: on_reached(store, peer, endpoint, now)
    now = time.time()
    caller = "+15125550141"
    missed_call(store, caller, now - 600)
    sw.set_owner(store, caller, "joe", "joe", now - 500)
    pipe.on_record(CallRecord("asterisk", "a1", caller, LINE, "inbound", answered_by_human=True,
                              answered_by="PJSIP/101-0000002a", started_at=now - 60, ended_at=now - 5), now=now)
    assert desk.owner_of(store, caller)[1] == "maria"          # she answered him: hers now
    pipe.on_record(CallRecord("asterisk", "a2", "102", caller, "outbound", answered_by_human=True,
                              answered_by=caller, started_at=now - 30, ended_at=now), now=now + 1)
    assert desk.owner_of(store, caller)[1] == "joe"            # joe called him back
    pipe.on_record(CallRecord("asterisk", "a3", caller, LINE, "inbound", answered_by_human=True,
                              answered_by="PJSIP/199-01", started_at=now, ended_at=now + 9), now=now + 10)
    assert desk.owner_of(store, caller)[1] == "joe"            # an extension no agent has: no change
    assert [extension_of(e) for e in ("SIP/101", "sofia/internal/101@pbx", "101", "Local/s@ctx", "")] == \
        ["101", "101", "101", "", ""]
    store.close()


def test_the_desk_tables_work_on_sqlite_and_postgresql_and_every_write_reaches_the_live_pages(store_factory):
    from pbx_textback.core.policy.replylock import Lock
    store = store_factory()
    sw.add_user(store, "maria", "agent", "x", "101", 1000.0)
    marks = [desk.change_mark(store)]

    def changed():
        marks.append(desk.change_mark(store))
        return marks[-1] != marks[-2]
    desk.put_lock(store, PEER, Lock("maria", 1000.0, 1000.0))
    assert changed() and desk.lock_of(store, PEER) == Lock("maria", 1000.0, 1000.0)
    desk.put_lock(store, PEER, Lock("maria", 1000.0, 1010.0))
    assert not changed()                               # a keystroke's refresh is no news
    assert desk.drop_lock(store, PEER) and changed() and desk.lock_of(store, PEER) is None
    desk.add_note(store, PEER, "maria", "call after 5", 1020.0)
    assert changed() and [n.body for n in desk.notes(store, PEER)] == ["call after 5"]
    desk.replace_owner_rules(store, [OwnerRule("sticky"), OwnerRule("line", "maria", LINE)], "admin", 1030.0)
    assert changed() and desk.owner_rules(store) == [OwnerRule("sticky"), OwnerRule("line", "maria", LINE)]
    rid = desk.save_reply(store, "hours", "We open at 8", "maria", 1040.0)
    with pytest.raises(ValueError, match="already a saved reply"):
        desk.save_reply(store, "hours", "dup", "maria", 1041.0)
    assert desk.saved_reply(store, rid).body == "We open at 8"
    desk.set_notify_choice(store, "maria", "mine")
    assert desk.notify_choice(store, "maria") == "mine" and desk.notify_choice(store, "joe") == "all"
    assert desk.signed_in(store, 2000.0) == set()
    sw.new_session(store, sw.user(store, "maria").id, 2000.0)
    assert desk.signed_in(store, 2001.0) == {"maria"}
    store.close()


def test_a_page_hears_of_replies_stored_while_it_loaded_and_after_a_reconnect(two):
    async def scenario(maria, joe):
        page = await (await maria.get(f"/c/{PEER}")).text()
        heard = re.search(r'data-heard="(\d+)"', page).group(1)
        reply(two.store, PEER, "written while the page loaded", time.time())      # before its stream connects
        first = await _events_at(maria, f"/events?after={heard}", 1.0)
        reply(two.store, PEER, "written while the network was down", time.time())
        told = [json.loads(line[6:])["id"] for line in first if line.startswith("data: {")][-1]
        again = await _events_at(maria, "/events?after=0", 1.0, headers={"Last-Event-ID": str(told)})
        fresh = await _events_at(joe, "/events", 1.0)                               # no after: only what is new
        return first, again, fresh

    def bodies(lines):
        return [json.loads(line[6:])["body"] for line in lines if line.startswith("data: {")]
    first, again, fresh = both(two, scenario)
    assert bodies(first) == ["written while the page loaded"]
    assert bodies(again) == ["written while the network was down"]
    assert bodies(fresh) == []


def _events_at(client, url, seconds, headers=None):
    async def read():
        got = []
        async with client.get(url, headers=headers or {}) as r:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    line = await asyncio.wait_for(r.content.readline(), end - time.monotonic())
                except asyncio.TimeoutError:
                    break
                got.append(line.decode())
        return got
    return read()


def test_a_store_from_before_the_desk_gets_its_tables_by_migration_16(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    store = st.open_store(path)
    for m in desk.DESK_MODELS:
        store.db.execute_sql(f'DROP TABLE "{m._meta.table_name}"')
    st.SchemaVersion.update(version=14).execute()          # a new store records only its latest version
    store.close()
    store = st.open_store(path)
    assert all(store.db.table_exists(m._meta.table_name) for m in desk.DESK_MODELS)
    assert 16 in [v.version for v in st.SchemaVersion.select()]
    desk.add_note(store, PEER, "maria", "kept", 1.0)
    store.close()
