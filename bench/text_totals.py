"""What migration 36 (store/text_tally.py, store/boxes.py) costs and saves, on SQLite, each
against the old way measured in the same run. Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/text_totals.py [--texts 100000] [--steps 3000] [--rounds 5]
        [--dsn postgresql://... (also a text's life on that PostgreSQL; its schema is replaced)]

  * a /metrics scrape's texts: the old full count over every outgoing text vs. the kept
    totals, on a store of --texts texts (median of repeats);
  * a line's box when no call came in on it (store/boxes.py): the old pass over the texts
    newest first vs. the message_line_out index, for a line that never sent a text (the
    worst case) and for one whose newest text is the oldest row;
  * each text's life in the store (queued, taken, sent, delivered: four transactions, as the
    outbox runs them) with the triggers and the index, with the index alone, and with neither
    (main before migration 36): CPU per text and WAL pages per text (autocheckpoint off),
    in --rounds alternating blocks of --steps texts, each variant on a store of its own;
  * a purge of --texts texts: main's (no counts) and with the delete trigger taking each text
    off its count. (Counting what the purge deletes once instead, with the trigger off, cost as
    much on SQLite: a grouped pass over a million rows is itself ~3 s; so it is not done.)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx_textback.store import boxes, metrics  # noqa: E402
from pbx_textback.store import db as st  # noqa: E402
from pbx_textback.store.db import Message  # noqa: E402

OLD_TOTALS = "SELECT kind, state, COUNT(*) FROM message WHERE direction = 'out' GROUP BY 1, 2"
TRIGGERS = ("texttally_insert", "texttally_update", "texttally_delete")
STATES = ("delivered",) * 8 + ("failed", "sent", "no-receipt")
KINDS = ("missed-call",) * 6 + ("agent", "confirmation", "follow-up")
LINES = ("+15125550100", "+15125550110", "+15125550140")


def fresh(d: Path, name: str, *, triggers=True, index=True) -> st.Store:
    s = st.open_store(str(d / f"{name}.sqlite3"), box="b1")
    if not triggers:
        for t in TRIGGERS:
            s.db.execute_sql(f'DROP TRIGGER "{t}"')
    if not index:
        s.db.execute_sql('DROP INDEX "message_line_out"')
    return s


def fill(store: st.Store, n: int, t0: float) -> None:
    rows = [(("out", "in")[i % 7 == 6], KINDS[i % len(KINDS)], LINES[i % 3], f"+1512556{i % 10000:04d}",
             "pending" if i % max(1, n // 100) == 0 else STATES[i % len(STATES)], t0 + i, t0 + i, t0 + i)
            for i in range(n)]                              # a queue of ~100 whatever the store's size
    with store.write():
        store.db.cursor().executemany(
            'INSERT INTO message (call_id, direction, kind, line, peer, body, state, due_at, attempts, transport, '
            'transport_id, error, created_at, updated_at, calls_missed, note, box, account) VALUES (NULL, ?, ?, ?, ?, '
            '\'Sorry we missed your call\', ?, ?, 1, \'smpp\', \'\', \'\', ?, ?, 1, \'\', \'b1\', \'acme\')', rows)


def timed(fn, repeat: int) -> float:
    """Median CPU seconds of fn()."""
    out = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        out.append(time.process_time() - t)
    return statistics.median(out)


_QUEUE = ('INSERT INTO message (call_id, direction, kind, line, peer, body, state, due_at, attempts, transport, '
          'transport_id, error, created_at, updated_at, calls_missed, note, box, account) VALUES (NULL, \'out\', '
          '\'missed-call\', ?, ?, \'Sorry we missed your call\', \'pending\', ?, 0, \'\', \'\', \'\', ?, ?, 1, '
          '\'\', \'b1\', \'\') RETURNING id')


def life(store: st.Store, k: int, now: float) -> None:
    """k texts through the outbox's four steps, each in its own transaction, in the store's
    hand-written SQL (store/fast.py) as the service runs them (the queueing as one INSERT, as
    the decision's own does), so that little but the store's work is timed."""
    from pbx_textback.store.fast import insert
    for i in range(k):
        with store.write():
            mid = insert(store, _QUEUE, (LINES[i % 3], f"+1512557{i % 10000:04d}", now, now, now))
        store.take_written(mid, now)
        store.mark_sent(mid, now=now, transport="smpp", transport_id=f"g{mid}")
        store.apply_dlr([], "delivered", "", now, msg_id=mid)


def wal_pages(store: st.Store) -> int:
    path = store.db.database + "-wal"
    size = os.path.getsize(path) if os.path.exists(path) else 0
    page = store.db.execute_sql("PRAGMA page_size").fetchone()[0]
    return max(0, size - 32) // (page + 24)


def pg_life(a) -> None:
    """A text's life on PostgreSQL with the triggers and without them, on one store: the
    triggers are dropped and made again between alternating blocks (CPU of this process and
    the server's time are both in the wall time; the server's CPU is not in process_time)."""
    from pbx_textback.store import text_tally
    s = st.open_store(dsn=a.dsn, box="b1")
    s.db.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    s.close()
    s = st.open_store(dsn=a.dsn, box="b1")
    life(s, 200, time.time())
    wall = {"without": [], "with": []}
    for _ in range(a.rounds):
        for v in wall:
            with s.write():
                for t in TRIGGERS:
                    s.db.execute_sql(f'DROP TRIGGER IF EXISTS {t} ON "message"')
                if v == "with":
                    text_tally.create(s.db)
            t = time.perf_counter()
            life(s, a.steps // 3, time.time())
            wall[v].append((time.perf_counter() - t) / (a.steps // 3))
    w, wo = statistics.median(wall["with"]), statistics.median(wall["without"])
    print(f"  a text's life on PostgreSQL (wall time, client and server; {a.rounds} alternating blocks of "
          f"{a.steps // 3}): without the triggers {wo * 1e6:.0f} us, with them {w * 1e6:.0f} us ({w / wo:.3f}x)"
          f"   [{', '.join(f'{x * 1e6:.0f}' for x in wall['without'])}]"
          f" [{', '.join(f'{x * 1e6:.0f}' for x in wall['with'])}]")
    s.db.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dsn", default="",
                    help="a PostgreSQL to measure a text's life on too (its public schema is replaced)")
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="bench-tt-"))
    t0 = time.time() - 10 * 86400

    big = fresh(d, "big")
    fill(big, a.texts, t0)
    assert {(k, s): n for k, s, n in big.db.execute_sql(OLD_TOTALS)} == \
        {(k, s): n for k, s, n in metrics.text_totals(big)}
    old = timed(lambda: big.db.execute_sql(OLD_TOTALS).fetchall(), 7)
    new = timed(lambda: metrics.text_totals(big), 7)
    print(f"text totals bench: SQLite, {a.texts:,} texts in the store")
    print(f"  a scrape's texts: full count {old * 1e3:.2f} ms, kept totals {new * 1e3:.3f} ms "
          f"(ratio old/new {old / max(new, 1e-9):,.0f}x)")

    scan = lambda line: (Message.select(Message.box).where(  # noqa: E731  (the old fallback)
        (Message.line == line) & (Message.direction == "out") & (Message.box != "")).order_by(Message.id.desc()).first())
    for what, line in (("a line that never sent a text", "+15125550999"),
                       ("a line whose newest text is the oldest row", "+15125550120")):
        if line == "+15125550120":
            big.db.execute_sql("UPDATE message SET line = ? WHERE id = (SELECT MIN(id) FROM message WHERE "
                               "direction = 'out')", (line,))
        n = timed(lambda: boxes.box_of_line(big, line), 5)
        big.db.execute_sql('DROP INDEX "message_line_out"')          # main had no such index
        o = timed(lambda: scan(line), 5)
        big.db.execute_sql(boxes.LINE_OUT)
        print(f"  the box of {what}: old pass {o * 1e3:.2f} ms, index {n * 1e3:.3f} ms (ratio {o / max(n, 1e-9):,.0f}x)")
    big.close()

    variants = {"main (neither)": dict(triggers=False, index=False), "+ line index": dict(triggers=False),
                "+ line index + tally triggers": {}}
    stores = {v: fresh(d, f"life{i}", **kw) for i, (v, kw) in enumerate(variants.items())}
    cpu = {v: [] for v in variants}
    pages = {v: [] for v in variants}
    for s in stores.values():
        st.proxy.initialize(s.db)
        s.db.execute_sql("PRAGMA wal_autocheckpoint = 0")
        life(s, 200, time.time())                                  # warm: caches, statements
    for r in range(a.rounds):
        order = list(stores.items())
        for v, s in order[r % 3:] + order[:r % 3]:          # each variant goes first in turn
            st.proxy.initialize(s.db)        # the models' statements go to the store opened last otherwise
            s.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            p0, t = wal_pages(s), time.process_time()
            life(s, a.steps, time.time())
            cpu[v].append((time.process_time() - t) / a.steps)
            pages[v].append((wal_pages(s) - p0) / a.steps)
    main_cpu = cpu["main (neither)"]
    print(f"  a text's life in the store (4 transactions), {a.rounds} alternating blocks of {a.steps} texts "
          "(median CPU per text; median of each round's ratio to main; every block's figure):")
    for v in variants:
        m = statistics.median(cpu[v])
        ratio = statistics.median(x / b for x, b in zip(cpu[v], main_cpu))
        print(f"    {v:32s} {m * 1e6:6.1f} us ({ratio:.3f}x main)  WAL pages {statistics.median(pages[v]):.2f}"
              f"   [{', '.join(f'{x * 1e6:.0f}' for x in cpu[v])}]")
    for s in stores.values():
        s.close()

    if a.dsn:
        pg_life(a)

    purge = {}
    for name, kw in (("main", dict(triggers=False)), ("shipped", {})):
        s = fresh(d, f"purge-{name}", **kw)
        fill(s, a.texts, t0)
        t = time.process_time()
        s.purge(time.time())
        purge[name] = time.process_time() - t
        s.close()
    print(f"  a purge of {a.texts:,} texts (CPU): main (no counts) {purge['main']:.2f} s, with the delete trigger "
          f"taking off each text {purge['shipped']:.2f} s ({purge['shipped'] / purge['main']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
