"""PostgreSQL's twin of tests/unit/test_new_store_schema.py: a store made new today and a
store made by the release before migration 30, upgraded, end with the same schema (columns,
indexes, constraints, triggers and their functions), on a real PostgreSQL."""
from __future__ import annotations

from pathlib import Path

import pytest

from pbx_textback.store.db import MIGRATIONS, open_store
from pbx_textback.store.fast import REDUNDANT_INDEXES
from pbx_textback.store.lean_indexes import CREATED, DROPPED

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "stores" / "new-store-v28.pg.sql"

CATALOG = {
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default FROM "
               "information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE NOT tgisinternal ORDER BY 1, 2",
    "functions": "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
    "version": "SELECT MAX(version) FROM schemaversion",
}


def _run(dsn: str, sql: str) -> None:
    import psycopg2
    c = psycopg2.connect(dsn)
    c.autocommit = True
    try:
        c.cursor().execute(sql)
    finally:
        c.close()


def _catalog(dsn: str) -> dict:
    import psycopg2
    c = psycopg2.connect(dsn)
    try:
        cur = c.cursor()
        out = {}
        for name, sql in CATALOG.items():
            cur.execute(sql)
            out[name] = cur.fetchall()
        return out
    finally:
        c.close()


def _fresh(dsn: str) -> None:
    _run(dsn, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


def test_a_new_postgresql_store_and_an_upgraded_one_have_the_same_schema(pg_dsn):
    pytest.importorskip("psycopg2")
    _fresh(pg_dsn)
    _run(pg_dsn, OLD.read_text())
    before = {r[1] for r in _catalog(pg_dsn)["indexes"]}
    assert {"call_call_id", "message_state", "consent_number"} <= before, \
        "the fixture is not the store the release before migration 30 made"
    open_store(dsn=pg_dsn, box="b").close()            # the upgrade
    old = _catalog(pg_dsn)

    _fresh(pg_dsn)
    open_store(dsn=pg_dsn, box="b").close()            # a new store
    new = _catalog(pg_dsn)
    _fresh(pg_dsn)

    assert old["version"] == new["version"] == [(max(v for v, _ in MIGRATIONS),)]
    for part in CATALOG:
        only_old = [r for r in old[part] if r not in new[part]]
        only_new = [r for r in new[part] if r not in old[part]]
        assert not only_old and not only_new, f"{part}: only upgraded {only_old}; only new {only_new}"
    indexes = {r[1] for r in new["indexes"]}
    assert not indexes & (set(DROPPED) | set(REDUNDANT_INDEXES))
    assert {name.strip('"') for name, _ in CREATED} <= indexes
