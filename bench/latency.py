"""Latency benchmark (issue 4): call end -> submit_sm arriving at the SMSC, through the real
pipeline, at a steady rate of missed calls. Prints figures; asserts nothing.

    .venv/bin/python bench/latency.py [--calls 500] [--rate 50] [--dlr-delay-ms 200]
        [--idle-s 2] [--lag-probe-ms 10] [--count-calls 100]
        [--profile FILE (cProfile on CPU time, the loop's thread)]

What runs:
  * a feeder PROCESS (like Asterisk, a separate process): an AmiReplayServer subclass on
    loopback that logs the client in like Asterisk (banner, Login, FullyBooted, Ping,
    CoreShowChannels) and then writes N copies of tests/fixtures/asterisk/03-abandoned.ami
    (a caller hangs up while ext 100 rings), one copy every 1/rate s on an absolute schedule.
    Per copy: Uniqueids/Linkedids rewritten (replay_server.rewrite_ids), channel name suffixes
    rewritten, and the caller +15125550177 rewritten to a distinct +1512555xxxx of equal length
    (valid NANP per libphonenumber). "Call end" = time.time() just before the copy's bytes up
    to and including its LAST `Hangup` frame are handed to the socket (the rest of the copy:
    CEL HANGUP/CHAN_END/LINKEDID_END, DeviceStateChange, follows in a second write).
  * the real test SMSC (node-smpp, tests/peers/smsc) with receipts after --dlr-delay-ms.
  * in this process the real `Service` (AMI client, tracker, decision, SQLite store in a temp
    dir, outbox worker, SMPP transport: window 10, no TPS cap), quiet hours off, dedupe 0,
    cross-line and global caps off.
Measured:
  * end-to-end: call end -> the SMSC's own `submit_sm` log line (`t`, ms resolution, same host
    clock), matched by destination number.
  * baseline: call end -> that last Hangup event reaching Service.on_event (framing, panoramisk,
    the AMI client's queue hop); also on_event's own time for that event (tracker + decision +
    store write, synchronous) to split what the rest adds.
  * the rest split at the moment the outbox worker takes the row; this process's CPU per call
    (and how often per call it slept and was woken), and its idle CPU per second measured in
    the same run before the calls (timers, pollers, the WAL checkpoint thread: at a steady rate
    each call pays its share); the texts' final states (receipts matched).
  * the bench's instruments cost CPU of this process too, so they run apart: after the measured
    calls (and their receipts), a second phase of --count-calls calls at the same rate runs with
    the event-loop lag probe (a 10 ms sleep: 100 wake-ups a second, ~20 ms of CPU a second on
    the test box even idle) and SQLite's trace callback (Python per statement and per trigger
    step) counting statements and commits per call on the service's connection. The per-call
    CPU is the service's: only the few SMSC stats polls that wait for the last submit_sm are in
    it (their CPU is printed). Compare per-call CPU against older runs of this bench only: it
    used to include both instruments.
At 50 calls/s the service process runs near one full core, so the tail (and even p50) varies
a lot from run to run: run it a few times.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
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
TRUNK_UID = "1795734713.4"           # the trunk channel: its Hangup is the call's last one
_CHAN = re.compile(rb"(PJSIP/[A-Za-z0-9_]+)-([0-9a-f]{8})")
SKIP_EVENTS = (b"Event: FullyBooted\r", b"Event: SuccessfulAuth\r")


def caller(i: int) -> str:
    """Copy i's caller: +1512555 and 4 digits, 1000..9999 (never ...0000: the SMSC's UNDELIV)."""
    return "+1512555%04d" % (1000 + i % 9000)


def linkedid(i: int) -> str:
    a, b = TRUNK_UID.split(".")
    return f"{a}.{int(b) + (i + 1) * 1_000_000}"   # what rewrite_ids(loop_no=i+1) makes of it


def build_calls(n: int) -> list[tuple[bytes, bytes]]:
    """N copies of the trace: (bytes up to and including the last Hangup, the rest)."""
    frames = [f for f in trace_frames(TRACE.read_bytes()) if not f.startswith(SKIP_EVENTS)]
    last_hangup = max(i for i, f in enumerate(frames) if f.startswith(b"Event: Hangup\r"))
    head, tail = b"".join(frames[:last_hangup + 1]), b"".join(frames[last_hangup + 1:])
    out = []
    for i in range(n):
        new_caller = caller(i).encode()
        assert len(new_caller) == len(CALLER)
        chans: dict[bytes, bytes] = {}

        def chan(m, i=i, chans=chans):
            key = m.group(0)
            if key not in chans:
                chans[key] = m.group(1) + b"-%08x" % (0x10000 + i * 8 + len(chans))
            return chans[key]

        def fix(b: bytes) -> bytes:
            b = rewrite_ids(b, i + 1)
            b = _CHAN.sub(chan, b)
            return b.replace(CALLER, new_caller)
        out.append((fix(head), fix(tail)))
    return out


# ------------------------------------------------------------------------------ feeder process
def feeder_main(pipe, n: int, rate: float, n_count: int = 0) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_feeder(pipe, n, rate, n_count))


async def _feeder(pipe, n: int, rate: float, n_count: int = 0) -> None:
    """Copies 0..n-1 on "go" (the measured phase), then on "go2" copies n..n+n_count-1 (the
    phase in which the service's statements are counted)."""
    loop = asyncio.get_running_loop()
    calls = build_calls(n + n_count)
    go, done = asyncio.Event(), asyncio.Event()
    go2, done2 = asyncio.Event(), asyncio.Event()
    written = [0.0] * (n + n_count)
    backlog = [0]              # copies whose bytes did not all reach the kernel at once

    class Feeder(AmiReplayServer):
        playing = False

        def _start_player(self, conn):
            fb = (b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 42\r\n"
                  b"LastReload: 42\r\nStatus: Fully Booted\r\n\r\n")
            if self.playing:     # a reconnect: just be booted
                conn.player = asyncio.create_task(self._send(conn, fb))
                return
            self.playing = True
            conn.player = asyncio.create_task(self._feed(conn, fb))

        async def _feed(self, conn, fb):
            await self._send(conn, fb)
            await go.wait()
            await self._phase(conn, 0, n)
            done.set()
            await go2.wait()
            await self._phase(conn, n, n + n_count)
            done2.set()

        async def _phase(self, conn, first: int, end: int):
            t0 = time.monotonic()
            w = conn.writer
            for i in range(first, end):
                head, tail = calls[i]
                delay = t0 + (i - first) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with conn.lock:            # never inside a response frame
                    # (read before the write: read after it, a feeder preempted on this busy
                    # box put "call end" after the service had the Hangup, up to 3 ms late)
                    written[i] = time.time()
                    w.write(head)
                    if w.transport.get_write_buffer_size():
                        backlog[0] += 1
                    w.write(tail)
                await w.drain()

    server = Feeder([], username="t", secret="s")
    port = await server.start()
    pipe.send(("port", port))
    msg = await loop.run_in_executor(None, pipe.recv)
    if msg == "go":
        go.set()
        await done.wait()
        pipe.send(("done", written[:n], backlog[0]))
        msg = await loop.run_in_executor(None, pipe.recv)      # "go2" or "stop"
        if msg == "go2":
            go2.set()
            await done2.wait()
            pipe.send(("done2",))
            await loop.run_in_executor(None, pipe.recv)      # "stop"
    await server.stop()


# ------------------------------------------------------------------------------ the service side
class TimedService(Service):
    """Timestamps the call's last Hangup on arrival at on_event and when on_event returns."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.arrived: dict[str, float] = {}
        self.decided: dict[str, float] = {}
        self.picked: dict[str, float] = {}     # the outbox worker takes the row (by peer)
        self.lag: list[float] = []             # event-loop lag samples, ms
        send = self.worker._send

        async def timed_send(row):
            if row.kind == "missed-call":
                self.picked.setdefault(row.peer, time.time())
            await send(row)
        self.worker._send = timed_send

    async def lag_probe(self, every: float = 0.01) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(every)
            self.lag.append((loop.time() - t - every) * 1000)

    def on_event(self, ev: dict) -> None:
        if ev.get("Event") == "Hangup" and ev.get("Uniqueid") == ev.get("Linkedid"):
            lid = ev.get("Linkedid")
            self.arrived[lid] = time.time()
            super().on_event(ev)
            self.decided[lid] = time.time()
            return
        super().on_event(ev)


def config(tmp: Path, smsc_port: int, front_desk: bool = False):
    # no dedupe or caps: every call of the bench is a text to measure
    web = '\n[web]\nlisten = "127.0.0.1:0"' if front_desk else ""
    cfg = loads(smpp_service_toml(tmp / "s.sqlite3", smsc_port, compliance="cross_line_cap = 0\nglobal_hourly_cap = 0",
                                  smpp="window = 10\ntps = 0", extra="[policy]\ndedupe_hours = 0" + web))
    if front_desk:            # the inbox is served once a user exists, as on a front desk's box
        from pbx_textback.store import web as sw
        from pbx_textback.store.db import open_store
        from pbx_textback.web.passwords import hash_password
        store = open_store(cfg.store.path)
        sw.add_user(store, "maria", "agent", hash_password("maria-secret-1"), "100", time.time())
        store.close()
    return cfg


WRITES = ("INSERT", "UPDATE", "DELETE")


def count_statements(store) -> Counter:
    """SQLite's own trace of the service's connection: statements run, commits, and the
    statements triggers ran. Python's sqlite3 reports a trigger's steps as the text of the
    statement that fired them, so a repeat of the statement just seen counts as a trigger's."""
    counts: Counter = Counter()
    last = [""]

    def seen(sql: str) -> None:
        if sql == last[0]:
            counts["trigger"] += 1
            return
        last[0] = sql
        counts["stmt"] += 1
        if sql[:6].upper() == "COMMIT" or (sql[:6].upper() in WRITES and not conn.in_transaction):
            counts["commit"] += 1          # a lone write outside BEGIN..COMMIT commits on its own
    conn = store.db.connection()
    conn.set_trace_callback(seen)
    return counts


def final_states(path: str) -> dict[str, int]:
    import sqlite3
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT state, count(*) FROM message WHERE direction = 'out' "
                               "GROUP BY state").fetchall())
    finally:
        db.close()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def line(name: str, xs: list[float]) -> str:
    if not xs:
        return f"  {name:<38} (none)"
    return (f"  {name:<38} p50 {pct(xs, 50):7.1f}  p90 {pct(xs, 90):7.1f}  p99 {pct(xs, 99):7.1f}"
            f"  max {max(xs):7.1f}  mean {statistics.fmean(xs):7.1f}  (n={len(xs)})")


def iso_ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed_stats(smsc, spent: list) -> dict:
    """smsc.stats() (an HTTP request, in an executor thread) with the CPU it cost this process."""
    t = time.thread_time()
    try:
        return smsc.stats()
    finally:
        spent[0] += time.thread_time() - t


async def drive(svc: TimedService, smsc, pipe, n: int, rate: float, dlr_delay_ms: int, out: dict,
                idle_s: float = 2.0, profile: str = "", lag_every: float = 0.01, n_count: int = 0) -> None:
    loop = asyncio.get_running_loop()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            bound = await loop.run_in_executor(None, smsc.log_events, "bind")
            if svc.pbx_state == "connected" and bound:
                break
            await asyncio.sleep(0.1)
        else:
            out["error"] = f"not ready: PBX {svc.pbx_state}, SMSC bound {bool(bound)}"
            return
        await asyncio.sleep(0.5)                      # let the reconcile snapshot settle
        # the service's own idle CPU (timers, pollers, threads) with no call in flight, measured
        # in this run before the calls start: at a steady rate it is charged to every call
        c0, t0 = cpu_s(), time.monotonic()
        await asyncio.sleep(idle_s)
        out["idle_cpu_per_s"] = (cpu_s() - c0) / (time.monotonic() - t0)
        prof = None
        if profile:
            import cProfile
            prof = cProfile.Profile(time.thread_time)     # CPU, not wall: the box is shared
            prof.enable()
        stats_cpu = [0.0]
        pipe.send("go")
        t_go = time.monotonic()
        cpu0, loop0 = resource.getrusage(resource.RUSAGE_SELF), time.thread_time()
        _, written, backlog = await loop.run_in_executor(None, pipe.recv)
        out["written"], out["backlog"] = written, backlog
        out["send_s"] = time.monotonic() - t_go
        deadline = time.monotonic() + 20               # stragglers after the last call
        while time.monotonic() < deadline:
            st = await loop.run_in_executor(None, timed_stats, smsc, stats_cpu)
            if st.get("submit_sm", 0) >= n:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(min(1.0, dlr_delay_ms / 1000 + 0.1))   # the last texts' receipts
        out["drained_s"] = time.monotonic() - t_go
        cpu1, loop1 = resource.getrusage(resource.RUSAGE_SELF), time.thread_time()
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        out["cpu_s"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        out["sys_s"] = cpu1.ru_stime - cpu0.ru_stime
        out["loop_s"] = loop1 - loop0                        # the event loop's thread alone
        out["wakeups"] = cpu1.ru_nvcsw - cpu0.ru_nvcsw       # the process slept and was woken
        out["stats_cpu_s"] = stats_cpu[0]
        if n_count > 0:
            # the instruments in a phase of their own: sqlite3's trace callback runs Python per
            # statement (and per trigger step), and the lag probe wakes the loop 100 times a
            # second (each wake-up of a sleeping process cost ~0.2 ms of CPU on the test box):
            # CPU that is the bench's, not the service's, and was ~10 % of the per-call figure
            probe = asyncio.create_task(svc.lag_probe(lag_every)) if lag_every > 0 else None
            counts = count_statements(svc.store)
            pipe.send("go2")
            await loop.run_in_executor(None, pipe.recv)          # ("done2",)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                st = await loop.run_in_executor(None, smsc.stats)
                if st.get("submit_sm", 0) >= n + n_count:
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(min(1.0, dlr_delay_ms / 1000 + 0.1))
            svc.store.db.connection().set_trace_callback(None)
            out["sql"] = dict(counts)
            if probe is not None:
                probe.cancel()
        out["lag"] = list(svc.lag)
    finally:
        svc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--rate", type=float, default=50.0, help="missed calls per second")
    ap.add_argument("--dlr-delay-ms", type=int, default=200)
    ap.add_argument("--idle-s", type=float, default=2.0, help="idle CPU measured this long before the calls")
    ap.add_argument("--lag-probe-ms", type=float, default=10.0,
                    help="event-loop lag probe period (0: off; the probe's wakeups are CPU of this process too)")
    ap.add_argument("--front-desk", action="store_true",
                    help="a web user exists, so the service also serves the inbox (as on a front desk's box)")
    ap.add_argument("--profile", default="", help="cProfile the event loop's thread while measuring, to FILE")
    ap.add_argument("--count-calls", type=int, default=100,
                    help="calls of a second phase, after the measured one, in which SQLite statements are "
                         "counted (0: none)")
    args = ap.parse_args()
    n, rate = args.calls, args.rate
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    ctx = mp.get_context("fork")                       # before any loop, thread or child
    parent_end, child_end = ctx.Pipe()
    n_count = max(0, args.count_calls)
    feeder = ctx.Process(target=feeder_main, args=(child_end, n, rate, n_count), name="ami-feeder", daemon=True)
    feeder.start()
    tmp = Path(tempfile.mkdtemp(prefix="pbx-latency-"))
    smsc = None
    out: dict = {}
    try:
        _, ami_port = parent_end.recv()
        smsc = smsc_peer.Smsc(smsc_peer.install(), dlr_delay_ms=args.dlr_delay_ms).start()
        cfg = config(tmp, smsc.port, args.front_desk)
        svc = TimedService(cfg)
        t0 = time.monotonic()
        asyncio.run(svc.run(host="127.0.0.1", port=ami_port,
                            extra_tasks=[drive(svc, smsc, parent_end, n, rate, args.dlr_delay_ms, out,
                                               args.idle_s, args.profile, args.lag_probe_ms / 1000, n_count)]))
        wall = time.monotonic() - t0
        if feeder.is_alive():
            try:
                parent_end.send("stop")
            except OSError:
                pass
        submits = smsc.log_events("submit_sm")
        dlrs = smsc.log_events("dlr_sent")
        states = final_states(cfg.store.path)
    finally:
        if smsc is not None:
            smsc.close()
        feeder.join(5)
        if feeder.is_alive():
            feeder.terminate()
            feeder.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
    if "error" in out:
        print("bench did not run:", out["error"])
        return

    written = out["written"]
    by_dest: dict[str, float] = {}
    for ev in submits:
        to = "+" + str(ev.get("to", "")).lstrip("+")
        by_dest.setdefault(to, iso_ts(ev["t"]))        # first submit to that number
    e2e, base, dec, rest, queued, sending = [], [], [], [], [], []
    for i in range(n):
        w = written[i]
        at = by_dest.get(caller(i))
        if at is not None:
            e2e.append((at - w) * 1000)
        lid = linkedid(i)
        if lid in svc.arrived:
            base.append((svc.arrived[lid] - w) * 1000)
            dec.append((svc.decided[lid] - svc.arrived[lid]) * 1000)
            if at is not None:
                rest.append((at - svc.decided[lid]) * 1000)
            pick = svc.picked.get(caller(i))
            if pick is not None:
                queued.append((pick - svc.decided[lid]) * 1000)
                if at is not None:
                    sending.append((at - pick) * 1000)
    gaps = [b - a for a, b in zip(written, written[1:])]
    achieved = (n - 1) / (written[-1] - written[0]) if n > 1 and written[-1] > written[0] else float("nan")

    print(f"latency bench: {n} missed calls at {rate:g}/s (achieved {achieved:.1f}/s, "
          f"max gap between call ends {max(gaps, default=0) * 1000:.1f} ms), trace {TRACE.name}, "
          f"{len(build_calls(1)[0][0]) + len(build_calls(1)[0][1]):,} bytes/call")
    print(f"  calls sent:   {n}   (writes that did not fit the socket at once: {out['backlog']})")
    print(f"  calls texted: {len(e2e)}   (submit_sm at the SMSC: {len(submits)}, receipts sent: {len(dlrs)}; "
          f"both phases: {n} + {n_count} calls)")
    print(f"  texts' final states in the store: {states}")
    print(f"  run: sending {out['send_s']:.1f} s, until the last submit_sm + receipts {out['drained_s']:.1f} s, "
          f"whole bench {wall:.1f} s")
    print(f"  service process CPU while measuring: {out['cpu_s']:.1f} s = "
          f"{out['cpu_s'] / out['drained_s'] * 100:.0f}% of one core, {out['cpu_s'] / n * 1000:.2f} ms per call"
          f" (in the kernel: {out['sys_s'] / n * 1000:.2f} ms); "
          f"voluntary context switches (waits that slept) per call: {out['wakeups'] / n:.1f}")
    print(f"    of it the event loop's thread {out['loop_s'] / n * 1000:.2f} ms, other threads (WAL checkpoints, "
          f"executor) {(out['cpu_s'] - out['loop_s']) / n * 1000:.2f} ms")
    idle = out["idle_cpu_per_s"]
    print(f"  the service's idle CPU, measured before the calls (same run): "
          f"{idle * 1000:.1f} ms/s = {idle * out['drained_s'] / n * 1000:.2f} ms of the per-call figure; "
          f"per call without it: {(out['cpu_s'] - idle * out['drained_s']) / n * 1000:.2f} ms")
    print(f"  the bench's own instruments are not in that figure (the lag probe and the statement count run in "
          f"a second phase of {n_count} calls); the SMSC stats polls are, "
          f"{out['stats_cpu_s'] / n * 1000:.3f} ms per call")
    sql = out.get("sql", {})
    if sql and n_count:
        print(f"  SQLite statements per call (a second phase of {n_count} calls at the same rate, sqlite3's "
              f"trace on): {sql.get('stmt', 0) / n_count:.1f} (of them commits {sql.get('commit', 0) / n_count:.1f}), "
              f"plus {sql.get('trigger', 0) / n_count:.1f} run by triggers")
    print("latency in ms (SMSC timestamps have 1 ms resolution):")
    print(line("END TO END call end -> submit_sm @SMSC", e2e))
    print(line("baseline: call end -> on_event", base))
    print(line("on_event (tracker+decide+store)", dec))
    print(line("on_event done -> submit_sm @SMSC", rest))
    print(line("  of which: -> outbox worker takes row", queued))
    print(line("  of which: worker takes row -> @SMSC", sending))
    print(line(f"event-loop lag ({args.lag_probe_ms:g} ms probe, 2nd phase)", out["lag"]))
    if e2e and base:
        print(f"  ratio end-to-end / baseline: p50 {pct(e2e, 50) / max(pct(base, 50), 1e-3):.1f}x, "
              f"p99 {pct(e2e, 99) / max(pct(base, 99), 1e-3):.1f}x")


if __name__ == "__main__":
    main()
