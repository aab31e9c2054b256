"""Our MESSAGE requests (sans-IO): the request bytes, the answer to a digest challenge, and
what a client transaction's end means for the outbox."""
from __future__ import annotations

import os
import urllib.parse

from ..outbox import SendResult
from .settings import SipSettings
from .wire import SipMessage, build_request, canon_name, choose_challenge, digest_authorization, \
    parse_retry_after

RETRY_CODES = frozenset({408, 480, 500, 503, 504})
CONTENT_TYPE = "text/plain;charset=UTF-8"


class Outcome:
    """How one client transaction ended."""
    __slots__ = ("response", "error", "kind")

    def __init__(self, response: SipMessage | None = None, error: str = "", kind: str = ""):
        self.response, self.error, self.kind = response, error, kind   # kind: timeout|connect|lost


def request_uris(s: SipSettings, msg) -> tuple[str, str, str]:
    """(Request-URI, To, From) for a text to msg.peer from msg.line."""
    dom = s.request_domain or (
        s.proxy_host if s.proxy_port == 5060 else f"{s.proxy_host}:{s.proxy_port}")
    peer = urllib.parse.quote(msg.peer or "", safe="+-_.!~*'()&=$,;?/")
    line = urllib.parse.quote(getattr(msg, "line", "") or s.username or "textback",
                              safe="+-_.!~*'()&=$,;?/")
    ruri = f"sip:{peer}@{dom}"
    return ruri, f"<sip:{peer}@{dom}>", f"<sip:{line}@{s.from_domain or s.proxy_host}>"


def sent_by(via_host: str, local_port: int) -> str:
    """host:port for our Via (an IPv6 address in brackets)."""
    h = via_host or "127.0.0.1"
    if ":" in h:
        h = f"[{h}]"
    return f"{h}:{local_port}"


def new_call_id(via_host: str) -> str:
    return f"{os.urandom(12).hex()}@{via_host or 'pbx-textback'}"


def build_message(s: SipSettings, msg, body: bytes, transport: str, via: str, cseq: int,
                  call_id: str, from_tag: str, branch: str,
                  auth: tuple[str, str] | None = None) -> bytes:
    """The MESSAGE request; `via` is our sent-by (host:port)."""
    ruri, to, frm = request_uris(s, msg)
    headers = [
        ("Via", f"SIP/2.0/{transport.upper()} {via};branch={branch};rport"),
        ("Max-Forwards", "70"),
        ("From", f"{frm};tag={from_tag}"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} MESSAGE"),
    ]
    if auth:
        headers.append(auth)
    headers += [("User-Agent", s.user_agent), ("Content-Type", CONTENT_TYPE)]
    return build_request("MESSAGE", ruri, headers, body)


def challenge_answer(r: SipMessage, s: SipSettings, msg, body: bytes
                     ) -> tuple[str, str] | SendResult:
    """The (Proxy-)Authorization header answering a 401/407, or the failed result when we
    cannot answer it."""
    if not s.username:
        return SendResult("failed", error=f"SIP {r.status} {r.reason}: the trunk wants "
                          "digest authentication: set sip username and password")
    hdr = "www-authenticate" if r.status == 401 else "proxy-authenticate"
    ch = choose_challenge(r.get_all(hdr), s.realm)
    if ch is None:
        return SendResult("failed", error=f"SIP {r.status} {r.reason}: no digest challenge "
                          f"we can answer (realm {s.realm or 'any'}, MD5/SHA-256): "
                          f"{'; '.join(r.get_all(hdr)) or 'no ' + canon_name(hdr)}")
    ruri = request_uris(s, msg)[0]
    value = digest_authorization(ch, "MESSAGE", ruri, s.username, s.password, body=body)
    return ("Authorization" if r.status == 401 else "Proxy-Authorization"), value


def next_retransmit(interval: float, proceeding: bool, t2: float) -> float:
    """Timer E's next interval over UDP (RFC 3261 17.1.2.2): it doubles from T1 up to T2, and
    is T2 once a provisional answer came."""
    return t2 if proceeding else min(interval * 2, t2)


def send_result(out: Outcome, call_id: str, on_timeout: str) -> SendResult:
    """What the outbox records for one transaction's end."""
    r = out.response
    if r is None:
        if out.kind in ("connect", "held"):     # nothing written
            return SendResult("retry", error=out.error)
        if out.kind == "timeout":
            return SendResult(on_timeout, transport_id=call_id, error=out.error)
        return SendResult("unknown", transport_id=call_id, error=out.error)
    what = f"SIP {r.status} {r.reason}".strip()
    if 200 <= r.status < 300:
        return SendResult("sent", call_id)
    if r.status in RETRY_CODES:
        return SendResult("retry", transport_id=call_id, error=what,
                          retry_after=parse_retry_after(r.get("retry-after")))
    return SendResult("failed", transport_id=call_id, error=what)
