"""Retention's purge in slices: each slice one short write transaction, so a purge of a big
store never holds the write lock, or the running service's event loop, for long.

One transaction for the whole purge held both for as long as it took (44 s on a store of 1M
calls), and every purge, even a day's few calls, rebuilt every caller's inbox summary row. A
slice deletes the oldest calls and texts up to a time: the `rows`-th oldest call's or text's
(ties go with it), or `before` once fewer are left. Deleting a range of created_at walks the
tables and their indexes in order, each page once. The slice remakes only the inbox rows of
the callers it touched (store/purge_inbox.py); the inbox's per-row delete triggers, which
recounted a caller's history for each deleted row, are held off by a row in the slice's own
transaction (store/inbox.py HOLD), never dropped: no other writer sees them off, and a slice
cut short by a crash rolls back whole (the next purge deletes its rows). The service sizes its
slices by time (about SLICE_S each: bench/purge_bench.py); the CLI by CLI_SLICE_S, since the
service is usually running on the same store: its writes wait for the lock up to their 5 s
busy timeout, and a call decided after that was lost (one transaction took 44 s on 1M calls).
Consent events are never purged: they are the proof of why a number was (not) texted.
"""
from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing, contextmanager
from typing import Iterator

from . import purge_inbox, purged
from .db import PENDING, PURGE_MARK, SENDING
from .fast import one as _one, run as _run
from .inbox import HOLD

SLICE_S = 0.17          # the service's slice: the lock and the loop held about this long
CLI_SLICE_S = 0.5       # `pbx-textback purge`'s: a running service's writes wait about this at most
FIRST_ROWS = 1000       # calls and texts in the first slice; later ones sized by its time
MIN_ROWS = 50
CACHE_KB = 32_000       # SQLite page cache while purging (roomy())
CHECKPOINT_S = 0.5      # slices' time before the first checkpoint; then sized by its time

_CALLS = 'SELECT "id" FROM "call" WHERE "created_at" <= ? AND "created_at" < ?'
_TEXTS = '"created_at" <= ? AND "created_at" < ? AND "state" NOT IN (?, ?)'


def _upto(store, before: float, rows: int) -> float:
    """The time the slice deletes up to (inclusive): the rows-th oldest call's or text's (a
    text still queued counted too: the (created_at) index alone answers)."""
    ends = [_one(store, f'SELECT "created_at" FROM "{t}" WHERE "created_at" < ? ORDER BY "created_at" '
                        'LIMIT 1 OFFSET ?', (before, rows - 1)) for t in ("call", "message")]
    return min([e[0] for e in ends if e] or [before])


def one_slice(store, before: float, rows: int) -> dict:
    """Delete the oldest calls (with their decisions) and texts created before `before`,
    never a text still to send, up to `rows` of each, in one transaction; what was deleted,
    by kind ("last": nothing older is left)."""
    pg = not store.is_sqlite
    with store.write():
        if pg:      # other writers of these wait, as SQLite's write lock has them wait
            _run(store, 'LOCK TABLE "call", "message", "inboxconv" IN SHARE ROW EXCLUSIVE MODE')
        upto = _upto(store, before, rows)
        span, live = (upto, before), (PENDING, SENDING)
        _run(store, purge_inbox.temp_table(pg))
        _run(store, f'DELETE FROM "{purge_inbox.GONE}"')
        _run(store, purge_inbox.COLLECT, (*span, *span, *live))
        _run(store, f'INSERT INTO "{HOLD}" ("at") VALUES (?)', (time.time(),))
        got = {"calls": 0, "decisions": 0, "messages": 0, "last": upto == before}
        purged.add_slice(store, span, _TEXTS, (*span, *live))     # /metrics keeps these
        tops = purged.tops(store, span)
        got["decisions"] = _run(store, f'DELETE FROM "decision" WHERE "call_id" IN ({_CALLS})', span)
        _run(store, f'UPDATE "message" SET "call_id" = NULL WHERE "call_id" IN ({_CALLS})', span)
        got["calls"] = _run(store, 'DELETE FROM "call" WHERE "created_at" <= ? AND "created_at" < ?', span)
        got["messages"] = _run(store, f'DELETE FROM "message" WHERE {_TEXTS}', (*span, *live))
        _run(store, f'DELETE FROM "{HOLD}"')
        if got["calls"] or got["messages"]:
            for sql in purge_inbox.remake(pg):
                _run(store, sql)
            # rows counted before are gone (into purged_count): /metrics' kept totals
            # (reporting/tally.py) count again what they held up to the highest ids gone
            now = time.time()
            store.set_setting(PURGE_MARK, purged.mark(now, store.setting(PURGE_MARK), tops), now)
    return got


@contextmanager
def roomy(store):
    """SQLite, for a purge's length: a bigger page cache, and the WAL copied into the file by a
    checkpoint between slices instead of at any commit past 4 MB of it. Each slice dirties
    pages all over the caller indexes: with the defaults the next slice read them back from
    disk, and nearly every slice's commit ran a checkpoint (half its time). As they were after."""
    if not store.is_sqlite:
        yield
        return
    was = [_one(store, f"PRAGMA {p}")[0] for p in ("cache_size", "wal_autocheckpoint")]
    _run(store, f"PRAGMA cache_size = {min(was[0], -CACHE_KB)}")
    _run(store, "PRAGMA wal_autocheckpoint = 0")
    try:
        yield
    finally:
        _run(store, f"PRAGMA cache_size = {was[0]}")
        _run(store, f"PRAGMA wal_autocheckpoint = {was[1]}")


def checkpoint(store) -> None:
    """What the slices wrote to the WAL, into the file (a passive checkpoint: no one waits)."""
    if store.is_sqlite:
        _one(store, "PRAGMA wal_checkpoint(PASSIVE)")


def checkpoint_apart(store) -> None:
    """checkpoint() on a connection of its own, for a thread: its fsyncs (which a busy disk
    can stall for most of a second) never hold the loop. A writer goes on meanwhile."""
    if store.is_sqlite and store.db.database != ":memory:":
        with closing(sqlite3.connect(store.db.database, timeout=5)) as db:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


async def run(store, before: float) -> dict:
    """The service's purge: slices on the loop with its other work between them, and the
    checkpoints in a thread."""
    total = nothing()
    for got in slices(store, before, inline=False):
        if any(got.values()):
            add(total, got)
            await asyncio.sleep(0)
        else:
            await asyncio.to_thread(checkpoint_apart, store)
    return total


def slices(store, before: float, seconds: float | None = None, inline: bool = True) -> Iterator[dict]:
    """Each step's counts until nothing older is left: slices sized from the last one's time
    to take about `seconds` (SLICE_S), and now and then a checkpoint, the last one at the end
    (a step that deletes nothing; inline=False: the caller checkpoints before it goes on)."""
    with roomy(store):
        yield from _sliced(store, before, seconds or SLICE_S, inline)


def _sliced(store, before: float, seconds: float, inline: bool) -> Iterator[dict]:
    rows, since, every = FIRST_ROWS, 0.0, CHECKPOINT_S
    while True:
        t = time.perf_counter()
        got = one_slice(store, before, rows)
        took = time.perf_counter() - t
        last = got.pop("last")
        if got["calls"] or got["messages"]:
            yield got
        since += took
        if last or since > every:
            t = time.perf_counter()
            if inline:
                checkpoint(store)
            yield nothing()
            if last:
                return
            # the next one after about as much WAL as makes one take `seconds`
            every = min(every * 2, max(every / 2, every * seconds / max(time.perf_counter() - t, 1e-4)))
            since = 0.0
        if not got["calls"] and not got["messages"]:
            rows *= 4           # only queued texts there (they stay): look further
        else:
            grow = 4 if took < seconds / 2 else 2       # fast to the size, then by smaller steps
            rows = max(MIN_ROWS, rows // 4, min(int(rows * grow), int(rows * seconds / max(took, 1e-4))))


def nothing() -> dict:
    return {"calls": 0, "decisions": 0, "messages": 0}


def add(total: dict, got: dict) -> dict:
    for k, v in got.items():
        total[k] = total.get(k, 0) + v
    return total


def purge(store, before: float) -> dict:
    """`pbx-textback purge` (Store.purge): slices of about CLI_SLICE_S, checkpoints between."""
    total = nothing()
    for got in slices(store, before, CLI_SLICE_S):
        add(total, got)
    return total
