"""Inbox benchmark (issue 12, Speed): the Needs-reply page and one timeline over real HTTP with a
big store, against the bare SQL of the same page in the same run; and how long a new reply
takes to reach N open live streams (SSE). Prints figures; asserts nothing.

    .venv/bin/python bench/inbox.py                 # quick: 10k conversations, 100k messages
    .venv/bin/python bench/inbox.py --full          # 100k conversations, 1M messages
    .venv/bin/python bench/inbox.py --conversations 20000 --messages 200000 --clients 50

What runs:
  * a SQLite store in a temp dir (the shipped default), filled by a bulk insert with the inbox's
    triggers off, then its summary rows rebuilt set-wise and the triggers put back (the same
    rows the triggers would have written: tests/integration/test_inbox_summary.py). Per caller:
    one or two missed calls, the automated text, replies, some agents' texts; 10% done, 5%
    snoozed, 20% owned.
  * the real inbox (web/app.py's Inbox on aiohttp) in a SEPARATE process (like the service), with
    one extra outer middleware that adds `Server-Timing: app;dur=<ms>`: the server's time for
    the whole request (auth, SQL, template), which this process reads from each answer.
  * baseline, in this process on the same store: the page's own store calls (the view's rows
    and the live counts), no HTTP and no template: "bare SQL". Ratio = page / bare SQL.
  * live: N EventSource-like clients on /events; this process writes a caller's reply to the
    store (as the service would) and times until every client has its `change` event.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import peewee as pw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_textback.config import loads  # noqa: E402
from pbx_textback.store import db as st  # noqa: E402
from pbx_textback.store import inbox as ib  # noqa: E402
from pbx_textback.store import web as sw  # noqa: E402

PW = "bench horse battery"
LINES = ("+15125550140", "+15125550141")


def cfg_text(path: str) -> str:
    return f"""
[business]
name = "Bench Dental"
phone = "+15125550100"
timezone = "America/Chicago"
[store]
path = "{path}"
"""


# ---- fill ------------------------------------------------------------------------------------
def _bulk(store, model, rows: list[dict]) -> None:
    """executemany with every column: what a row leaves out gets the model's own default."""
    fields = [f for f in model._meta.sorted_fields if f.name != "id"]
    cols = ", ".join(f'"{f.column_name}"' for f in fields)
    marks = ", ".join("?" for _ in fields)
    template = [f.db_value(f.default() if callable(f.default) else f.default) for f in fields]
    at = {f.name: i for i, f in enumerate(fields)}

    def row(r):
        out = template.copy()
        for k, v in r.items():
            out[at[k]] = v
        return out
    store.db.cursor().executemany(f'INSERT INTO "{model._meta.table_name}" ({cols}) VALUES ({marks})',
                                  map(row, rows))


class _IndexesOff:
    """A bulk load without index upkeep per row: the indexes are made again at the end, at once."""

    def __init__(self, db, tables):
        self.db, self.tables = db, tables

    def __enter__(self):
        q = ("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (%s)"
             % ", ".join("?" for _ in self.tables))
        self.saved = self.db.execute_sql(q, self.tables).fetchall()
        for name, _ in self.saved:
            self.db.execute_sql(f'DROP INDEX "{name}"')

    def __exit__(self, *exc):
        for _, sql in self.saved:
            self.db.execute_sql(sql)


def fill(store, n_conv: int, n_msg: int, now: float, seed: int = 12) -> None:
    rnd = random.Random(seed)
    ib.drop_triggers(store.db)
    store.db.execute_sql("PRAGMA synchronous = OFF")         # a throw-away store
    with _IndexesOff(store.db, ["call", "message"]):
        _load(store, rnd, n_conv, n_msg, now)
    store.db.execute_sql("PRAGMA synchronous = NORMAL")
    with store.db.atomic():
        ib.rebuild(store.db)
        ib.create_triggers(store.db)
    # no ANALYZE: the service never runs it, so its stores plan without statistics like this one


def _load(store, rnd, n_conv: int, n_msg: int, now: float) -> None:
    per = max(1, n_msg // n_conv)
    calls, msgs, states = [], [], []
    for i in range(n_conv):
        peer = f"+1512{2000000 + i:07d}"
        t = now - rnd.uniform(60, 30 * 86400)
        line = LINES[i % 2]
        for k in range(1 if rnd.random() < 0.8 else 2):
            calls.append({"box": "bench", "call_id": f"{i}.{k}", "pbx": "asterisk", "caller": peer, "caller_raw": peer,
                          "called": line, "line": line, "direction": "inbound", "missed": True,
                          "reason": "no-answer", "why": "nobody answered within 20 s", "record": "{}",
                          "created_at": t + k * 300, "started_at": t + k * 300})
        for k in range(per):
            at = t + 60 + k * rnd.uniform(30, 3600)
            kind = "missed-call" if k == 0 else rnd.choice(("reply", "reply", "agent", "reply"))
            inbound = kind == "reply"
            msgs.append({"direction": "in" if inbound else "out", "kind": kind, "line": line, "peer": peer,
                         "body": "Thanks, can you call me back after 3?" if inbound else "Sorry we missed your call.",
                         "state": "received" if inbound else "delivered", "due_at": at, "created_at": at,
                         "updated_at": at, "box": "bench"})
        r = rnd.random()
        if r < 0.35:
            state = "done" if r < 0.10 else "snoozed" if r < 0.15 else "open"
            states.append({"peer": peer, "state": state, "until": None,
                           "owner": rnd.choice(("maria", "joe")) if r >= 0.15 else "",
                           "set_by": "maria", "set_at": now - 30, "changed_at": now - 30})
        if len(msgs) >= 200_000:
            with store.db.atomic():
                _bulk(store, st.Call, calls), _bulk(store, st.Message, msgs)
            calls, msgs = [], []
    with store.db.atomic():
        _bulk(store, st.Call, calls), _bulk(store, st.Message, msgs), _bulk(store, sw.ConversationState, states)


# ---- the server, in its own process -------------------------------------------------------------
def serve(path: str) -> None:
    from aiohttp import web

    from pbx_textback.web.app import Inbox
    cfg = loads(cfg_text(path))
    store = st.open_store(path)
    box = Inbox(cfg, store)

    @web.middleware
    async def timing(request, handler):
        t0 = time.perf_counter()
        resp = await handler(request)
        if not isinstance(resp, web.StreamResponse) or resp.prepared:
            return resp
        resp.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.3f}"
        return resp

    async def main():
        app = box.app()
        app.middlewares.insert(0, timing)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)     # until the bench ends
        await box.stop()
        await runner.cleanup()
    asyncio.run(main())


# ---- measuring -----------------------------------------------------------------------------------
def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def line(name: str, xs: list[float], base: list[float] | None = None) -> str:
    s = f"  {name:<34} p50 {pct(xs, 50):7.2f} ms  p99 {pct(xs, 99):7.2f} ms"
    if base:
        s += f"   bare SQL p50 {pct(base, 50):6.2f} ms  ratio {pct(xs, 50) / max(pct(base, 50), 1e-6):5.1f}x"
    return s


def bare(store, fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def http(port: int, store, args, busiest: str) -> None:
    from aiohttp import ClientSession, ClientTimeout, CookieJar
    base = f"http://127.0.0.1:{port}"
    now = time.time()
    async with ClientSession(timeout=ClientTimeout(total=60), cookie_jar=CookieJar(unsafe=True)) as s:
        r = await s.post(base + "/login", data={"name": "maria", "password": PW}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/", r.status
        cookies = s.cookie_jar

        async def timed(path: str) -> tuple[list[float], list[float], str]:
            server, wall, body = [], [], ""
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                resp = await s.get(base + path)
                body = await resp.text()
                wall.append((time.perf_counter() - t0) * 1000)
                assert resp.status == 200 and resp.url.path != "/login", (path, resp.status, resp.url)
                server.append(float(resp.headers["Server-Timing"].split("dur=")[1]))
            return server, wall, body

        print(f"server time over HTTP ({args.rounds} requests each; bare SQL = the page's store calls here):")
        pages = [("Needs reply (first page)", "/", lambda: (sw.view(store, "needs-reply", now, me="maria", limit=101),
                                                              sw.counts(store, now, "maria"))),
                 ("All open", "/?view=open", lambda: (sw.view(store, "open", now, me="maria", limit=101),
                                                      sw.counts(store, now, "maria"))),
                 ("Mine", "/?view=mine", lambda: (sw.view(store, "mine", now, me="maria", limit=101),
                                                  sw.counts(store, now, "maria"))),
                 ("Search 2000123 in Needs reply", "/?q=2000123", lambda: (
                     sw.view(store, "needs-reply", now, "2000123", me="maria", limit=101),
                     sw.counts(store, now, "maria"))),
                 ("live counts only (bare)", None, lambda: sw.counts(store, now, "maria"))]
        for name, path, fn in pages:
            b = bare(store, fn, args.rounds)
            if path is None:
                print(f"  {name:<34} p50 {pct(b, 50):7.2f} ms  p99 {pct(b, 99):7.2f} ms")
                continue
            server, wall, body = await timed(path)
            rows = body.count('class="peer"')
            print(line(name, server, b) + f"   ({rows} rows; round trip p50 {pct(wall, 50):.2f} ms)")
        server, wall, body = await timed(f"/c/{busiest}")
        b = bare(store, lambda: (store.calls_for(busiest), store.messages_to(busiest),
                                 store.consent_history(busiest), sw.conversation(store, busiest, now)), args.rounds)
        print(line("one timeline", server, b) + f"   ({body.count('<li')} items; round trip p50 {pct(wall, 50):.2f} ms)")
        await live(base, cookies, store, args)


async def live(base: str, cookies, store, args) -> None:
    """N streams open; a caller's reply written to the store; until each stream says `change`."""
    from aiohttp import ClientSession, ClientTimeout
    got: list[list[float]] = [[] for _ in range(args.clients)]
    ready = asyncio.Event()
    opened = 0

    async def client(i: int, s):
        nonlocal opened
        async with s.get(base + "/events") as resp:
            opened += 1
            if opened == args.clients:
                ready.set()
            async for raw in resp.content:
                if raw.startswith(b"event: change"):
                    got[i].append(time.time())
    sessions = [ClientSession(cookie_jar=cookies, timeout=ClientTimeout(total=None)) for _ in range(args.clients)]
    tasks = [asyncio.create_task(client(i, s)) for i, s in enumerate(sessions)]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(1.0)
    for g in got:
        g.clear()
    delays, lasts = [], []
    for k in range(args.live_rounds):
        peer = f"+1512{2000000 + k:07d}"
        t0 = time.time()
        with store.write():
            store.add_message(direction="in", kind="reply", line=LINES[0], peer=peer, body="are you open saturday?",
                              state="received", due_at=t0, created_at=t0)
        while any(len(g) <= k for g in got) and time.time() - t0 < 10:
            await asyncio.sleep(0.005)
        arrived = [(g[k] - t0) * 1000 for g in got if len(g) > k]
        delays += arrived
        lasts.append(max(arrived) if len(arrived) == args.clients else float("inf"))
        await asyncio.sleep(0.3)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for s in sessions:
        await s.close()
    print(f"live: a new reply written -> `change` on each of {args.clients} open /events streams "
          f"({args.live_rounds} replies; the server polls the store every 0.25 s, once for all streams):")
    print(f"  per stream p50 {pct(delays, 50):.0f} ms  p99 {pct(delays, 99):.0f} ms;  "
          f"the last of {args.clients} p50 {pct(lasts, 50):.0f} ms  max {max(lasts):.0f} ms  (goal <= 1000 ms)")


def write_cost(store, n: int = 300) -> None:
    """What the triggers add to a caller's reply being stored (the write path)."""
    def one_batch(offset):
        t0 = time.perf_counter()
        for i in range(n):
            with store.write():
                store.add_message(direction="in", kind="reply", line=LINES[0], peer=f"+1512{2000000 + offset + i:07d}",
                                  body="hi", state="received", due_at=1.0, created_at=time.time())
        return (time.perf_counter() - t0) / n * 1000
    with_t = one_batch(100)
    ib.drop_triggers(store.db)
    without = one_batch(100 + n)
    ib.create_triggers(store.db)      # the summary rows of those last callers are stale now: bench end
    print(f"write path: storing a reply {with_t:.3f} ms with the summary triggers, {without:.3f} ms without "
          f"(+{with_t - without:.3f} ms, ratio {with_t / without:.2f}x; one transaction each)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="100k conversations, 1M messages")
    ap.add_argument("--conversations", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=200, help="requests per page")
    ap.add_argument("--clients", type=int, default=50, help="open live streams")
    ap.add_argument("--live-rounds", type=int, default=10)
    ap.add_argument("--serve", metavar="STORE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.full:
        args.conversations, args.messages = 100_000, 1_000_000
    with tempfile.TemporaryDirectory(prefix="inbox-bench-") as tmp:
        path = os.path.join(tmp, "bench.sqlite3")
        store = st.open_store(path)
        from pbx_textback.web.passwords import hash_password
        sw.add_user(store, "maria", "agent", hash_password(PW), "101", time.time())
        t0 = time.perf_counter()
        fill(store, args.conversations, args.messages, time.time())
        n_calls, n_msgs = st.Call.select().count(), st.Message.select().count()
        n_conv = ib.InboxConv.select().where(ib.InboxConv.status != "").count()
        print(f"store: {n_conv} conversations, {n_calls} calls, {n_msgs} messages "
              f"(filled in {time.perf_counter() - t0:.1f} s, SQLite, {os.path.getsize(path) / 1e6:.0f} MB)")
        busiest = (st.Message.select(st.Message.peer).group_by(st.Message.peer)
                   .order_by(pw.fn.COUNT(st.Message.id).desc())
                   .limit(1).scalar())
        server = subprocess.Popen([sys.executable, __file__, "--serve", path], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            asyncio.run(http(port, store, args, busiest))
        finally:
            server.stdin.close()
            server.wait(10)
        write_cost(store)
        store.close()


if __name__ == "__main__":
    main()
