"""/metrics during a purge: the CPU of the calls' totals in a scrape after each of the
service's purge slices (each slice changes the store's purge mark), two ways in one run on one
store. Prints figures; asserts nothing.

    .venv/bin/python bench/scrape_purge.py [--conversations 200000] [--messages 400000]

The store is bench/inbox.py's (SQLite): callers' calls and texts over the last 30 days, their
times then spread again in the order of their ids (as a running service writes them: a
row's id grows with its time; bench/inbox.py fills caller by caller). Two
tallies (reporting/tally.py) of the calls' totals, both warm (everything settled and kept):
  * "again up to the mark": as the service reads them, given the highest call id any purge has
    deleted (the purge mark says it): only the kept chunks up to it are counted again;
  * "again, all" (the baseline: how every scrape during a purge read them before): the same
    tally not told, so every kept id is counted again.
After each slice of a purge of everything older than 7 days (store/purge.py, the service's
slice size) both are read, in alternating order, each timed in process CPU; their totals must
agree, and they must agree with one count of the table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from inbox import fill  # noqa: E402
from pbx_textback.reporting.tally import Tally  # noqa: E402
from pbx_textback.store import db as st  # noqa: E402
from pbx_textback.store import inbox as ib  # noqa: E402
from pbx_textback.store import metrics as sql  # noqa: E402
from pbx_textback.store import purge  # noqa: E402
from pbx_textback.store.purged import gone_upto  # noqa: E402

DAY = 86400.0


def in_id_order(store, now: float) -> None:
    """Each call's and text's time spread over the 30 days in the order of its id."""
    ib.drop_triggers(store.db)
    with store.db.atomic():
        for table in ("call", "message"):
            lo, hi = store.db.execute_sql(f'SELECT MIN(id), MAX(id) FROM "{table}"').fetchone()
            store.db.execute_sql(f'UPDATE "{table}" SET created_at = ? + (id - ?) * ? / ?',
                                 (now - 30 * DAY, lo, 30 * DAY, hi - lo + 1))
        ib.rebuild(store.db)
        ib.create_triggers(store.db)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=200_000)
    ap.add_argument("--messages", type=int, default=400_000)
    ap.add_argument("--days", type=float, default=7.0, help="the purge deletes what is older than this")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        now = time.time()
        store = st.open_store(str(Path(tmp) / "s.sqlite3"))
        t = time.perf_counter()
        fill(store, a.conversations, a.messages, now)
        in_id_order(store, now)
        calls = st.Call.select().count()
        print(f"scrape during a purge: a store of {calls:,} calls and {st.Message.select().count():,} texts "
              f"over 30 days (filled in {time.perf_counter() - t:.0f} s); purge of what is older than {a.days:g} days")
        count = lambda x, y: sql.call_totals(store, x, y)  # noqa: E731
        ways = {"again up to the mark": Tally(count, settle_s=0.0), "again, all (baseline)": Tally(count, settle_s=0.0)}
        newest = sql.newest_ids(store)[0]
        for tally in ways.values():
            tally.read(newest, sql.purge_mark(store))
            tally.read(newest, sql.purge_mark(store))          # settled: all kept
        cpu: dict[str, list[float]] = {w: [] for w in ways}
        slices = 0
        for got in purge.slices(store, now - a.days * DAY):
            if not any(got.values()):
                continue
            slices += 1
            mark = sql.purge_mark(store)
            gone = gone_upto(mark)[0]
            order = list(ways) if slices % 2 else list(ways)[::-1]
            totals = {}
            for w in order:
                c = time.process_time()
                totals[w] = sorted(ways[w].read(newest, mark, gone if w.startswith("again up") else None))
                cpu[w].append(time.process_time() - c)
            assert totals[order[0]] == totals[order[1]], "the two ways disagree"
        assert sorted(totals[order[0]]) == sorted(sql.call_totals(store)), "the tally disagrees with a full count"
        print(f"  {slices} slices, {calls - st.Call.select().count():,} calls deleted; the calls' totals read after "
              f"each slice, CPU per read:")
        base = statistics.median(cpu["again, all (baseline)"])
        for w, xs in cpu.items():
            print(f"    {w:24} median {statistics.median(xs) * 1000:8.1f} ms  max {max(xs) * 1000:8.1f} ms  "
                  f"all reads {sum(xs):6.2f} s  ({statistics.median(xs) / base:.2f}x baseline)")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
