"""Migration 36: /metrics' outgoing-text totals by (kind, state), kept as the texts change
instead of counted over every text at each scrape (a year of texts: a pass over the whole
message table every 15-60 s).

A text's state changes (pending -> sending -> sent -> delivered ...), so its totals cannot be
read incrementally by id like the calls' (reporting/tally.py): each change must move one
count from the old (kind, state) to the new one, in the transaction that makes the change,
or a reader could see a text twice or not at all. Triggers on message do it, so every writer
(the service, the web, the CLI, a purge, a statement written later) keeps the counts right
without knowing of them; the trigger runs inside the statement that changes the row (no
statement more from Python).

Texts still in the queue (pending, sending) are not kept: a scrape counts them in the same
statement through the outbox's own index (state, box, due_at), as the outbox depth gauge
does; there are only as many as wait to go. So a text's first two commits (queued, taken:
the decision's and the last look's) fire no trigger and write no page more; only the submit's
answer and the receipt move a kept count. A scrape reads the kept rows (a few dozen) and the
queue.

The counts are in slots: SQLite has one writer at a time and one slot (0). On PostgreSQL,
several services (one per PBX box) write at once: a single row per (kind, state) would be
locked by each text's transaction until it commits, making the boxes wait on each other (and
two transactions taking two rows in opposite orders would deadlock). Each backend adds to its
own slot (its process id), which no other transaction ever locks; a slot's count may be
negative (a text counted in one slot and moved on in another), only the sum over the slots
means anything. When the store is opened, the slots of backends that have ended are folded
into slot 0, so the table stays the size of the live connections.

A delete (the purge) takes its texts off their counts: per row on SQLite, once per statement
on PostgreSQL (its deleted rows as a transition table), so a purge of a million texts does not
run a million trigger calls there."""
from __future__ import annotations

import peewee as pw

TABLE = "texttally"

_SQLITE_TABLE = (f'CREATE TABLE IF NOT EXISTS "{TABLE}" ("slot" INTEGER NOT NULL, "kind" TEXT NOT NULL, '
                 '"state" TEXT NOT NULL, "n" INTEGER NOT NULL, PRIMARY KEY ("slot", "kind", "state")) WITHOUT ROWID')
_PG_TABLE = (f'CREATE TABLE IF NOT EXISTS "{TABLE}" ("slot" INTEGER NOT NULL, "kind" TEXT NOT NULL, '
             '"state" TEXT NOT NULL, "n" BIGINT NOT NULL, PRIMARY KEY ("slot", "kind", "state"))')

_ADD = (f'INSERT INTO "{TABLE}" ("slot", "kind", "state", "n") {{rows}} '
        f'ON CONFLICT ("slot", "kind", "state") DO UPDATE SET "n" = "{TABLE}"."n" + excluded."n"')
LIVE = "('pending', 'sending')"          # the queue's states: counted at each scrape, not kept
_KEPT = '({r}."direction" = \'out\' AND {r}."state" NOT IN ' + LIVE + ')'
# only a change of what is kept moves a count (a receipt's note, a retry's due time do not)
_CHANGED = (f'({_KEPT.format(r="OLD")} OR {_KEPT.format(r="NEW")}) AND (OLD."kind" IS NOT NEW."kind" '
            'OR OLD."state" IS NOT NEW."state" OR OLD."direction" IS NOT NEW."direction")')


def _sqlite_triggers() -> list[str]:
    one = lambda r, d: f'SELECT 0, {r}."kind", {r}."state", {d} WHERE {_KEPT.format(r=r)}'  # noqa: E731
    return [
        f'CREATE TRIGGER IF NOT EXISTS "{TABLE}_insert" AFTER INSERT ON "message" WHEN {_KEPT.format(r="NEW")} '
        f'BEGIN {_ADD.format(rows=one("NEW", 1))}; END',
        f'CREATE TRIGGER IF NOT EXISTS "{TABLE}_update" AFTER UPDATE OF "kind", "state", "direction" ON "message" '
        f'WHEN {_CHANGED} BEGIN {_ADD.format(rows=one("NEW", 1) + " UNION ALL " + one("OLD", -1))}; END',
        f'CREATE TRIGGER IF NOT EXISTS "{TABLE}_delete" AFTER DELETE ON "message" WHEN {_KEPT.format(r="OLD")} '
        f'BEGIN {_ADD.format(rows=one("OLD", -1))}; END',
    ]


def _pg_triggers() -> list[str]:
    row = lambda r, d: f"(pg_backend_pid(), {r}.kind, {r}.state, {d})"  # noqa: E731
    changed = _CHANGED.replace("IS NOT", "IS DISTINCT FROM")
    old, new = _KEPT.format(r="OLD"), _KEPT.format(r="NEW")
    # a change between two kept states (sent -> delivered) is one statement of two rows (their
    # keys differ: the trigger's WHEN fires only on a change of kind or state)
    return [
        f"CREATE OR REPLACE FUNCTION {TABLE}_on_message() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'UPDATE' THEN IF {old} THEN "
        f"IF {new} THEN {_ADD.format(rows='VALUES ' + row('OLD', -1) + ', ' + row('NEW', 1))}; RETURN NULL; END IF; "
        f"{_ADD.format(rows='VALUES ' + row('OLD', -1))}; RETURN NULL; END IF; END IF; "
        f"IF {new} THEN {_ADD.format(rows='VALUES ' + row('NEW', 1))}; END IF; "
        "RETURN NULL; END $$",
        f"CREATE OR REPLACE FUNCTION {TABLE}_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        + _ADD.format(rows='SELECT pg_backend_pid(), "kind", "state", -COUNT(*) FROM gone '
                           f'WHERE {_KEPT.format(r="gone")} GROUP BY 2, 3')
        + "; RETURN NULL; END $$",
        f'DROP TRIGGER IF EXISTS {TABLE}_insert ON "message"',
        f'CREATE TRIGGER {TABLE}_insert AFTER INSERT ON "message" FOR EACH ROW WHEN ({_KEPT.format(r="NEW")}) '
        f'EXECUTE PROCEDURE {TABLE}_on_message()',
        f'DROP TRIGGER IF EXISTS {TABLE}_update ON "message"',
        f'CREATE TRIGGER {TABLE}_update AFTER UPDATE OF "kind", "state", "direction" ON "message" FOR EACH ROW '
        f'WHEN ({changed}) EXECUTE PROCEDURE {TABLE}_on_message()',
        f'DROP TRIGGER IF EXISTS {TABLE}_delete ON "message"',
        f'CREATE TRIGGER {TABLE}_delete AFTER DELETE ON "message" REFERENCING OLD TABLE AS gone '
        f'FOR EACH STATEMENT EXECUTE PROCEDURE {TABLE}_on_delete()',
    ]


def _is_pg(db) -> bool:
    return not isinstance(db, pw.SqliteDatabase)


def create(db) -> None:
    """A new store: the table (empty, as the message table is) and its triggers."""
    pg = _is_pg(db)
    db.execute_sql(_PG_TABLE if pg else _SQLITE_TABLE)
    for sql in _pg_triggers() if pg else _sqlite_triggers():
        db.execute_sql(sql)


def migrate(db) -> None:
    """A store made before: the triggers first, then one count of the texts there are. Both in
    the migration's transaction: on PostgreSQL CREATE TRIGGER holds off every other writer of
    message until it commits, so no change falls between the count and the triggers."""
    create(db)
    db.execute_sql(f'DELETE FROM "{TABLE}"')
    kept = _KEPT.format(r='"message"')
    db.execute_sql(_ADD.format(rows=f'SELECT 0, "kind", "state", COUNT(*) FROM "message" WHERE {kept} GROUP BY 2, 3'))


def fold_ended(db) -> None:
    """PostgreSQL: the slots of backends that have ended, into slot 0 (run by migrate() at each
    open, under its advisory lock, so two openers never fold at once). A backend that starts
    meanwhile with an ended one's process id only has its count moved to slot 0: the sum is
    the same."""
    if not _is_pg(db):
        return
    db.execute_sql(
        f'WITH ended AS (DELETE FROM "{TABLE}" WHERE "slot" <> 0 AND "slot" NOT IN '
        f'(SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) RETURNING "kind", "state", "n") '
        + _ADD.format(rows='SELECT 0, "kind", "state", SUM("n") FROM ended GROUP BY 2, 3'))


# one statement, so the kept counts and the queue are read in one snapshot: a text taken off
# the queue and counted as sent meanwhile is seen in one place, never in both or neither
_TOTALS = (f'SELECT "kind", "state", SUM("n") FROM (SELECT "kind", "state", "n" FROM "{TABLE}" '
           f'UNION ALL SELECT "kind", "state", 1 FROM "message" WHERE "state" IN {LIVE} AND "direction" = \'out\') '
           'AS t GROUP BY 1, 2 HAVING SUM("n") <> 0 ORDER BY 1, 2')


def totals(db) -> list[tuple]:
    """(kind, state, n) of outgoing texts, as a count of the message table gives them (no row
    for a count of 0)."""
    return [(k, s, int(n)) for k, s, n in db.execute_sql(_TOTALS)]
