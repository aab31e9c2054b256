"""Call backs queued for the box that owns the line (store/boxcalls.py, queued_callbacks.py):
the row's life (queued -> originating once, or failed with why), migration 24 on a store from
before it, and what a box does with a row it cannot place."""
import asyncio
import time

import peewee as pw

from pbx_textback.config import loads
from pbx_textback.deskphone import DeskPhones
from pbx_textback.queued_callbacks import STALE_S, tick
from pbx_textback.store import boxcalls
from pbx_textback.store import callbacks as cbs
from pbx_textback.store import db as st

PEER = "+15125550188"


def _cfg(tmp_path):
    return loads(f"""
[business]
name = "Acme Dental"
phone = "+15125550100"
timezone = "America/Chicago"
[pbx]
type = "asterisk"
[pbx.ami]
username = "t"
secret = "s"
[store]
path = "{tmp_path / 's.sqlite3'}"
[[line]]
number = "+15125550140"
""")


def test_a_queued_call_back_is_taken_once_and_only_while_queued(tmp_path):
    store = st.open_store(str(tmp_path / "s.sqlite3"), box="pbx-b")
    now = time.time()
    cb = boxcalls.queue(store, peer=PEER, extension="100", agent="maria", box="pbx-b", now=now)
    assert boxcalls.queued_for(store, "pbx-a") == []                  # another box never sees it
    assert [r["id"] for r in boxcalls.queued_for(store, "pbx-b")] == [cb]
    assert boxcalls.take(store, cb, endpoint="PJSIP/100", now=now) is True
    assert boxcalls.take(store, cb, endpoint="PJSIP/100", now=now) is False
    assert boxcalls.refuse(store, cb, detail="late", now=now) is False  # an originating row stays
    row = cbs.Callback.get_by_id(cb)
    assert (row.state, row.endpoint, row.box, row.agent, row.feature) == ("originating", "PJSIP/100", "pbx-b",
                                                                          "maria", "inbox")
    assert boxcalls.queued_for(store, "pbx-b") == []
    store.close()


def test_migration_24_adds_the_box_column_to_an_older_store_and_may_run_again(tmp_path):
    from playhouse.migrate import SqliteMigrator, migrate
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    db = store.db
    db.execute_sql('DROP INDEX IF EXISTS "callback_box_state"')
    migrate(SqliteMigrator(db).drop_column("callback", "box"))
    assert "box" not in {c.name for c in db.get_columns("callback")}
    dict(st.MIGRATIONS)[24](db)
    dict(st.MIGRATIONS)[24](db)                       # a store that already has it: nothing to do
    assert "box" in {c.name for c in db.get_columns("callback")}
    assert any(i.columns == ["box", "state"] for i in db.get_indexes("callback"))
    store.close()


def test_a_box_refuses_a_stale_row_and_one_it_cannot_place_and_says_why_on_the_row(tmp_path):
    store = st.open_store(str(tmp_path / "s.sqlite3"), box="pbx-b")
    now = time.time()
    stale = boxcalls.queue(store, peer=PEER, extension="100", agent="maria", box="pbx-b", now=now - STALE_S - 60)
    fresh = boxcalls.queue(store, peer=PEER, extension="100", agent="maria", box="pbx-b", now=now)
    theirs = boxcalls.queue(store, peer=PEER, extension="100", agent="maria", box="pbx-a", now=now)
    desk = DeskPhones(_cfg(tmp_path), store)          # no PBX connection: it cannot ring anyone
    assert asyncio.run(tick(desk)) == 0
    rows = {r.id: (r.state, r.detail) for r in cbs.Callback.select()}
    assert rows[stale][0] == "failed" and "not rung: box pbx-b's service found it 3 min after" in rows[stale][1]
    assert rows[fresh] == ("failed", "Call back needs the service's PBX connection; this inbox has none.")
    assert rows[theirs] == ("queued", "")             # box A's to place
    store.close()


def test_an_agent_without_an_extension_is_refused_by_the_box_not_rung(tmp_path):
    store = st.open_store(str(tmp_path / "s.sqlite3"), box="pbx-b")
    sent = []

    async def send_action(act, timeout):
        sent.append(act)
        return [{"Response": "Success"}]
    desk = DeskPhones(_cfg(tmp_path), store, send_action=send_action)
    cb = boxcalls.queue(store, peer=PEER, extension="", agent="bob", box="pbx-b", now=time.time())
    assert asyncio.run(tick(desk)) == 0
    assert sent == []
    row = cbs.Callback.get_by_id(cb)
    assert row.state == "failed" and "you have no extension" in row.detail
    store.close()
