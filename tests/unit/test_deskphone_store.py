"""*88 from an agent's desk phone takes that agent's callers first, then unassigned ones; the
callback table gains who asked and the call made (migration 15) on an older store too."""
import sqlite3
import time

from pbx_textback.store import callbacks as cbs
from pbx_textback.store import db as st
from pbx_textback.store import deskphones as sd
from pbx_textback.store import web as sw

LINE = "+15125550140"


def _missed(store, peer, at):
    with store.write():
        st.Call.create(call_id=f"c-{peer}", pbx="asterisk", caller=peer, caller_raw=peer, called=LINE, line=LINE,
                       direction="inbound", missed=True, reason="no-answer", why="", record="{}",
                       created_at=at, started_at=at)


def test_star88_takes_my_callers_first_then_unassigned_never_anothers(tmp_path):
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    now = time.time()
    sw.add_user(store, "alice", "agent", "x", "100", now)
    sw.add_user(store, "bob", "agent", "x", "101", now)
    bobs, unassigned, mine = "+15125550101", "+15125550102", "+15125550103"
    for i, peer in enumerate((bobs, unassigned, mine)):       # oldest first
        _missed(store, peer, now - 300 + i)
    sw.set_owner(store, bobs, "bob", "bob", now)
    sw.set_owner(store, mine, "alice", "alice", now)
    got = [cbs.claim_oldest_waiting(store, endpoint="PJSIP/100", now=now, window_s=3600) for _ in range(3)]
    assert [c.caller if c else None for c, _ in (g or (None, None) for g in got)] == [mine, unassigned, None]
    # a phone that is nobody's takes the oldest, whoever owns it
    assert cbs.claim_oldest_waiting(store, endpoint="PJSIP/199", now=now, window_s=3600)[0].caller == bobs
    # the *88 callbacks show on the timeline's source
    assert [c["feature"] for c in sd.for_peer(store, mine)] == ["*88"]
    store.close()


def test_an_older_store_gets_the_new_callback_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    store = st.open_store(str(path))
    store.close()
    db = sqlite3.connect(path)             # as a store of before v15 had it
    db.execute("ALTER TABLE callback DROP COLUMN agent")
    db.execute("ALTER TABLE callback DROP COLUMN channel_id")
    db.execute("UPDATE schemaversion SET version = 14 WHERE version >= 15")
    db.commit()
    db.close()
    store = st.open_store(str(path))
    cols = {c.name for c in store.db.get_columns("callback")}
    assert {"agent", "channel_id"} <= cols
    assert st.SchemaVersion.select(st.pw.fn.MAX(st.SchemaVersion.version)).scalar() >= 15
    store.close()
