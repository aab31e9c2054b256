"""The trunk's requests to us: each with a usable Via gets exactly one answer (the same one
again for a retransmission), and a caller's text is stored before it is answered 200."""
from __future__ import annotations

import ipaddress
import logging
import time
from typing import TYPE_CHECKING

from .answers import InboundSms, ServerTransactions, judge
from .wire import SipMessage, Via, build_response, new_tag, parse_via

if TYPE_CHECKING:
    from .message import SipMessageTransport

log = logging.getLogger("pbx_textback.sip")


class Server:
    """The server side of a SipMessageTransport; answers go out through its reply_raw."""

    def __init__(self, t: "SipMessageTransport"):
        self.t = t
        self.answered = ServerTransactions()
        self.allowed: list = []                  # trunk networks, set by start()

    def handle_request(self, req: SipMessage, addr: tuple[str, int], stream) -> None:
        vias = req.vias()
        top = parse_via(vias[0]) if vias else None
        if top is None:
            log.debug("request without a usable Via from %s: dropped", addr)
            return
        if req.method == "ACK":
            return
        key = ServerTransactions.key(req, top)
        now = time.monotonic()
        cached = self.answered.get(key, now)
        if cached is not None:
            if cached[1] is not None:
                self.t.reply_raw(cached[1], req, top, addr, stream)   # retransmission: same answer
            return
        try:
            resp = self._answer(req, top, addr, stream)
        except Exception:
            # every request gets an answer: without one the sender retransmits for 32 s and
            # gives up, and a STOP in it is lost; a 500 makes it try again later
            log.exception("SIP %s from %s: answered 500", req.method, addr[0])
            resp = build_response(req, 500, "Server Internal Error", to_tag=new_tag(),
                                  extra=[("Retry-After", "30")], received=addr[0],
                                  rport=addr[1] if "rport" in top.params else None)
            self.t.reply_raw(resp, req, top, addr, stream)
        self.answered.put(key, now + 64 * self.t.s.timer_t1 + 1.0, resp)

    def _answer(self, req: SipMessage, top: Via, addr, stream) -> bytes:
        allowed = self.allowed_source(addr[0])
        if not allowed:
            log.warning("SIP %s from %s refused (403): not the trunk; add it to sip.allow_from",
                        req.method, addr[0])
        code, reason, extra, sms = judge(req, allowed, self.t.clock)
        if sms is not None:
            if self._store(sms):
                code, reason, extra = 200, "OK", []
            else:
                code, reason, extra = 500, "Server Internal Error", [("Retry-After", "30")]
        data = build_response(req, code, reason, to_tag=new_tag(), extra=list(extra),
                              received=addr[0], rport=addr[1] if "rport" in top.params else None)
        self.t.reply_raw(data, req, top, addr, stream)
        return data

    def _store(self, sms: InboundSms) -> bool:
        """The caller's text to on_inbound; False: answer 500 so the sender tries again."""
        stored = False
        if self.t.on_inbound is None:
            log.error("SIP MESSAGE from %s to %s: no inbound handler, answered 500 (sender retries)",
                      sms.source, sms.dest)
        else:
            try:
                stored = bool(self.t.on_inbound(sms))
            except Exception:
                log.exception("storing the SIP MESSAGE from %s failed", sms.source)
        if stored:
            self.t.stats["inbound"] += 1
        else:
            self.t.stats["inbound_refused"] += 1
        return stored

    def allowed_source(self, ip: str) -> bool:
        if not self.allowed:                          # not started: nothing to compare with
            return True
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(a in net for net in self.allowed)
