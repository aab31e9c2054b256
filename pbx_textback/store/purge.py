"""Retention's purge in slices: each slice one short write transaction, so a purge of a big
store never holds the write lock, or the running service's event loop, for long.

One transaction for the whole purge held both for as long as it took: on a store of 1M calls
44 s, and every purge, even a day's few calls, then rebuilt the inbox summary of every caller
in the store. A slice deletes up to `rows` of the oldest calls (with their decisions) and of
the oldest texts, and makes again only the inbox rows of the callers it touched: their rows
from what is left of theirs, as a rebuild from scratch would (inbox.rebuild(only=...)). The
summary's per-row triggers are off inside the slice (a frequent caller's deletes each recounted
their whole history) and back on at its commit; no other writer sees them off. Consent
events are never purged: they are the proof of why a number was (not) texted.
"""
from __future__ import annotations

import time
from typing import Iterator

from . import inbox
from .db import PENDING, PURGE_MARK, SENDING
from .fast import rows as _rows, run as _run

SLICE_ROWS = 1000       # calls and texts per slice: ~20 ms on the test box (bench/purge_bench.py)
_PEERS = "purge_peer"   # this connection's own temporary table: the callers a slice touched


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _temp_table(store) -> None:
    kind = "TEXT" if store.is_sqlite else "text"
    _run(store, f'CREATE TEMP TABLE IF NOT EXISTS "{_PEERS}" ("peer" {kind} PRIMARY KEY)')
    _run(store, f'DELETE FROM "{_PEERS}"')


def one_slice(store, before: float, rows: int = SLICE_ROWS) -> dict:
    """Delete up to `rows` calls and `rows` texts created before `before` (never a text still
    to send), oldest first, in one transaction; what was deleted, by kind."""
    with store.write():
        calls = [r[0] for r in _rows(store, 'SELECT "id" FROM "call" WHERE "created_at" < ? '
                                            'ORDER BY "created_at" LIMIT ?', (before, rows))]
        texts = [r[0] for r in _rows(store, 'SELECT "id" FROM "message" WHERE "created_at" < ? '
                                            'AND "state" NOT IN (?, ?) ORDER BY "created_at" LIMIT ?',
                                     (before, PENDING, SENDING, rows))]
        got = {**nothing(), "calls": len(calls), "messages": len(texts)}
        if not calls and not texts:
            return got
        _temp_table(store)
        c, t = _marks(len(calls)), _marks(len(texts))
        _run(store, f'INSERT INTO "{_PEERS}" ("peer") SELECT "caller" FROM "call" WHERE "id" IN ({c or "NULL"}) '
                    f'UNION SELECT "peer" FROM "message" WHERE "id" IN ({t or "NULL"})', (*calls, *texts))
        inbox.drop_triggers(store.db, counts=False)
        if calls:
            got["decisions"] = _run(store, f'DELETE FROM "decision" WHERE "call_id" IN ({c})', calls)
            _run(store, f'UPDATE "message" SET "call_id" = NULL WHERE "call_id" IN ({c})', calls)
            _run(store, f'DELETE FROM "call" WHERE "id" IN ({c})', calls)
        if texts:
            _run(store, f'DELETE FROM "message" WHERE "id" IN ({t})', texts)
        inbox.rebuild(store.db, only=f'SELECT "peer" FROM "{_PEERS}"')
        inbox.create_triggers(store.db)
        # rows counted before are gone: /metrics' kept totals (reporting/tally.py) recount
        _run(store, 'DELETE FROM "setting" WHERE "key" = ?', (PURGE_MARK,))
        now = time.time()
        _run(store, 'INSERT INTO "setting" ("key", "value", "set_at") VALUES (?, ?, ?)',
             (PURGE_MARK, repr(now), now))
    return got


def slices(store, before: float, rows: int = SLICE_ROWS) -> Iterator[dict]:
    """Each slice's counts, until one finds nothing left to delete."""
    while True:
        got = one_slice(store, before, rows)
        if not got["calls"] and not got["messages"]:
            return
        yield got


def nothing() -> dict:
    return {"calls": 0, "decisions": 0, "messages": 0}


def add(total: dict, got: dict) -> dict:
    for k, v in got.items():
        total[k] = total.get(k, 0) + v
    return total


def purge(store, before: float, rows: int = SLICE_ROWS) -> dict:
    total = nothing()
    for got in slices(store, before, rows):
        add(total, got)
    return total
