"""Retention purge benchmark: how long a purge holds the store's write lock (and the running
service's event loop, which does the purge between its calls) at one stretch, sliced
(store/purge.py) against one transaction for the whole purge (the former way, kept here as the
baseline), on two copies of the same store in the same run. Prints figures; asserts nothing.

    .venv/bin/python bench/purge_bench.py [--conversations 100000] [--messages 300000]

The store is bench/inbox.py's (SQLite, the shipped default): callers' missed calls, texts,
replies and agents' texts spread over the last 30 days, states and owners on a third. Two
purges, each on fresh copies: a day's worth (what the service's daily round deletes once
retention runs: older than 29 days) and most of it (the first purge after retention is turned
on at 7 days). For each: the whole purge's time, and the longest and median stretch the lock is
held (sliced: one slice; baseline: all of it).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from inbox import fill  # noqa: E402
from pbx_textback.store import db as st  # noqa: E402
from pbx_textback.store import inbox as ib  # noqa: E402
from pbx_textback.store import purge  # noqa: E402

DAY = 86400.0


def one_transaction(store, before: float) -> dict:
    """The former purge: every delete and the whole inbox summary's rebuild in one transaction."""
    run = lambda sql, p=(): store.db.execute_sql(sql, p).rowcount  # noqa: E731
    old = 'SELECT "id" FROM "call" WHERE "created_at" < ?'
    with store.write():
        ib.drop_triggers(store.db)
        d = run(f'DELETE FROM "decision" WHERE "call_id" IN ({old})', (before,))
        m = run('DELETE FROM "message" WHERE "created_at" < ? AND "state" NOT IN (?, ?)',
                (before, st.PENDING, st.SENDING))
        run(f'UPDATE "message" SET "call_id" = NULL WHERE "call_id" IN ({old})', (before,))
        c = run('DELETE FROM "call" WHERE "created_at" < ?', (before,))
        ib.rebuild(store.db)
        ib.create_triggers(store.db)
    return {"calls": c, "decisions": d, "messages": m}


def timed(store, before: float, rows: int) -> tuple[dict, list[float]]:
    """rows: per slice (0: the baseline's one transaction)."""
    if not rows:
        t = time.perf_counter()
        got = one_transaction(store, before)
        return got, [time.perf_counter() - t]
    total, holds = purge.nothing(), []
    while True:
        t = time.perf_counter()
        got = purge.one_slice(store, before, rows)
        holds.append(time.perf_counter() - t)
        if not got["calls"] and not got["messages"]:
            return total, holds
        purge.add(total, got)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=100_000)
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--rows", type=int, nargs="*", default=[purge.SLICE_ROWS],
                    help="calls and texts a slice (several: each on its own copy)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pbx-purge-bench-"))
    try:
        now = time.time()
        src = tmp / "src.sqlite3"
        t = time.perf_counter()
        store = st.open_store(str(src))
        fill(store, a.conversations, a.messages, now)
        calls = st.Call.select().count()
        texts = st.Message.select().count()
        store.close()
        print(f"purge bench: a store of {calls:,} calls and {texts:,} texts over 30 days "
              f"({src.stat().st_size / 1e6:.0f} MB, filled in {time.perf_counter() - t:.0f} s); "
              f"the service's slice: {purge.SLICE_ROWS} calls and texts")
        for what, days in (("a day's worth (the daily round)", 29), ("most of it (retention turned on at 7 days)", 7)):
            for rows in (0, *a.rows):               # each on its own copy of the same store
                path = tmp / f"copy-{days}-{rows}.sqlite3"
                shutil.copy(src, path)
                store = st.open_store(str(path))
                got, holds = timed(store, now - days * DAY, rows)
                rows = ib.InboxConv.select().count()
                store.close()
                path.unlink()
                name = f"{len(holds)} slices of {rows}" if rows else "one transaction"
                print(f"  {what}: {name:22}  {got.get('calls', 0):>7,} calls {got.get('messages', 0):>7,} texts "
                      f"in {sum(holds):6.2f} s; write lock held at most {max(holds) * 1000:8.1f} ms at a "
                      f"stretch (median {statistics.median(holds) * 1000:6.1f} ms); {rows:,} inbox rows left")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
