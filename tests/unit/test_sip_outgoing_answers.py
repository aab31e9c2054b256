"""The sans-IO halves of the SIP MESSAGE transport, used without a transport or a socket:
outgoing.py (our request, what its answer means) and answers.py (our answer to the trunk)."""
from __future__ import annotations

from types import SimpleNamespace as NS

from hypothesis import given, strategies as st

from pbx_textback.sip.answers import InboundSms, ServerTransactions, judge
from pbx_textback.sip.outgoing import (Outcome, build_message, challenge_answer, send_result,
                                       sent_by)
from pbx_textback.sip.settings import SipSettings
from pbx_textback.sip.wire import parse_challenge, parse_message, parse_via

S = SipSettings(proxy_host="sip.example", proxy_port=5080, from_domain="pbx.example")
REQ = (b"MESSAGE sip:+15125550100@pbx.example SIP/2.0\r\n"
       b"Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa1;rport\r\n"
       b"From: <sip:%2B15125550123@carrier.example>;tag=9\r\n"
       b"To: <sip:+15125550100@pbx.example>\r\n"
       b"Call-ID: c1@203.0.113.5\r\nCSeq: 1 MESSAGE\r\n"
       b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nSTOP!")


def test_the_request_we_build_parses_back_to_what_we_meant():
    msg = NS(peer="+15125550123", line="desk", body="")
    raw = build_message(S, msg, "Grüße ✓".encode(), "tcp", sent_by("2001:db8::1", 5070), 2,
                        "cid@x", "t1", "z9hG4bKb1", ("Authorization", "Digest x"))
    r = parse_message(raw)
    assert r.is_request and r.method == "MESSAGE" and r.uri == "sip:+15125550123@sip.example:5080"
    assert r.get("from") == "<sip:desk@pbx.example>;tag=t1" and r.cseq == (2, "MESSAGE")
    v = parse_via(r.vias()[0])
    assert (v.transport, v.host, v.port, v.branch) == ("TCP", "2001:db8::1", 5070, "z9hG4bKb1")
    assert r.get("authorization") == "Digest x" and r.body == "Grüße ✓".encode()


def test_a_challenge_without_credentials_fails_and_with_them_is_answered():
    chal = parse_message(b"SIP/2.0 407 Proxy Authentication Required\r\n"
                         b"Via: SIP/2.0/UDP a;branch=z9hG4bKx\r\n"
                         b'Proxy-Authenticate: Digest realm="t", nonce="n1", algorithm=MD5\r\n'
                         b"Content-Length: 0\r\n\r\n")
    msg = NS(peer="+15125550123", line="desk")
    failed = challenge_answer(chal, S, msg, b"hi")
    assert failed.status == "failed" and "set sip username and password" in failed.error
    name, value = challenge_answer(chal, SipSettings(proxy_host="sip.example", username="u",
                                                     password="p"), msg, b"hi")
    assert name == "Proxy-Authorization" and parse_challenge(value)["nonce"] == "n1"


@given(st.integers(100, 699), st.sampled_from(["", "connect", "held", "timeout", "lost"]))
def test_every_ending_is_one_outbox_result(code, kind):
    resp = parse_message(b"SIP/2.0 %d X\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\n"
                         b"Retry-After: 9\r\nContent-Length: 0\r\n\r\n" % code)
    r = send_result(Outcome(response=resp), "cid", "unknown")
    want = "sent" if 200 <= code < 300 else "retry" if code in (408, 480, 500, 503, 504) else "failed"
    assert r.status == want and (r.retry_after == 9.0) == (want == "retry")
    r = send_result(Outcome(error="e", kind=kind), "cid", "retry")
    assert r.status == {"connect": "retry", "held": "retry", "timeout": "retry"}.get(kind, "unknown")


def test_judge_stores_a_text_from_the_trunk_and_refuses_others():
    req = parse_message(REQ)
    code, _, _, sms = judge(req, True, lambda: 7.0)
    assert code == 0 and sms == InboundSms("+15125550123", "+15125550100", "STOP!", 7.0,
                                           message_id="c1@203.0.113.5", content_type="text/plain")
    assert judge(req, False, lambda: 7.0) == (403, "Forbidden", [], None)


def test_server_transactions_remember_an_answer_until_it_expires():
    req = parse_message(REQ)
    tx = ServerTransactions()
    key = tx.key(req, parse_via(req.vias()[0]))
    tx.put(key, 100.0, b"SIP/2.0 200 OK")
    assert tx.get(key, 50.0) == (100.0, b"SIP/2.0 200 OK")
    assert tx.get(key, 200.0) is None
