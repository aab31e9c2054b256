"""Webhooks: what the feed costs the store when nothing happens, and how soon a receiver hears
of a missed call.

1. An idle feed tick (the scan every 0.5 s finds nothing new) on a store holding --rows calls
   and texts, against the bare SQL of the same five range queries in the same run (baseline).
2. From a missed call's row written to the signed POST arriving at a real loopback receiver,
   through the real HookService on the shipped tick (0.5 s): median and p90 over --calls.

    .venv/bin/python bench/hooks_bench.py [--rows 20000] [--calls 20]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402

from pbx_textback.config import loads  # noqa: E402
from pbx_textback.hooks.feed import Feed  # noqa: E402
from pbx_textback.hooks.sign import new_secret  # noqa: E402
from pbx_textback.hooks.worker import HookService  # noqa: E402
from pbx_textback.store import db as st  # noqa: E402

PEER, LINE = "+15125550177", "+15125550140"


def fill(store, n, t0):
    with store.write():
        for i in range(n):
            at = t0 - n + i
            c = st.Call.create(call_id=f"b{i}", pbx="asterisk", caller=f"+1512555{i % 10000:04d}", caller_raw="x",
                               called=LINE, line=LINE, direction="inbound", missed=True, reason="no-answer",
                               record="{}", created_at=at, started_at=at, ended_at=at)
            store.add_message(direction="out", kind="missed-call", line=LINE, peer=c.caller, body="Hi",
                              state="delivered", due_at=at, call=c.id)


def idle_ticks(store, ticks):
    feed = Feed(store, {"crm": ("call.missed",)}, time.time)
    feed.scan()
    t = time.perf_counter()
    for _ in range(ticks):
        feed.scan()
    ours = (time.perf_counter() - t) / ticks
    since = time.time() - 30
    sqls = ['SELECT * FROM "call" WHERE created_at >= ? ORDER BY created_at, id LIMIT 500',
            'SELECT * FROM message WHERE updated_at >= ? ORDER BY updated_at, id LIMIT 500',
            "SELECT * FROM consent WHERE at >= ? AND kind IN ('opt-out', 'opt-in') ORDER BY at, id LIMIT 500",
            "SELECT * FROM callback WHERE updated_at >= ? ORDER BY updated_at, id LIMIT 500",
            "SELECT * FROM conversationstate WHERE changed_at >= ? ORDER BY changed_at, id LIMIT 500"]
    t = time.perf_counter()
    for _ in range(ticks):
        for q in sqls:
            store.db.execute_sql(q, (since,)).fetchall()
    bare = (time.perf_counter() - t) / ticks
    return ours, bare


async def latency(store, cfg, calls):
    got: dict[str, float] = {}

    async def handle(request):
        got[request.headers["webhook-id"]] = time.time()
        return web.Response()
    app = web.Application()
    app.router.add_post("/h", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    cfg = loads(cfg.replace("PORT", str(port)))
    svc = HookService(cfg, store)
    task = asyncio.create_task(svc.run())
    await asyncio.sleep(1.0)
    waits = []
    rng = random.Random(1)
    for i in range(calls):
        await asyncio.sleep(rng.uniform(0.2, 1.2))     # at random phases of the tick
        at = time.time()
        with store.write():
            c = st.Call.create(call_id=f"l{i}", pbx="asterisk", caller=PEER, caller_raw=PEER, called=LINE,
                               line=LINE, direction="inbound", missed=True, reason="busy", record="{}",
                               created_at=at, started_at=at - 10, ended_at=at)
        key = f"call_{c.id}_missed"
        while key not in got:
            await asyncio.sleep(0.005)
        waits.append(got[key] - at)
    svc.stop()
    await task
    await runner.cleanup()
    return waits


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--ticks", type=int, default=200)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        store = st.open_store(f"{d}/s.sqlite3")
        fill(store, a.rows, time.time() - 60)
        ours, bare = idle_ticks(store, a.ticks)
        print(f"idle feed tick on {a.rows} calls + {a.rows} texts: {ours * 1e3:.2f} ms "
              f"(bare SQL of the same queries {bare * 1e3:.2f} ms, ratio {ours / bare:.2f}); "
              f"at one tick per 0.5 s: {ours / 0.5 * 100:.2f} % of one core")
        (Path(d) / "sec").write_text(new_secret())
        cfg = f"""[store]\npath = "{d}/s.sqlite3"\n[[hooks.endpoint]]\nname = "crm"\nurl = "http://127.0.0.1:PORT/h"
secret_file = "{d}/sec"\nevents = ["call.missed"]\n"""
        waits = asyncio.run(latency(store, cfg, a.calls))
        waits.sort()
        print(f"missed call stored -> signed POST received, {len(waits)} calls: median "
              f"{statistics.median(waits) * 1e3:.0f} ms, p90 {waits[int(len(waits) * 0.9) - 1] * 1e3:.0f} ms, "
              f"max {waits[-1] * 1e3:.0f} ms (tick 0.5 s)")
        store.close()


if __name__ == "__main__":
    main()
