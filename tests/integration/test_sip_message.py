"""SIP MESSAGE against a REAL Kamailio 5.6 (Debian's package, tests/peers/sip): texts out over
UDP and TCP with UTF-8 intact, 202/404/500, a caller's reply in (Kamailio's tm sends it),
OPTIONS, the digest challenge, a body over 1,300 bytes, and no answer at all (Timer F).

Skipped only when the kamailio binary is missing (./dev test installs it: tests/peers/needs-apt.txt)."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace as NS

import pytest

from pbx_textback.sip.message import InboundSms, SipMessageTransport, SipSettings
from tests.peers.sip import kamailio as kam

pytestmark = pytest.mark.skipif(kam.missing() is not None, reason=kam.missing() or "")

LINE, CALLER = "+15125550100", "+15125550123"
GREETING = "Grüße ✓ from Acme"


@pytest.fixture(scope="module")
def k():
    inst = kam.Kamailio().start()
    yield inst
    inst.close()


@pytest.fixture(scope="module")
def k_auth():
    inst = kam.Kamailio(auth=True).start()
    yield inst
    inst.close()


def settings(peer: kam.Kamailio, **kw) -> SipSettings:
    s = dict(proxy_host=peer.host, proxy_port=peer.port, local_port=0, timer_t1=0.05, timeout=3.2)
    s.update(kw)
    return SipSettings(**s)


async def sending(s: SipSettings, *msgs, on_inbound=None):
    t = SipMessageTransport(s, on_inbound)
    await t.start()
    try:
        return [await t.send(m) for m in msgs]
    finally:
        await t.stop()


def text(peer=CALLER, body=GREETING, id=1):
    return NS(id=id, peer=peer, line=LINE, body=body)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_message_out_utf8(k, transport):
    res, = asyncio.run(sending(settings(k, transport=transport, from_domain="pbx.example.com"), text()))
    assert res.status == "sent", res
    got = k.messages(res.transport_id)
    if not got:
        k.wait_lines(res.transport_id)
        got = k.messages(res.transport_id)
    assert got == [{"from": f"sip:{LINE}@pbx.example.com", "to": f"sip:{CALLER}@{k.host}:{k.port}",
                    "ctype": "text/plain;charset=UTF-8", "callid": res.transport_id, "proto": transport,
                    "body": GREETING}]


def test_answers_202_404_500(k):
    ok, nf, err = asyncio.run(sending(settings(k), text("accept202"), text("fail404"), text("fail500")))
    assert ok.status == "sent"
    assert (nf.status, nf.error) == ("failed", "SIP 404 Not Found")
    assert (err.status, err.error) == ("retry", "SIP 500 Server Internal Error")
    for r in (ok, nf, err):
        assert len(k.wait_lines(f"MESSAGE-IN .*callid={r.transport_id} ")) == 1    # once, no resend


def test_message_in_stored_200_and_refused_500(k):
    got: list[InboundSms] = []
    store_ok = {"v": True}

    def on_inbound(sms):
        got.append(sms)
        return store_ok["v"]

    async def main():
        t = SipMessageTransport(settings(k), on_inbound)
        await t.start()
        loop = asyncio.get_running_loop()
        uri = f"sip:textback@127.0.0.1:{t.local_port}"
        hdrs = [f"From: <sip:{CALLER}@127.0.0.1:{k.port}>;tag=k1", f"To: <{uri}>",
                "Content-Type: text/plain;charset=UTF-8"]
        try:
            out1 = await loop.run_in_executor(None, k.uac, "MESSAGE", uri, hdrs, "Yes, call me back ✓")
            store_ok["v"] = False
            out2 = await loop.run_in_executor(None, k.uac, "MESSAGE", uri, hdrs, "second try")
            out3 = await loop.run_in_executor(None, k.uac, "OPTIONS", uri,
                                              [f"From: <sip:k@127.0.0.1:{k.port}>;tag=k3", f"To: <{uri}>",
                                               "Content-Type: text/plain"])
            store_ok["v"] = True                 # over TCP: Kamailio connects to our listener
            out4 = await loop.run_in_executor(None, k.uac, "MESSAGE", uri + ";transport=tcp", hdrs, "over tcp")
            return out1, out2, out3, out4
        finally:
            await t.stop()

    out1, out2, out3, out4 = asyncio.run(main())
    assert "code: 200" in out1 and "code: 500" in out2 and "code: 200" in out3, (out1, out2, out3)
    assert "code: 200" in out4, out4
    assert [(g.source, g.dest, g.text) for g in got] == [(CALLER, "textback", "Yes, call me back ✓"),
                                                         (CALLER, "textback", "second try"),
                                                         (CALLER, "textback", "over tcp")]
    assert got[0].message_id and got[0].message_id != got[1].message_id


def test_auth_challenge(k_auth):
    good = settings(k_auth, username=kam.AUTH_USER, password=kam.AUTH_PASS)
    res, = asyncio.run(sending(good, text()))
    assert res.status == "sent", res
    cid = res.transport_id
    assert k_auth.wait_lines(f"AUTH-CHALLENGE callid={cid} cseq=1$")
    assert k_auth.wait_lines(f"AUTH-OK user=authuser callid={cid} cseq=2$")
    assert [m["body"] for m in k_auth.messages(cid)] == [GREETING]

    for tr in ("udp", "tcp"):                     # the same over TCP, and a realm filter that fits
        res, = asyncio.run(sending(settings(k_auth, transport=tr, username=kam.AUTH_USER,
                                            password=kam.AUTH_PASS, realm=kam.AUTH_REALM), text()))
        assert res.status == "sent", (tr, res)

    bad, = asyncio.run(sending(settings(k_auth, username=kam.AUTH_USER, password="wrong"), text()))
    assert bad.status == "failed" and "403" in bad.error
    none, = asyncio.run(sending(settings(k_auth), text()))
    assert none.status == "failed" and "username and password" in none.error
    other_realm, = asyncio.run(sending(settings(k_auth, username=kam.AUTH_USER, password=kam.AUTH_PASS,
                                                realm="elsewhere"), text()))
    assert other_realm.status == "failed" and "no digest challenge" in other_realm.error


LONG = " ".join(f"Grüße #{i} ✓ from Acme Plumbing, sorry we missed you." for i in range(40))


def test_over_1300_bytes_goes_tcp(k):
    assert len(LONG.encode()) > 1300
    res, = asyncio.run(sending(settings(k, transport="udp"), text(body=LONG)))
    assert res.status == "sent"
    k.wait_lines(res.transport_id)
    got = k.messages(res.transport_id)
    assert [(m["proto"], m["body"]) for m in got] == [("tcp", LONG)]


def test_over_1300_bytes_split_over_udp(k_auth):
    """Split mode (and with auth: each part is challenged and fits 1,300 bytes with its
    Authorization header)."""
    s = settings(k_auth, transport="udp", oversize="split", username=kam.AUTH_USER, password=kam.AUTH_PASS)
    res, = asyncio.run(sending(s, text(body=LONG)))
    assert res.status == "sent", res
    ids = res.transport_id.split(",")
    assert len(ids) >= 2
    parts = []
    for cid in ids:
        k_auth.wait_lines(f"MESSAGE-IN .*callid={cid} ")
        (m,) = k_auth.messages(cid)
        assert m["proto"] == "udp"
        parts.append(m["body"])
    assert "".join(parts) == LONG


def test_no_answer_timer_f():
    dead = kam.free_port()                       # nothing listens here (UDP or TCP)
    s = SipSettings(proxy_host="127.0.0.1", proxy_port=dead, local_port=0, timer_t1=0.05, timeout=0.8)
    t0 = time.monotonic()
    res, = asyncio.run(sending(s, text()))
    took = time.monotonic() - t0
    assert res.status == "unknown" and "Timer F" in res.error
    assert 0.75 <= took < 1.5
    res, = asyncio.run(sending(SipSettings(proxy_host="127.0.0.1", proxy_port=dead, local_port=0,
                                           timer_t1=0.05, timeout=0.8, on_timeout="retry"), text()))
    assert res.status == "retry"
    t0 = time.monotonic()
    res, = asyncio.run(sending(SipSettings(proxy_host="127.0.0.1", proxy_port=dead, local_port=0,
                                           transport="tcp", timeout=0.8), text()))
    assert res.status == "retry" and "TCP connect" in res.error and time.monotonic() - t0 < 0.5


class Look:
    """The outbox's last look as the transport sees it: a sync call right before the write."""

    def __init__(self, answer: bool):
        self.answer, self.calls = answer, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.answer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_last_look_saying_hold_writes_nothing(k, transport):
    """Issue 10 #7: the gate runs when the bytes would be written; 'no' means no byte leaves."""
    held = Look(False)

    async def go():
        t = SipMessageTransport(settings(k, transport=transport))
        await t.start()
        try:
            return await t.send(text(body="held by quiet hours"), held)
        finally:
            await t.stop()
    before = len(k.lines("MESSAGE-IN"))
    res = asyncio.run(go())
    assert res.status == "retry" and held.calls == 1
    time.sleep(0.3)
    assert len(k.lines("MESSAGE-IN")) == before


def test_last_look_is_asked_once_per_text_through_a_digest_challenge(k_auth):
    look = Look(True)

    async def go():
        t = SipMessageTransport(settings(k_auth, username=kam.AUTH_USER, password=kam.AUTH_PASS))
        await t.start()
        try:
            return await t.send(text(), look)
        finally:
            await t.stop()
    res = asyncio.run(go())
    assert res.status == "sent" and look.calls == 1
    assert k_auth.wait_lines(f"AUTH-OK user=authuser callid={res.transport_id} cseq=2$")


# -- finding 22: a MESSAGE whose charset Python cannot decode with is still answered and stored

def _inbound_server(k, got):
    def on_inbound(sms):
        got.append(sms)
        return True
    return SipMessageTransport(settings(k), on_inbound)


def test_stop_with_charset_idna_is_answered_and_stored(k):
    """Kamailio sends a caller's STOP with `charset=idna`: a codec Python has, but one that
    cannot decode with replacement. It used to raise inside the handler: no answer, STOP lost."""
    got: list[InboundSms] = []

    async def main():
        t = _inbound_server(k, got)
        await t.start()
        uri = f"sip:textback@127.0.0.1:{t.local_port}"
        hdrs = [f"From: <sip:{CALLER}@127.0.0.1:{k.port}>;tag=idna1", f"To: <{uri}>",
                "Content-Type: text/plain;charset=idna"]
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: k.uac("MESSAGE", uri, hdrs, "STOP", timeout=8))
        finally:
            await t.stop()

    out = asyncio.run(main())
    assert "code: 200" in out, out
    assert [(g.source, g.text) for g in got] == [(CALLER, "STOP")]


def test_stop_with_nul_in_charset_is_answered_and_stored(k):
    """A NUL in the charset (no SIP stack we can drive writes one: a plain UDP socket sends the
    datagram) used to raise ValueError in the handler: no answer."""
    got: list[InboundSms] = []

    async def main():
        t = _inbound_server(k, got)
        await t.start()
        loop = asyncio.get_running_loop()
        answers: asyncio.Queue = asyncio.Queue()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                answers.put_nowait(data)

        tr, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
        port = tr.get_extra_info("sockname")[1]
        req = (f"MESSAGE sip:textback@127.0.0.1:{t.local_port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnul1;rport\r\n"
               f"From: <sip:{CALLER}@127.0.0.1>;tag=nul1\r\nTo: <sip:textback@127.0.0.1>\r\n"
               f"Call-ID: nul-charset-1\r\nCSeq: 1 MESSAGE\r\n"
               f"Content-Type: text/plain;charset=utf\x00-8\r\nContent-Length: 4\r\n\r\nSTOP").encode()
        try:
            tr.sendto(req, ("127.0.0.1", t.local_port))
            return await asyncio.wait_for(answers.get(), 3)
        finally:
            tr.close()
            await t.stop()

    answer = asyncio.run(main())
    assert answer.startswith(b"SIP/2.0 200 "), answer[:80]
    assert [(g.source, g.text) for g in got] == [(CALLER, "STOP")]
