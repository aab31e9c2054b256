"""SIP MESSAGE (RFC 3428) straight to an SMS-capable SIP trunk: a small client and server over
asyncio, no SIP library.

The wire (parse, build, digest, body splitting; sans-IO) is in `wire.py`, our requests and
what their answers mean in `outgoing.py`, how we answer the trunk's requests in `answers.py`
(both sans-IO too), the server transactions in `server.py`, settings in `settings.py`; this
module is the socket side (sockets, client transactions and their timers) and re-exports
those names for its callers.

`SipMessageTransport` is the outbox transport (`name = "sip"`). It binds `local_port` on UDP and
TCP to receive callers' replies (MESSAGE -> `on_inbound(InboundSms) -> bool` -> 200 if stored,
500 if not so the sender delivers it again; OPTIONS -> 200; everything is answered; requests
from addresses other than the trunk's, or `allow_from`, get 403: a spoofed "STOP" must not
land in the store) and sends
`MESSAGE sip:<peer>@<proxy>` as a non-INVITE client transaction (RFC 3261 17.1.2):

- UDP: Timer E retransmits from T1 doubling to T2 (every T2 once a 1xx came), Timer F ends it.
- No final answer by Timer F -> "unknown" (settings.on_timeout). Over UDP a lost answer and a
  lost request look the same: the trunk may have delivered the text and only its 200 was lost,
  and a resend is a second text on the caller's phone (MESSAGE has no dedupe across
  transactions). The outbox's `unknown` state is made for this (shown to the admin, resent by
  their choice); `on_timeout="retry"` trades the duplicate risk for no manual step. A TCP
  connection that cannot be opened means nothing was sent -> "retry".
- 2xx -> sent (transport_id = Call-ID). 408/480/500/503/504 -> retry (Retry-After honoured);
  401/407 -> digest auth, resent once with CSeq+1 (a second challenge -> failed); every other
  3xx-6xx -> failed with the status and reason phrase.
- RFC 3261 18.1.1 / RFC 3428: a request over 1,300 bytes is not sent over UDP. `oversize="tcp"`
  sends it over TCP to the same proxy (and, if no TCP connection can be opened, splits it);
  `oversize="split"` sends consecutive MESSAGEs that each fit. When part 1 went and a later part
  did not, the result is "unknown" (resending would repeat part 1).
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import time
from typing import Callable

from ..outbox import SendResult
from .answers import ALLOW, InboundSms, ServerTransactions, judge  # noqa: F401
from .outgoing import (CONTENT_TYPE, RETRY_CODES, Outcome, build_message,  # noqa: F401
                       challenge_answer, new_call_id, next_retransmit, send_result, sent_by)
from .server import Server
from .settings import MAX_UDP_BYTES, SipSettings  # noqa: F401
from .wire import (COMPACT, MAX_MESSAGE_BYTES, SipMessage, StreamFramer, Uri, Via,  # noqa: F401
                   build_request, build_response, canon_name, choose_challenge, decode_body,
                   digest_authorization, message_text, new_branch, new_tag, parse_challenge,
                   parse_cseq, parse_message, parse_nameaddr, parse_retry_after, parse_uri,
                   parse_via, split_body, split_commas, uri_user)

log = logging.getLogger("pbx_textback.sip")


class _Tx:
    __slots__ = ("method", "future", "proceeding", "conn")

    def __init__(self, method: str, future: asyncio.Future, conn=None):
        self.method, self.future, self.proceeding, self.conn = method, future, False, conn


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: "SipMessageTransport"):
        self.owner = owner

    def datagram_received(self, data, addr):
        self.owner.handle_datagram(data, addr)

    def error_received(self, exc):
        log.debug("SIP UDP socket error: %s", exc)


class _Stream(asyncio.Protocol):
    """One TCP connection (accepted, or opened by us to the proxy)."""

    def __init__(self, owner: "SipMessageTransport", outbound_key=None):
        self.owner = owner
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer = ("", 0)
        self.outbound_key = outbound_key
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("", 0)
        self.owner._streams.add(self)

    def data_received(self, data):
        try:
            events = self.framer.feed(data)
        except Exception:                                   # never: the framer does not raise
            log.exception("SIP TCP framing")
            events = [("error", "framing bug")]
        for kind, obj in events:
            if kind == "ping":
                self.write(b"\r\n")                          # RFC 5626 pong
            elif kind == "message":
                self.owner.handle_message(obj, self.peer[:2], self)
            else:
                log.warning("SIP TCP from %s:%s: %s; closing", self.peer[0], self.peer[1], obj)
                self.close()
                break

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self):
        if self.transport is not None and not self.closed:
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        self.owner._stream_lost(self)


class SipMessageTransport:
    """RFC 3428 MESSAGE client and server. See the module docstring for the rules."""
    name = "sip"

    def __init__(self, settings: SipSettings, on_inbound: Callable[[InboundSms], bool] | None = None,
                 *, clock: Callable[[], float] = time.time):
        self.s = settings
        self.on_inbound = on_inbound
        self.clock = clock
        self.local_port = settings.local_port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.base_events.Server | None = None
        self._streams: set[_Stream] = set()
        self._out_conns: dict[tuple[str, int], _Stream] = {}
        self._conn_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._pending: dict[str, _Tx] = {}
        self._proxy_addr: tuple[str, int] | None = None
        self._via_host = ""
        self.stats = {"sent": 0, "retransmits": 0, "inbound": 0, "inbound_refused": 0}
        self.server = Server(self)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        host = self.s.local_host
        for attempt in range(20):
            try:
                await self._listen(host)
                break
            except OSError as e:
                # any port (0): the port the kernel gave UDP may be taken for TCP; ask again
                if self.s.local_port != 0 or e.errno != errno.EADDRINUSE or attempt == 19:
                    raise
        self._proxy_addr = await self._resolve(self.s.proxy_host, self.s.proxy_port)
        self.server.allowed = [ipaddress.ip_network(a, strict=False)
                               for a in (self.s.allow_from or (self._proxy_addr[0],))]
        self._via_host = self.s.advertised_host or self._pick_via_host()
        log.info("SIP MESSAGE on %s:%s (%s), trunk %s:%s over %s", host, self.local_port,
                 "+".join(self.s.listen) or "send only", self.s.proxy_host, self.s.proxy_port,
                 self.s.transport)

    async def _listen(self, host: str) -> None:
        """UDP and TCP on one port (a trunk answers to the port in our Via)."""
        loop = asyncio.get_running_loop()
        if "udp" in self.s.listen or self.s.transport == "udp":
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, self.s.local_port))
            self.local_port = self._udp.get_extra_info("sockname")[1]
        if "tcp" in self.s.listen:
            try:
                self._tcp_server = await loop.create_server(
                    lambda: _Stream(self), host, self.local_port, reuse_address=True)
            except OSError:
                if self._udp is not None:
                    self._udp.close()
                    self._udp = None
                raise
            self.local_port = self._tcp_server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for tx in list(self._pending.values()):
            if not tx.future.done():
                tx.future.set_result(Outcome(error="transport stopped", kind="lost"))
        self._pending.clear()
        if self._tcp_server is not None:
            self._tcp_server.close()
        for st in list(self._streams):
            st.close()
        if self._tcp_server is not None:
            try:
                await asyncio.wait_for(self._tcp_server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                pass
            self._tcp_server = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def _resolve(self, host: str, port: int) -> tuple[str, int]:
        try:
            ipaddress.ip_address(host)
            return host, port
        except ValueError:
            pass
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                                             family=socket.AF_INET)
        return infos[0][4][0], port

    def _pick_via_host(self) -> str:
        h = self.s.local_host
        if h and h not in ("0.0.0.0", "::"):
            return h
        try:                                    # the address the route to the trunk leaves from
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((self._proxy_addr or (self.s.proxy_host, self.s.proxy_port)))
                return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"

    # -- sending ---------------------------------------------------------------------------

    async def send(self, msg, last_look=None) -> SendResult:
        """last_look: the outbox's gate, called right before the text's first datagram or
        TCP write (not before a TCP connect that may fail: nothing is written then)."""
        if self._proxy_addr is None:
            return SendResult("retry", error="SIP transport not started")
        body_text = msg.body or ""
        transport = self.s.transport
        if transport == "udp":
            probe = self._build(msg, body_text.encode("utf-8"), "udp", 1, new_call_id(self._via_host),
                                new_tag(), new_branch())
            reserve = 420 if self.s.username else 0      # room for an Authorization header
            if len(probe) + reserve > self.s.max_udp_bytes:
                if self.s.oversize == "tcp":
                    res = await self._send_one(msg, body_text, "tcp", last_look)
                    if res.status != "retry" or "TCP connect" not in res.error:
                        return res
                    log.warning("message %s: %d bytes is too big for UDP and TCP to %s:%s "
                                "failed (%s): sending it in parts over UDP", getattr(msg, "id", "?"),
                                len(probe), self.s.proxy_host, self.s.proxy_port, res.error)
                return await self._send_split(msg, body_text, len(probe) - len(body_text.encode()) + reserve,
                                              last_look)
        return await self._send_one(msg, body_text, transport, last_look)

    async def _send_split(self, msg, text: str, overhead: int, last_look) -> SendResult:
        budget = self.s.max_udp_bytes - overhead - 8
        if budget < 16:
            return SendResult("failed", error="SIP headers alone exceed max_udp_bytes")
        parts = split_body(text, budget)
        ids: list[str] = []
        for n, part in enumerate(parts, 1):
            res = await self._send_one(msg, part, "udp", last_look if n == 1 else None)   # before the first part
            if res.status != "sent":
                if n == 1:
                    return res
                return SendResult("unknown", transport_id=",".join(ids),
                                  error=f"part {n}/{len(parts)} not sent ({res.status}: {res.error}); "
                                        f"parts 1-{n - 1} were delivered: resending repeats them")
            ids.append(res.transport_id)
        return SendResult("sent", ",".join(ids))

    def _build(self, msg, body: bytes, transport: str, cseq: int, call_id: str, from_tag: str,
               branch: str, auth: tuple[str, str] | None = None) -> bytes:
        return build_message(self.s, msg, body, transport, sent_by(self._via_host, self.local_port),
                             cseq, call_id, from_tag, branch, auth)

    async def _send_one(self, msg, text: str, transport: str, last_look) -> SendResult:
        body = text.encode("utf-8")
        call_id = new_call_id(self._via_host)
        from_tag = new_tag()
        cseq = 1
        branch = new_branch()
        req = self._build(msg, body, transport, cseq, call_id, from_tag, branch)
        out = await self._transaction(req, branch, transport, last_look)
        r = out.response
        if r is not None and r.status in (401, 407):
            auth = challenge_answer(r, self.s, msg, body)
            if isinstance(auth, SendResult):
                return auth
            cseq += 1
            branch = new_branch()
            req = self._build(msg, body, transport, cseq, call_id, from_tag, branch, auth)
            out = await self._transaction(req, branch, transport)     # the text is already out: no look
            r = out.response
            if r is not None and r.status in (401, 407):
                return SendResult("failed", error=f"SIP {r.status} {r.reason}: credentials for "
                                  f"{self.s.username!r} rejected (check sip username/password/realm)")
        return self._result(out, call_id)

    def _result(self, out: Outcome, call_id: str) -> SendResult:
        r = out.response
        if r is not None and 200 <= r.status < 300:
            self.stats["sent"] += 1
        return send_result(out, call_id, self.s.on_timeout)

    async def _transaction(self, req: bytes, branch: str, transport: str, last_look=None) -> Outcome:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        tx = _Tx("MESSAGE", fut)
        self._pending[branch] = tx
        deadline = loop.time() + self.s.timeout
        try:
            if transport == "tcp":
                try:
                    conn = await asyncio.wait_for(self._tcp_conn(), max(0.1, deadline - loop.time()))
                except (OSError, asyncio.TimeoutError) as e:
                    return Outcome(error=f"TCP connect to {self.s.proxy_host}:{self.s.proxy_port} "
                                          f"failed: {e or 'timed out'}", kind="connect")
                tx.conn = conn
                if last_look is not None and not last_look():
                    return Outcome(error="held by the outbox's last look", kind="held")
                conn.write(req)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    return Outcome(error=f"no final answer within {self.s.timeout:g} s (Timer F, TCP)",
                                    kind="timeout")
            if self._udp is None:
                return Outcome(error="UDP socket not open", kind="connect")
            interval = self.s.timer_t1
            if last_look is not None and not last_look():
                return Outcome(error="held by the outbox's last look", kind="held")
            self._udp.sendto(req, self._proxy_addr)
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return Outcome(error=f"no final answer within {self.s.timeout:g} s "
                                          f"(Timer F, UDP to {self.s.proxy_host}:{self.s.proxy_port})",
                                    kind="timeout")
                done, _ = await asyncio.wait({fut}, timeout=min(interval, remaining))
                if done:
                    return fut.result()
                if deadline - loop.time() <= 0:
                    continue
                if self._udp is None:
                    return Outcome(error="transport stopped", kind="lost")
                self._udp.sendto(req, self._proxy_addr)            # Timer E
                self.stats["retransmits"] += 1
                interval = next_retransmit(interval, tx.proceeding, self.s.timer_t2)
        finally:
            self._pending.pop(branch, None)

    async def _tcp_conn(self) -> _Stream:
        key = self._proxy_addr
        lock = self._conn_locks.setdefault(key, asyncio.Lock())
        async with lock:
            conn = self._out_conns.get(key)
            if conn is not None and not conn.closed:
                return conn
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(lambda: _Stream(self, outbound_key=key), *key)
            self._out_conns[key] = conn
            return conn

    def _stream_lost(self, st: _Stream) -> None:
        self._streams.discard(st)
        if st.outbound_key is not None and self._out_conns.get(st.outbound_key) is st:
            del self._out_conns[st.outbound_key]
        for tx in list(self._pending.values()):
            if tx.conn is st and not tx.future.done():
                tx.future.set_result(Outcome(error="TCP connection closed before the answer",
                                              kind="lost"))

    # -- receiving -------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, addr) -> None:
        """A UDP datagram: a response for one of our transactions or a request. Never raises."""
        try:
            if not data.strip(b"\r\n\x00 "):
                return                                   # keep-alive
            msg = parse_message(data)
            if msg is None:
                log.debug("not SIP from %s: %r", addr, data[:80])
                return
            self.handle_message(msg, (addr[0], addr[1]), None)
        except Exception:
            log.exception("SIP datagram from %s", addr)

    def handle_message(self, msg: SipMessage, addr: tuple[str, int], stream: _Stream | None) -> None:
        try:
            if msg.is_request:
                self.server.handle_request(msg, addr, stream)
            else:
                self._handle_response(msg)
        except Exception:
            log.exception("SIP message from %s", addr)

    def _handle_response(self, msg: SipMessage) -> None:
        vias = msg.vias()
        v = parse_via(vias[0]) if vias else None
        if v is None:
            return
        tx = self._pending.get(v.branch)
        if tx is None or tx.method != msg.method or tx.future.done():
            return                                       # stray or a retransmitted final answer
        if msg.status < 200:
            tx.proceeding = True
            return
        tx.future.set_result(Outcome(response=msg))

    def reply_raw(self, data: bytes, req: SipMessage, top: Via, addr, stream) -> None:
        if stream is not None:
            stream.write(data)
            return
        if self._udp is None:
            return
        # RFC 3261 18.2.2 + RFC 3581: to the source address; the port from rport (the source
        # port) when the client asked for it, else the Via's port
        port = addr[1] if "rport" in top.params else (top.port or 5060)
        self._udp.sendto(data, (addr[0], port))
