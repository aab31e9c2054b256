"""Answers to what the SMSC sends are written once the PDUs already read are handled (a burst
in one send, smpp/link.py Link.answer): every receipt must still get its own deliver_sm_resp
with its status, each receipt must be matched to its text before it is answered, and a burst
of texts with their receipts must settle every one. Against the real SMSC (node-smpp) on
127.0.0.1, receipts on (the shipped registered_delivery default)."""
from __future__ import annotations

import asyncio

from pbx_textback.smpp import SmppSettings, SmppTransport

# no enquire_link during a test: a write of ours would carry held answers along and hide a
# burst that was never answered by itself
FAST = dict(tps=0, reconnect_min=0.05, reconnect_max=0.3, response_timeout=3.0,
            throttle_pause=0.05, enquire_link_interval=60.0, enquire_link_timeout=2.0)
SRC = "+15125550100"
N = 40


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, timeout=10.0, what="condition"):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_a_burst_of_receipts_each_answered_and_matched(smsc):
    async def go():
        dlrs = []
        t = SmppTransport(SmppSettings(host="127.0.0.1", port=smsc.port, system_id="textback",
                                       password="secret", window=N, **FAST), on_dlr=dlrs.append)
        await t.start()
        try:
            await t.wait_bound(5)
            results = await asyncio.gather(*(t.submit(f"m{i}", f"+1512555{2000 + i:04d}",
                                                      "Sorry we missed your call!", SRC) for i in range(N)))
            assert [r.status for r in results] == ["sent"] * N
            await until(lambda: len(dlrs) == N, what="every receipt")
            # each receipt names the text it reports on (matched before it was answered)
            assert sorted(d.msg_ref for d in dlrs) == sorted(f"m{i}" for i in range(N))
            assert {d.state for d in dlrs} == {"delivered"}
            loop = asyncio.get_running_loop()
            await until(lambda: t.stats["answers"] >= N, what="answers")
            stats = await loop.run_in_executor(None, smsc.stats)
            for _ in range(40):              # the SMSC counts what it has read so far
                if stats["deliver_sm_resp"] >= N:
                    break
                await asyncio.sleep(0.05)
                stats = await loop.run_in_executor(None, smsc.stats)
            assert stats["deliver_sm_resp"] == N                      # one answer per receipt
            assert [e["status"] for e in smsc.log_events("dlr_resp")] == [0] * N
            assert t.stats["answer_writes"] <= t.stats["answers"]
        finally:
            await t.stop()
    run(go())


def test_a_refused_receipt_is_answered_with_its_error_in_a_burst(smsc):
    """The store refusing receipts (on_dlr raises): each is answered with a temporary error
    (the SMSC keeps it to resend), none lost in the held answers."""
    async def go():
        seen = []

        def on_dlr(rep):
            seen.append(rep.msg_ref)
            if len(seen) % 2:
                raise RuntimeError("store unreachable")
        t = SmppTransport(SmppSettings(host="127.0.0.1", port=smsc.port, system_id="textback",
                                       password="secret", window=10, **FAST), on_dlr=on_dlr)
        await t.start()
        try:
            await t.wait_bound(5)
            await asyncio.gather(*(t.submit(f"r{i}", f"+1512555{3000 + i:04d}", "Hi", SRC) for i in range(10)))
            await until(lambda: len(seen) >= 10, what="receipts")
            statuses = []
            for _ in range(40):
                statuses = [e["status"] for e in smsc.log_events("dlr_resp")]
                if len(statuses) >= 10:
                    break
                await asyncio.sleep(0.05)
            assert sorted(statuses) == [0] * 5 + [0x64] * 5      # ESME_RX_T_APPN for the refused
        finally:
            await t.stop()
    run(go())
