"""Report query time for a year of traffic against the bare SQL of the same query.

A store is filled with a year of synthetic traffic (missed and answered calls on four lines,
their decisions and automated texts, replies, agents' texts, call backs, opt-outs). Then, for
each grouping: `report()` as the CLI, the web page and the API call it (SQL through peewee +
the Python math of core/report/compute.py), and the very SQL statements it ran, executed again on a
plain sqlite3 connection with nothing done to the rows (the floor). Printed with the ratio.

    .venv/bin/python bench/report.py                 # quick: 50 000 calls
    .venv/bin/python bench/report.py --calls 1000000 # a year of a busy office (~2 min to fill)
"""
from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx_textback.config import loads  # noqa: E402
from pbx_textback.reporting.report import report  # noqa: E402
from pbx_textback.store.db import open_store  # noqa: E402

YEAR = 365 * 86400
START = 1_767_225_600.0          # 2026-01-01 UTC
LINES = ("+15125550100", "+15125550110", "+15125550120", "+15125550140")
REASONS = ("no-answer", "abandoned", "busy", "voicemail", "queue-abandon", "after-hours")
CFG = loads("""
[business]
name = "Bench"
timezone = "America/Chicago"
[[line]]
number = "+15125550100"
name = "Main"
[line.hours]
mon = ["08:00-17:00"]
tue = ["08:00-17:00"]
wed = ["08:00-17:00"]
thu = ["08:00-17:00"]
fri = ["08:00-17:00"]
sat = []
sun = []
[[line]]
number = "+15125550110"
name = "Ads"
[[line]]
number = "+15125550120"
name = "Ads"
[[line]]
number = "+15125550140"
name = "Sales"
""")


def fill(path: str, n: int, seed: int) -> dict:
    open_store(path).close()               # today's schema, with migration 19's indexes
    rnd = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    callers = [f"+1737{rnd.randrange(10**6, 10**7):07d}" for _ in range(max(10, n // 3))]
    calls, decisions, msgs, callbacks, consent = [], [], [], [], []
    fail = json.dumps([{"name": "dedupe", "ok": False, "detail": "texted 2 h ago"}])
    ok = json.dumps([{"name": "missed", "ok": True, "detail": ""}])
    for i in range(1, n + 1):
        t = START + rnd.random() * YEAR
        caller = rnd.choice(callers)
        line = rnd.choice(LINES)
        if rnd.random() < 0.1:          # a desk phone calls a caller
            calls.append(("b", f"c{i}", "asterisk", "10" + str(rnd.randrange(3)), "100", caller, "", "outbound",
                          0, "outbound", "", t, t + 60, "{}", t + 60, int(rnd.random() < 0.7)))
            continue
        missed = rnd.random() < 0.35
        reason = rnd.choice(REASONS) if missed else "answered"
        calls.append(("b", f"c{i}", "asterisk", caller, caller, line, line if missed else "", "inbound",
                      int(missed), reason, "", t - 30, t, "{}", t, int(not missed)))
        if not missed:
            continue
        texted = rnd.random() < 0.8
        decisions.append((i, "text" if texted else "skip", ok if texted else fail, line, t))
        if not texted:
            continue
        state = rnd.choices(("delivered", "sent", "failed", "cancelled"), (80, 10, 5, 5))[0]
        msgs.append((i, "out", "missed-call", line, caller, "Sorry we missed your call", state, t, t, t, ""))
        if rnd.random() < 0.25:
            r = t + rnd.uniform(60, 7200)
            msgs.append((i, "in", "reply", line, caller, "hi", "received", r, r, r, "message"))
            if rnd.random() < 0.7:
                a = r + rnd.uniform(60, 20000)
                msgs.append((None, "out", "agent", line, caller, "hello", "delivered", a, a, a,
                             rnd.choice(("by maria", "by ben"))))
        if rnd.random() < 0.1:
            c = t + rnd.uniform(300, 90000)
            callbacks.append((caller, "PJSIP/10" + str(rnd.randrange(3)), "*88", "connected", c, c))
        if rnd.random() < 0.02:
            consent.append((caller, "opt-out", t + 600, "business", line, "STOP"))
    db.executemany('INSERT INTO "call" (box, call_id, pbx, caller, caller_raw, called, line, direction, missed, '
                   'reason, why, started_at, ended_at, record, created_at, answered, recovered) '
                   'VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)', calls)
    db.executemany("INSERT INTO decision (call_id, action, checks, line, created_at) VALUES (?,?,?,?,?)",
                   decisions)
    db.executemany("INSERT INTO message (call_id, direction, kind, line, peer, body, state, due_at, created_at, "
                   "updated_at, note, attempts, transport, transport_id, error, calls_missed, box, account) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,1,'smpp','','',1,'b','smpp')", msgs)
    db.executemany("INSERT INTO callback (peer, endpoint, feature, state, created_at, updated_at, detail) "
                   "VALUES (?,?,?,?,?,?,'')", callbacks)
    db.executemany("INSERT INTO consent (number, kind, at, scope, line, source, confirms, lang) "
                   "VALUES (?,?,?,?,?,?,'','en')", consent)
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return {"calls": len(calls), "messages": len(msgs), "callbacks": len(callbacks), "opt-outs": len(consent)}


def timed(fn, repeat: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds), medians: CPU time is what the query costs; the wall time
    also counts waiting for a core on a busy box (both run in this process)."""
    cpu, wall = [], []
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=50_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--by", default="line,agent,campaign,day,week")
    p.add_argument("--days", type=int, default=365, help="the report's period: the last DAYS of the year")
    p.add_argument("--store", help="a store this bench filled before (its path is printed): no refill")
    a = p.parse_args()
    if a.store:
        path = a.store
    else:
        path = str(Path(tempfile.mkdtemp(prefix="ptb-bench-report-")) / "bench.sqlite3")
        t = time.perf_counter()
        n = fill(path, a.calls, a.seed)
        print(f"filled {path}: {n} in {time.perf_counter() - t:.1f} s")
    store = open_store(path)
    since, until = START + YEAR - a.days * 86400, START + YEAR
    print(f"{'by':9} {'report() cpu':>13} {'bare SQL cpu':>13} {'ratio':>6}  {'(wall':>8} {'bare wall)':>10}"
          f"   median of {a.repeat}, the last {a.days} days of the year")
    for by in a.by.split(","):
        ran = []
        real = store.db.execute_sql

        def spy(sql, params=None, *rest, **kw):
            ran.append((sql, params))
            return real(sql, params, *rest, **kw)
        store.db.execute_sql = spy
        rep = report(store, since, until, by, CFG)
        store.db.execute_sql = real
        ours = [(s, p) for s, p in ran if "SELECT" in s.upper() and "schemaversion" not in s]
        bare = sqlite3.connect(path)
        full_s, full_w = timed(lambda: report(store, since, until, by, CFG), a.repeat)
        bare_s, bare_w = timed(lambda: [bare.execute(s, p or ()).fetchall() for s, p in ours], a.repeat)
        bare.close()
        print(f"{by:9} {full_s * 1000:11.0f}ms {bare_s * 1000:11.0f}ms {full_s / bare_s:5.2f}x  "
              f"{full_w * 1000:7.0f}ms {bare_w * 1000:8.0f}ms   "
              f"{len(rep['groups'])} groups, {rep['total']['calls']['missed']} missed calls, "
              f"{rep['total']['response']['count']} responses")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
