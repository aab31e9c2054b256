"""submit_sm/s through SmppTransport against the real test SMSC (node-smpp, tests/peers/smsc)
on loopback, by window size (no TPS cap). Prints figures and ratios vs window 1; asserts
nothing. Needs node + npm (npm ci runs once into /tmp). Finishes well under a minute.

On bare loopback the round trip is a fraction of a millisecond and both ends are CPU-bound, so
the window helps little; `--rtt-ms` also runs through a relay that adds that round-trip time
(an SMSC across a WAN/VPN), where the window is what sets the throughput.

    .venv/bin/python bench/smpp_bench.py [--seconds 2] [--windows 1,10,50] [--rtt-ms 0,20] [--dlr]
                                         [--quota 50,200 --quota-seconds 6]

`--quota` has the SMSC answer ESME_RTHROTTLED beyond N accepted submits per second (a steady
quota, as a gateway's account limit) and prints the accepted rate against it: the transport
should find the quota and keep to it, not settle near half of it.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx_textback.smpp import SmppSettings, SmppTransport  # noqa: E402
from tests.peers import smsc_peer  # noqa: E402

TEXT = "Hi, this is Acme Dental. Sorry we missed your call. Reply here or call 512-555-0100."


class DelayRelay:
    """TCP relay adding rtt/2 each way, order kept."""

    def __init__(self, upstream_port: int, rtt: float):
        self.upstream_port, self.half = upstream_port, rtt / 2

    async def start(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, cr, cw):
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        loop = asyncio.get_running_loop()

        async def pump(r, w):
            q: asyncio.Queue = asyncio.Queue()

            async def out():
                while (item := await q.get()) is not None:
                    at, data = item
                    if (d := at - loop.time()) > 0:
                        await asyncio.sleep(d)
                    w.write(data)
                w.transport.abort()
            task = asyncio.create_task(out())
            try:
                while data := await r.read(65536):
                    q.put_nowait((loop.time() + self.half, data))
            except OSError:
                pass
            q.put_nowait(None)
            await task
        try:
            await asyncio.gather(pump(cr, uw), pump(ur, cw))
        except asyncio.CancelledError:
            pass


async def one_run(port: int, window: int, seconds: float, dlr: bool,
                  rtt: float = 0.0) -> tuple[float, int, list[float]]:
    relay = await DelayRelay(port, rtt).start() if rtt else None
    t = SmppTransport(SmppSettings(port=relay.port if relay else port, system_id="bench",
                                   window=window, tps=0, registered_delivery=dlr,
                                   response_timeout=10))
    await t.start()
    await t.wait_bound(5)
    # warm-up
    await asyncio.gather(*(t.submit(f"w{i}", "15125550123", TEXT, "15125550100") for i in range(50)))
    lat: list[float] = []
    sent = 0
    stop_at = time.perf_counter() + seconds

    async def worker(k: int):
        nonlocal sent
        i = 0
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            r = await t.submit(f"b{k}-{i}", "15125550123", TEXT, "15125550100")
            lat.append(time.perf_counter() - t0)
            assert r.status == "sent", r
            sent += 1
            i += 1
    t0 = time.perf_counter()
    # twice as many concurrent submitters as the window, so the window is the limit
    await asyncio.gather(*(worker(k) for k in range(max(2, window * 2))))
    elapsed = time.perf_counter() - t0
    await t.stop()
    if relay:
        relay.server.close()
    return sent / elapsed, sent, lat


async def quota_run(port: int, seconds: float, window: int, tps: float) -> dict:
    """Submit as fast as the transport lets for `seconds`; accepted per second, as the SMSC
    counts them (the first second, while the rate is found, reported apart)."""
    t = SmppTransport(SmppSettings(port=port, system_id="bench", window=window, tps=tps,
                                   registered_delivery=False, response_timeout=10))
    await t.start()
    await t.wait_bound(5)
    stamps: list[float] = []
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()

    async def worker(k: int):
        i = 0
        while time.perf_counter() < stop_at:
            r = await t.submit(f"q{k}-{i}", "15125550123", TEXT, "15125550100")
            if r.status == "sent":
                stamps.append(time.perf_counter() - t0)
            i += 1
    await asyncio.gather(*(worker(k) for k in range(window * 2)))
    await t.stop()
    steady = [x for x in stamps if 1.0 <= x < seconds]
    return {"total": len(stamps), "steady_rate": len(steady) / (seconds - 1.0),
            "throttled": t.stats["throttled"], "not_written": t.stats.get("not_written", 0)}


def quota_section(smsc, quotas: list[int], seconds: float) -> None:
    print(f"-- steady quota: the SMSC throttles (0x58) beyond N accepted per second; window 10, "
          f"{seconds:g}s each, rate from second 1 on")
    for q in quotas:
        for tps in (0.0, 4.0 * q):
            smsc.reset()
            smsc.quota(q)
            r = asyncio.run(quota_run(smsc.port, seconds, 10, tps))
            smsc.quota(0)
            print(f"quota {q:4}/s, tps cap {'none' if not tps else f'{tps:g}'}: "
                  f"{r['steady_rate']:7.1f} accepted/s = {r['steady_rate'] / q:5.1%} of the quota "
                  f"({r['total']} accepted, {r['throttled']} throttle answers, "
                  f"{r['not_written']} handed back unwritten)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="per window size")
    ap.add_argument("--windows", default="1,10,50")
    ap.add_argument("--rtt-ms", default="0,20", help="added round-trip times, 0 = bare loopback")
    ap.add_argument("--dlr", action="store_true", help="ask for delivery receipts too")
    ap.add_argument("--quota", default="50,200", help="steady SMSC quotas to run against ('' = none)")
    ap.add_argument("--quota-seconds", type=float, default=6.0)
    ap.add_argument("--only-quota", action="store_true")
    args = ap.parse_args()
    reason = smsc_peer.node_missing()
    if reason:
        sys.exit(reason)
    smsc = smsc_peer.Smsc(smsc_peer.install(), dlr_delay_ms=50).start()
    try:
        print(f"SmppTransport -> node-smpp SMSC on 127.0.0.1:{smsc.port}, {args.seconds:g}s per "
              f"window, DLRs {'on' if args.dlr else 'off'}, 1-part GSM text")
        if args.quota:
            quota_section(smsc, [int(x) for x in args.quota.split(",")], args.quota_seconds)
        for rtt_ms in ([] if args.only_quota else [float(x) for x in args.rtt_ms.split(",")]):
            base = None
            print(f"-- {'bare loopback' if not rtt_ms else f'+{rtt_ms:g} ms round trip'}")
            for w in [int(x) for x in args.windows.split(",")]:
                smsc.reset()
                rate, n, lat = asyncio.run(one_run(smsc.port, w, args.seconds, args.dlr,
                                                   rtt_ms / 1000))
                at_smsc = len(smsc.messages())
                base = base or rate
                q = statistics.quantiles(lat, n=100)
                print(f"window {w:3}: {rate:8.0f} submit_sm/s  ({n} sent, {at_smsc} at the SMSC "
                      f"incl. warm-up)  submit() p50 {q[49] * 1e3:6.2f} ms  p99 "
                      f"{q[98] * 1e3:6.2f} ms  x{rate / base:5.1f} vs window 1")
    finally:
        smsc.close()


if __name__ == "__main__":
    main()
