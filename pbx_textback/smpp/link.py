"""One TCP connection to the SMSC and its bind: connect, bind, reconnect with backoff,
enquire_link, reading and writing PDUs, answering what the SMSC asks of us."""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from . import pdu as P
from .faults import BindRefused, LinkClosed, SmppFault, name_fault
from .settings import SmppSettings

if TYPE_CHECKING:
    from .submits import Part
    from .transport import SmppTransport

log = logging.getLogger("pbx_textback.smpp")


class Link:
    """One TCP connection + bind. `role`: transceiver | transmitter | receiver."""

    def __init__(self, t: "SmppTransport", role: str):
        self.t, self.role = t, role
        self.state = "down"
        self.bound = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.seqs = P.Sequencer()
        self.pending: dict[int, asyncio.Future] = {}     # our non-submit requests
        self.inflight: dict[int, "Part"] = {}            # our submit_sm, by sequence
        self.late: OrderedDict[int, "Part"] = OrderedDict()  # timed out: a late answer is evidence
        self.abort_reason: str | None = None
        self.task: asyncio.Task | None = None
        self.sleeper: asyncio.Future | None = None
        self.answers: list[bytes] = []     # responses to the SMSC's PDUs not yet handed to the socket

    @property
    def sends(self) -> bool:
        return self.role in ("transceiver", "transmitter")

    @property
    def name(self) -> str:
        s = self.t.settings
        return f"{self.role} {s.host}:{s.port}"

    # ---------------------------------------------------------------- connection loop
    async def run(self) -> None:
        s = self.t.settings
        backoff = s.reconnect_min
        while not self.t.stopping:
            self.t.link_state(self, "connecting", f"connecting to {s.host}:{s.port}")
            try:
                await self.connect_and_bind()
            except SmppFault as f:
                self.close()
                if f.kind == "bind-refused":
                    wait = s.reconnect_max
                    self.t.link_state(self, "bind-failed", f"{f}; {f.fix}; retry in {wait:.0f}s")
                    await self._sleep(wait)
                    continue
                self.t.link_state(self, "down", f"cannot bind: {f} ({f.fix}); "
                                                 f"retry in {backoff:.1f}s")
                await self._sleep(backoff)
                backoff = min(backoff * 2, s.reconnect_max)
                continue
            backoff = s.reconnect_min
            self.bound = True
            self.t.link_state(self, "bound", f"bound ({self.name}, system_id={s.system_id!r})")
            reason = await self._serve()
            self.lost(reason)
            if self.t.stopping:
                break
            self.t.link_state(self, "down", f"connection lost: {reason}; "
                                             f"reconnecting in {backoff:.1f}s")
            await self._sleep(backoff)

    async def _sleep(self, seconds: float) -> None:
        """A sleep that stop() cuts short."""
        self.sleeper = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self.sleeper), seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            self.sleeper = None

    async def connect_and_bind(self) -> None:
        """Raises SmppFault, named (see name_fault)."""
        s = self.t.settings
        try:
            await self._connect(s)
        except Exception as e:
            raise name_fault(e, s, "connect") from e
        try:
            await self._bind(s)
        except Exception as e:
            raise name_fault(e, s, "bind") from e

    async def _connect(self, s: SmppSettings) -> None:
        self.abort_reason = None
        self.seqs = P.Sequencer()
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(s.host, s.port), s.response_timeout)

    async def _bind(self, s: SmppSettings) -> None:
        name = {"transceiver": "bind_transceiver", "transmitter": "bind_transmitter",
                "receiver": "bind_receiver"}[self.role]
        req = P.make(name, self.seqs, system_id=s.system_id, password=s.password,
                     system_type=s.system_type, addr_ton=0, addr_npi=0, address_range="")
        self.writer.write(req.generate())

        async def read_bind_resp():
            while True:
                data = await self.read_frame()
                _, cid, status, seq = P.header(data)
                if seq != req.sequence:
                    continue                    # nothing else may come before the bind_resp
                if cid == 0x80000000:           # generic_nack
                    raise BindRefused(status or P.ESME_RBINDFAIL)
                if status != P.ESME_ROK:
                    raise BindRefused(status)
                return P.parse(data)
        resp = await asyncio.wait_for(read_bind_resp(), s.response_timeout)
        self.smsc_system_id = P.text_field(getattr(resp, "system_id", b""))

    async def read_frame(self) -> bytes:
        head = await self.reader.readexactly(4)
        n = int.from_bytes(head, "big")
        if not P.HEADER_LEN <= n <= P.MAX_PDU_LEN:
            raise P.PduError(f"PDU length {n} out of range")
        return head + await self.reader.readexactly(n - 4)

    async def _serve(self) -> str:
        """Read PDUs until the connection ends; returns why."""
        self.t.window.wake()
        pinger = asyncio.create_task(self._enquire_loop())
        try:
            while True:
                data = await self.read_frame()
                await self._handle(data)
        except asyncio.IncompleteReadError:
            return self.abort_reason or "closed by the SMSC"
        except P.PduError as e:
            return f"protocol error: {e}"
        except (ConnectionError, OSError) as e:
            return self.abort_reason or f"{e!r}"
        except LinkClosed as e:
            return str(e)
        except Exception as e:                                  # a bug: never lose the link task
            log.exception("SMPP %s: internal error; reconnecting", self.name)
            return f"internal error {e!r}"
        finally:
            pinger.cancel()
            self.bound = False

    def write(self, data: bytes) -> None:
        """Hand bytes to the socket now, after any answers still held (they go first)."""
        if self.answers:
            data = b"".join(self.answers) + data
            self.answers.clear()
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    def answer(self, data: bytes) -> None:
        """A response to a PDU the SMSC sent, written once the PDUs already read are handled:
        a burst of receipts is answered in one send() instead of one each (a send on the
        socket cost more CPU than storing the receipt). It is never held longer than that
        turn of the event loop (the SMSC waits for it), nor written before the PDU's work
        (a receipt is stored first)."""
        if not self.answers:
            asyncio.get_running_loop().call_soon(self._flush_answers)
        self.answers.append(data)
        self.t.stats["answers"] += 1

    def _flush_answers(self) -> None:
        if self.answers:
            self.t.stats["answer_writes"] += 1
            self.write(b"")

    def abort(self, reason: str) -> None:
        self.abort_reason = reason
        self.bound = False
        if self.writer is not None:
            self.writer.transport.abort()

    def close(self) -> None:
        self.bound = False
        self.answers.clear()               # for a connection that is gone
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    def lost(self, reason: str) -> None:
        """The connection is gone: written-but-unanswered submits have an unknown fate."""
        self.close()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(LinkClosed(reason))
        self.pending.clear()
        inflight, self.inflight = self.inflight, {}
        for part in sorted(inflight.values(), key=lambda p: p.order):
            self.t.submits.unknown(part, f"connection lost before submit_sm_resp ({reason})")
        self.t.window.wake()

    async def request(self, name: str, timeout: float, **kw):
        p = P.make(name, self.seqs, **kw)
        fut = asyncio.get_running_loop().create_future()
        self.pending[p.sequence] = fut
        self.write(p.generate())
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(p.sequence, None)

    async def _enquire_loop(self) -> None:
        s = self.t.settings
        while True:
            await asyncio.sleep(s.enquire_link_interval)
            self.t.inbound.sweep()
            try:
                await self.request("enquire_link", s.enquire_link_timeout)
            except asyncio.TimeoutError:
                msg = f"enquire_link not answered in {s.enquire_link_timeout:g}s"
                log.warning("SMPP %s: %s: dropping the connection", self.name, msg)
                self.abort(msg)
                return
            except LinkClosed:
                return

    # ---------------------------------------------------------------- incoming PDUs
    async def _handle(self, data: bytes) -> None:
        _, cid, status, seq = P.header(data)
        name = P.command_name(cid)
        if name is None:
            log.warning("SMPP %s: unknown command_id 0x%08X seq=%d: generic_nack",
                        self.name, cid, seq)
            self.write(P.response("generic_nack", seq, P.ESME_RINVCMDID))
            return
        if cid & 0x80000000:                                # a response (or generic_nack)
            part = self.inflight.pop(seq, None)
            late = self.late.pop(seq, None) if part is None else None
            if part is not None or late is not None:
                mid = ""
                if name == "submit_sm_resp" and status == P.ESME_ROK:
                    try:
                        mid = P.resp_message_id(data)
                    except P.PduError as e:
                        log.error("SMPP %s: unreadable submit_sm_resp seq=%d: %s", self.name, seq, e)
                if part is not None:
                    self.t.submits.answered(part, status, mid)
                else:
                    self.t.submits.late_answer(late, status, mid)
                return
            fut = self.pending.get(seq)
            if fut is not None and not fut.done():
                if status == P.ESME_ROK:
                    fut.set_result(data)
                else:
                    fut.set_exception(RuntimeError(P.status_name(status)))
                return
            if name == "generic_nack":
                log.warning("SMPP %s: generic_nack %s seq=%d", self.name, P.status_name(status), seq)
            else:
                log.warning("SMPP %s: unexpected %s seq=%d %s (late answer after a timeout?)",
                            self.name, name, seq, P.status_name(status))
            return
        if name == "enquire_link":
            self.answer(P.response("enquire_link_resp", seq))
        elif name in ("deliver_sm", "data_sm"):    # data_sm: receipts (and replies) some gateways send so
            try:
                p = P.parse(data)
            except P.PduError as e:
                log.error("SMPP %s: unreadable %s seq=%d: %s; asking for a resend", self.name, name, seq, e)
                self.write(P.response(f"{name}_resp", seq, P.ESME_RX_T_APPN))
                return
            resp_status = await self.t.inbound.deliver(p)
            self.answer(P.response(f"{name}_resp", seq, resp_status))
        elif name == "unbind":
            self.write(P.response("unbind_resp", seq))
            log.warning("SMPP %s: the SMSC unbound; reconnecting", self.name)
            self.bound = False
            if self.writer is not None:
                self.writer.close()        # flushes the unbind_resp, then EOF ends _serve
            self.abort_reason = "unbound by the SMSC"
        elif name == "alert_notification":
            pass                                            # has no response
        else:
            log.warning("SMPP %s: %s from the SMSC not supported: generic_nack", self.name, name)
            self.write(P.response("generic_nack", seq, P.ESME_RINVCMDID))
