"""The kept text totals (store/text_tally.py) on real stores: a store made by an older release
counts the texts it already holds once it is upgraded; on one PostgreSQL, several boxes'
services change texts at once without waiting on each other for the counts, and the counts of
backends that have ended are folded away when a store is opened. Each figure is checked
against a full count of the message table: what /metrics used to read."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pbx_textback.store import metrics
from pbx_textback.store.db import open_store
from pbx_textback.store.text_tally import TABLE

STORES = Path(__file__).resolve().parents[1] / "fixtures" / "stores"
FULL = "SELECT kind, state, COUNT(*) FROM message WHERE direction = 'out' GROUP BY 1, 2"
# (direction, kind, state) of the texts an older store holds
OLD_TEXTS = [("out", "missed-call", "delivered")] * 3 + [("out", "missed-call", "failed"), ("out", "agent", "sent"),
             ("out", "missed-call", "pending"), ("in", "reply", "received"), ("out", "confirmation", "no-receipt")]
INSERT = ('INSERT INTO message (call_id, direction, kind, line, peer, body, state, due_at, attempts, transport, '
          'transport_id, error, created_at, updated_at, calls_missed, note, box, account) VALUES '
          '(NULL, {p}, {p}, \'+15125550110\', {p}, \'hi\', {p}, {p}, 1, \'smpp\', \'\', \'\', {p}, {p}, 1, \'\', {p}, \'\')')


def full(store) -> dict:
    return {(k, s): n for k, s, n in store.db.execute_sql(FULL)}


def kept(store) -> dict:
    return {(k, s): n for k, s, n in metrics.text_totals(store)}


def add_text(store, kind: str, state: str, box: str, at: float = 100.0) -> int:
    p = "?" if store.is_sqlite else "%s"
    cur = store.db.execute_sql(INSERT.format(p=p) + " RETURNING id",
                               ("out", kind, "+15125550177", state, at, at, at, box))
    return cur.fetchone()[0]


def _pg(dsn: str, sql: str, params=None):
    import psycopg2
    c = psycopg2.connect(dsn)
    c.autocommit = True
    try:
        cur = c.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None
    finally:
        c.close()


def _fresh_pg(dsn: str) -> None:
    _pg(dsn, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_a_store_made_before_counts_the_texts_it_holds_once_upgraded(db, tmp_path, request):
    rows = [(d, k, "+15125550177", s, 100.0 + i, 100.0 + i, 100.0 + i, "b1") for i, (d, k, s) in enumerate(OLD_TEXTS)]
    if db == "sqlite":
        path = str(tmp_path / "old.sqlite3")
        c = sqlite3.connect(path)
        c.executescript((STORES / "new-store-v28.sql").read_text())
        c.executemany(INSERT.format(p="?"), rows)
        c.commit()
        c.close()
        store = open_store(path, box="b1")                       # the upgrade, as the service runs it
    else:
        dsn = request.getfixturevalue("pg_dsn")
        _fresh_pg(dsn)
        _pg(dsn, (STORES / "new-store-v28.pg.sql").read_text())
        for r in rows:
            _pg(dsn, INSERT.format(p="%s"), r)
        store = open_store(dsn=dsn, box="b1")
    try:
        assert kept(store) == full(store) == {("missed-call", "delivered"): 3, ("missed-call", "failed"): 1,
                                              ("agent", "sent"): 1, ("missed-call", "pending"): 1,
                                              ("confirmation", "no-receipt"): 1}
        pending = store.db.execute_sql("SELECT id FROM message WHERE state = 'pending'").fetchone()[0]
        store.set_state(pending, "sent", now=200.0)             # a text the old release queued, sent now
        assert kept(store) == full(store)
        assert kept(store)[("missed-call", "sent")] == 1 and ("missed-call", "pending") not in kept(store)
    finally:
        store.close()
        if db == "postgres":
            _fresh_pg(dsn)


def test_two_boxes_change_texts_at_once_without_waiting_on_each_other(pg_dsn):
    """Box b1's transaction moves a text from pending to sent and has not committed; box b2
    moves its own text of the same kind through the same states meanwhile. With one count row
    per (kind, state), b2 would wait for b1's commit (here: fail at once, lock_timeout); each
    backend's own slot lets it go on. Both stores then read the same totals as a full count."""
    _fresh_pg(pg_dsn)
    b1, b2 = open_store(dsn=pg_dsn, box="b1"), open_store(dsn=pg_dsn, box="b2")
    try:
        t1, t2 = add_text(b1, "missed-call", "pending", "b1"), add_text(b2, "missed-call", "pending", "b2")
        b2.db.execute_sql("SET lock_timeout = '1s'")
        with b1.write():
            b1.set_state(t1, "sent", now=200.0)
            with b2.write():                                   # b1 still holds its transaction open
                b2.set_state(t2, "sent", now=200.0)
            assert kept(b2) == full(b2) == {("missed-call", "sent"): 1, ("missed-call", "pending"): 1}
        b2.db.execute_sql("SET lock_timeout = 0")
        assert kept(b1) == kept(b2) == full(b1) == {("missed-call", "sent"): 2}
        # a receipt in each box, and a purge by one of them: still one answer everywhere
        b1.set_state(t1, "delivered", now=300.0)
        b2.set_state(t2, "failed", now=300.0)
        t3 = add_text(b2, "agent", "pending", "b2", at=1000.0)
        assert kept(b1) == kept(b2) == full(b2) == {("missed-call", "delivered"): 1, ("missed-call", "failed"): 1,
                                                    ("agent", "pending"): 1}
        b2.purge(500.0)          # (the models' queries go through the store opened last: b2's)
        assert kept(b1) == kept(b2) == full(b1) == {("agent", "pending"): 1}
        b2.set_state(t3, "sent", now=1100.0)
        assert kept(b1) == kept(b2) == full(b1) == {("agent", "sent"): 1}
    finally:
        b1.close()
        b2.close()


def test_the_counts_of_ended_connections_are_folded_when_a_store_is_opened(pg_dsn):
    """Every connection that ever changed a text left a slot; opening the store folds those of
    connections that have ended into one, so a scrape never reads more rows than the live
    connections have made."""
    _fresh_pg(pg_dsn)
    for i in range(5):                                         # five services (or CLI runs), one after another
        s = open_store(dsn=pg_dsn, box=f"b{i}")
        t = add_text(s, "missed-call", "pending", f"b{i}")
        s.set_state(t, "delivered", now=200.0)
        s.close()
    slots = lambda s: {r[0] for r in s.db.execute_sql(f'SELECT DISTINCT slot FROM "{TABLE}"')}  # noqa: E731
    s = open_store(dsn=pg_dsn, box="b9")
    try:
        assert slots(s) == {0}
        assert kept(s) == full(s) == {("missed-call", "delivered"): 5}
        t = add_text(s, "agent", "pending", "b9")
        s.set_state(t, "sent", now=300.0)
        mine = s.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        assert slots(s) == {0, mine}                           # this live connection keeps its own
        other = open_store(dsn=pg_dsn, box="b8")               # a second opener leaves it alone
        other.close()
        assert slots(s) == {0, mine}
        assert kept(s) == full(s) == {("missed-call", "delivered"): 5, ("agent", "sent"): 1}
    finally:
        s.close()
        _fresh_pg(pg_dsn)


def test_postgresql_reads_the_totals_and_a_lines_newest_text_through_indexes(pg_dsn):
    """On a store of thousands of texts (a few still queued) PostgreSQL's planner reads the
    queue through (state, box, due_at) and a line's newest text through message_line_out:
    neither is a pass over the message table. The answers are the full count's and the newest
    text's."""
    _fresh_pg(pg_dsn)
    s = open_store(dsn=pg_dsn, box="b1")
    try:
        p = "%s"
        rows = [("out", ("missed-call", "agent")[i % 5 == 0], "+15125550177",
                 ("delivered", "failed", "sent")[i % 3] if i % 500 else "pending", float(i), float(i), float(i),
                 f"b{i % 2}") for i in range(6000)]
        with s.write():
            s.db.cursor().executemany(INSERT.format(p=p), rows)
        s.db.execute_sql("UPDATE message SET line = '+15125550140' WHERE id IN (10, 21)")   # a quiet line
        s.db.execute_sql("ANALYZE message")
        from pbx_textback.store import boxes, text_tally
        for sql, params, index in ((text_tally._TOTALS, (), "message_state_box_due"),
                                   (boxes._BY_TEXT.replace("?", p), ("+15125550140",), "message_line_out"),
                                   (boxes._BY_TEXT.replace("?", p), ("+15125550999",), "message_line_out")):
            plan = "\n".join(r[0] for r in s.db.execute_sql("EXPLAIN " + sql, params))
            assert "Seq Scan on message" not in plan and index in plan, plan
        assert kept(s) == full(s)
        assert sum(n for (_k, state), n in kept(s).items() if state == "pending") == 12
        assert boxes.box_of_line(s, "+15125550140") == "b0"       # id 21: i = 20
        assert boxes.box_of_line(s, "+15125550110") == "b1"       # id 6000: i = 5999
        assert boxes.box_of_line(s, "+15125550999") == ""
    finally:
        s.close()
        _fresh_pg(pg_dsn)


def test_a_purge_takes_its_texts_off_the_counts_and_leaves_the_triggers_as_they_were(store_factory):
    """The purge turns the inbox's triggers off and on again around its deletes; the text
    counts' delete trigger takes each deleted text off (SQLite: per row; PostgreSQL: once per
    statement) and is still there for a delete after it."""
    s = store_factory()
    for i, state in enumerate(("delivered", "delivered", "failed", "pending", "sent")):
        add_text(s, "missed-call", state, "b1", at=100.0 + i)
    late = add_text(s, "agent", "delivered", "b1", at=900.0)
    triggers = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY 1" if s.is_sqlite else \
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
    before = s.db.execute_sql(triggers).fetchall()
    assert s.purge(500.0)["messages"] == 4                     # the queued text stays
    assert kept(s) == full(s) == {("missed-call", "pending"): 1, ("agent", "delivered"): 1}
    assert s.db.execute_sql(triggers).fetchall() == before
    s.db.execute_sql("DELETE FROM message WHERE id = " + str(late))
    assert kept(s) == full(s) == {("missed-call", "pending"): 1}
