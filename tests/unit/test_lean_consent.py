"""Migration 37 (store/lean_consent.py): consent (at) no longer indexes the inbound-call
events. What the readers by time get stays the same, and each still reads through the index."""
from __future__ import annotations

import time

from pbx_textback.core.policy.consent import INBOUND_CALL, OPT_IN, OPT_OUT, ConsentEvent
from pbx_textback.store import hooks
from pbx_textback.store.consent_owed import requests_since
from pbx_textback.store.db import MIGRATIONS, open_store


def _consent(store, kind, number, at, confirms=""):
    store.db.execute_sql('INSERT INTO "consent" (number, kind, at, scope, line, source, confirms, lang) '
                         'VALUES (?, ?, ?, \'business\', \'\', \'\', ?, \'en\')', (number, kind, at, confirms))


def _fill(store, now):
    with store.db.atomic():
        for i in range(2000):
            _consent(store, INBOUND_CALL, f"+1512555{i % 500:04d}", now - 3 * i)
            if i % 50 == 0:
                _consent(store, OPT_OUT if i % 100 else OPT_IN, f"+1512555{i % 500:04d}", now - 3 * i - 1)


def test_the_readers_by_time_get_the_same_rows_through_the_partial_index(tmp_path):
    store = open_store(str(tmp_path / "s.sqlite3"), box="b1")
    now = time.time()
    _fill(store, now)
    since = now - 3 * 3600
    every = store.consent_history(since=since)
    got = requests_since(store, since)          # by time, as Pipeline.queue_confirmations asks
    assert got == [e for e in every if e.kind != INBOUND_CALL] and len(got) == 40
    feed = hooks.consents_since(since, 1000)
    assert [(c.id, c.kind) for c in feed] == [(int(e.id), e.kind) for e in got if e.kind in (OPT_OUT, OPT_IN)]
    # the fingerprint moves with the feed's rows, not with a caller's inbound-call event
    before = hooks.fingerprint(store, {"consent": since})
    _consent(store, INBOUND_CALL, "+15125559999", now + 1)
    assert hooks.fingerprint(store, {"consent": since}) == before
    _consent(store, OPT_OUT, "+15125559999", now + 2)
    assert hooks.fingerprint(store, {"consent": since}) != before

    plans = []
    conn = store.db.connection()
    conn.set_trace_callback(plans.append)
    try:
        requests_since(store, since)
        hooks.consents_since(since, 1000)
        hooks.fingerprint(store, {"consent": since})
    finally:
        conn.set_trace_callback(None)
    used = [" | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)) for sql in plans]
    consent_reads = [u for sql, u in zip(plans, used) if "consent" in sql]
    assert len(consent_reads) == 3
    for u in consent_reads:
        assert "consent_at" in u and "SCAN consent" not in u and "SCAN t1" not in u, u


def _index_sql(store, name):
    return store.db.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                                (name,)).fetchone()


def test_a_store_made_before_gets_the_partial_index_and_keeps_its_rows(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    store = open_store(path, box="b1")
    store.db.execute_sql('DROP INDEX "consent_at"')
    store.db.execute_sql('CREATE INDEX "consent_at" ON "consent" ("at")')       # as migration 36 left it
    now = time.time()
    _fill(store, now)
    with store.db.atomic():
        dict(MIGRATIONS)[37](store.db)
    assert "WHERE kind <> 'inbound-call'" in _index_sql(store, "consent_at")[0]
    assert store.db.execute_sql('SELECT COUNT(*) FROM "consent"').fetchone()[0] == 2040
    store.close()


def test_a_missed_call_writes_no_consent_at_entry(tmp_path):
    """The point of it: a caller's inbound-call event is not in consent (at); an opt-out is."""
    store = open_store(str(tmp_path / "s.sqlite3"), box="b1")
    now = time.time()
    store.add_consent(ConsentEvent(INBOUND_CALL, "+15125550001", now, line="+15125550100"))
    store.add_consent(ConsentEvent(OPT_OUT, "+15125550002", now))
    entries = store.db.execute_sql(
        "SELECT SUM(ncell) FROM dbstat WHERE name = 'consent_at' AND pagetype = 'leaf'").fetchone()[0]
    assert entries == 1
    assert store.db.execute_sql('SELECT COUNT(*) FROM "consent"').fetchone()[0] == 2
