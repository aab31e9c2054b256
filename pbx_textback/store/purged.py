"""Migration 39: what purges deleted, counted by /metrics' labels, so its counters never go down.

/metrics' totals are counts of the store's rows. A purge (retention's, once a day, or the
CLI's) deletes old calls and texts, so the totals fell: Prometheus reads a counter that falls
as a counter reset, and `increase()` over that scrape counted every call still in the store
once more (a daily spike the size of the retained history on a manager's graph). Each purge
slice now adds what it deletes, grouped as /metrics groups it, to this table in its own
transaction, and /metrics adds these to what the store holds. The reports still count only
the rows kept (they show periods, and a purged period is gone from them).

One row per (what, k1, k2, k3):
- calls:   k1 the line (the DID when no line matched), k2 the reason, k3 "1" missed / "0";
- replies: k1 the line;
- texts:   k1 the kind, k2 the final state (a text still queued is never purged).
A purge locks the tables it deletes from (one purge at a time, whichever box runs it), so no
two transactions add to one row at once.
"""
from __future__ import annotations

import peewee as pw

from .fast import rows as _rows, run as _run

TABLE = "purged_count"

_SQLITE = (f'CREATE TABLE IF NOT EXISTS "{TABLE}" ("what" TEXT NOT NULL, "k1" TEXT NOT NULL, '
           '"k2" TEXT NOT NULL, "k3" TEXT NOT NULL, "n" INTEGER NOT NULL, '
           'PRIMARY KEY ("what", "k1", "k2", "k3")) WITHOUT ROWID')
_PG = (f'CREATE TABLE IF NOT EXISTS "{TABLE}" ("what" TEXT NOT NULL, "k1" TEXT NOT NULL, '
       '"k2" TEXT NOT NULL, "k3" TEXT NOT NULL, "n" BIGINT NOT NULL, '
       'PRIMARY KEY ("what", "k1", "k2", "k3"))')

_ADD = (f'INSERT INTO "{TABLE}" ("what", "k1", "k2", "k3", "n") {{rows}} '
        f'ON CONFLICT ("what", "k1", "k2", "k3") DO UPDATE SET "n" = "{TABLE}"."n" + excluded."n"')

# the same groups as store/metrics.py's counts, over exactly the rows the slice deletes
# (`calls`: its DELETE's condition; `texts`: the message DELETE's, given as {texts})
_CALLS = ('SELECT \'calls\', COALESCE(CASE WHEN "line" <> \'\' THEN "line" ELSE "called" END, \'\'), '
          'COALESCE("reason", \'\'), CASE WHEN "missed" THEN \'1\' ELSE \'0\' END, COUNT(*) FROM "call" '
          'WHERE "direction" = \'inbound\' AND "created_at" <= ? AND "created_at" < ? GROUP BY 2, 3, 4')
_MESSAGES = ('SELECT CASE WHEN "direction" = \'in\' THEN \'replies\' ELSE \'texts\' END, '
             'COALESCE(CASE WHEN "direction" = \'in\' THEN "line" ELSE "kind" END, \'\'), '
             'COALESCE(CASE WHEN "direction" = \'in\' THEN \'\' ELSE "state" END, \'\'), \'\', COUNT(*) '
             'FROM "message" WHERE "direction" IN (\'in\', \'out\') AND {texts} GROUP BY 1, 2, 3')  # (one pass)
# (COALESCE: a NULL key, which no writer of ours leaves, must not stop a purge)


def create(db) -> None:
    db.execute_sql(_SQLITE if isinstance(db, pw.SqliteDatabase) else _PG)


def add_slice(store, span: tuple, texts_where: str, texts_params: tuple) -> None:
    """Before a slice's deletes, in its transaction: what they will delete, added."""
    _run(store, _ADD.format(rows=_CALLS), span)
    _run(store, _ADD.format(rows=_MESSAGES.format(texts=texts_where)), texts_params)


def tops(store, span: tuple) -> tuple[int, int]:
    """The highest call and message ids in a slice's span of time: none above them is deleted
    (a text of the span still queued is kept, and counted here: that is only more to count
    again). Read from the created_at indexes alone."""
    c = _rows(store, 'SELECT MAX("id") FROM "call" WHERE "created_at" <= ? AND "created_at" < ?', span)
    m = _rows(store, 'SELECT MAX("id") FROM "message" WHERE "created_at" <= ? AND "created_at" < ?', span)
    return int(c[0][0] or 0), int(m[0][0] or 0)


def mark(now: float, old: str | None, tops: tuple[int, int]) -> str:
    """The store's purge mark: when, and the highest call and message ids any purge has
    deleted so far (reporting/tally.py counts again only what it kept up to those)."""
    was = gone_upto(old) or (0, 0)
    return f"{now!r} {max(was[0], tops[0])} {max(was[1], tops[1])}"


def gone_upto(mark: str | None) -> tuple[int, int] | None:
    """(calls, messages) from a purge mark; None for a mark of before migration 39 (just a
    time: which ids went is not known)."""
    parts = (mark or "").split()
    if len(parts) != 3:
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


def totals(store, what: str) -> list[tuple]:
    """(k1, k2, k3, n) purged so far of `what` (calls, replies, texts)."""
    return [(a, b, c, int(n)) for a, b, c, n in
            _rows(store, f'SELECT "k1", "k2", "k3", "n" FROM "{TABLE}" WHERE "what" = ?', (what,))]
