"""The idle service's pollers read through constant hand-written SQL (store/settings.version,
store/deskphones.replies_after, store/boxcalls.any_queued): on SQLite and on a real PostgreSQL
they see what was written, as the ORM's queries did. And migration 30's indexes exist on both."""
from __future__ import annotations

from pbx_textback.store import boxcalls, deskphones as sd, settings as ss


def test_the_pollers_see_a_change_a_reply_and_a_queued_call_back(store_factory):
    store = store_factory()
    store.box = "b1"
    assert ss.version(store) == 0
    last = ss.record(store, [("line[+15125550100].template", None, "Acme: hi. Reply STOP to opt out.")], "ada", 1.0)
    assert ss.version(store) == last > 0

    assert sd.replies_after(store, 0) == []
    with store.write():
        mine = store.add_message(direction="in", kind="reply", peer="+15125550123", body="is it open?",
                                 state="received", due_at=2.0, note="question")
        store.add_message(direction="in", kind="reply", peer="+15125550124", body="other box",
                          state="received", due_at=2.0, box="b2")
    assert sd.replies_after(store, 0) == [(mine, "+15125550123", "is it open?", "question")]
    assert sd.replies_after(store, mine) == []

    assert not boxcalls.any_queued(store, "b1")
    boxcalls.queue(store, peer="+15125550123", extension="101", agent="ada", box="b2", now=3.0)
    assert not boxcalls.any_queued(store, "b1")
    cb = boxcalls.queue(store, peer="+15125550123", extension="101", agent="ada", box="b1", now=3.0)
    assert boxcalls.any_queued(store, "b1")
    boxcalls.refuse(store, cb, detail="test", now=4.0)
    assert not boxcalls.any_queued(store, "b1")


def test_migration_30_indexes_on_either_database(store_factory):
    store = store_factory()
    if store.is_sqlite:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
    names = {r[0] for r in store.db.execute_sql(sql)}
    assert {"call_call_id_box", "message_state_box_due", "consent_number_kind"} <= names
    assert not names & {"consent_number", "message_state", "message_due_at", "message_box_state_due_at",
                        "call_call_id", "call_box_call_id"}
