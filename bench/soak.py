"""Soak benchmark (issue 14): the real service takes missed calls as fast as it sustains, for a
long time, while the store grows. Prints figures; asserts nothing.

    .venv/bin/python bench/soak.py                                  # a short run (--seconds 180)
    .venv/bin/python bench/soak.py --calls 1000000 --seconds 0 --warmup-calls 50000   # the long one
    .venv/bin/python bench/soak.py --seconds 300 --tracemalloc      # where memory grew (slow)
    .venv/bin/python bench/soak.py --calls 300000 --seconds 0 --keep --no-purge   # grow a store once
    .venv/bin/python bench/soak.py --calls 20000 --seconds 0 --from /tmp/pbx-soak-X/before-purge.sqlite3
    .venv/bin/python bench/soak_ab.py --from STORE                  # empty vs grown store, alternating

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
At the end: calls/s and CPU per call in each --slice of calls (the rate must not fall as the
store grows), RSS growth after warm-up (--warmup seconds and --warmup-calls calls, whichever
ends later: the bounded memories fill first), store bytes per call, and how long the real
`pbx-textback purge --older-than 1 --yes` takes on that store, run as two days later (every
call is then older than a day). Ctrl-C or SIGTERM ends the run early and still reports.
The CPU per call is the steadier figure when other work shares the machine. Each sample also
counts, per call, the service connection's SQLite page-cache misses (pages read from the WAL or
the file) and hits, this process's read syscalls, and the CPU of the event loop and of the WAL
checkpoint thread (bench/pagestats.py): what a grown store costs more, and where.
--from STORE starts on a copy of a store kept by an earlier --keep run (its callers and call ids
go on from where that run stopped, the SMSC's message ids past those the store holds), so a few
minutes compare calls on a grown store with calls on an empty one (bench/soak_ab.py alternates).
PBX_SOAK_CODE=DIR runs the service code of another checkout (an A/B of two versions).
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("PBX_SOAK_CODE") or ROOT).resolve()    # whose service code runs
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(CODE))

import pagestats  # noqa: E402

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


SPACE = 800 * 9999      # distinct callers: exchanges 200..999, numbers 0001..9999
STRIDE = 1_000_003      # coprime with SPACE, so i -> i * STRIDE % SPACE visits every number once


def caller(i: int, frequent: int, every: int, scatter: bool = False) -> bytes:
    """Copy i's caller: a frequent one (every `every`-th copy), else one never seen before.
    scatter: the new numbers come in no order (as real callers do), so every index keyed by the
    caller takes its inserts all over its pages instead of appending at its end."""
    if every and i % every == 0:
        return b"+1512555%04d" % (100 + (i // every) % frequent)        # +15125550100..
    if scatter:
        i = i * STRIDE % SPACE
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
def feeder_main(pipe, decided, backlog, n: int, window: int, frequent: int, every: int, start: int = 0,
                scatter: bool = False) -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)         # Ctrl-C stops the service; it stops us
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_feeder(pipe, decided, backlog, n, window, frequent, every, start, scatter))


async def _feeder(pipe, decided, backlog, n: int, window: int, frequent: int, every: int, start: int,
                  scatter: bool) -> None:
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
                data = copies.copy(start + i, caller(start + i, frequent, every, scatter))
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


def rss_parts() -> dict:
    """RSS in its kernel's parts, MB: anon (the heap: Python's objects, SQLite's caches), file
    (mapped libraries and files: SQLite's -shm wal-index among them) and shmem."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    out[line[3:line.index(":")].lower()] = int(line.split()[1]) / 1024
    except OSError:
        pass
    # where the anonymous part lives: glibc's main heap (the [heap] map's anonymous pages),
    # and Python's object arenas (1 MiB each, sys._debugmallocstats: how many are allocated
    # and how much of them is in use)
    try:
        heap, in_heap = 0, False
        with open("/proc/self/smaps") as f:
            for line in f:
                if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    in_heap = line.rstrip().endswith("[heap]")
                elif in_heap and line.startswith("Anonymous:"):
                    heap += int(line.split()[1])
        out["[heap]"] = heap / 1024
    except (OSError, ValueError):
        pass
    out.update(pymalloc())
    # of the heap: what SQLite holds (its page caches, statements), and Python's objects
    # (thousands of allocated blocks, only to see a trend): whose growth it is
    mem = pagestats.sqlite_memory()
    if mem:
        out["sqlite"] = mem[0] / 1e6
    out["pyblocks(k)"] = sys.getallocatedblocks() / 1e3
    return out


def pymalloc() -> dict:
    """Python's small-object allocator, MB: its arenas and the bytes in their used blocks
    (sys._debugmallocstats writes to the C stderr: read through a file for a moment)."""
    import tempfile as tf
    saved = os.dup(2)
    try:
        with tf.TemporaryFile() as t:
            os.dup2(t.fileno(), 2)
            try:
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
            t.seek(0)
            text = t.read().decode("ascii", "replace")
    finally:
        os.close(saved)
    got = {}
    for key, name, unit in (("# arenas allocated current", "py-arenas", 1 << 20),
                            ("# bytes in allocated blocks", "py-used", 1)):
        m = re.search(re.escape(key) + r" *= *([0-9,]+)", text)
        if m:
            got[name] = int(m.group(1).replace(",", "")) * unit / 1e6
    return got


def config_text(tmp: Path, smsc_port: int) -> str:
    # dedupe and the per-caller caps stay on: frequent callers' history is what the soak grows
    # the global hourly cap off: the shipped 200 would hold all but 200 texts an hour, and a cap
    # as high as the soak's rate makes each text count the last hour's texts (all of them, for
    # the first hour): a cost of the cap's size, not of the store's (tests/integration/
    # test_store_growth_cost.py holds the count to the last hour)
    return smpp_service_toml(tmp / "s.sqlite3", smsc_port, compliance="global_hourly_cap = 0",
                             smpp="window = 10\ntps = 0")


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
        samples = out["samples"] = []
        out["decided"] = 0
        snap = counts = None
        if args.tracemalloc:
            import tracemalloc
            tracemalloc.start(8)
        last_n, last_t = 0, t0
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        last_cpu = cpu.ru_utime + cpu.ru_stime
        cache = pagestats.PageCache(svc.store.db.connection(), svc.cfg.store.path)
        last_pc, last_io, last_th = cache.counts(), pagestats.proc_io(), pagestats.thread_cpu()
        out["start"] = dict(cpu=last_cpu, pc=last_pc, io=last_io, th=last_th)
        mem = pagestats.sqlite_memory()
        if mem:
            anon = rss_parts().get("anon")
            print(f"  at the start: RSS {rss_mb():.1f} MB{'' if anon is None else f' (anonymous {anon:.1f} MB)'}, "
                  f"SQLite holds {mem[0] / 1e6:.1f} MB "
                  f"(at most {mem[1] / 1e6:.1f} MB so far)", flush=True)
        import tracemalloc
        if tracemalloc.is_tracing():        # PYTHONTRACEMALLOC=8: what the start-up holds
            for stat in tracemalloc.take_snapshot().statistics("traceback")[:5]:
                print(f"  held at the start: {stat.size / 1e6:.1f} MB in {stat.count} blocks:")
                for ln in stat.traceback.format()[-8:]:
                    print("     ", ln)
        per_stmt = out.get("per_stmt")
        stmt_from = 0
        if per_stmt is not None:
            print("  the start-up's statements (before the first call), in all:")
            print("\n".join(per_stmt.report(1, top=8)), flush=True)
            per_stmt.reset()
        while True:
            await asyncio.sleep(SAMPLE_S)
            now = time.monotonic()
            n = decided.value
            c = resource.getrusage(resource.RUSAGE_SELF)
            cpu_s = c.ru_utime + c.ru_stime
            st = await loop.run_in_executor(None, smsc.stats)
            s = dict(t=now - t0, calls=n, rate=(n - last_n) / (now - last_t), rss=rss_mb(), parts=rss_parts(),
                     cpu_ms=(cpu_s - last_cpu) * 1000 / max(n - last_n, 1),
                     texts=st.get("submit_sm", 0), store=store_bytes(svc.cfg.store.path))
            pc, io, th = cache.counts(), pagestats.proc_io(), pagestats.thread_cpu()
            per = max(n - last_n, 1)
            s["miss"] = (pc["miss"] - last_pc["miss"]) / per if "miss" in pc else None
            s["hit"] = (pc["hit"] - last_pc["hit"]) / per if "hit" in pc else None
            s["syscr"] = (io["syscr"] - last_io["syscr"]) / per if "syscr" in io else None
            s["loop_ms"] = (th.get("loop", 0) - last_th.get("loop", 0)) * 1000 / per
            s["ckpt_ms"] = (th.get("wal-checkpoint", 0) - last_th.get("wal-checkpoint", 0)) * 1000 / per
            s["cpu_s"], s["pc"], s["io"], s["th"] = cpu_s, pc, io, th
            last_pc, last_io, last_th = pc, io, th
            samples.append(s)
            out["decided"] = n
            print(f"  {s['t']:6.0f} s  calls {n:8,}  {s['rate']:6.1f}/s  CPU {s['cpu_ms']:5.2f} ms/call  "
                  f"texts {s['texts']:8,}  RSS {s['rss']:6.1f} MB"
                  + "".join(f" {k} {v:5.1f}" for k, v in s["parts"].items()) + f"  store {s['store'] / 1e6:7.1f} MB"
                  + (f"  misses {s['miss']:5.1f} hits {s['hit']:6.1f} /call" if s["miss"] is not None else "")
                  + (f"  read syscalls {s['syscr']:5.1f}/call" if s["syscr"] is not None else "")
                  + f"  loop {s['loop_ms']:4.2f} ckpt {s['ckpt_ms']:4.2f} ms/call",
                  flush=True)
            last_n, last_t, last_cpu = n, now, cpu_s
            warm = s["t"] >= args.warmup and n >= args.warmup_calls
            if per_stmt is not None and not stmt_from:
                per_stmt.reset()                        # the first sample's start-up left out
                stmt_from = n
            if args.objects and counts is None and warm:
                counts = _object_counts()
            if args.tracemalloc and snap is None and warm:
                import tracemalloc
                snap = tracemalloc.take_snapshot()
            if (args.calls and n >= args.calls) or (args.seconds and now - t0 >= args.seconds):
                break
        if per_stmt is not None:
            print(f"  SQLite page-cache misses and hits, and event-loop CPU, by statement, per call "
                  f"(calls {stmt_from:,} to {n:,}):")
            print("\n".join(per_stmt.report(n - stmt_from)), flush=True)
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
        out["decided"] = decided.value
    finally:
        svc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=0, help="stop after this many calls (0: --seconds decides)")
    ap.add_argument("--seconds", type=float, default=180.0, help="stop after this long (0: --calls decides)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS growth is measured")
    ap.add_argument("--warmup-calls", type=int, default=20000,
                    help="calls before RSS growth is measured (the tracker remembers 20,000 finished ids)")
    ap.add_argument("--slice", type=int, default=10000, help="calls per slice of the rate table")
    ap.add_argument("--dir", default=None, help="where the store goes (default: a temp dir; 1M calls take ~4 GB)")
    ap.add_argument("--window", type=int, default=20, help="calls the feeder may run ahead")
    ap.add_argument("--frequent", type=int, default=8, help="frequent callers")
    ap.add_argument("--frequent-every", type=int, default=5, help="every Nth call is a frequent caller's")
    ap.add_argument("--scatter", action="store_true",
                    help="the new callers' numbers in no order (as real callers), not one after another")
    ap.add_argument("--keep", action="store_true", help="keep the store (its path is printed)")
    ap.add_argument("--from", dest="from_store", default=None,
                    help="start on a copy of this store (kept by an earlier --keep run): calls on a grown store")
    ap.add_argument("--statements", action="store_true",
                    help="print page-cache misses, hits and CPU per SQL statement (a little slower)")
    ap.add_argument("--no-purge", action="store_true", help="skip timing `purge` at the end")
    ap.add_argument("--json", default=None, help="also write the run's figures to this file (bench/soak_ab.py)")
    ap.add_argument("--objects", action="store_true",
                    help="print which kinds of Python objects grew in number after warm-up")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="print where memory grew between the end of warm-up and the end (slower)")
    args = ap.parse_args()
    if not args.calls and not args.seconds:
        ap.error("give --calls or --seconds")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    tmp = Path(tempfile.mkdtemp(prefix="pbx-soak-", dir=args.dir))
    start = 0
    if args.from_store:
        start, first_id = resume_store(args.from_store, tmp / "s.sqlite3")
        os.environ["SMSC_FIRST_ID"] = "%X" % first_id          # the SMSC peer's next message id
        print(f"soak: on a copy of {args.from_store} ({start:,} calls); calls go on from there", flush=True)
    ctx = mp.get_context("fork")
    decided = ctx.Value("q", 0, lock=False)              # calls decided, shared with the feeder
    backlog = ctx.Value("q", 0, lock=False)              # texts queued, not yet handed to the SMSC
    parent_end, child_end = ctx.Pipe()
    feeder = ctx.Process(target=feeder_main, name="ami-feeder", daemon=True,
                         args=(child_end, decided, backlog, args.calls, args.window, args.frequent, args.frequent_every,
                               start, args.scatter))
    feeder.start()
    smsc = None
    out: dict = {"resumed": start}
    try:
        _, ami_port = parent_end.recv()
        smsc = smsc_peer.Smsc(smsc_peer.install(), dlr_delay_ms=50).start()
        cfg_text = config_text(tmp, smsc.port)
        cfg = loads(cfg_text)

        queued = [0]

        def counted(v):
            queued[0] += v.decision.action == "text"
            backlog.value = queued[0] - svc.worker.sent
            decided.value += 1
        svc = Service(cfg, on_verdict=counted)
        if args.statements:          # from the start-up on: what a restart on a big store reads
            out["per_stmt"] = pagestats.PerStatement(
                svc.store.db, pagestats.PageCache(svc.store.db.connection(), cfg.store.path))
        sent = svc.worker._record

        def record(row, res, written):
            sent(row, res, written)
            backlog.value = queued[0] - svc.worker.sent
        svc.worker._record = record
        print(f"soak: {'%d calls' % args.calls if args.calls else ''}"
              f"{' or ' if args.calls and args.seconds else ''}"
              f"{'%g s' % args.seconds if args.seconds else ''}; 1 in {args.frequent_every} calls from "
              f"{args.frequent} frequent callers, the rest each from a new number"
              f"{' (in no order)' if args.scatter else ''}; RSS sampled every "
              f"{SAMPLE_S:g} s", flush=True)
        asyncio.run(svc.run(host="127.0.0.1", port=ami_port,
                            extra_tasks=[drive(svc, smsc, parent_end, decided, args, out)]))
        out["decided"] = decided.value
        stats = smsc.stats()
        smsc.close()
        smsc = None
        size = store_bytes(cfg.store.path)
        out["parts"] = store_parts(cfg.store.path)
        if args.keep:
            shutil.copy(cfg.store.path, str(tmp / "before-purge.sqlite3"))
        cfg_path = tmp / "config.toml"
        cfg_path.write_text(cfg_text)
        purge = {"s": 0.0, "rc": None, "said": ["skipped (--no-purge)"]} if args.no_purge else purge_cli(cfg_path)
    finally:
        if smsc is not None:
            smsc.close()
        if feeder.is_alive():
            try:
                parent_end.send("stop")                  # an early stop: the feeder ends itself
            except OSError:
                pass
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
    report(args, out, stats, size, purge)
    if args.json:
        write_json(args.json, out, start, size)


def resume_store(src: str, dst: Path) -> tuple[int, int]:
    """Copy a kept store; (calls it holds, the first SMSC message id past any it holds). The
    SMSC peer numbers its ids from 0x1000 up, one per text: past the highest message row id
    plus 0x1000 no id can repeat one the store already has."""
    import sqlite3
    shutil.copyfile(src, dst)
    db = sqlite3.connect(f"file:{dst}?mode=ro", uri=True)
    try:
        calls = db.execute('SELECT COALESCE(MAX(id), 0) FROM "call"').fetchone()[0]
        msgs = db.execute('SELECT COALESCE(MAX(id), 0) FROM "message"').fetchone()[0]
    finally:
        db.close()
    return calls, 0x1000 + msgs + 1


def run_figures(out: dict) -> dict:
    """CPU, page misses and syscalls per call over the run after its first sample (start-up
    and the first seconds' cache filling left out), and the RSS at the start and the end."""
    samples = out.get("samples") or []
    if len(samples) < 2:
        return {}
    a, b = samples[0], samples[-1]
    n = max(b["calls"] - a["calls"], 1)
    fig = {"calls": n, "seconds": b["t"] - a["t"], "calls_per_s": n / max(b["t"] - a["t"], 1e-9),
           "cpu_ms": (b["cpu_s"] - a["cpu_s"]) * 1000 / n,
           "rss_first": a["rss"], "rss_last": b["rss"], "rss_peak": max(s["rss"] for s in samples)}
    for key, pa, pb in (("miss", a["pc"].get("miss"), b["pc"].get("miss")),
                        ("hit", a["pc"].get("hit"), b["pc"].get("hit")),
                        ("syscr", a["io"].get("syscr"), b["io"].get("syscr")),
                        ("rchar", a["io"].get("rchar"), b["io"].get("rchar")),
                        ("wchar", a["io"].get("wchar"), b["io"].get("wchar"))):
        if pa is not None and pb is not None:
            fig[key] = (pb - pa) / n
    for name in ("loop", "wal-checkpoint"):
        fig[name + "_ms"] = (b["th"].get(name, 0) - a["th"].get(name, 0)) * 1000 / n
    return fig


def write_json(path: str, out: dict, start: int, size: int) -> None:
    import json
    fig = run_figures(out)
    fig.update(start=start, store_bytes=size, decided=out.get("decided", 0), code=str(CODE))
    Path(path).write_text(json.dumps(fig))


def store_parts(path: str, top: int = 10) -> list[tuple[str, int]]:
    """(table or index, bytes) of the biggest, from SQLite's dbstat (empty where it is not built in)."""
    import sqlite3
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT ?",
                          (top,)).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()


PURGE_DAYS = 1
LATER_S = 2 * 86400
# the real CLI in its own process, its clock two days on: every soak call is then older than a day
_LATER = ("import sys, time; _t = time.time; time.time = lambda: _t() + {later}; "
          "from pbx_textback.cli import main; sys.exit(main(sys.argv[1:]))")


def purge_cli(cfg_path: Path) -> dict:
    """`pbx-textback purge --older-than 1 --yes -c FILE`, timed from start to exit."""
    argv = [sys.executable, "-c", _LATER.format(later=LATER_S), "purge", "--older-than", str(PURGE_DAYS),
            "--yes", "-c", str(cfg_path)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=6 * 3600)
    return {"s": time.perf_counter() - t0, "rc": done.returncode,
            "said": (done.stdout.strip() or done.stderr.strip()).splitlines()[-1:]}


def slices(samples: list[dict], every: int) -> list[tuple[int, int, float, float]]:
    """(from, to, calls/s, CPU ms per call) per `every` calls, from the 10 s samples (a slice
    boundary falls between two samples: its time and CPU are interpolated)."""
    pts = [(0, 0.0, 0.0)]
    cpu = 0.0
    for s in samples:
        cpu += s["cpu_ms"] * max(s["calls"] - pts[-1][0], 0) / 1000
        pts.append((s["calls"], s["t"], cpu))

    def at(n):
        for (n0, t0, c0), (n1, t1, c1) in zip(pts, pts[1:]):
            if n0 <= n <= n1 and n1 > n0:
                f = (n - n0) / (n1 - n0)
                return t0 + f * (t1 - t0), c0 + f * (c1 - c0)
        return None
    out = []
    lo = 0
    while lo + every <= pts[-1][0]:
        a, b = at(lo), at(lo + every)
        out.append((lo, lo + every, every / max(b[0] - a[0], 1e-9), 1000 * (b[1] - a[1]) / every))
        lo += every
    return out


def report(args, out: dict, stats: dict, size: int, purge: dict) -> None:
    samples = out.get("samples") or []
    n = out.get("decided", 0)
    fed = f"{out['sent']:,}" if "sent" in out else "? (stopped early)"
    print(f"\ncalls written by the feeder {fed}, decided {n:,}; texts at the SMSC "
          f"{stats.get('submit_sm', 0):,}, receipts {stats.get('deliver_sm_resp', 0):,}")
    # the sample that saw the last call also counts the wait for it to be sampled (up to
    # 10 s of nothing): the rate per slice stops at the sample before it
    ended = len(samples) > 2 and samples[-1]["calls"] == n and samples[-1]["rate"] < samples[-2]["rate"]
    table = slices(samples[:-1] if ended else samples, args.slice)
    if table:
        print(f"  rate per {args.slice:,} calls (the store grows from slice to slice):")
        print("        calls            calls/s   CPU ms/call")
        for lo, hi, rate, cpu in table:
            print(f"    {lo:>9,} - {hi:<9,}  {rate:7.1f}    {cpu:6.2f}")
        first, last = table[0], table[-1]
        print(f"  last slice / first slice: calls/s {last[2] / first[2]:.2f}, CPU per call {last[3] / first[3]:.2f}")
    if len(samples) >= 2:
        warm = [s for s in samples if s["t"] >= args.warmup and s["calls"] >= args.warmup_calls]
        if len(warm) >= 2:
            # RSS moves by a MB up and down between samples: the peaks of the first and the last
            # minute after warm-up, and the slope of a straight line through every sample
            k = min(6, len(warm) // 2) or 1
            base, end = max(s["rss"] for s in warm[:k]), max(s["rss"] for s in warm[-k:])
            xs, ys = [s["calls"] for s in warm], [s["rss"] for s in warm]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            var = sum((x - mx) ** 2 for x in xs)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
            print(f"  RSS after warm-up (from {warm[0]['t']:.0f} s, {warm[0]['calls']:,} calls, to {warm[-1]['calls']:,}): "
                  f"peak of the first minute {base:.1f} MB, of the last {end:.1f} MB: growth "
                  f"{100 * (end - base) / base:+.2f}% (goal < 1 %); peak of the run {max(ys):.1f} MB (goal <= 100 MB); "
                  f"fitted slope {slope * 1e7:+.1f} kB per 10,000 calls")
            for part in warm[0]["parts"]:       # which part grew: the heap, or mapped files
                pb = max(s["parts"].get(part, 0) for s in warm[:k])
                pe = max(s["parts"].get(part, 0) for s in warm[-k:])
                unit = "k blocks" if part.startswith("pyblocks") else "MB"
                print(f"    of it {part}: peak of the first minute {pb:.2f} {unit}, of the last {pe:.2f} "
                      f"{unit} ({pe - pb:+.2f})")
        else:
            print(f"  RSS: {samples[0]['rss']:.1f} -> {samples[-1]['rss']:.1f} MB; the run ended before the warm-up "
                  f"({args.warmup:g} s and {args.warmup_calls:,} calls) did")
    fig = run_figures(out)
    if fig:
        print(f"  per call from the first sample on ({fig['calls']:,} calls, {fig['calls_per_s']:.1f}/s): CPU "
              f"{fig['cpu_ms']:.2f} ms (event loop {fig['loop_ms']:.2f}, WAL checkpoint thread "
              f"{fig['wal-checkpoint_ms']:.2f})"
              + (f", page-cache misses {fig['miss']:.1f} and hits {fig['hit']:.1f}" if "miss" in fig else "")
              + (f", read syscalls {fig['syscr']:.1f}, read {fig['rchar'] / 1e3:.1f} kB, "
                 f"written {fig['wchar'] / 1e3:.1f} kB" if "syscr" in fig else ""))
    held = n + out.get("resumed", 0)                     # --from: the calls the copy held count too
    print(f"  store: {size / 1e6:.1f} MB for {held:,} calls = {size / max(held, 1):,.0f} bytes per call")
    if out.get("parts"):
        print("    the biggest parts, bytes per call: " + ", ".join(
            f"{name} {b / max(held, 1):,.0f}" for name, b in out["parts"]))
    print(f"  pbx-textback purge --older-than {PURGE_DAYS} --yes (two days later): {purge['s']:.1f} s, "
          f"exit {purge['rc']}: {' '.join(purge['said'])}")


if __name__ == "__main__":
    main()
