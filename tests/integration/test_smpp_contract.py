"""The SMPP side of the sending contract (issue 10 findings 2, 8, 9, 10, 21) against the real
node-smpp SMSC: nothing waits in memory without a bound, the last look comes right before the
bytes, `unknown` only for a written submit, data_sm receipts, throughput under a steady quota,
named faults, and hostile SAR TLVs."""
from __future__ import annotations

import asyncio
import logging
import struct
import time

import pytest
from pbx_textback.smpp import pdu as P
from tests.integration.test_smpp import SRC, FakeSmsc, Harness, call, run, until

TO = "15125550123"


# ------------------------------------------------------------------ finding 2: bounded waits
def test_a_text_waiting_for_a_bind_comes_back_as_retry(smsc_factory):
    """The shipped queue_timeout (5 s): a text never written is handed back, not kept."""
    smsc = smsc_factory(start=False)                          # nothing listens there

    async def go():
        async with Harness(smsc.port) as h:
            t0 = time.monotonic()
            r = await h.t.submit("o1", TO, "hello", SRC)
            took = time.monotonic() - t0
            assert r.status == "retry" and "not written in 5s: not bound" in r.error, r
            assert 4.5 < took < 9
            assert h.t.stats["not_written"] == 1 and not h.t.submits.queue
    run(go(), timeout=15)


def test_stop_makes_every_waiting_send_return_retry_at_once(smsc):
    """window 1 and a frozen gateway: one text is on the wire, two wait for the slot. stop()
    hands the two back at once (retry) and only the written one can be unknown."""
    async def go():
        async with Harness(smsc.port, window=1, response_timeout=30) as h:
            await h.t.wait_bound(5)
            await call(smsc.hang, 5000)
            tasks = [asyncio.create_task(h.t.submit(f"o{i}", TO, f"text {i}", SRC)) for i in range(3)]
            await until(lambda: smsc.log_events("submit_sm_held"), what="the first submit")
            t0 = time.monotonic()
            stopper = asyncio.create_task(h.t.stop(grace=3.0))
            done, _ = await asyncio.wait(tasks[1:], timeout=1.0)
            assert len(done) == 2, "waiting sends did not return promptly on stop()"
            assert [t.result().status for t in tasks[1:]] == ["retry", "retry"]
            assert time.monotonic() - t0 < 1.0          # not after the 3 s grace
            await stopper
            assert tasks[0].result().status == "unknown"      # written, never answered
        assert len(smsc.log_events("submit_sm_held")) == 1    # only the first was written
    run(go())


def test_last_look_false_writes_nothing_and_returns_retry(smsc):
    async def go():
        async with Harness(smsc.port) as h:
            await h.t.wait_bound(5)
            looks = []
            r = await h.t.submit("o1", TO, "x" * 400, SRC, lambda: looks.append(1) or False)
            assert (r.status, r.error, looks) == ("retry", "held at the last look", [1])
            assert await call(smsc.messages) == []
    run(go())


def test_last_look_is_called_once_right_before_the_first_part_is_written(smsc):
    async def go():
        async with Harness(smsc.port) as h:
            await h.t.wait_bound(5)
            seen = []

            def last_look():
                seen.append(len(smsc.messages()))             # what the SMSC had at that instant
                return True
            r = await h.t.submit("o1", TO, "y" * 400, SRC, last_look)
            assert r.status == "sent" and r.parts == 3
            assert seen == [0]                                # once, before any part
            assert len(await call(smsc.messages)) == 3
    run(go())


def test_a_text_not_yet_bound_is_retry_and_a_written_one_unknown(smsc):
    """Only a submit written and never answered is `unknown`."""
    async def go():
        async with Harness(smsc.port, response_timeout=0.5) as h:
            await h.t.wait_bound(5)
            await call(smsc.hang, 3000)
            r = await h.t.submit("o1", TO, "frozen", SRC, lambda: True)
            assert r.status == "unknown" and "no submit_sm_resp" in r.error
    run(go())


# ------------------------------------------------------------------ finding 8: data_sm receipts
def test_data_sm_receipt_is_taken_and_matched(smsc):
    async def go():
        await call(smsc.dlr_mode, "data_sm")
        async with Harness(smsc.port) as h:
            r = await h.t.submit("o1", TO, "receipt by data_sm", SRC)
            assert r.status == "sent"
            await until(lambda: h.dlrs, what="the data_sm receipt")
            d = h.dlrs[0]
            assert (d.state, d.msg_ref) == ("delivered", "o1")
            await until(lambda: smsc.log_events("dlr_resp"), what="data_sm_resp")
            assert [(e["status"], e["via"]) for e in smsc.log_events("dlr_resp")] == [(0, "data_sm")]
    run(go())


# ------------------------------------------------------------------ finding 9: throughput
async def _pump(h, n: int, concurrency: int) -> tuple[float, list]:
    """n texts through submit(), `concurrency` at a time (as the outbox hands them over)."""
    sem = asyncio.Semaphore(concurrency)
    results = []

    async def one(i):
        async with sem:
            results.append(await h.t.submit(f"o{i}", f"1512555{i:04d}", f"text {i}", SRC))
    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.monotonic() - t0, results


@pytest.mark.parametrize("quota,tps", [(50, 0), (200, 800)])
def test_steady_quota_is_used_to_at_least_90_percent(smsc, quota, tps):
    """The gateway answers 0x58 beyond `quota` accepted per second; tps: the admin's cap above
    it (0 = none). Fed 20 at a time, as the outbox does, with the shipped queue_timeout."""
    n = quota * 4

    async def go():
        async with Harness(smsc.port, tps=tps, window=10, throttle_pause=1.0,
                           registered_delivery=False) as h:
            await h.t.wait_bound(5)
            await call(smsc.quota, quota)
            took, results = await _pump(h, n, 20)
            assert [r.status for r in results].count("sent") == n
            rate = n / took
            assert rate >= 0.9 * quota, f"{rate:.1f}/s against a quota of {quota}/s"
            msgs = await call(smsc.messages)
            assert len(msgs) == n and len({m["destination_addr"] for m in msgs}) == n
    run(go(), timeout=40)


# ------------------------------------------------------------------ finding 10: fault names
def test_refused_connection_is_named_as_such(smsc_factory, caplog):
    smsc = smsc_factory(start=False)

    async def go():
        async with Harness(smsc.port) as h:
            await until(lambda: h.states[-2:] == ["connecting", "down"], what="down")
    with caplog.at_level(logging.WARNING, logger="pbx_textback.smpp"):
        run(go())
    assert f"connection refused by 127.0.0.1:{smsc.port}" in caplog.text
    assert "system_id" not in caplog.text and "password" not in caplog.text


# ------------------------------------------------------------------ finding 21: SAR TLVs
def test_sar_part_numbers_out_of_range_neither_crash_nor_block(smsc):
    async def go():
        async with Harness(smsc.port) as h:
            await h.t.wait_bound(5)
            for seq in (5, 6):                                 # beyond a total of 2
                await call(smsc.mo, "15125550177", "15125550100", f"part {seq}",
                           sar={"ref": 7, "total": 2, "seq": seq})
            await call(smsc.mo, "15125550177", "15125550100", "zero", sar={"ref": 9, "total": 2, "seq": 0})
            await until(lambda: len(h.mos) == 3, what="three whole replies")
            assert [m.text for m in h.mos] == ["part 5", "part 6", "zero"]
            resps = await until(lambda: len(smsc.log_events("mo_resp")) == 3 and smsc.log_events("mo_resp"))
            assert {e["status"] for e in resps} == {0}
            assert len(smsc.log_events("bind")) == 1           # never dropped, never re-bound
            # and real SAR parts still join
            for seq, part in ((2, "world"), (1, "hello ")):
                await call(smsc.mo, "15125550177", "15125550100", part, sar={"ref": 10, "total": 2, "seq": seq})
            await until(lambda: len(h.mos) == 4, what="the joined reply")
            assert h.mos[-1].text == "hello world" and h.mos[-1].parts == 2
    run(go())


def _with_tlv(pdu: bytes, tag: int, value: bytes) -> bytes:
    """A PDU with one more TLV appended and its command_length fixed."""
    body = pdu + struct.pack(">HH", tag, len(value)) + value
    return struct.pack(">L", len(body)) + body[4:]


def test_sar_total_of_thirty_million_is_one_whole_reply_at_once():
    """node-smpp cannot encode a 4-octet sar_total_segments (a fuzzer's bytes); the loopback
    SMSC of test_smpp writes the real PDU with that TLV appended."""
    async def go():
        peer = await FakeSmsc().start()
        async with Harness(peer.port) as h:
            await h.t.wait_bound(5)
            for i, total in enumerate((30_000_000, 0xFFFFFFFF)):
                p = P.make("deliver_sm", peer.seq, source_addr="15125550177",
                           destination_addr="15125550100", esm_class=0, data_coding=0,
                           short_message=f"huge {i}".encode(), sar_msg_ref_num=3)
                t0 = time.monotonic()
                peer.writer.write(_with_tlv(p.generate(), 0x020E, total.to_bytes(4, "big")))
                await until(lambda: len(h.mos) == i + 1, what="the reply")
                assert time.monotonic() - t0 < 1.0
            assert [m.text for m in h.mos] == ["huge 0", "huge 1"]
            assert peer.deliver_resps == [0, 0] and len(h.t.inbound.parts) == 0
            assert h.t.state == "bound"
        await peer.close()
    run(go())
