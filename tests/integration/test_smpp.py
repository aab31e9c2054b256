"""The SMPP transport against a real SMSC (node-smpp, tests/peers/smsc) on 127.0.0.1.

What the SMSC received is read back from its /messages (decoded by node-smpp, an independent
SMPP implementation), its /stats and its JSON log. Two helpers sit between us and it where the
real peer cannot show a fault by itself: `Proxy` (plain TCP relay that can hold the SMSC's
answers, so submits are still outstanding when the SMSC drops the connection) and
`FakeSmsc` (speaks real SMPP through smpplib's codec: never answers enquire_link, sends an
unknown command, sends a UDH-concatenated reply)."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from pbx_textback.core.text.sms import encode_gsm7, split_text
from pbx_textback.smpp import InboundSms, SmppSettings, SmppTransport, message_ids_match
from pbx_textback.smpp import pdu as P

FAST = dict(tps=0, reconnect_min=0.05, reconnect_max=0.3, response_timeout=3.0,
            throttle_pause=0.05, enquire_link_interval=5.0, enquire_link_timeout=2.0)
SRC = "+15125550100"


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def call(fn, *args, **kw):
    """The control API is blocking HTTP: keep the loop (and the transport) running."""
    return await asyncio.to_thread(fn, *args, **kw)


async def until(pred, timeout=5.0, what="condition"):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        v = pred()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Harness:
    def __init__(self, port, host="127.0.0.1", on_mo=None, **kw):
        self.dlrs, self.mos, self.states = [], [], []
        self.mo_answer = True
        self.t = SmppTransport(
            SmppSettings(host=host, port=port, system_id="textback", password="secret",
                         **{**FAST, **kw}),
            on_dlr=self.dlrs.append, on_mo=on_mo or self._on_mo,
            on_state=lambda s, d: self.states.append(s))

    def _on_mo(self, msg: InboundSms) -> bool:
        self.mos.append(msg)
        return self.mo_answer

    async def __aenter__(self):
        await self.t.start()
        return self

    async def __aexit__(self, *exc):
        await self.t.stop()


def reassemble(msgs: list[dict]) -> str:
    return "".join(m["text"] for m in sorted(msgs, key=lambda m: (m["udh"] or {}).get("seq", 0)))


# ------------------------------------------------------------------ round trip, encoding

def test_round_trip_dlr_matched_to_the_submit(smsc):
    async def go():
        async with Harness(smsc.port) as h:
            await h.t.wait_bound(5)
            r = await h.t.submit("out-1", "+15125550123", "Sorry we missed your call!", SRC)
            assert r.status == "sent" and len(r.message_ids) == 1 and r.error is None
            await until(lambda: h.dlrs, what="DLR")
            d = h.dlrs[0]
            assert d.state == "delivered" and d.final and d.error is None
            assert message_ids_match(d.message_id, r.message_ids[0])
            assert d.msg_ref == "out-1" and d.submit_id == r.message_ids[0]
            (m,) = await call(smsc.messages)
            assert m["message_id"] == r.message_ids[0]
            assert m["text"] == "Sorry we missed your call!"
            assert (m["data_coding"], m["esm_class"], m["udh"]) == (0, 0, None)
            assert m["destination_addr"] == "15125550123" and m["source_addr"] == "15125550100"
            assert (m["source_addr_ton"], m["dest_addr_ton"], m["registered_delivery"]) == (1, 1, 1)
            stats = await call(smsc.stats)
            assert stats["deliver_sm_resp"] == 1                 # the DLR was answered
            assert [e["status"] for e in smsc.log_events("dlr_resp")] == [0]
    run(go())


@pytest.mark.parametrize("text, first_part", [
    ("a" * 152 + "€" + "b" * 40, "a" * 152),            # € would need septets 153-154: moves
    ("a" * 151 + "€" + "b" * 40, "a" * 151 + "€"),      # € fills septets 152-153 exactly
], ids=["euro-moves-to-part-2", "euro-ends-part-1"])
def test_long_gsm_text_euro_at_the_part_boundary(smsc, text, first_part):
    async def go():
        async with Harness(smsc.port) as h:
            r1 = await h.t.submit("out-1", "15125550123", text, SRC)
            r2 = await h.t.submit("out-2", "15125550123", text, SRC)
            assert r1.status == r2.status == "sent" and r1.parts == 2 and len(r1.message_ids) == 2
            msgs = await call(smsc.messages)
            assert len(msgs) == 4
            one = [m for m in msgs if m["message_id"] in r1.message_ids]
            two = [m for m in msgs if m["message_id"] in r2.message_ids]
            for part in one + two:
                assert part["esm_class"] == 0x40 and part["data_coding"] == 0
                assert part["udh"]["total"] == 2
            assert sorted(p["udh"]["seq"] for p in one) == [1, 2]
            assert len({p["udh"]["ref"] for p in one}) == 1
            # a counter per destination: the next long text to that phone gets the next ref
            assert two[0]["udh"]["ref"] == (one[0]["udh"]["ref"] + 1) % 256
            first = next(p for p in one if p["udh"]["seq"] == 1)
            assert first["text"] == first_part
            assert reassemble(one) == text == reassemble(two)
    run(go())


def test_ucs2_emoji_at_the_part_boundary(smsc):
    # 66 UTF-16 units, then an emoji (a surrogate pair) that would straddle units 67-68
    text = "Ж" * 66 + "😀" + " Перезвоним вам " + "é" * 10
    async def go():
        async with Harness(smsc.port) as h:
            r = await h.t.submit("out-1", "15125550123", text, SRC)
            assert r.status == "sent" and r.parts == 2
            msgs = await call(smsc.messages)
            assert all(m["data_coding"] == 8 and m["esm_class"] == 0x40 for m in msgs)
            parts = sorted(msgs, key=lambda m: m["udh"]["seq"])
            assert parts[0]["text"] == "Ж" * 66
            assert parts[1]["text"].startswith("😀")               # whole, not two halves
            assert "\ufffd" not in reassemble(msgs) and reassemble(msgs) == text
    run(go())


def test_long_text_as_message_payload(smsc):
    text = "Thanks for calling Acme Plumbing. " * 8 + "€"
    async def go():
        async with Harness(smsc.port, long_mode="payload") as h:
            r = await h.t.submit("out-1", "15125550123", text, SRC)
            assert r.status == "sent" and len(r.message_ids) == 1
            (m,) = await call(smsc.messages)
            assert m["udh"] is None and m["esm_class"] == 0 and m["text"] == text
    run(go())


def test_undeliverable_dlr_is_failed(smsc):
    async def go():
        async with Harness(smsc.port) as h:
            r = await h.t.submit("out-9", "15125550000", "hello", SRC)
            assert r.status == "sent"
            await until(lambda: h.dlrs, what="DLR")
            (d,) = h.dlrs
            assert d.state == "failed" and d.final and "UNDELIV" in d.error and "err:001" in d.error
            assert d.msg_ref == "out-9"
    run(go())


# ------------------------------------------------------------------ callers' replies

@pytest.mark.parametrize("text, dc, want_dc", [
    ("Yes please call me back", None, 0),
    ("¿Mañana? {ok} €5", None, 0),                      # GSM incl. extension chars
    ("Да, перезвоните 😀", None, 8),
    ("Café crème à 10h", 3, 3),                         # Latin-1
])
def test_mo_reply_reaches_on_mo(smsc, text, dc, want_dc):
    async def go():
        async with Harness(smsc.port) as h:
            await h.t.wait_bound(5)
            resp = await call(smsc.mo, "15125550123", "15125550100", text, dc)
            assert resp["queued"] == 1 and resp["data_coding"] == want_dc
            await until(lambda: h.mos, what="MO")
            (m,) = h.mos
            assert (m.source, m.dest, m.text, m.data_coding) == \
                ("15125550123", "15125550100", text, want_dc)
            await until(lambda: smsc.log_events("mo_resp"), what="mo_resp")
            assert [e["status"] for e in smsc.log_events("mo_resp")] == [0]
    run(go())


def test_mo_not_stored_gets_a_temporary_error_then_is_taken_on_resend(smsc):
    async def go():
        async with Harness(smsc.port) as h:
            await h.t.wait_bound(5)
            h.mo_answer = False                              # the store cannot take it
            await call(smsc.mo, "15125550123", "15125550100", "call me at 5")
            await until(lambda: smsc.log_events("mo_resp"), what="mo_resp")
            assert [e["status"] for e in smsc.log_events("mo_resp")] == [P.ESME_RX_T_APPN]
            h.mo_answer = True                               # the SMSC delivers it again
            await call(smsc.mo, "15125550123", "15125550100", "call me at 5")
            await until(lambda: len(smsc.log_events("mo_resp")) == 2, what="2nd mo_resp")
            assert [e["status"] for e in smsc.log_events("mo_resp")] == [P.ESME_RX_T_APPN, 0]
            assert [m.text for m in h.mos] == ["call me at 5", "call me at 5"]
            assert h.t.stats["mo"] == 1 and h.t.stats["mo_refused"] == 1
    run(go())


def test_on_mo_raising_is_a_temporary_error_too(smsc):
    def boom(msg):
        raise RuntimeError("database is locked")

    async def go():
        async with Harness(smsc.port, on_mo=boom) as h:
            await h.t.wait_bound(5)
            await call(smsc.mo, "15125550123", "15125550100", "hello?")
            await until(lambda: smsc.log_events("mo_resp"), what="mo_resp")
            assert [e["status"] for e in smsc.log_events("mo_resp")] == [P.ESME_RX_T_APPN]
            assert h.t.state == "bound"
    run(go())


# ------------------------------------------------------------------ throttling, window

def test_throttled_submits_are_sent_exactly_once(smsc):
    async def go():
        async with Harness(smsc.port, window=5) as h:
            await h.t.wait_bound(5)
            await call(smsc.throttle, 3, 0x58)
            texts = [f"text number {i}" for i in range(6)]
            rs = await asyncio.gather(*(h.t.submit(f"o{i}", "15125550123", t, SRC)
                                        for i, t in enumerate(texts)))
            assert [r.status for r in rs] == ["sent"] * 6
            msgs = await call(smsc.messages)
            assert Counter(m["text"] for m in msgs) == Counter(texts)      # once each
            assert sorted(m["message_id"] for m in msgs) == sorted(i for r in rs for i in r.message_ids)
            assert len(smsc.log_events("submit_sm_throttled")) == 3
            assert h.t.stats["throttled"] == 3 and h.t.stats["submit_sm"] == 9
    run(go())


def test_queue_full_then_permanent_error(smsc):
    async def go():
        async with Harness(smsc.port, window=1) as h:
            await h.t.wait_bound(5)
            await call(smsc.throttle, 2, 0x14)               # ESME_RMSGQFUL: paused, resent
            r = await h.t.submit("o1", "15125550123", "queued", SRC)
            assert r.status == "sent"
            await call(smsc.throttle, 1, 0x0B)               # invalid destination: permanent
            r = await h.t.submit("o2", "15125550123", "bad number", SRC)
            assert r.status == "failed" and r.command_status == 0x0B
            assert "ESME_RINVDSTADR" in r.error and r.retry_after is None
            await call(smsc.throttle, 1, 0x08)               # system error: the outbox retries
            r = await h.t.submit("o3", "15125550123", "later", SRC)
            assert r.status == "retry" and r.command_status == 0x08 and r.retry_after > 0
            assert [m["text"] for m in await call(smsc.messages)] == ["queued"]
    run(go())


class Proxy:
    """TCP relay client <-> SMSC. While `hold` is set, the SMSC's bytes are thrown away (our
    submits stay outstanding); when the SMSC side closes, the client side is cut."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.conns: list[dict] = []
        self.server = None

    def hold(self):
        """From now on, throw away what the SMSC sends on the connections open now (the next
        connection is relayed normally)."""
        for c in self.conns:
            c["hold"] = True

    async def start(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, cr, cw):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            cw.transport.abort()
            return
        conn = {"hold": False}
        self.conns.append(conn)

        async def pump(r, w, holdable):
            try:
                while data := await r.read(65536):
                    if not (holdable and conn["hold"]):
                        w.write(data)
            except OSError:
                pass
            finally:
                w.transport.abort()
        try:
            await asyncio.gather(pump(cr, uw, False), pump(ur, cw, True))
        except asyncio.CancelledError:
            pass

    async def close(self):
        self.server.close()


@pytest.mark.parametrize("retry_unknown", [False, True], ids=["default", "retry_unknown"])
def test_smsc_drops_the_connection_with_a_full_window(smsc, retry_unknown):
    async def go():
        proxy = await Proxy(smsc.port).start()
        async with Harness(proxy.port, window=4, retry_unknown=retry_unknown) as h:
            await h.t.wait_bound(5)
            proxy.hold()                          # the SMSC's answers go nowhere from now
            texts = [f"missed call text {i}" for i in range(10)]
            tasks = [asyncio.create_task(h.t.submit(f"o{i}", "15125550123", t, SRC))
                     for i, t in enumerate(texts)]
            # the window fills: 4 submit_sm reach the SMSC, their answers are held back
            await until(lambda: len(smsc.messages()) == 4, what="4 submits at the SMSC")
            await asyncio.sleep(0.2)              # their answers reach the proxy (and go nowhere)
            assert h.t.outstanding == 4
            await call(smsc.drop)
            rs = await asyncio.gather(*tasks)
            msgs = await call(smsc.messages)
            by_text = Counter(m["text"] for m in msgs)
            if not retry_unknown:
                assert [r.status for r in rs] == ["unknown"] * 4 + ["sent"] * 6
                assert all("connection lost" in r.error for r in rs[:4])
                assert [r.message_ids for r in rs[:4]] == [[]] * 4
                assert by_text == Counter(texts)              # nobody got two, nobody none
                assert h.t.stats["unknown"] == 4
            else:
                # the admin's choice: the unknown ones are sent again; they had arrived, so
                # those 4 phones get the text twice (which is why this is off by default)
                assert [r.status for r in rs] == ["sent"] * 10
                assert by_text == Counter(texts + texts[:4])
                assert h.t.stats["resubmitted_unknown"] == 4
            sent_ids = {i for r in rs for i in r.message_ids}
            assert sent_ids <= {m["message_id"] for m in msgs}
        await proxy.close()
    run(go(), timeout=30)


# ------------------------------------------------------------------ link faults

class FakeSmsc:
    """Speaks real SMPP through smpplib's codec, for what the real SMSC cannot be made to do:
    never answer enquire_link (or submit_sm), send an unknown command, send a caller's long
    reply as UDH-concatenated parts."""

    def __init__(self, answer_submit=True):
        self.answer_submit = answer_submit
        self.binds = 0
        self.enquire_links = 0
        self.submits = 0
        self.nacks: list[tuple[int, int]] = []
        self.deliver_resps: list[int] = []
        self.writer = None
        self.seq = P.Sequencer()

    async def start(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def deliver(self, **kw):
        self.writer.write(P.make("deliver_sm", self.seq, **kw).generate())

    async def _conn(self, r, w):
        try:
            while True:
                head = await r.readexactly(4)
                data = head + await r.readexactly(int.from_bytes(head, "big") - 4)
                p = P.parse(data)
                if p.command == "bind_transceiver":
                    self.binds += 1
                    self.writer = w
                    w.write(P.response("bind_transceiver_resp", p.sequence, system_id="fake"))
                    w.write(bytes.fromhex("00000010000000990000000000000777"))  # unknown id
                elif p.command == "enquire_link":
                    self.enquire_links += 1                  # ... and no answer
                elif p.command == "submit_sm":
                    self.submits += 1
                    if self.answer_submit:
                        w.write(P.response("submit_sm_resp", p.sequence, message_id="F1"))
                elif p.command == "generic_nack":
                    self.nacks.append((p.status, p.sequence))
                elif p.command == "deliver_sm_resp":
                    self.deliver_resps.append(p.status)
        except (asyncio.IncompleteReadError, ConnectionError):
            w.transport.abort()

    async def close(self):
        self.server.close()


def test_enquire_link_not_answered_drops_and_reconnects(caplog):
    async def go():
        peer = await FakeSmsc().start()
        async with Harness(peer.port, enquire_link_interval=0.2, enquire_link_timeout=0.3) as h:
            await until(lambda: peer.binds >= 2, timeout=5, what="a second bind")
            assert peer.enquire_links >= 1
            assert (P.ESME_RINVCMDID, 0x777) in peer.nacks
            assert "connecting" in h.states and "bound" in h.states
        await peer.close()
    with caplog.at_level(logging.WARNING, logger="pbx_textback.smpp"):
        run(go())
    assert "enquire_link not answered in 0.3s" in caplog.text


def test_enquire_link_answered_keeps_the_link(smsc):
    async def go():
        async with Harness(smsc.port, enquire_link_interval=0.1, enquire_link_timeout=0.5) as h:
            await h.t.wait_bound(5)
            await until(lambda: smsc.stats()["enquire_link"] >= 3, what="3 enquire_link")
            assert (await call(smsc.stats))["binds"] == 1 and h.t.state == "bound"
    run(go())


def test_smsc_down_at_start_up_then_up(smsc_factory):
    smsc = smsc_factory(start=False, dlr_delay_ms=50)

    async def go():
        async with Harness(smsc.port) as h:
            task = asyncio.create_task(h.t.submit("o1", "15125550123", "we missed you", SRC))
            await asyncio.sleep(0.5)
            assert h.t.state in ("down", "connecting") and not task.done()
            await call(smsc.start)
            r = await asyncio.wait_for(task, 10)
            assert r.status == "sent"
            assert [m["text"] for m in await call(smsc.messages)] == ["we missed you"]
            assert h.states[-1] == "bound"
    run(go())


def test_smsc_unbind_is_answered_and_the_link_comes_back(smsc):
    async def go():
        async with Harness(smsc.port) as h:
            await h.t.wait_bound(5)
            await call(smsc.unbind)
            await until(lambda: smsc.stats()["binds"] == 2, what="rebind")
            assert (await call(smsc.stats))["unbind_resp"] == 1
            await h.t.wait_bound(5)
            r = await h.t.submit("o1", "15125550123", "after the unbind", SRC)
            assert r.status == "sent"
    run(go())


def test_bind_refused_is_bind_failed_and_loud(smsc_factory, caplog):
    smsc = smsc_factory(system_id="textback", password="right")

    async def go():
        async with Harness(smsc.port) as h:                  # password "secret": wrong
            await until(lambda: h.t.state == "bind-failed", what="bind-failed")
            assert h.states == ["connecting", "bind-failed"]
    with caplog.at_level(logging.ERROR, logger="pbx_textback.smpp"):
        run(go())
    assert "ESME_RBINDFAIL (0x0D)" in caplog.text and "system_id='textback'" in caplog.text
    assert smsc.log_events("bind_rejected")


def test_transmitter_plus_receiver_binds(smsc):
    async def go():
        async with Harness(smsc.port, bind_mode="transmitter+receiver") as h:
            await h.t.wait_bound(5)
            assert len(h.t.links) == 2 and (await call(smsc.health))["sessions"] == 2
            r = await h.t.submit("o1", "15125550123", "two binds", SRC)
            assert r.status == "sent"
            await until(lambda: h.dlrs, what="DLR")
            assert h.dlrs[0].msg_ref == "o1"
            await call(smsc.mo, "15125550123", "15125550100", "reply")   # to the receiver
            await until(lambda: h.mos, what="MO")
            kinds = sorted(e["kind"] for e in smsc.log_events("bind"))
            assert kinds == ["receiver", "transmitter"]
    run(go())


def test_split_matches_core_sms(smsc):
    """The transport splits with core.text.sms.split_text: one implementation."""
    text = "Hi {name}, sorry we missed you — call us back any time. " * 4
    async def go():
        async with Harness(smsc.port) as h:
            r = await h.t.submit("o1", "15125550123", text, SRC)
            msgs = sorted(await call(smsc.messages), key=lambda m: m["udh"]["seq"])
            assert [m["text"] for m in msgs] == split_text(text)[1] and r.parts == len(msgs)
    run(go())


def test_long_reply_in_udh_parts_is_reassembled():
    async def go():
        peer = await FakeSmsc().start()
        async with Harness(peer.port) as h:
            await h.t.wait_bound(5)
            a, b = "Yes please call me back tomorrow, " * 4, "after 10 am. Thanks! €"
            common = dict(source_addr="15125550123", destination_addr="15125550100",
                          esm_class=0x40, data_coding=0)
            peer.deliver(short_message=P.concat_udh(0x42, 2, 2) + encode_gsm7(b), **common)
            await until(lambda: len(peer.deliver_resps) == 1, what="resp 1")
            assert h.mos == []                               # waits for the other part
            h.mo_answer = False                              # store down when it completes
            peer.deliver(short_message=P.concat_udh(0x42, 2, 1) + encode_gsm7(a), **common)
            await until(lambda: len(peer.deliver_resps) == 2, what="resp 2")
            assert peer.deliver_resps == [0, P.ESME_RX_T_APPN]
            h.mo_answer = True                               # the SMSC resends the last part
            peer.deliver(short_message=P.concat_udh(0x42, 2, 1) + encode_gsm7(a), **common)
            await until(lambda: len(peer.deliver_resps) == 3, what="resp 3")
            assert peer.deliver_resps[2] == 0
            assert [m.text for m in h.mos] == [a + b, a + b] and h.mos[-1].parts == 2
        await peer.close()
    run(go())


def test_submit_sm_never_answered_is_unknown():
    async def go():
        peer = await FakeSmsc(answer_submit=False).start()
        async with Harness(peer.port, response_timeout=0.3) as h:
            r = await h.t.submit("o1", "15125550123", "hello", SRC)
            assert r.status == "unknown" and "no submit_sm_resp in 0.3s" in r.error
            assert peer.submits == 1                          # and not sent again
        await peer.close()
    run(go())


def test_permanent_error_on_part_1_sends_no_more_parts(smsc):
    async def go():
        async with Harness(smsc.port, window=1) as h:
            await h.t.wait_bound(5)
            await call(smsc.throttle, 1, 0x0B)
            r = await h.t.submit("o1", "15125550123", "x" * 400, SRC)
            assert r.status == "failed" and r.parts == 3 and r.error.startswith("part 1/3: ")
            assert await call(smsc.messages) == []
    run(go())


def test_temporary_error_on_a_part_resends_that_part_only(smsc):
    async def go():
        async with Harness(smsc.port, window=1) as h:
            await h.t.wait_bound(5)
            await call(smsc.throttle, 1, 0x08)               # system error on part 1
            text = "y" * 200
            r = await h.t.submit("o1", "15125550123", text, SRC)
            assert r.status == "sent" and len(r.message_ids) == 2
            msgs = await call(smsc.messages)
            assert sorted(m["udh"]["seq"] for m in msgs) == [1, 2] and reassemble(msgs) == text
    run(go())


def test_stop_with_queued_submits_returns_retry(smsc_factory):
    smsc = smsc_factory(start=False)                          # nothing listens there

    async def go():
        h = Harness(smsc.port)
        await h.t.start()
        task = asyncio.create_task(h.t.submit("o1", "15125550123", "hello", SRC))
        await asyncio.sleep(0.2)
        await h.t.stop()
        r = await task
        assert r.status == "retry" and "stopped before sending" in r.error
        assert h.t.state == "down"
    run(go())
