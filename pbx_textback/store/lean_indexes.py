"""Migration 30: fewer indexes for every call's insert and every text's state change to keep.

Each index a row touches is a page written at commit (SQLite's WAL, PostgreSQL's too). These
four were paid by every missed call and served no query another index does not serve as well
(checked with EXPLAIN QUERY PLAN: tests/unit/test_query_plans.py):

- consent (number): consent_number_kind (number, kind) starts with it.
- message (state), message (due_at) and message (box, state, due_at): one (state, box, due_at)
  serves them all: the outbox's pick (state, box, due_at range, in due order), the counts by
  state over every box (health, metrics, status), the restart's recovery (state, box). No
  query looks a text up by due_at alone.
- call (call_id) and the unique (box, call_id): one unique (call_id, box) keeps a call id
  unique per box and serves the lookups by id alone (a call back's call, explain) as well as
  by id and box. ON CONFLICT (box, call_id) names the same columns, which is all either
  database asks of a conflict target.
"""
from __future__ import annotations

CREATED = (
    ('"call_call_id_box"', 'CREATE UNIQUE INDEX IF NOT EXISTS "call_call_id_box" ON "call" (call_id, box)'),
    ('"message_state_box_due"', 'CREATE INDEX IF NOT EXISTS "message_state_box_due" ON "message" (state, box, due_at)'),
)
DROPPED = ("consent_number", "message_state", "message_due_at", "message_box_state_due_at",
           "call_call_id", "call_box_call_id")


def create_indexes(db) -> None:
    """A new store: the models do not declare the dropped ones (nor migration 27's), so it
    never makes them; it makes these two (tests/unit/test_new_store_schema.py: a new store
    and an upgraded one end with the same schema)."""
    for _name, sql in CREATED:
        db.execute_sql(sql)


def migrate_v30(db) -> None:
    """Stores made before. The new indexes first, so a call id is never without its unique
    index in between."""
    create_indexes(db)
    for name in DROPPED:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
