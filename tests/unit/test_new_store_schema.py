"""A store made new today and a store made by an older release, upgraded, end with the same
schema: tables, indexes (names, columns, uniqueness), triggers. The models no longer declare
the indexes migrations 27 and 30 drop, so a new store never makes them (it used to make them
and drop them again); a store made before still loses them through its migrations."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from pbx_textback.store.db import MIGRATIONS, open_store
from pbx_textback.store.fast import REDUNDANT_INDEXES
from pbx_textback.store.lean_indexes import CREATED, DROPPED

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "stores" / "new-store-v28.sql"


def _schema(path: str) -> list[tuple]:
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                         "ORDER BY type, name").fetchall()
    finally:
        c.close()


def _version(path: str) -> int:
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT MAX(version) FROM schemaversion").fetchone()[0]
    finally:
        c.close()


def test_a_new_store_and_an_upgraded_store_of_before_have_the_same_schema(tmp_path):
    old = str(tmp_path / "old.sqlite3")
    c = sqlite3.connect(old)
    c.executescript(OLD.read_text())
    c.close()
    before = {r[1] for r in _schema(old) if r[0] == "index"}
    assert _version(old) == 28 and {"call_call_id", "message_state", "consent_number"} <= before, \
        "the fixture is not the store the release before migration 30 made"
    open_store(old, box="b").close()                   # the upgrade, as the service runs it

    new = str(tmp_path / "new.sqlite3")
    open_store(new, box="b").close()

    latest = max(v for v, _ in MIGRATIONS)
    assert _version(old) == _version(new) == latest
    got_old, got_new = _schema(old), _schema(new)
    assert got_old == got_new, "\n".join(
        [f"only upgraded: {r[:3]}" for r in got_old if r not in got_new]
        + [f"only new: {r[:3]}" for r in got_new if r not in got_old])
    indexes = {r[1] for r in got_new if r[0] == "index"}
    assert not indexes & (set(DROPPED) | set(REDUNDANT_INDEXES))
    assert {name.strip('"') for name, _ in CREATED} <= indexes


def test_a_new_store_never_makes_the_dropped_indexes(tmp_path):
    """Not made and dropped again: the statements that open a new store name none of them."""
    made = []
    import peewee as pw
    real = pw.SqliteDatabase.execute_sql

    def seen(self, sql, params=None, *a, **kw):
        made.append(sql)
        return real(self, sql, params, *a, **kw)

    pw.SqliteDatabase.execute_sql = seen
    try:
        open_store(str(tmp_path / "new.sqlite3"), box="b").close()
    finally:
        pw.SqliteDatabase.execute_sql = real
    assert any("CREATE TABLE" in s for s in made), "the trace saw nothing"
    named = [s for s in made for name in (*DROPPED, *REDUNDANT_INDEXES) if f'"{name}"' in s]
    assert not named, named


def test_the_upgrade_keeps_each_callers_last_call_rows(tmp_path):
    """Migration 31 remakes consentlastcall WITHOUT ROWID: the rows stay, and a caller's
    standing reads the same events."""
    old = str(tmp_path / "old.sqlite3")
    c = sqlite3.connect(old)
    c.executescript(OLD.read_text())
    for i, (number, line) in enumerate([("+15125550001", "+15125550100"), ("+15125550001", "+15125550200"),
                                        ("+15125550002", "+15125550100")]):
        cid = c.execute('INSERT INTO "consent" (number, kind, at, scope, line, source, confirms, lang) '
                        "VALUES (?, 'inbound-call', ?, 'business', ?, 'call x', '', 'en')",
                        (number, 1000.0 + i, line)).lastrowid
        c.execute('INSERT INTO "consentlastcall" (number, line, at, consent_id) VALUES (?, ?, ?, ?)',
                  (number, line, 1000.0 + i, cid))
    c.commit()
    before = c.execute('SELECT number, line, at, consent_id FROM "consentlastcall" ORDER BY 1, 2').fetchall()
    c.close()
    store = open_store(old, box="b")
    try:
        after = store.db.execute_sql('SELECT number, line, at, consent_id FROM "consentlastcall" '
                                     'ORDER BY 1, 2').fetchall()
        assert after == before and len(after) == 3
        assert [e.line for e in store.consent_standing("+15125550001")] == ["+15125550100", "+15125550200"]
        sql = store.db.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'consentlastcall'").fetchone()[0]
        assert sql.endswith("WITHOUT ROWID")
    finally:
        store.close()
