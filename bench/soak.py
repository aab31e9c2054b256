"""Soak benchmark (issue 14): the real service takes missed calls as fast as it sustains, for a
long time, while the store grows. Prints figures; asserts nothing.

    .venv/bin/python bench/soak.py                      # a short run (--seconds 180)
    .venv/bin/python bench/soak.py --calls 1000000 --seconds 0    # the long one

What runs (as bench/latency.py):
  * a feeder PROCESS logs the service in like Asterisk and writes copies of
    tests/fixtures/asterisk/03-abandoned.ami (a caller hangs up while ext 100 rings), each with
    fresh Uniqueids/Linkedids and channel names. Callers: one copy in --frequent-every goes to
    one of --frequent callers who call again and again (their history grows without end: dedupe,
    the cross-line cap and a waiting text collapse their calls); every other copy has a caller
    of its own (+1512XXXYYYY, all distinct up to ~7.9M calls). The feeder keeps at most
    --window calls ahead of the service's decisions, so the rate is the service's own.
  * the real test SMSC (node-smpp, tests/peers/smsc) with receipts.
  * this process runs the real `Service` (AMI client, tracker, decision, SQLite store in a temp
    dir, outbox, SMPP) with the shipped defaults except: quiet hours off (a soak runs at any
    hour) and the global hourly cap off (the SMS-pumping guard would hold all but 200 texts).
Measured, every 10 s: calls decided (rate), texts at the SMSC, this process's RSS and CPU.
At the end: the rate in the first and last windows, RSS growth after warm-up (the first
--warmup seconds), store bytes per call, and how long `purge` of everything takes.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbx_textback.ami.replay_server import AmiReplayServer, rewrite_ids, trace_frames  # noqa: E402
from pbx_textback.config import loads  # noqa: E402
from pbx_textback.service import Service  # noqa: E402
from tests.peers import smsc_peer  # noqa: E402
from tests.service_toml import smpp_service_toml  # noqa: E402

TRACE = ROOT / "tests" / "fixtures" / "asterisk" / "03-abandoned.ami"
CALLER = b"+15125550177"
_CHAN = re.compile(rb"(PJSIP/[A-Za-z0-9_]+)-([0-9a-f]{8})")
SKIP_EVENTS = (b"Event: FullyBooted\r", b"Event: SuccessfulAuth\r")
SAMPLE_S = 10.0
BACKLOG = 50            # texts queued but not yet at the SMSC before the feeder waits


def caller(i: int, frequent: int, every: int) -> bytes:
    """Copy i's caller: a frequent one (every `every`-th copy), else one never seen before."""
    if every and i % every == 0:
        return b"+1512555%04d" % (100 + (i // every) % frequent)        # +15125550100..
    exchange = 200 + (i // 9999) % 800                                  # 200..999
    return b"+1512%03d%04d" % (exchange, 1 + i % 9999)                  # never ...0000 (UNDELIV)


class Copies:
    """The trace's frames once, and copy i on demand (fresh ids, channel names, caller)."""

    def __init__(self):
        self.frames = b"".join(f for f in trace_frames(TRACE.read_bytes()) if not f.startswith(SKIP_EVENTS))

    def copy(self, i: int, who: bytes) -> bytes:
        chans: dict[bytes, bytes] = {}

        def chan(m):
            key = m.group(0)
            if key not in chans:
                chans[key] = m.group(1) + b"-%08x" % ((0x10000 + i * 8 + len(chans)) & 0xFFFFFFFF)
            return chans[key]
        b = rewrite_ids(self.frames, i + 1)
        return _CHAN.sub(chan, b).replace(CALLER, who)


# ------------------------------------------------------------------------------ feeder process
def feeder_main(pipe, decided, backlog, n: int, window: int, frequent: int, every: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_feeder(pipe, decided, backlog, n, window, frequent, every))


async def _feeder(pipe, decided, backlog, n: int, window: int, frequent: int, every: int) -> None:
    loop = asyncio.get_running_loop()
    copies = Copies()
    go, stop = asyncio.Event(), asyncio.Event()
    sent = [0]

    class Feeder(AmiReplayServer):
        playing = False

        def _start_player(self, conn):
            fb = (b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 42\r\n"
                  b"LastReload: 42\r\nStatus: Fully Booted\r\n\r\n")
            if self.playing:
                conn.player = asyncio.create_task(self._send(conn, fb))
                return
            self.playing = True
            conn.player = asyncio.create_task(self._feed(conn, fb))

        async def _feed(self, conn, fb):
            await self._send(conn, fb)
            await go.wait()
            w = conn.writer
            i = 0
            while (n == 0 or i < n) and not stop.is_set():
                # the service's pace, not ours: decisions, and the texts they queued going out
                if i - decided.value >= window or backlog.value >= BACKLOG:
                    await asyncio.sleep(0.002)
                    continue
                data = copies.copy(i, caller(i, frequent, every))
                async with conn.lock:
                    w.write(data)
                await w.drain()
                i += 1
                sent[0] = i

    server = Feeder([], username="t", secret="s")
    port = await server.start()
    pipe.send(("port", port))
    msg = await loop.run_in_executor(None, pipe.recv)
    if msg == "go":
        go.set()
        await loop.run_in_executor(None, pipe.recv)      # "stop"
        stop.set()
        pipe.send(("sent", sent[0]))
    await server.stop()


# ------------------------------------------------------------------------------ the service side
def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def config(tmp: Path, smsc_port: int):
    # dedupe and the per-caller caps stay on: frequent callers' history is what the soak grows
    return loads(smpp_service_toml(tmp / "s.sqlite3", smsc_port, compliance="global_hourly_cap = 0",
                                   smpp="window = 10\ntps = 0"))


def _object_counts() -> dict:
    import gc
    from collections import Counter
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


def store_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


async def drive(svc: Service, smsc, pipe, decided, args, out: dict) -> None:
    loop = asyncio.get_running_loop()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            bound = await loop.run_in_executor(None, smsc.log_events, "bind")
            if svc.pbx_state == "connected" and bound:
                break
            await asyncio.sleep(0.1)
        else:
            out["error"] = f"not ready: PBX {svc.pbx_state}"
            return
        await asyncio.sleep(0.5)
        pipe.send("go")
        t0 = time.monotonic()
        samples = []
        snap = counts = None
        if args.tracemalloc:
            import tracemalloc
            tracemalloc.start(8)
        last_n, last_t = 0, t0
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        last_cpu = cpu.ru_utime + cpu.ru_stime
        while True:
            await asyncio.sleep(SAMPLE_S)
            now = time.monotonic()
            n = decided.value
            c = resource.getrusage(resource.RUSAGE_SELF)
            cpu_s = c.ru_utime + c.ru_stime
            st = await loop.run_in_executor(None, smsc.stats)
            s = dict(t=now - t0, calls=n, rate=(n - last_n) / (now - last_t), rss=rss_mb(),
                     cpu_ms=(cpu_s - last_cpu) * 1000 / max(n - last_n, 1),
                     texts=st.get("submit_sm", 0), store=store_bytes(svc.cfg.store.path))
            samples.append(s)
            print(f"  {s['t']:6.0f} s  calls {n:8,}  {s['rate']:6.1f}/s  CPU {s['cpu_ms']:5.2f} ms/call  "
                  f"texts {s['texts']:8,}  RSS {s['rss']:6.1f} MB  store {s['store'] / 1e6:7.1f} MB",
                  flush=True)
            last_n, last_t, last_cpu = n, now, cpu_s
            if args.objects and counts is None and s["t"] >= args.warmup:
                counts = _object_counts()
            if args.tracemalloc and snap is None and s["t"] >= args.warmup:
                import tracemalloc
                snap = tracemalloc.take_snapshot()
            if (args.calls and n >= args.calls) or (args.seconds and now - t0 >= args.seconds):
                break
        if counts is not None:
            after = _object_counts()
            grew = sorted(((after[k] - counts.get(k, 0), k) for k in after), reverse=True)[:10]
            print("  objects that grew after warm-up:", ", ".join(f"{k} {d:+,}" for d, k in grew if d > 0))
        if snap is not None:
            import tracemalloc
            for stat in tracemalloc.take_snapshot().compare_to(snap, "traceback")[:8]:
                print(f"  grew {stat.size_diff / 1e3:+.0f} kB in {stat.count_diff:+d} blocks:")
                for line in stat.traceback.format()[-8:]:
                    print("     ", line)
            tracemalloc.stop()
        pipe.send("stop")
        out["sent"] = (await loop.run_in_executor(None, pipe.recv))[1]
        await asyncio.sleep(2.0)                         # the last texts and receipts
        out["samples"] = samples
        out["decided"] = decided.value
    finally:
        svc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=0, help="stop after this many calls (0: --seconds decides)")
    ap.add_argument("--seconds", type=float, default=180.0, help="stop after this long (0: --calls decides)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS growth is measured")
    ap.add_argument("--window", type=int, default=20, help="calls the feeder may run ahead")
    ap.add_argument("--frequent", type=int, default=8, help="frequent callers")
    ap.add_argument("--frequent-every", type=int, default=5, help="every Nth call is a frequent caller's")
    ap.add_argument("--keep", action="store_true", help="keep the store (its path is printed)")
    ap.add_argument("--objects", action="store_true",
                    help="print which kinds of Python objects grew in number after warm-up")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="print where memory grew between the end of warm-up and the end (slower)")
    args = ap.parse_args()
    if not args.calls and not args.seconds:
        ap.error("give --calls or --seconds")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    ctx = mp.get_context("fork")
    decided = ctx.Value("q", 0, lock=False)              # calls decided, shared with the feeder
    backlog = ctx.Value("q", 0, lock=False)              # texts queued, not yet handed to the SMSC
    parent_end, child_end = ctx.Pipe()
    feeder = ctx.Process(target=feeder_main, name="ami-feeder", daemon=True,
                         args=(child_end, decided, backlog, args.calls, args.window, args.frequent, args.frequent_every))
    feeder.start()
    tmp = Path(tempfile.mkdtemp(prefix="pbx-soak-"))
    smsc = None
    out: dict = {}
    try:
        _, ami_port = parent_end.recv()
        smsc = smsc_peer.Smsc(smsc_peer.install(), dlr_delay_ms=50).start()
        cfg = config(tmp, smsc.port)

        queued = [0]

        def counted(v):
            queued[0] += v.decision.action == "text"
            backlog.value = queued[0] - svc.worker.sent
            decided.value += 1
        svc = Service(cfg, on_verdict=counted)
        sent = svc.worker._record

        def record(row, res, written):
            sent(row, res, written)
            backlog.value = queued[0] - svc.worker.sent
        svc.worker._record = record
        print(f"soak: {'%d calls' % args.calls if args.calls else ''}"
              f"{' or ' if args.calls and args.seconds else ''}"
              f"{'%g s' % args.seconds if args.seconds else ''}; 1 in {args.frequent_every} calls from "
              f"{args.frequent} frequent callers, the rest each from a new number; RSS sampled every "
              f"{SAMPLE_S:g} s", flush=True)
        asyncio.run(svc.run(host="127.0.0.1", port=ami_port,
                            extra_tasks=[drive(svc, smsc, parent_end, decided, args, out)]))
        stats = smsc.stats()
        size = store_bytes(cfg.store.path)
        if args.keep:
            import sqlite3
            db = sqlite3.connect(cfg.store.path)
            print("decisions:", db.execute("SELECT action, count(*) FROM decision GROUP BY action").fetchall())
            db.close()
            shutil.copy(cfg.store.path, str(tmp / "before-purge.sqlite3"))
        purge_s, purged = purge_all(cfg)
    finally:
        if smsc is not None:
            smsc.close()
        feeder.join(5)
        if feeder.is_alive():
            feeder.terminate()
            feeder.join(5)
        if args.keep:
            print("store kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if "error" in out:
        print("bench did not run:", out["error"])
        return
    report(args, out, stats, size, purge_s, purged)


def purge_all(cfg) -> tuple[float, dict]:
    """`pbx-textback purge` of every call and text (consent records stay), timed."""
    from pbx_textback.store.db import open_store
    store = open_store(cfg.store.path)
    try:
        t0 = time.perf_counter()
        purged = store.purge(time.time() + 1)
        return time.perf_counter() - t0, purged
    finally:
        store.close()


def report(args, out: dict, stats: dict, size: int, purge_s: float, purged: dict) -> None:
    samples = out["samples"]
    n = out["decided"]
    print(f"calls written by the feeder {out['sent']:,}, decided {n:,}; texts at the SMSC "
          f"{stats.get('submit_sm', 0):,}, receipts {stats.get('deliver_sm_resp', 0):,}")
    if len(samples) >= 2:
        first, last = samples[0], samples[-1]
        print(f"  rate: first 10 s {first['rate']:.1f} calls/s, last 10 s {last['rate']:.1f} calls/s "
              f"(ratio last/first {last['rate'] / max(first['rate'], 1e-9):.2f}; the store grew from "
              f"{first['calls']:,} to {last['calls']:,} calls)")
        warm = [s for s in samples if s["t"] >= args.warmup] or samples[-2:]
        base, peak = warm[0]["rss"], max(s["rss"] for s in warm)
        print(f"  RSS after warm-up ({args.warmup:g} s): {base:.1f} MB -> {warm[-1]['rss']:.1f} MB at the end, "
              f"peak {peak:.1f} MB: growth {100 * (warm[-1]['rss'] - base) / base:+.2f}% "
              f"(goal < 1 %, <= 100 MB)")
        cpu = [s["cpu_ms"] for s in warm]
        print(f"  CPU per call after warm-up: {sum(cpu) / len(cpu):.2f} ms (mean of the 10 s windows)")
    print(f"  store: {size / 1e6:.1f} MB for {n:,} calls = {size / max(n, 1):,.0f} bytes per call")
    print(f"  purge of everything: {purge_s:.2f} s ({purged})")


if __name__ == "__main__":
    main()
