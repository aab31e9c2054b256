"""Migration 33 (store/replies_index.py): the pollers of callers' replies read them through an
index of the replies alone. Before, "replies after id N" walked every text sent since the last
reply -- on a store without replies, every text ever, once a second: the soak's CPU per call
rose with the store (bench/soak.py). Checked here: the same replies come back (order, box,
limit), the plans use the index, a poll costs the same SQLite steps after 20 times more texts,
and a store made before gets the index with its rows kept."""
from __future__ import annotations

import time

import pytest

from pbx_textback.store import desk, deskphones
from pbx_textback.store.db import MIGRATIONS, open_store
from tests.sqlite_steps import steps

NOW = time.time()


def _text(db, i: int, direction: str = "out", box: str = "b1", note: str = "") -> int:
    return db.execute_sql(
        'INSERT INTO "message" (call_id, direction, kind, line, peer, body, state, due_at, attempts, transport, '
        'transport_id, error, created_at, updated_at, calls_missed, note, box, account) VALUES (NULL, ?, ?, '
        '\'+15125550140\', ?, ?, ?, ?, 1, \'smpp\', \'\', \'\', ?, ?, 1, ?, ?, \'smpp\') RETURNING id',
        (direction, "missed-call" if direction == "out" else "reply", f"+1512556{i % 10000:04d}",
         f"body {i}", "delivered" if direction == "out" else "received", NOW + i, NOW + i, NOW + i, note,
         box)).fetchone()[0]


def _texts(db, n: int, start: int = 0) -> None:
    with db.atomic():
        for i in range(start, start + n):
            _text(db, i)


def plans(store, fn) -> list[str]:
    seen: list[str] = []
    conn = store.db.connection()
    conn.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        conn.set_trace_callback(None)
    return [r[3] for sql in seen if sql.lstrip().upper().startswith("SELECT")
            for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "s.sqlite3"), box="b1")
    yield s
    s.close()


def test_the_pollers_get_the_replies_after_an_id_in_order_by_box_and_limit(store):
    db = store.db
    _texts(db, 30)
    r1 = _text(db, 100, "in", note="stop")
    _texts(db, 30, start=30)
    r2 = _text(db, 101, "in", box="b2")           # another box's caller
    r3 = _text(db, 102, "in")
    _texts(db, 5, start=60)
    assert deskphones.last_reply_id(store) == r3
    assert [r[0] for r in deskphones.replies_after(store, 0)] == [r1, r3]       # this box's only
    assert deskphones.replies_after(store, r1) == [(r3, "+15125560102", "body 102", "")]
    assert deskphones.replies_after(store, r3) == []
    assert [r[0] for r in deskphones.replies_after(store, 0, limit=1)] == [r1]
    assert desk.inbound_since(store, 0) == [(r1, "+15125560100"), (r2, "+15125560101"), (r3, "+15125560102")]
    assert desk.inbound_since(store, r2) == [(r3, "+15125560102")]
    assert desk.inbound_since(store, 0, limit=2) == [(r1, "+15125560100"), (r2, "+15125560101")]
    assert desk.recent_inbound(store, 2) == [(r2, "+15125560101"), (r3, "+15125560102")]


def test_a_store_without_replies_says_so(store):
    _texts(store.db, 20)
    assert deskphones.last_reply_id(store) == 0
    assert deskphones.replies_after(store, 0) == []
    assert desk.inbound_since(store, 0) == []
    assert desk.recent_inbound(store, 10) == []


@pytest.mark.parametrize("what", ["desk phones' push", "web desk", "last reply", "recent replies"])
def test_each_reply_lookup_reads_the_replies_index(store, what):
    _texts(store.db, 200)
    _text(store.db, 1000, "in")
    fn = {"desk phones' push": lambda: deskphones.replies_after(store, 0),
          "web desk": lambda: desk.inbound_since(store, 0),
          "last reply": lambda: deskphones.last_reply_id(store),
          "recent replies": lambda: desk.recent_inbound(store, 10)}[what]
    got = plans(store, fn)
    assert got and all("message_reply_id" in p for p in got), got


@pytest.mark.parametrize("what", ["desk phones' push", "web desk", "last reply"])
def test_a_poll_costs_the_same_after_twenty_times_the_texts(store, what):
    """The soak's case: no caller replies, the poll asks from the last reply (none: 0) each
    second while texts pile up."""
    fn = {"desk phones' push": lambda: deskphones.replies_after(store, 0),
          "web desk": lambda: desk.inbound_since(store, 0),
          "last reply": lambda: deskphones.last_reply_id(store)}[what]
    _texts(store.db, 200)
    fn()
    small = steps(store, fn)
    _texts(store.db, 3800, start=200)
    big = steps(store, fn)
    assert big <= 2 * small + 20, (small, big)


def test_a_store_made_before_gets_the_index_and_keeps_its_rows(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    store = open_store(path, box="b1")
    store.db.execute_sql('DROP INDEX "message_reply_id"')
    _texts(store.db, 50)
    reply = _text(store.db, 500, "in")
    with store.db.atomic():
        dict(MIGRATIONS)[33](store.db)              # as the upgrade runs it
    names = {r[0] for r in store.db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "message_reply_id" in names
    assert deskphones.last_reply_id(store) == reply
    assert store.db.execute_sql('SELECT COUNT(*) FROM "message"').fetchone()[0] == 51
    store.close()
