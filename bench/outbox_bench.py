"""Texts/s through the whole outbox (store claim -> SMPP transport -> store) against the real
test SMSC, by window, behind a relay that adds a WAN round trip. Prints the rate and the most
submits in flight at once; asserts nothing. Issue 10 #9: the outbox used to claim 20 rows and
wait for the whole batch, so at most 20 were ever in flight whatever the window.

    .venv/bin/python bench/outbox_bench.py [--texts 400] [--windows 10,50,100] [--rtt-ms 20]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from smpp_bench import DelayRelay  # noqa: E402

from pbx_textback.outbox import OutboxWorker  # noqa: E402
from pbx_textback.senders import SmppSender  # noqa: E402
from pbx_textback.smpp import SmppSettings  # noqa: E402
from pbx_textback.store import db as st  # noqa: E402
from tests.peers import smsc_peer  # noqa: E402


async def one_run(port: int, window: int, texts: int, rtt: float) -> tuple[float, int]:
    relay = await DelayRelay(port, rtt).start() if rtt else None
    store = st.open_store(str(Path(tempfile.mkdtemp()) / "bench.sqlite3"))
    now = time.time()
    with store.write():
        for i in range(texts):
            store.add_message(direction="out", kind="missed-call", line="+15125550100",
                              peer=f"+1512556{i:04d}", body="Sorry we missed your call", state=st.PENDING,
                              due_at=now, created_at=now)
    sender = SmppSender(SmppSettings(port=relay.port if relay else port, window=window, tps=0,
                                     registered_delivery=False, response_timeout=60))
    await sender.start()
    await sender.t.wait_bound(10)
    worker = OutboxWorker(store, sender, max_age_s=0)
    peak = 0

    async def sample():
        nonlocal peak
        while True:
            peak = max(peak, sender.t.outstanding)
            await asyncio.sleep(0.0005)
    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    await worker.drain()
    elapsed = time.perf_counter() - t0
    sampler.cancel()
    await sender.stop()
    if relay:
        relay.server.close()
    sent = st.Message.select().where(st.Message.state == st.SENT).count()
    store.close()
    return sent / elapsed, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=400)
    ap.add_argument("--windows", default="10,50,100")
    ap.add_argument("--rtt-ms", type=float, default=20.0)
    args = ap.parse_args()
    reason = smsc_peer.node_missing()
    if reason:
        sys.exit(reason)
    smsc = smsc_peer.Smsc(smsc_peer.install()).start()
    try:
        print(f"outbox -> SmppSender -> +{args.rtt_ms:g} ms round trip -> node-smpp SMSC, "
              f"{args.texts} texts due at once, no TPS cap")
        for w in [int(x) for x in args.windows.split(",")]:
            smsc.reset()
            rate, peak = asyncio.run(one_run(smsc.port, w, args.texts, args.rtt_ms / 1000))
            print(f"window {w:3}: {rate:7.0f} texts/s, at most {peak:3} submits in flight")
    finally:
        smsc.close()


if __name__ == "__main__":
    main()
