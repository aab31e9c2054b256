"""PostgreSQL's half of tests/unit/test_lean_consent.py: the readers of consent by time can
use the partial consent (at) index (migration 37, store/lean_consent.py) on a real
PostgreSQL, whose planner, like SQLite's, must prove the query implies the index's WHERE."""
from __future__ import annotations

import time

import pytest

from pbx_textback.store import hooks
from pbx_textback.store.consent_owed import requests_since
from pbx_textback.store.db import open_store


def _fresh(dsn: str) -> None:
    import psycopg2
    c = psycopg2.connect(dsn)
    c.autocommit = True
    try:
        c.cursor().execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        c.close()


def test_the_readers_by_time_can_use_the_partial_index_on_postgresql(pg_dsn):
    pytest.importorskip("psycopg2")
    _fresh(pg_dsn)
    store = open_store(dsn=pg_dsn, box="b1")
    try:
        now = time.time()
        with store.db.atomic():
            store.db.execute_sql(
                'INSERT INTO "consent" (number, kind, at, scope, line, source, confirms, lang) '
                "SELECT '+1512555' || lpad(mod(i, 500)::text, 4, '0'), "
                "CASE WHEN mod(i, 50) = 0 THEN 'opt-out' ELSE 'inbound-call' END, %s - 3 * i, "
                "'business', '', '', '', 'en' FROM generate_series(1, 5000) AS i", (now,))
        store.db.execute_sql("ANALYZE consent")
        since = now - 3 * 3600
        seen = []
        real = store.db.execute_sql

        def catch(sql, params=None, *a, **kw):
            seen.append((sql, params))
            return real(sql, params, *a, **kw)

        store.db.execute_sql = catch
        try:
            got = requests_since(store, since)      # by time: without the inbound calls
            feed = hooks.consents_since(since, 1000)
            hooks.fingerprint(store, {"consent": since})
        finally:
            store.db.execute_sql = real
        assert len(got) == len(feed) == 72 and {e.kind for e in got} == {"opt-out"}
        reads = [(s, p) for s, p in seen if "consent" in s]
        assert len(reads) == 3, seen
        cur = store.db.cursor()
        cur.execute("SET enable_seqscan = off")          # can it use the index at all
        for sql, params in reads:
            cur.execute("EXPLAIN " + sql, params)
            plan = "\n".join(r[0] for r in cur.fetchall())
            assert "consent_at" in plan and "Seq Scan on consent" not in plan, (sql, plan)
        cur.execute("RESET enable_seqscan")
    finally:
        store.close()
        _fresh(pg_dsn)
