"""How we answer a request the trunk sends us (sans-IO): which status, the caller's text to
store, and the server transactions that give a retransmitted request the same answer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .wire import SipMessage, Via, canon_name, message_text, parse_nameaddr, parse_uri, uri_user

ALLOW = "MESSAGE, OPTIONS"


@dataclass(frozen=True)
class InboundSms:
    """A caller's text that arrived by SIP MESSAGE."""
    source: str                # the From user: the caller's number as the trunk wrote it
    dest: str                  # the To user (else the Request-URI user): our line / DID
    text: str
    received_at: float
    transport: str = "sip"
    message_id: str = ""       # the Call-ID: the same id twice is the same message again
    content_type: str = ""


def judge(req: SipMessage, allowed: bool, clock: Callable[[], float]
          ) -> tuple[int, str, list[tuple[str, str]], InboundSms | None]:
    """(code, reason, extra headers, None) to answer now, or (0, "", [], sms): a caller's text
    to store first (200 if stored, 500 if not, so the sender delivers it again)."""
    if not allowed:
        return 403, "Forbidden", [], None
    missing = [h for h in ("from", "to", "call-id", "cseq") if not req.get(h)]
    if req.bad or missing or req.cseq[1] != req.method:
        why = req.bad or (f"missing {', '.join(canon_name(h) for h in missing)}" if missing
                          else "CSeq method does not match")
        return 400, "Bad Request", [("Warning", f'399 pbx-textback "{why}"')], None
    if req.method == "OPTIONS":
        return 200, "OK", [("Allow", ALLOW), ("Accept", "text/plain, message/cpim")], None
    if req.method in ("CANCEL", "BYE"):
        return 481, "Call/Transaction Does Not Exist", [], None
    if req.method != "MESSAGE":
        return 405, "Method Not Allowed", [("Allow", ALLOW)], None
    text, why = message_text(req)
    if why:
        return 415, "Unsupported Media Type", [("Accept", "text/plain, message/cpim")], None
    source = uri_user(req.get("from"))
    dest = uri_user(req.get("to"))
    if not dest:
        u = parse_uri(req.uri)
        dest = u.user if u else ""
    if text == "":
        return 200, "OK", [], None                   # nothing a person wrote: nothing to store
    return 0, "", [], InboundSms(source=source, dest=dest, text=text, received_at=clock(),
                                 message_id=req.call_id, content_type=req.get("content-type"))


class ServerTransactions:
    """RFC 3261 17.2: the answer each request got, kept 64*T1 so a retransmission gets the
    same one (and the caller's text is stored once)."""

    def __init__(self):
        self.answers: dict[tuple, tuple[float, bytes | None]] = {}
        self._last_sweep = 0.0

    @staticmethod
    def key(req: SipMessage, top: Via) -> tuple:
        if top.branch.startswith("z9hG4bK"):
            return (top.branch, top.host, top.port, req.method)
        return (req.call_id, req.get("cseq"), parse_nameaddr(req.get("from"))[2].get("tag", ""),
                req.method)

    def get(self, key: tuple, now: float) -> tuple[float, bytes | None] | None:
        self._expire(now)
        return self.answers.get(key)

    def put(self, key: tuple, expires: float, answer: bytes | None) -> None:
        self.answers[key] = (expires, answer)

    def _expire(self, now: float) -> None:
        if len(self.answers) > 256 or now - self._last_sweep > 5:
            self._last_sweep = now
            for k in [k for k, (exp, _) in self.answers.items() if exp < now]:
                del self.answers[k]
