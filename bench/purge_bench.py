"""Retention purge benchmark: the whole purge's time and the longest stretch it holds the
store's write lock (and the running service's event loop, which purges between its calls),
three ways on copies of one store in one run: the former purge (one transaction, every inbox
row rebuilt: the baseline, kept here), the service's (store/purge.py slices, sized by time)
and the CLI's (`pbx-textback purge`: slices of about CLI_SLICE_S). Prints figures (each
way's median total over --repeat runs, and the longest stretch in any run); asserts nothing,
but says whether each way left the same inbox summary as the baseline.

    .venv/bin/python bench/purge_bench.py [--conversations 20000] [--messages 60000]
    .venv/bin/python bench/purge_bench.py --from STORE --repeat 1   # a kept store, e.g. a soak's

--from times the ways on copies of a store kept by an earlier run (bench/soak.py --keep leaves
before-purge.sqlite3; the given file is never written): its older half of calls, then all of it.

The store is bench/inbox.py's (SQLite, the shipped default): callers' missed calls, texts,
replies and agents' texts spread over the last 30 days, states and owners on a third. Three
purges: a day's worth (the daily round once retention runs: older than 29 days), most of it
(retention turned on at 7 days) and all of it (a backlog: everything expired).
"""
from __future__ import annotations

import argparse
import asyncio
import os
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
WAYS = ("old", "service", "cli")


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


def timed(store, before: float, way: str) -> tuple[dict, list[float], float]:
    """The purge's counts, each transaction's time (the lock held, the loop blocked) and the
    whole purge's (the service's checkpoints run in a thread: in the total, not the holds)."""
    t = time.perf_counter()
    if way == "old":
        got = one_transaction(store, before)
        return got, [time.perf_counter() - t], time.perf_counter() - t
    holds, one_slice = [], purge.one_slice

    def held(*args):
        t = time.perf_counter()
        try:
            return one_slice(*args)
        finally:
            holds.append(time.perf_counter() - t)
    purge.one_slice = held
    try:
        got = asyncio.run(purge.run(store, before)) if way == "service" else store.purge(before)
    finally:
        purge.one_slice = one_slice
    return got, holds, time.perf_counter() - t


def summary(store) -> list[tuple]:
    rows = ib.InboxConv.select().order_by(ib.InboxConv.peer).tuples()
    counts = ib.InboxCount.select().where(ib.InboxCount.n != 0).order_by(
        ib.InboxCount.status, ib.InboxCount.owner, ib.InboxCount.waiting).tuples()
    return [r[1:] for r in rows] + [r[1:] for r in counts]


def filled(tmp: Path, conversations: int, messages: int) -> tuple[Path, list]:
    now = time.time()
    src = tmp / "src.sqlite3"
    t = time.perf_counter()
    store = st.open_store(str(src))
    fill(store, conversations, messages, now)
    calls, texts = st.Call.select().count(), st.Message.select().count()
    store.close()
    print(f"purge bench: a store of {calls:,} calls and {texts:,} texts over 30 days "
          f"({src.stat().st_size / 1e6:.0f} MB, filled in {time.perf_counter() - t:.0f} s); "
          f"the service's slices take about {purge.SLICE_S * 1000:.0f} ms each")
    return src, [("daily (older than 29 days)", now - 29 * DAY), ("bulk (older than 7 days)", now - 7 * DAY),
                 ("bulk (everything)", now + DAY)]


def kept(given: Path, tmp: Path) -> tuple[Path, list]:
    """A copy of a kept store (brought up to date by open_store, checkpointed) and its cases."""
    src = tmp / "src.sqlite3"
    shutil.copy(given, src)
    store = st.open_store(str(src))
    calls, texts = st.Call.select().count(), st.Message.select().count()
    times = [r[0] for r in store.db.execute_sql('SELECT "created_at" FROM "call" ORDER BY "created_at"')]
    store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    print(f"purge bench: {given} ({calls:,} calls and {texts:,} texts, {src.stat().st_size / 1e6:.0f} MB); "
          f"the service's slices take about {purge.SLICE_S * 1000:.0f} ms each")
    return src, [("the older half of its calls", times[len(times) // 2]), ("bulk (everything)", times[-1] + DAY)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=20_000)
    ap.add_argument("--messages", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each way; the median total is shown")
    ap.add_argument("--from", dest="from_store", default="", help="time the ways on copies of this store")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pbx-purge-bench-", dir=Path(a.from_store).parent if a.from_store else None))
    try:
        if a.from_store:
            src, cases = kept(Path(a.from_store), tmp)
        else:
            src, cases = filled(tmp, a.conversations, a.messages)
        for what, before in cases:
            print(f"  {what}:")
            runs = {way: [] for way in WAYS}
            for i in range(a.repeat):           # the ways in turn, each on its own copy of the store
                for way in WAYS:
                    path = tmp / f"copy-{way}.sqlite3"
                    shutil.copy(src, path)
                    os.sync()                   # the copy's writeback not inside the purge's fsyncs
                    store = st.open_store(str(path))
                    got, holds, took = timed(store, before, way)
                    runs[way].append((got, holds, took, summary(store)))
                    store.close()
                    for p in tmp.glob(f"{path.name}*"):
                        p.unlink()
            base = runs["old"][0][3]
            old_total = statistics.median(took for *_, took, _ in runs["old"])
            for way, done in runs.items():
                totals = [took for *_, took, _ in done]
                total, got = statistics.median(totals), done[0][0]
                longest, steps = max(max(h) for _, h, *_ in done), max(len(h) for _, h, *_ in done)
                holds = sorted(x for _, h, *_ in done for x in h)
                spread = "" if way == "old" else (f" (median {statistics.median(holds) * 1000:.0f} ms, "
                                                  f"9 in 10 under {holds[int(len(holds) * 0.9)] * 1000:.0f} ms)")
                same = all(left == base for *_, left in done)
                name = {"old": "old: one transaction", "service": f"service: {steps} slices",
                        "cli": f"cli: {steps} slices"}[way]
                print(f"    {name:22} {got['calls']:>7,} calls {got['messages']:>7,} texts in {total:5.2f} s "
                      f"({total / old_total:4.2f}x old; {min(totals):5.2f}-{max(totals):5.2f} s); the lock or the "
                      f"loop held at most {longest * 1000:6.1f} ms{spread}; inbox {'as old' if same else 'DIFFERS from old'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
