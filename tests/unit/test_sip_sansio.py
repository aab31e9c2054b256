"""SIP MESSAGE transport, sans-IO parts and the server side fed datagrams directly; the client
transaction timers against an in-process UDP responder (Kamailio covers the real exchange in
tests/integration/test_sip_message.py)."""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import random
import socket
import time
from types import SimpleNamespace as NS

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pbx_textback.sip import message as sm
from pbx_textback.sip.outgoing import next_retransmit
from pbx_textback.sip.message import (InboundSms, SipMessageTransport, SipSettings, StreamFramer,
                                      build_response, choose_challenge, digest_authorization,
                                      parse_challenge, parse_message, parse_nameaddr, parse_uri,
                                      parse_via, split_body)

REQ = (b"MESSAGE sip:+15125550100@pbx.example.com SIP/2.0\r\n"
       b"Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK776asdhds;rport\r\n"
       b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKold\r\n"
       b"Max-Forwards: 69\r\n"
       b'From: "Jane" <sip:%2B15125550123@carrier.example;user=phone>;tag=49583\r\n'
       b"To: <sip:+15125550100@pbx.example.com>\r\n"
       b"Call-ID: asd88asd77a@203.0.113.5\r\n"
       b"CSeq: 1 MESSAGE\r\n"
       b"Content-Type: text/plain;charset=UTF-8\r\n"
       b"Content-Length: 21\r\n\r\n" + "Yes please call ✓!!".encode())

COMPACT_REQ = (b"MESSAGE sip:desk@127.0.0.1:5070 SIP/2.0\r\n"
               b"v: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKc1, SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKc0\r\n"
               b"f: sip:+15125550123@127.0.0.1\r\n ;tag=abc\r\n"
               b"t: <sip:+15125550100@127.0.0.1>\r\n"
               b"i: compact-1\r\n"
               b"CSeq: 7 MESSAGE\r\n"
               b"c: text/plain\r\n"
               b"l: 5\r\n\r\nhello")


# -- parsing -----------------------------------------------------------------------------------

def test_parse_request():
    m = parse_message(REQ)
    assert m.is_request and m.method == "MESSAGE" and m.uri == "sip:+15125550100@pbx.example.com"
    assert m.call_id == "asd88asd77a@203.0.113.5" and m.cseq == (1, "MESSAGE")
    assert m.body.decode() == "Yes please call ✓!!" and not m.bad
    assert len(m.vias()) == 2 and parse_via(m.vias()[0]).branch == "z9hG4bK776asdhds"
    assert sm.uri_user(m.get("from")) == "+15125550123"          # %2B decoded, params dropped
    assert parse_nameaddr(m.get("from"))[2]["tag"] == "49583"


def test_parse_compact_forms_folding_and_comma_vias():
    m = parse_message(COMPACT_REQ)
    assert m.get("from") == "sip:+15125550123@127.0.0.1 ;tag=abc"    # folded line joined
    assert m.get("content-type") == "text/plain" and m.call_id == "compact-1"
    assert [parse_via(v).host for v in m.vias()] == ["127.0.0.1", "10.1.1.1"]
    assert sm.uri_user(m.get("from")) == "+15125550123"
    assert parse_nameaddr(m.get("from"))[2]["tag"] == "abc"
    assert m.body == b"hello"


def test_parse_response_and_lf_only_and_short_body():
    r = parse_message(b"SIP/2.0 503 Service Unavailable\nv: SIP/2.0/UDP h;branch=z9hG4bKx\n"
                      b"CSeq: 2 MESSAGE\nRetry-After: 17 (maintenance);duration=60\n\n")
    assert not r.is_request and r.status == 503 and r.method == "MESSAGE"
    assert sm.parse_retry_after(r.get("retry-after")) == 17.0
    short = parse_message(REQ.replace(b"Content-Length: 21", b"Content-Length: 99"))
    assert short.bad.startswith("Content-Length 99")


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n", b"hello", b"GET / HTTP/1.1\r\n\r\n", b"SIP/2.0 999 X\r\n\r\n",
                                  b"SIP/2.0 2x0 OK\r\n\r\n", b"MESSAGE  SIP/2.0\r\n\r\n", b"\xff\xfe\x00",
                                  b"MESSAGE sip:a SIP/2.0\r\nContent-Length: \xd9\xa3\r\n\r\n",
                                  b"MESSAGE sip:a SIP/2.0\r\nCSeq: \xc2\xb2 MESSAGE\r\n\r\n"])
def test_parse_garbage(data):
    m = parse_message(data)
    assert m is None or isinstance(m, sm.SipMessage)
    if m is not None:
        m.cseq, m.vias(), m.call_id                               # accessors never raise either


def test_uris():
    assert parse_uri("sip:+1512@[2001:db8::1]:5080;transport=tcp") == sm.Uri(
        "sip", "+1512", "2001:db8::1", 5080, {"transport": "tcp"})
    assert parse_uri("tel:+15125550123;phone-context=x").user == "+15125550123"
    assert parse_uri("sips:host.example").user == "" and parse_uri("mailto:x@y") is None
    assert parse_nameaddr('"A, <b>" <sip:x@y>;tag=1') == ("A, <b>", "sip:x@y", {"tag": "1"})


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_parser_never_raises(data):
    m = parse_message(data)
    if m is not None:
        m.cseq, m.vias(), m.get("from")


@settings(max_examples=300)
@given(st.data())
def test_fuzz_mutated_messages(data):
    base = bytearray(data.draw(st.sampled_from([REQ, COMPACT_REQ])))
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        i = data.draw(st.integers(0, max(0, len(base) - 1)))
        if op == "flip" and base:
            base[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del base[i:i + data.draw(st.integers(1, 40))]
        elif op == "insert":
            base[i:i] = data.draw(st.sampled_from([b"\r\n", b":", b";", b"<", b'"', b",", b" ", b"\x00", b"\r\n\r\n"]))
        else:
            base[i:i] = base[i:i + 30]
    m = parse_message(bytes(base))
    if m is not None:
        m.cseq, m.vias(), sm.uri_user(m.get("from")), [parse_via(v) for v in m.vias()]


# -- stream framing ----------------------------------------------------------------------------

def test_framer_random_chunks_and_keepalive():
    stream = b"\r\n\r\n" + REQ + COMPACT_REQ + b"\r\n\r\n" + REQ
    for seed in range(20):
        rnd = random.Random(seed)
        f = StreamFramer()
        events, i = [], 0
        while i < len(stream):
            n = rnd.randint(1, 50)
            events += f.feed(stream[i:i + n])
            i += n
        kinds = [k for k, _ in events]
        assert kinds == ["ping", "message", "message", "ping", "message"], (seed, kinds)
        assert [e[1].call_id for e in events if e[0] == "message"] == ["asd88asd77a@203.0.113.5", "compact-1",
                                                                         "asd88asd77a@203.0.113.5"]


def test_framer_needs_content_length():
    f = StreamFramer()
    assert f.feed(b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nbody") == [("error", "no Content-Length on a stream")]
    assert f.feed(REQ) == []                                          # broken stays broken


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_fuzz_framer_never_raises(chunks):
    f = StreamFramer()
    for c in chunks:
        f.feed(c)


# -- digest ------------------------------------------------------------------------------------

def test_digest_rfc2617_vector():
    ch = parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                         'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    v = digest_authorization(ch, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in v
    assert "qop=auth," in v and "nc=00000001" in v and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in v


def test_digest_rfc7616_sha256_vector_and_choice():
    values = ['Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
              'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
              'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
              'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"']
    cn = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    sha = digest_authorization(choose_challenge(values), "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce=cn)
    assert 'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"' in sha
    md5 = digest_authorization(parse_challenge(values[1]), "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce=cn)
    assert 'response="8ca523f5e9506fed4657c9700eebdbec"' in md5
    assert choose_challenge(values, realm="other") is None
    assert choose_challenge(['Digest nonce="n", algorithm=SHA-512-256', "Basic realm=x"]) is None


def test_digest_no_qop_rfc2069():
    ch = parse_challenge('Digest realm="r", nonce="n\\"q"')
    assert ch["nonce"] == 'n"q'
    v = digest_authorization(ch, "MESSAGE", "sip:a@b", "u", "p")
    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(b"MESSAGE:sip:a@b").hexdigest()
    expect = hashlib.md5((ha1 + ':n"q:' + ha2).encode()).hexdigest()
    assert f'response="{expect}"' in v
    assert "qop" not in v and 'nonce="n\\"q"' in v


# -- long bodies -------------------------------------------------------------------------------

@settings(max_examples=300)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=600), st.integers(16, 200))
def test_split_body_property(text, limit):
    parts = split_body(text, limit)
    assert "".join(parts) == text
    assert all(len(p.encode("utf-8")) <= limit for p in parts)
    assert all(parts)


def test_split_body_prefers_spaces_and_keeps_emoji_whole():
    text = "word " * 50
    parts = split_body(text, 64)
    assert all(p.endswith(" ") for p in parts[:-1])
    family = "👨\u200d👩\u200d👧"              # a ZWJ sequence
    text = "x" * 10 + family * 5
    for limit in range(18, 40):                 # one family is 18 bytes
        for p in split_body(text, limit)[:-1]:
            assert not p.endswith("\u200d") and not p.endswith("👨\u200d")
    accent = "e\u0301" * 30                   # combining acute
    for p in split_body(accent, 17):
        assert not p.startswith("\u0301")


# -- building responses ------------------------------------------------------------------------

def test_build_response_copies_and_stamps():
    req = parse_message(REQ)
    resp = parse_message(build_response(req, 200, "OK", to_tag="t1", received="198.51.100.7", rport=40000))
    vias = resp.vias()
    assert "received=198.51.100.7" in vias[0] and "rport=40000" in vias[0]
    assert vias[1] == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKold"
    assert resp.get("to").endswith(";tag=t1") and resp.call_id == req.call_id
    assert resp.get("cseq") == "1 MESSAGE" and resp.get("from") == req.get("from")


# -- the server side, fed datagrams ------------------------------------------------------------

class FakeUdp:
    def __init__(self):
        self.sent: list[tuple[bytes, tuple]] = []

    def sendto(self, data, addr):
        self.sent.append((data, addr))

    def close(self):
        pass


def server(on_inbound=None, **kw) -> tuple[SipMessageTransport, FakeUdp]:
    t = SipMessageTransport(SipSettings(proxy_host="127.0.0.1", **kw), on_inbound, clock=lambda: 1000.0)
    t._udp = FakeUdp()
    return t, t._udp


def answers(udp):
    return [(parse_message(d), a) for d, a in udp.sent]


def test_inbound_message_stored_200_once_per_transaction():
    got: list[InboundSms] = []
    t, udp = server(lambda s: got.append(s) or True)
    t.handle_datagram(REQ, ("203.0.113.5", 40000))
    t.handle_datagram(REQ, ("203.0.113.5", 40000))                   # a retransmission
    assert got == [InboundSms("+15125550123", "+15125550100", "Yes please call ✓!!", 1000.0,
                              message_id="asd88asd77a@203.0.113.5", content_type="text/plain;charset=UTF-8")]
    (r1, a1), (r2, a2) = answers(udp)
    assert r1.status == r2.status == 200 and a1 == a2 == ("203.0.113.5", 40000)   # rport: source port
    assert r1.get("to") == r2.get("to")                               # same answer, same tag


def test_inbound_compact_and_via_port_without_rport():
    got = []
    t, udp = server(lambda s: got.append(s) or True)
    t.handle_datagram(COMPACT_REQ, ("127.0.0.1", 33333))
    assert got[0].source == "+15125550123" and got[0].dest == "+15125550100" and got[0].text == "hello"
    r, addr = answers(udp)[0]
    assert r.status == 200 and addr == ("127.0.0.1", 5062)           # no rport: the Via's port


@pytest.mark.parametrize("cb", [lambda s: False, lambda s: 1 / 0, None])
def test_inbound_not_stored_500(cb):
    t, udp = server(cb)
    t.handle_datagram(REQ, ("203.0.113.5", 40000))
    r, _ = answers(udp)[0]
    assert r.status == 500 and r.get("retry-after") == "30"


def test_options_405_400_415_and_cpim():
    got = []
    t, udp = server(lambda s: got.append(s) or True)
    opt = REQ.replace(b"MESSAGE sip", b"OPTIONS sip").replace(b"1 MESSAGE", b"1 OPTIONS").replace(b"z9hG4bK776", b"z9hG4bKopt")
    t.handle_datagram(opt, ("203.0.113.5", 40000))
    inv = REQ.replace(b"MESSAGE sip", b"INVITE sip").replace(b"1 MESSAGE", b"1 INVITE").replace(b"z9hG4bK776", b"z9hG4bKinv")
    t.handle_datagram(inv, ("203.0.113.5", 40000))
    nocid = REQ.replace(b"Call-ID: asd88asd77a@203.0.113.5\r\n", b"").replace(b"z9hG4bK776", b"z9hG4bKnocid")
    t.handle_datagram(nocid, ("203.0.113.5", 40000))
    html = REQ.replace(b"text/plain;charset=UTF-8", b"text/html").replace(b"z9hG4bK776", b"z9hG4bKhtml")
    t.handle_datagram(html, ("203.0.113.5", 40000))
    cpim_body = (b"From: <sip:+15125550123@x>\r\nTo: <sip:+15125550100@y>\r\n\r\n"
                 b"Content-Type: text/plain;charset=utf-8\r\n\r\nvia cpim \xe2\x9c\x93")
    cpim = (REQ.split(b"Content-Type:")[0].replace(b"z9hG4bK776", b"z9hG4bKcpim")
            + b"Content-Type: message/cpim\r\nContent-Length: %d\r\n\r\n" % len(cpim_body) + cpim_body)
    t.handle_datagram(cpim, ("203.0.113.5", 40000))
    t.handle_datagram(b"\r\n\r\n", ("203.0.113.5", 40000))           # keep-alive: no answer
    assert [r.status for r, _ in answers(udp)] == [200, 405, 400, 415, 200]
    assert answers(udp)[0][0].get("allow") == "MESSAGE, OPTIONS"
    assert [g.text for g in got] == ["via cpim ✓"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=1500),
                 st.builds(lambda a, b, c: REQ[:a] + b + REQ[a + c:], st.integers(0, len(REQ)),
                           st.binary(max_size=20), st.integers(0, 30))))
def test_fuzz_server_never_raises_and_answers_are_sip(data):
    t, udp = server(lambda s: True)
    t.handle_datagram(data, ("203.0.113.5", 40000))
    for d, _ in udp.sent:
        r = parse_message(d)
        assert r is not None and not r.is_request


# -- settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,key", [({"proxy_host": ""}, "proxy_host"), ({"transport": "tls"}, "transport"),
                                    ({"proxy_port": 0}, "proxy_port"), ({"oversize": "drop"}, "oversize"),
                                    ({"on_timeout": "failed"}, "on_timeout"), ({"timer_t1": 5.0}, "timer_t1"),
                                    ({"listen": ("udp", "sctp")}, "listen"), ({"password": "x"}, "username")])
def test_settings_errors_name_the_key(kw, key):
    base = {"proxy_host": "sip.example"}
    base.update(kw)
    with pytest.raises(ValueError, match=f"sip.{key}"):
        SipSettings(**base)


# -- client transaction timers against an in-process responder ---------------------------------

class Responder(asyncio.DatagramProtocol):
    """Answers each request per a script: a list of (after_n_copies, [status...]) decisions."""

    def __init__(self, script):
        self.script = script            # fn(request SipMessage, copies_seen) -> list of (code, reason, extra)
        self.seen: list[tuple[float, bytes]] = []
        self.copies: dict[str, int] = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.seen.append((time.monotonic(), data))
        req = parse_message(data)
        key = parse_via(req.vias()[0]).branch
        self.copies[key] = self.copies.get(key, 0) + 1
        for code, reason, extra in self.script(req, self.copies[key]):
            self.transport.sendto(build_response(req, code, reason, to_tag="r", extra=extra), addr)


async def with_responder(script, body="hi", **kw):
    loop = asyncio.get_running_loop()
    tr, proto = await loop.create_datagram_endpoint(lambda: Responder(script), local_addr=("127.0.0.1", 0))
    port = tr.get_extra_info("sockname")[1]
    s = dict(proxy_host="127.0.0.1", proxy_port=port, local_port=0, listen=("udp",), timer_t1=0.02,
             timer_t2=0.08, timeout=1.28)
    s.update(kw)
    t = SipMessageTransport(SipSettings(**s))
    await t.start()
    try:
        t0 = time.monotonic()
        res = await t.send(NS(id=1, peer="+15125550123", line="+15125550100", body=body))
        return res, proto, time.monotonic() - t0
    finally:
        await t.stop()
        tr.close()


def test_timer_e_schedule_doubles_from_t1_to_t2():
    intervals, i = [], 0.5
    for _ in range(6):
        intervals.append(i)
        i = next_retransmit(i, proceeding=False, t2=4.0)
    assert intervals == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert next_retransmit(0.5, proceeding=True, t2=4.0) == 4.0          # after a 1xx: every T2


def test_timer_e_retransmits_then_timer_f_unknown():
    res, proto, took = asyncio.run(with_responder(lambda req, n: []))
    assert res.status == "unknown" and "Timer F" in res.error and res.transport_id
    assert took >= 1.27                                   # Timer F (1.28 s) never ends it early
    times = [t for t, _ in proto.seen]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # T1=0.02 doubling to T2=0.08: timers never fire early, a loaded machine only makes them
    # late (so fewer sends), hence lower bounds only
    wanted = [0.02, 0.04] + [0.08] * 20
    assert all(g >= w - 0.005 for g, w in zip(gaps[:-1], wanted))
    assert 3 <= len(times) <= 19                          # 1 + at most 17 retransmits in 1.28 s
    assert len({d for _, d in proto.seen}) == 1                               # same bytes each time


def test_timeout_can_be_retry():
    res, _, _ = asyncio.run(with_responder(lambda req, n: [], timeout=0.2, on_timeout="retry"))
    assert res.status == "retry"


def test_provisional_then_final_after_retransmit():
    def script(req, n):
        return [(100, "Trying", [])] if n == 1 else [(200, "OK", [])]
    res, proto, _ = asyncio.run(with_responder(script))
    assert res.status == "sent" and len(proto.seen) == 2
    gap = proto.seen[1][0] - proto.seen[0][0]
    assert gap < 0.07                                      # Timer E still runs in Proceeding (non-INVITE)


@pytest.mark.parametrize("code,reason,extra,status,after", [
    (503, "Service Unavailable", [("Retry-After", "7")], "retry", 7.0),
    (480, "Temporarily Unavailable", [], "retry", 0.0),
    (408, "Request Timeout", [], "retry", 0.0),
    (486, "Busy Here", [], "failed", 0.0),
    (302, "Moved Temporarily", [], "failed", 0.0),
    (603, "Decline", [], "failed", 0.0),
    (202, "Accepted", [], "sent", 0.0),
])
def test_final_answers(code, reason, extra, status, after):
    res, _, _ = asyncio.run(with_responder(lambda req, n: [(code, reason, extra)]))
    assert res.status == status and res.retry_after == after
    if status == "failed":
        assert res.error == f"SIP {code} {reason}"


def test_auth_challenge_then_once_only():
    calls = []

    def script(req, n):
        calls.append(req)
        if req.get("authorization"):
            return [(200, "OK", [])]
        return [(401, "Unauthorized", [("WWW-Authenticate", 'Digest realm="r", nonce="abc", qop="auth"')])]
    res, _, _ = asyncio.run(with_responder(script, username="u", password="p"))
    assert res.status == "sent"
    first, second = calls
    assert first.cseq == (1, "MESSAGE") and second.cseq == (2, "MESSAGE")
    assert first.call_id == second.call_id and parse_via(first.vias()[0]).branch != parse_via(second.vias()[0]).branch
    auth = parse_challenge(second.get("authorization"))
    assert auth["username"] == "u" and auth["uri"] == second.uri and auth["qop"] == "auth"

    res, _, _ = asyncio.run(with_responder(
        lambda req, n: [(407, "Proxy Authentication Required", [("Proxy-Authenticate", 'Digest realm="r", nonce="n"')])],
        username="u", password="p"))
    assert res.status == "failed" and "rejected" in res.error
    res, _, _ = asyncio.run(with_responder(lambda req, n: [(401, "Unauthorized", [])]))
    assert res.status == "failed" and "username and password" in res.error


def test_request_headers():
    seen = []
    res, _, _ = asyncio.run(with_responder(lambda req, n: seen.append(req) or [(200, "OK", [])],
                                           body="Grüße ✓", from_domain="pbx.example.com"))
    req = seen[0]
    assert req.uri.startswith("sip:+15125550123@127.0.0.1:")
    assert req.get("from").startswith("<sip:+15125550100@pbx.example.com>;tag=")
    assert req.get("to") == f"<{req.uri}>" and req.get("max-forwards") == "70"
    v = parse_via(req.vias()[0])
    assert v.branch.startswith("z9hG4bK") and "rport" in v.params and v.transport == "UDP"
    assert req.get("content-type") == "text/plain;charset=UTF-8" and req.body == "Grüße ✓".encode()
    assert res.transport_id == req.call_id


def test_oversize_split_over_udp_when_tcp_refused():
    seen = []
    body = ("Grüße from Acme, we missed your call ✓ " * 60).strip()
    res, _, _ = asyncio.run(with_responder(lambda req, n: seen.append(req) or [(200, "OK", [])], body=body))
    assert res.status == "sent" and len(seen) >= 2
    assert "".join(r.body.decode() for r in seen) == body
    assert all(len(d) <= 1300 for d in [build_response(r, 200, "OK") for r in seen])   # sanity
    assert res.transport_id == ",".join(r.call_id for r in seen)


def test_oversize_split_later_part_failing_is_unknown():
    seen = []

    def script(req, n):
        seen.append(req)
        return [(200, "OK", [])] if len(seen) == 1 else [(404, "Not Found", [])]
    res, _, _ = asyncio.run(with_responder(script, body="x " * 1500, oversize="split"))
    assert res.status == "unknown" and "part 2/" in res.error and "parts 1-1 were delivered" in res.error


def test_requests_from_elsewhere_403():
    got = []
    t, udp = server(lambda s: got.append(s) or True)
    t.server.allowed = [__import__("ipaddress").ip_network("198.51.100.0/24")]
    t.handle_datagram(REQ, ("203.0.113.5", 40000))
    t.handle_datagram(REQ.replace(b"z9hG4bK776", b"z9hG4bK777"), ("198.51.100.9", 40000))
    assert [r.status for r, _ in answers(udp)] == [403, 200] and len(got) == 1
    with pytest.raises(ValueError, match="sip.allow_from"):
        SipSettings(proxy_host="x", allow_from=("nope",))


class Colliding(SipMessageTransport):
    """The kernel's pick of a UDP port whose TCP twin is taken (a real TCP listener holds it)."""

    def __init__(self, settings, taken: int):
        super().__init__(settings)
        self.taken, self.tries = taken, 0

    async def _listen(self, host):
        self.tries += 1
        if self.tries > 1:
            return await super()._listen(host)
        asked = self.s
        self.s = dataclasses.replace(asked, local_port=self.taken)
        try:
            await super()._listen(host)
        finally:
            self.s = asked


def _udp_and_tcp_port(local_port: int):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]

    async def go():
        t = Colliding(SipSettings(proxy_host="127.0.0.1", proxy_port=9, local_host="127.0.0.1",
                                  local_port=local_port, listen=("udp", "tcp")), taken)
        try:
            await t.start()
            return (t.tries, t.local_port, t._udp.get_extra_info("sockname")[1],
                    t._tcp_server.sockets[0].getsockname()[1], taken)
        finally:
            await t.stop()
    try:
        return asyncio.run(go())
    finally:
        holder.close()


def test_any_port_asks_again_when_the_tcp_twin_is_taken():
    tries, port, udp, tcp, taken = _udp_and_tcp_port(0)
    assert tries == 2 and port == udp == tcp and port != taken


def test_a_set_port_taken_for_tcp_is_an_error():
    with pytest.raises(OSError) as e:
        _udp_and_tcp_port(5)       # any set port: Colliding binds the taken one first
    assert e.value.errno == errno.EADDRINUSE
