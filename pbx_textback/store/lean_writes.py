"""Migration 31: up to three pages fewer for every decision's commit to write (issue 14).

A missed call's one transaction wrote ~31 pages to the WAL (bench/percall.py), and each is
copied again by the checkpoint; the commit was a third of the decision's CPU. These served
nothing another structure does not serve as well:

- call (called): call_called_created (called, created_at), the reports' index, starts with
  it, and the planner already took that one for every lookup by the called number
  (tests/unit/test_query_plans.py).
- consentlastcall on SQLite: a table keyed by rowid plus the unique index of its primary key
  (number, line), two b-trees at a random place each for every new caller. WITHOUT ROWID it
  is one b-tree ordered by that key: the same rows and the same upsert, one page. (PostgreSQL
  keeps its table and primary key index as they are.)
- call (caller_raw): a call's number as the PBX gave it, for a timeline asked by that spelling
  (Store.calls_for). Where it is already the E.164 (most trunks send +1...), the (caller)
  index finds the call by it, so the entry was a copy: the index keeps only the calls whose
  raw number differs, and calls_for asks `caller_raw = ? AND caller_raw <> caller` (the same
  calls: one whose raw number equals its E.164 is found by `caller = ?`).
And fewer trigger steps: on SQLite the inbox's counts move by one upsert each (store/inbox.py
_bump) instead of an INSERT of an empty bucket and an UPDATE.
"""
from __future__ import annotations

import peewee as pw

DROPPED = ("call_called",)
CALLER_RAW = 'CREATE INDEX IF NOT EXISTS "call_caller_raw" ON "call" ("caller_raw") WHERE "caller_raw" <> "caller"'

_COLS = ('number VARCHAR(255) NOT NULL, line VARCHAR(255) NOT NULL, '
         'at DOUBLE PRECISION NOT NULL, consent_id INTEGER NOT NULL, PRIMARY KEY (number, line)')


def consentlastcall_sql(db) -> str:
    """The table as a new store makes it (store/fast.py) and migration 31 remakes it."""
    rowid = " WITHOUT ROWID" if isinstance(db, pw.SqliteDatabase) else ""
    return f'CREATE TABLE IF NOT EXISTS "consentlastcall" ({_COLS}){rowid}'


def migrate_v31(db) -> None:
    for name in DROPPED:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    db.execute_sql('DROP INDEX IF EXISTS "call_caller_raw"')       # made again, partial
    db.execute_sql(CALLER_RAW)
    from . import inbox
    inbox.remake_count_triggers(db)        # SQLite: one upsert per count moved (store/inbox.py)
    if not isinstance(db, pw.SqliteDatabase):
        return
    made = db.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'consentlastcall'").fetchone()
    if made is None or "WITHOUT ROWID" in made[0].upper():
        return
    # rows copied as they are; the old table (and its key's index) goes
    db.execute_sql('ALTER TABLE "consentlastcall" RENAME TO "consentlastcall_v30"')
    db.execute_sql(consentlastcall_sql(db))
    db.execute_sql('INSERT INTO "consentlastcall" (number, line, at, consent_id) '
                   'SELECT number, line, at, consent_id FROM "consentlastcall_v30"')
    db.execute_sql('DROP TABLE "consentlastcall_v30"')
