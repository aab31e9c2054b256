"""Per-call CPU of the service's store and decision steps, without sockets: the part of
bench/latency.py's "CPU per call" that is not framing, the event loop or the SMSC link, so
that a change to it shows above the noise of a shared machine. Prints figures; asserts nothing.

    .venv/bin/python bench/percall.py [--calls 2000] [--rounds 3] [--btrees]

Per call, in this order, as the running service does them (same config as bench/latency.py:
one line, quiet hours off, no dedupe or caps): the decision (Pipeline.on_record: facts,
checks, the verdict, its rows), the outbox's pick of due rows (the decision's own row when it
hands one down), its last look (the gate's facts, the written mark; one guarded take when
they are clear), the submit's answer (mark_sent) and the receipt (apply_dlr by row id).
Also, from a short round of its own: SQLite statements, commits and WAL pages written per call
and per step (no checkpoint in that round, so the log holds every page the calls wrote);
--btrees names the table or index each step's pages belong to (the frames' page numbers, mapped
through SQLite's dbstat at the end of the round).
Baseline in the same run: the same number of empty write transactions (BEGIN IMMEDIATE +
COMMIT), the floor any step that writes pays.
"""
from __future__ import annotations

import argparse
from collections import Counter
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_textback.config import loads  # noqa: E402
from pbx_textback.core.model import CallRecord  # noqa: E402
from pbx_textback.outbox import OutboxWorker  # noqa: E402
from pbx_textback.pipeline import Pipeline  # noqa: E402
from pbx_textback.store.db import open_store  # noqa: E402
from tests.service_toml import smpp_service_toml  # noqa: E402

STEPS = ("decide", "pick", "last look", "sent", "receipt")


def config(tmp: Path):
    return loads(smpp_service_toml(tmp / "s.sqlite3", 1, compliance="cross_line_cap = 0\nglobal_hourly_cap = 0",
                                   smpp="window = 10\ntps = 0", extra="[policy]\ndedupe_hours = 0"))


def record(i: int, now: float) -> CallRecord:
    return CallRecord("asterisk", f"{1795734713 + i}.4", "+1512555%04d" % (1000 + i % 9000), "+15125550100",
                      "inbound", started_at=now - 20, ended_at=now, caller_cancelled=True,
                      dial_results=("CANCEL",), ring_seconds=20.0)


WRITES = ("INSERT", "UPDATE", "DELETE")


def count_statements(store) -> dict:
    counts = {"stmt": 0, "commit": 0}

    def seen(sql: str) -> None:
        counts["stmt"] += 1
        # a lone write outside BEGIN..COMMIT (autocommit) commits on its own
        counts["commit"] += sql[:6].upper() == "COMMIT" or (sql[:6].upper() in WRITES and not conn.in_transaction)
    conn = store.db.connection()
    conn.set_trace_callback(seen)
    return counts


class WalFrames:
    """The page numbers of the frames appended to a WAL file since the last call (each frame: a
    24-byte header that starts with its page number, then the page)."""

    def __init__(self, path: str, page_size: int):
        self.path, self.size, self.at = Path(path + "-wal"), page_size, 32

    def new(self) -> list[int]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path, "rb") as f:
            f.seek(self.at)
            while True:
                head = f.read(24)
                if len(head) < 24 or len(f.read(self.size)) < self.size:
                    break
                out.append(int.from_bytes(head[:4], "big"))
                self.at += 24 + self.size
        return out


def one_round(n: int, stmts: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pbx-percall-"))
    try:
        cfg = config(tmp)
        store = open_store(cfg.store.path, box="bench")
        pipe = Pipeline(cfg, store)
        # as the service builds it: the guarded take when this version has one (store/sendpath.py)
        clear = {"gate_clear": pipe.gate_clear} if hasattr(pipe, "gate_clear") else {}
        worker = OutboxWorker(store, None, gate_facts=pipe.gate_facts, after_sent=pipe.after_sent, **clear)
        spent = dict.fromkeys(STEPS, 0.0)
        if stmts and store.is_sqlite:
            # WAL pages the calls write: no checkpoint in this round, so the log keeps them all
            store.db.execute_sql("PRAGMA wal_autocheckpoint = 0")
            store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = count_statements(store) if stmts else None
        wal = WalFrames(str(cfg.store.path), store.db.execute_sql("PRAGMA page_size").fetchone()[0]) \
            if stmts and store.is_sqlite else None
        pages: dict[str, list[int]] = {s: [] for s in STEPS}

        def mark(step: str) -> None:
            if wal is not None:
                pages[step].extend(wal.new())
        texted = 0
        clock = time.process_time
        # the worker's pick of due rows (older versions claimed them here, in a transaction)
        pick = getattr(store, "due_rows", None) or store.claim_due
        for i in range(n):
            now = time.time()
            t0 = clock()
            if hasattr(pipe, "record_call"):      # the decision and the row it queued (Service._decide)
                v, handed = pipe.record_call(record(i, now), now=now)
            else:              # an older version: the row was left on the pipeline
                v = pipe.on_record(record(i, now), now=now)
                handed = getattr(pipe, "queued", None)
            t1 = clock()
            mark("decide")
            rows = [handed] if handed is not None else pick(time.time() + 1, limit=10)
            t2 = clock()
            mark("pick")
            for row in rows:
                if not worker._last_look(row):
                    continue
                t3 = clock()
                mark("last look")
                store.mark_sent(row.id, now=time.time(), transport="smpp", transport_id=f"id{row.id}")
                t4 = clock()
                mark("sent")
                store.apply_dlr([f"id{row.id}"], "delivered", "", time.time(), row.id)
                t5 = clock()
                mark("receipt")
                spent["last look"] += t3 - t2
                spent["sent"] += t4 - t3
                spent["receipt"] += t5 - t4
                texted += 1
            spent["decide"] += t1 - t0
            spent["pick"] += t2 - t1
            assert v.decision.action == "text", v.decision
        assert texted == n, f"{texted} of {n} texted"
        out = {k: v / n * 1000 for k, v in spent.items()}
        out["texted"] = texted
        if counts is not None:
            out["stmt"], out["commit"] = counts["stmt"] / n, counts["commit"] / n
            store.db.connection().set_trace_callback(None)
            if store.is_sqlite:
                out["wal"] = store.db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] / n
                names = dict(store.db.execute_sql("SELECT pageno, name FROM dbstat").fetchall())
                out["pages"] = {s: [names.get(p, "?") for p in got] for s, got in pages.items()}
        t0 = clock()
        for _ in range(n):
            with store.write():
                pass
        out["empty txn"] = (clock() - t0) / n * 1000
        store.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--btrees", action="store_true", help="name the tables and indexes each step writes")
    args = ap.parse_args()
    counted = one_round(min(args.calls, 200), stmts=True)        # statements: a short round of its own
    runs = [one_round(args.calls, stmts=False) for _ in range(args.rounds)]
    print(f"per-call CPU of the store and decision steps: {args.calls} missed calls x {args.rounds} rounds, "
          f"each texted ({runs[0]['texted']}/{args.calls}), ms per call, median of the rounds (min-max)")
    total = [sum(r[s] for s in STEPS) for r in runs]
    for s in STEPS:
        xs = [r[s] for r in runs]
        print(f"  {s:<12} {statistics.median(xs):6.3f}  ({min(xs):.3f}-{max(xs):.3f})")
    print(f"  {'all steps':<12} {statistics.median(total):6.3f}  ({min(total):.3f}-{max(total):.3f})")
    base = statistics.median(r["empty txn"] for r in runs)
    print(f"  baseline: one empty write transaction {base:.3f} ms; the steps cost "
          f"{statistics.median(total) / base:.1f}x that")
    print(f"  SQLite statements per call: {counted['stmt']:.1f}, of them commits {counted['commit']:.1f}; "
          f"WAL pages written per call: {counted.get('wal', float('nan')):.1f}")
    if "pages" in counted:
        n = min(args.calls, 200)
        print("  WAL pages per call by step: " + ", ".join(f"{s} {len(p) / n:.2f}" for s, p in counted["pages"].items()))
        for s, got in counted["pages"].items():
            if args.btrees and got:
                trees = Counter(got)
                print(f"    {s} ({len(trees)} b-trees): " + ", ".join(f"{k} {v / n:.2f}" for k, v in trees.most_common()))


if __name__ == "__main__":
    main()
