"""SMPP 3.4 ESME client on asyncio: smpplib's PDU codec (pdu.py), our own connection.

One `SmppTransport` = one SMSC account: a bind_transceiver link, or a bind_transmitter link
plus a bind_receiver link (send-test and doctor: a transmitter only, `send_only`). Each link
reconnects by itself (backoff 1 s -> 60 s; a refused bind waits the maximum and says so
loudly, each connect/bind fault named for the admin: `name_fault`), sends enquire_link and
drops the connection when it is not answered, answers the SMSC's enquire_link / unbind /
deliver_sm / data_sm, and generic_nack to anything else.

Submits go through one queue: at most `window` submit_sm outstanding, at most `tps` per
second. The outbox's last look runs right before a text's first submit_sm is written; a text
not written within `queue_timeout` (no bind, window full) or when stop() comes goes back as
"retry" — nothing waits in memory without a bound. A part answered ESME_RTHROTTLED /
ESME_RMSGQFUL goes back to the head of the queue and the rate drops, once per congestion, to
just under what the gateway accepted in the last second (then climbs 10 %/s). A part written
but never answered has an unknown fate: its submit() ends "unknown" (never resubmitted unless
`retry_unknown`); a late submit_sm_resp is still reported (`on_late`), and so is its receipt.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable

from . import pdu as P
from .dlr import DeliveryReport, make_report, message_id_keys
from .reassembly import MoParts, valid_concat

log = logging.getLogger("pbx_textback.smpp")

BIND_MODES = ("transceiver", "transmitter+receiver")


# Bounded memories (a soak showed ~250 bytes per text kept until 200,000 texts): a receipt
# usually comes within seconds, and one for an older text is matched in the store by its
# gateway id (mark_sent stored it); a destination no longer remembered gets a random
# concatenation reference, as after a restart.
REMEMBER_IDS = 4096
REMEMBER_REFS = 4096


@dataclass(frozen=True)
class SmppSettings:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = field(default="", repr=False)    # never in a log line
    system_type: str = ""
    bind_mode: str = "transceiver"           # | "transmitter+receiver"
    source_ton: int = 1                      # 1 international (E.164), 5 alphanumeric
    source_npi: int = 1
    dest_ton: int = 1
    dest_npi: int = 1
    enquire_link_interval: float = 30.0
    enquire_link_timeout: float = 10.0
    response_timeout: float = 30.0           # TCP connect, bind_resp, submit_sm_resp
    window: int = 10                         # submit_sm outstanding at most
    tps: float = 10.0                        # submit_sm per second at most (0 = no cap)
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0              # also the wait after a refused bind
    throttle_pause: float = 1.0              # pause after ESME_RTHROTTLED / ESME_RMSGQFUL
    retry_after: float = 60.0                # hint returned with status "retry"
    part_retries: int = 3                    # temporary errors on one part of a long text
    data_coding_default: str = "gsm7"        # what data_coding 0 means to this SMSC: | "latin1"
    gsm7_packed: bool = False
    long_mode: str = "udh"                   # | "payload" (message_payload TLV)
    registered_delivery: bool = True
    retry_unknown: bool = False
    mo_reassembly_timeout: float = 600.0     # a long reply missing parts is delivered as is
    queue_timeout: float = 5.0               # a text not written by then (no bind, window
                                             # full) goes back to the outbox as "retry"
    receipt_timeout_minutes: float = 360.0   # sent, no receipt by then: state "no-receipt"

    def __post_init__(self):
        problems = []
        if self.bind_mode not in BIND_MODES:
            problems.append(f"bind_mode must be one of {BIND_MODES}, not {self.bind_mode!r}")
        if self.data_coding_default not in ("gsm7", "latin1"):
            problems.append("data_coding_default must be 'gsm7' or 'latin1'")
        if self.long_mode not in ("udh", "payload"):
            problems.append("long_mode must be 'udh' or 'payload'")
        if self.window < 1:
            problems.append("window must be >= 1")
        if len(self.password) > 8:      # SMPP 3.4 caps it; smpplib would cut it silently
            problems.append("password: SMPP 3.4 allows at most 8 characters")
        if len(self.system_id) > 15:
            problems.append("system_id: SMPP 3.4 allows at most 15 characters")
        if self.tps < 0:
            problems.append("tps must be >= 0 (0 = no cap)")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            problems.append("need 0 < reconnect_min <= reconnect_max")
        if not 0 < self.queue_timeout <= 300:
            problems.append("queue_timeout must be > 0 and <= 300 seconds")
        if not 0 <= self.receipt_timeout_minutes <= 100_000:
            problems.append("receipt_timeout_minutes must be between 0 (off) and 100000")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class SubmitResult:
    status: str                       # "sent" | "failed" | "retry" | "unknown"
    message_ids: list[str]            # the SMSC's id of every part it accepted, in part order
    error: str | None = None
    command_status: int | None = None
    retry_after: float | None = None  # with "retry": seconds the outbox should wait
    parts: int = 1


@dataclass(frozen=True)
class InboundSms:
    source: str                       # the caller
    dest: str                         # our number
    text: str
    received_at: datetime
    data_coding: int = 0
    parts: int = 1
    incomplete: bool = False          # parts missing after mo_reassembly_timeout


class BindRefused(Exception):
    def __init__(self, status: int):
        super().__init__(P.status_name(status))
        self.status = status


class SmppFault(Exception):
    """Why a connect + bind failed, named for the admin: `kind` is one of refused, timeout,
    unreachable, closed, bind-timeout, bind-refused, protocol; `fix` says what to look at."""

    def __init__(self, kind: str, text: str, fix: str, status: int | None = None):
        super().__init__(text)
        self.kind, self.fix, self.status = kind, fix, status


_BIND_STATUS_FIX = {
    P.ESME_RINVPASWD: "the password is wrong: check password in [transport.smpp] with the provider",
    P.ESME_RINVSYSID: "the gateway does not know this system_id: check system_id in "
                      "[transport.smpp] with the provider",
    P.ESME_RBINDFAIL: "the gateway gives no reason (ESME_RBINDFAIL): ask the provider whether the "
                      "account's bind limit is reached (another program bound with it), whether "
                      "this box's IP is allowed for the account and whether system_type is right",
    0x05: "the account is already bound (ESME_RALYBND): another program holds its binds",
}


def name_fault(exc: BaseException, s: "SmppSettings", stage: str = "connect") -> SmppFault:
    """A connect/bind failure as the admin should read it (stage: connect | bind)."""
    where = f"{s.host}:{s.port}"
    if isinstance(exc, SmppFault):
        return exc
    if isinstance(exc, BindRefused):
        fix = _BIND_STATUS_FIX.get(exc.status, "ask the provider what this status means for "
                                               "your account")
        return SmppFault("bind-refused", f"the gateway refused the bind with {exc} "
                         f"(system_id={s.system_id!r})", fix, exc.status)
    if isinstance(exc, ConnectionRefusedError):
        return SmppFault("refused", f"connection refused by {where}",
                         f"nothing listens on {where} (the gateway is down, or the wrong port), "
                         "or a firewall rejects the connection")
    if isinstance(exc, asyncio.TimeoutError):
        if stage == "bind":
            return SmppFault("bind-timeout", f"connected to {where} but no answer to the bind within "
                             f"{s.response_timeout:g}s",
                             "is this an SMPP port (not TLS, not HTTP)? ask the provider")
        return SmppFault("timeout", f"no answer from {where} within {s.response_timeout:g}s",
                         f"a firewall drops the packets, the host is wrong, or this box's public IP "
                         f"is not on the provider's allow-list (`nc -vz {s.host} {s.port}`)")
    if isinstance(exc, (asyncio.IncompleteReadError, ConnectionResetError, _LinkClosed)):
        return SmppFault("closed", f"{where} closed the connection before answering the bind",
                         "often this box's IP is not allowed, or the account's bind limit is "
                         "reached: ask the provider")
    if isinstance(exc, P.PduError):
        return SmppFault("protocol", f"{where} does not speak SMPP: {exc}",
                         "check host and port with the provider")
    if isinstance(exc, OSError):
        return SmppFault("unreachable", f"cannot reach {where}: {exc.strerror or exc}",
                         "check the host name, DNS and the route from this box")
    return SmppFault("protocol", f"{where}: {exc!r}", "see the log")


class _LinkClosed(Exception):
    pass


@dataclass(eq=False)
class _Job:
    msg_ref: str
    to: str
    source: str
    parts: list["_Part"]
    future: asyncio.Future
    last_look: Callable[[], bool] | None = None
    looked: bool = False              # last_look called (and said True): bytes may be out
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Part:
    job: _Job
    spec: P.PartSpec
    order: int                        # global submit order: requeued parts keep their place
    outcome: str | None = None        # sent | failed | retry | unknown | cancelled
    message_id: str | None = None
    status: int | None = None
    error: str | None = None
    written: int = 0                  # times written to a socket
    wseq: int = 0                     # the transport's write counter when last written
    temp_failures: int = 0
    link: "_Link | None" = None
    seq: int = 0
    timer: asyncio.TimerHandle | None = None


def _in_flight(part: _Part) -> bool:
    return part.link is not None and part.link.inflight.get(part.seq) is part


class _Link:
    """One TCP connection + bind. `role`: transceiver | transmitter | receiver."""

    def __init__(self, t: "SmppTransport", role: str):
        self.t, self.role = t, role
        self.state = "down"
        self.bound = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.seqs = P.Sequencer()
        self.pending: dict[int, asyncio.Future] = {}     # our non-submit requests
        self.inflight: dict[int, _Part] = {}            # our submit_sm, by sequence
        self.late: OrderedDict[int, _Part] = OrderedDict()  # timed out: a late answer is evidence
        self.abort_reason: str | None = None
        self.task: asyncio.Task | None = None
        self.sleeper: asyncio.Future | None = None

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
        while not self.t._stopping:
            self.t._link_state(self, "connecting", f"connecting to {s.host}:{s.port}")
            try:
                await self._connect_and_bind()
            except SmppFault as f:
                self._close()
                if f.kind == "bind-refused":
                    wait = s.reconnect_max
                    self.t._link_state(self, "bind-failed", f"{f}; {f.fix}; retry in {wait:.0f}s")
                    await self._sleep(wait)
                    continue
                self.t._link_state(self, "down", f"cannot bind: {f} ({f.fix}); "
                                                 f"retry in {backoff:.1f}s")
                await self._sleep(backoff)
                backoff = min(backoff * 2, s.reconnect_max)
                continue
            backoff = s.reconnect_min
            self.bound = True
            self.t._link_state(self, "bound", f"bound ({self.name}, system_id={s.system_id!r})")
            reason = await self._serve()
            self._lost(reason)
            if self.t._stopping:
                break
            self.t._link_state(self, "down", f"connection lost: {reason}; "
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

    async def _connect_and_bind(self) -> None:
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
                data = await self._read_frame()
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

    async def _read_frame(self) -> bytes:
        head = await self.reader.readexactly(4)
        n = int.from_bytes(head, "big")
        if not P.HEADER_LEN <= n <= P.MAX_PDU_LEN:
            raise P.PduError(f"PDU length {n} out of range")
        return head + await self.reader.readexactly(n - 4)

    async def _serve(self) -> str:
        """Read PDUs until the connection ends; returns why."""
        self.t._wake()
        pinger = asyncio.create_task(self._enquire_loop())
        try:
            while True:
                data = await self._read_frame()
                await self._handle(data)
        except asyncio.IncompleteReadError:
            return self.abort_reason or "closed by the SMSC"
        except P.PduError as e:
            return f"protocol error: {e}"
        except (ConnectionError, OSError) as e:
            return self.abort_reason or f"{e!r}"
        except _LinkClosed as e:
            return str(e)
        except Exception as e:                                  # a bug: never lose the link task
            log.exception("SMPP %s: internal error; reconnecting", self.name)
            return f"internal error {e!r}"
        finally:
            pinger.cancel()
            self.bound = False

    def write(self, data: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    def abort(self, reason: str) -> None:
        self.abort_reason = reason
        self.bound = False
        if self.writer is not None:
            self.writer.transport.abort()

    def _close(self) -> None:
        self.bound = False
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    def _lost(self, reason: str) -> None:
        """The connection is gone: written-but-unanswered submits have an unknown fate."""
        self._close()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(_LinkClosed(reason))
        self.pending.clear()
        inflight, self.inflight = self.inflight, {}
        for part in sorted(inflight.values(), key=lambda p: p.order):
            self.t._unknown(part, f"connection lost before submit_sm_resp ({reason})")
        self.t._wake()

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
            self.t._sweep_mo()
            try:
                await self.request("enquire_link", s.enquire_link_timeout)
            except asyncio.TimeoutError:
                msg = f"enquire_link not answered in {s.enquire_link_timeout:g}s"
                log.warning("SMPP %s: %s: dropping the connection", self.name, msg)
                self.abort(msg)
                return
            except _LinkClosed:
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
                        mid = P.text_field(P.parse(data).message_id)
                    except P.PduError as e:
                        log.error("SMPP %s: unreadable submit_sm_resp seq=%d: %s", self.name, seq, e)
                if part is not None:
                    self.t._submit_resp(part, status, mid)
                else:
                    self.t._late_resp(late, status, mid)
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
            self.write(P.response("enquire_link_resp", seq))
        elif name in ("deliver_sm", "data_sm"):    # data_sm: receipts (and replies) some gateways send so
            try:
                p = P.parse(data)
            except P.PduError as e:
                log.error("SMPP %s: unreadable %s seq=%d: %s; asking for a resend", self.name, name, seq, e)
                self.write(P.response(f"{name}_resp", seq, P.ESME_RX_T_APPN))
                return
            resp_status = await self.t._deliver(self, p)
            self.write(P.response(f"{name}_resp", seq, resp_status))
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


class SmppTransport:
    """See the module docstring. Callbacks: on_dlr(DeliveryReport) (sync or async; raising makes
    the SMSC resend it), on_mo(InboundSms) -> bool (sync; False/raise -> temporary error, the
    SMSC resends), on_state(state, detail)."""

    def __init__(self, settings: SmppSettings, *,
                 on_dlr: Callable[[DeliveryReport], object] | None = None,
                 on_mo: Callable[[InboundSms], bool] | None = None,
                 on_state: Callable[[str, str], None] | None = None,
                 on_late: Callable[[str, int, str], None] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 send_only: bool = False):
        """send_only: one bind_transmitter and nothing else, for send-test and doctor: a
        gateway spreads replies and receipts over every receiving bind of the account, so
        a second receiving bind would take the running service's STOPs."""
        self.settings = settings
        self.on_dlr, self.on_mo, self.on_state, self.clock = on_dlr, on_mo, on_state, clock
        self.on_late = on_late      # (msg_ref, command_status, message_id): a late submit_sm_resp
        if send_only:
            self.links = [_Link(self, "transmitter")]
        elif settings.bind_mode == "transceiver":
            self.links = [_Link(self, "transceiver")]
        else:
            self.links = [_Link(self, "transmitter"), _Link(self, "receiver")]
        self._state = "down"
        self._stopping = False
        self._started = False
        self._queue: deque[_Part] = deque()
        self._order = 0
        self._wake_ev = asyncio.Event()
        self._dispatcher: asyncio.Task | None = None
        self._refs: dict[str, int] = {}
        self._rate = float(settings.tps) if settings.tps else float("inf")
        self._next_send = 0.0
        self._paused_until = 0.0
        self._sent_ids: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._mo_parts = MoParts()
        self._rate_at = 0.0                  # when the rate last changed
        self._writes = 0
        self._cut_wseq = 0                   # parts written before the last cut: their throttle
                                             # answers are the same congestion, not a new one
        self._accepts: deque[float] = deque()    # when submits were accepted, the last second
        self.stats = {"submit_sm": 0, "throttled": 0, "unknown": 0, "resubmitted_unknown": 0,
                      "dlr": 0, "mo": 0, "mo_refused": 0, "late_resp": 0, "not_written": 0}

    # ---------------------------------------------------------------- lifecycle
    @property
    def state(self) -> str:
        return self._state

    @property
    def outstanding(self) -> int:
        return sum(len(link.inflight) for link in self.links)

    async def start(self) -> None:
        if self._started:
            return
        self._started, self._stopping = True, False
        self._wake_ev = asyncio.Event()
        for link in self.links:
            link.task = asyncio.create_task(link.run(), name=f"smpp-{link.role}")
        self._dispatcher = asyncio.create_task(self._dispatch(), name="smpp-dispatch")

    async def wait_bound(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._state != "bound":
            if time.monotonic() > deadline:
                raise asyncio.TimeoutError(f"SMPP not bound after {timeout}s (state {self._state})")
            await asyncio.sleep(0.01)

    async def stop(self, grace: float = 2.0) -> None:
        """Stop sending, wait up to `grace` s for outstanding answers, unbind, close. Queued
        submits end "retry" (never written); still-unanswered ones "unknown"."""
        if not self._started:
            return
        self._stopping = True
        self._wake()
        # every text not yet written goes back now: nothing waits in memory across a stop
        while self._queue:
            part = self._queue.popleft()
            self._finish_part(part, "retry", error="transport stopped before sending")
        deadline = time.monotonic() + grace
        while self.outstanding and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._dispatcher:
            self._dispatcher.cancel()
        for link in self.links:
            if link.bound:
                try:
                    await link.request("unbind", min(grace, 1.0))
                except Exception:
                    pass
            link._lost("transport stopped")
            if link.sleeper is not None and not link.sleeper.done():
                link.sleeper.set_result(None)
            if link.task:
                link.task.cancel()
        await asyncio.gather(*(t for t in [self._dispatcher] + [lk.task for lk in self.links] if t),
                             return_exceptions=True)
        while self._queue:
            part = self._queue.popleft()
            self._finish_part(part, "retry", error="transport stopped before sending")
        self._started = False
        self._set_state("down", "stopped")

    # ---------------------------------------------------------------- state
    def _link_state(self, link: _Link, state: str, detail: str) -> None:
        link.state = state
        if state == "bind-failed":
            log.error("SMPP %s: %s", link.name, detail)
        elif state == "down":
            log.warning("SMPP %s: %s", link.name, detail)
        else:
            log.debug("SMPP %s: %s", link.name, detail)
        states = [lk.state for lk in self.links]
        if "bind-failed" in states:
            agg = "bind-failed"
        elif all(s == "bound" for s in states):
            agg = "bound"
        elif "connecting" in states:
            agg = "connecting"
        else:
            agg = "down"
        self._set_state(agg, detail)

    def _set_state(self, state: str, detail: str) -> None:
        if state == self._state:
            return
        old, self._state = self._state, state
        level = logging.ERROR if state == "bind-failed" else \
            logging.WARNING if state == "down" and old == "bound" and not self._stopping \
            else logging.INFO
        log.log(level, "SMPP state %s -> %s: %s", old, state, detail)
        if self.on_state is not None:
            try:
                self.on_state(state, detail)
            except Exception:
                log.exception("SMPP on_state callback failed")

    # ---------------------------------------------------------------- submit
    def _next_ref(self, to: str) -> int:
        """8-bit concatenation reference, a counter per destination (random start, so a
        restart does not reuse the last reference a phone saw)."""
        ref = self._refs.get(to)
        ref = random.randrange(256) if ref is None else (ref + 1) & 0xFF
        self._refs[to] = ref
        if len(self._refs) > REMEMBER_REFS:
            self._refs.pop(next(iter(self._refs)))
        return ref

    async def submit(self, msg_ref: str, to: str, text: str, source: str,
                     last_look: Callable[[], bool] | None = None) -> SubmitResult:
        """Send one text (all its parts); the result covers the whole text. `last_look` is
        called right before the first part's submit_sm is handed to the socket (same
        synchronous step): False -> nothing is written and the result is "retry". A text
        not written within queue_timeout (no bind, window full) is "retry" too."""
        s = self.settings
        if not self._started or self._stopping:
            return SubmitResult("retry", [], "SMPP transport is not running", None, s.retry_after)
        if not (to or "").strip():
            return SubmitResult("failed", [], "no destination number", None)
        specs = P.plan_parts(text, ref=self._next_ref(to), data_coding_default=s.data_coding_default,
                             gsm7_packed=s.gsm7_packed, long_mode=s.long_mode)
        loop = asyncio.get_running_loop()
        job = _Job(msg_ref, to, source, [], loop.create_future(), last_look)
        for spec in specs:
            self._order += 1
            job.parts.append(_Part(job, spec, self._order))
        job.timer = loop.call_later(s.queue_timeout, self._not_written, job)
        self._queue.extend(job.parts)
        self._wake()
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            for part in job.parts:
                if part.outcome is None and part.written == 0:
                    part.outcome = "cancelled"
            self._purge(job)
            if any(p.outcome is None for p in job.parts):
                log.warning("SMPP submit %s cancelled with parts outstanding: their result is "
                            "only logged", msg_ref)
            raise

    def _not_written(self, job: _Job) -> None:
        """queue_timeout passed: a text none of whose parts is accepted or on the wire goes
        back to the outbox (retry); one already partly out keeps going."""
        if job.future.done() or any(p.outcome == "sent" or _in_flight(p) for p in job.parts):
            return
        link = self._send_link()
        why = (f"not bound to the SMSC (state {self._state})" if link is None else
               "the send window stayed full / throttled")
        self.stats["not_written"] += 1
        for p in job.parts:
            if p.outcome is None:
                p.outcome = "cancelled"
        self._purge(job)
        self._finish_job(job, SubmitResult(
            "retry", [], f"not written in {self.settings.queue_timeout:g}s: {why}", None,
            self.settings.retry_after if link is None else self.settings.throttle_pause))

    def _finish_job(self, job: _Job, result: SubmitResult) -> None:
        if job.timer:
            job.timer.cancel()
        if not job.future.done():
            job.future.set_result(result)

    def _look(self, job: _Job) -> bool:
        """The outbox's last look at a text, right before its first byte is written."""
        job.looked = True
        if job.last_look is None:
            return True
        try:
            ok = bool(job.last_look())
        except Exception:
            log.exception("SMPP %s: last look failed: not sending it now", job.msg_ref)
            ok = False
        if not ok:
            for p in job.parts:
                if p.outcome is None:
                    p.outcome = "cancelled"
            self._purge(job)
            self._finish_job(job, SubmitResult("retry", [], "held at the last look", None, 0.0))
        return ok

    def _purge(self, job: _Job) -> None:
        if any(p.job is job for p in self._queue):
            self._queue = deque(p for p in self._queue if p.job is not job)

    def _wake(self) -> None:
        self._wake_ev.set()

    def _send_link(self) -> _Link | None:
        for link in self.links:
            if link.sends and link.bound:
                return link
        return None

    async def _dispatch(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake_ev.clear()
            link = self._send_link()
            now = loop.time()
            timeout = None
            if not self._queue or link is None or len(link.inflight) >= s.window:
                pass
            elif now < self._paused_until:
                timeout = self._paused_until - now
            elif now < self._next_send:
                timeout = self._next_send - now
            else:
                # everything the window and the rate allow now, in one write (one syscall)
                batch = []
                while self._queue and len(link.inflight) < s.window and now >= self._next_send:
                    part = self._queue.popleft()
                    if not part.job.looked and not self._look(part.job):
                        continue                    # held, cancelled or expired: not written
                    batch.append(self._send(link, part, now))
                link.write(b"".join(batch))   # no await since the last looks above
                w = link.writer
                if w is not None and w.transport.get_write_buffer_size() > 65536:
                    await w.drain()
                continue
            try:
                await asyncio.wait_for(self._wake_ev.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _send(self, link: _Link, part: _Part, now: float) -> bytes:
        """Register one part as written on `link`; returns its submit_sm bytes."""
        s, spec, job = self.settings, part.spec, part.job
        kw = dict(service_type="", source_addr_ton=s.source_ton, source_addr_npi=s.source_npi,
                  source_addr=P.address(job.source, s.source_ton),
                  dest_addr_ton=s.dest_ton, dest_addr_npi=s.dest_npi,
                  destination_addr=P.address(job.to, s.dest_ton),
                  esm_class=spec.esm_class, protocol_id=0, priority_flag=0,
                  registered_delivery=1 if s.registered_delivery else 0,
                  replace_if_present_flag=0, data_coding=spec.data_coding, sm_default_msg_id=0,
                  short_message=spec.short_message)
        if spec.message_payload is not None:
            kw["message_payload"] = spec.message_payload
        seq = link.seqs.next_sequence()
        data = P.submit_sm(seq, **kw)              # smpplib's octets without its objects
        part.link, part.seq = link, seq
        part.written += 1
        self._writes += 1
        part.wseq = self._writes
        link.inflight[seq] = part
        part.timer = asyncio.get_running_loop().call_later(
            s.response_timeout, self._submit_timeout, link, seq)
        self.stats["submit_sm"] += 1
        # a wake-up that comes late (a busy loop) may catch up by up to 50 ms of sends: without
        # that credit every late wake-up is rate lost, 20 % and more at a few hundred per second
        self._next_send = max(now - 0.05, self._next_send) + (1.0 / self._rate if self._rate else 0.0)
        return data

    def _submit_timeout(self, link: _Link, seq: int) -> None:
        part = link.inflight.pop(seq, None)
        if part is not None:
            link.late[seq] = part                  # a late answer still tells what happened
            if len(link.late) > 10_000:
                link.late.popitem(last=False)
            self._unknown(part, f"no submit_sm_resp in {self.settings.response_timeout:g}s")
            self._wake()

    def _late_resp(self, part: _Part, status: int, message_id: str) -> None:
        """A submit_sm_resp after we gave up on it: evidence for an unknown text."""
        self.stats["late_resp"] += 1
        job = part.job
        if status == P.ESME_ROK:
            self._remember_id(message_id, job.msg_ref)     # its receipt will match
        log.warning("SMPP %s part %d/%d: late submit_sm_resp %s%s", job.msg_ref, part.spec.index,
                    part.spec.total, P.status_name(status), f" id={message_id}" if message_id else "")
        if self.on_late is not None and part.outcome == "unknown":
            try:
                self.on_late(job.msg_ref, status, message_id)
            except Exception:
                log.exception("SMPP on_late failed for %s", job.msg_ref)

    def _submit_resp(self, part: _Part, status: int, message_id: str) -> None:
        s = self.settings
        if part.timer:
            part.timer.cancel()
        if status == P.ESME_ROK:
            self._rate_recover()
            now = asyncio.get_running_loop().time()
            self._accepts.append(now)
            self._accepted_last_second(now)          # keeps the deque to one second
            self._remember_id(message_id, part.job.msg_ref)
            self._finish_part(part, "sent", message_id=message_id)
        elif status in P.THROTTLE_STATUSES:
            self.stats["throttled"] += 1
            self._throttled(status, part)
            self._requeue(part)
        elif status in P.TEMPORARY_STATUSES and part.spec.total > 1 and \
                part.temp_failures < s.part_retries:
            # one part of a long text: resend that part, not the whole text (no duplicate parts)
            part.temp_failures += 1
            log.warning("SMPP %s part %d/%d: %s; resending that part in %.1fs",
                        part.job.msg_ref, part.spec.index, part.spec.total,
                        P.status_name(status), s.throttle_pause)
            asyncio.get_running_loop().call_later(s.throttle_pause, self._requeue, part)
        elif status in P.TEMPORARY_STATUSES:
            self._finish_part(part, "retry", status=status, error=P.status_name(status))
        else:
            self._finish_part(part, "failed", status=status, error=P.status_name(status))
        self._wake()

    def _requeue(self, part: _Part) -> None:
        """Back to the head of the queue, before parts submitted after it."""
        if part.outcome is not None or self._stopping:
            if self._stopping and part.outcome is None:
                self._finish_part(part, "retry", error="transport stopped before sending")
            return
        i = 0
        for i, q in enumerate(self._queue):
            if q.order > part.order:
                break
        else:
            i = len(self._queue)
        self._queue.insert(i, part)
        self._wake()

    def _accepted_last_second(self, now: float) -> int:
        while self._accepts and self._accepts[0] < now - 1.0:
            self._accepts.popleft()
        return len(self._accepts)

    def _throttled(self, status: int, part: _Part) -> None:
        """The gateway is over its quota. Once per congestion (not once per throttled answer:
        a full window answers 0x58 ten times for one overrun) the rate drops to just under
        what the gateway accepted in the last second, its quota; a gateway that accepted
        nothing gets a pause of throttle_pause as well."""
        if part.wseq <= self._cut_wseq:
            return                         # written before the last cut: same congestion
        self._cut_wseq = self._writes
        loop = asyncio.get_running_loop()
        s = self.settings
        now = loop.time()
        old = self._rate
        accepted = self._accepted_last_second(now)
        self._rate = max(1.0, min(old, accepted * 0.95))
        self._rate_at = now
        pause = s.throttle_pause if accepted == 0 else 0.0
        self._paused_until = now + pause
        self._next_send = max(self._next_send, now + pause + 1.0 / self._rate)
        log.warning("SMPP %s: the gateway accepted %d submits in the last second; rate %s -> "
                    "%.1f/s%s", P.status_name(status), accepted,
                    "uncapped" if old == float("inf") else f"{old:.1f}/s", self._rate,
                    f", pausing {pause:g}s" if pause else "")

    def _rate_recover(self) -> None:
        """After a cut the rate climbs back 10 % per second towards tps (or uncapped)."""
        cap = float(self.settings.tps) if self.settings.tps else float("inf")
        if self._rate >= cap:
            return
        now = asyncio.get_running_loop().time()
        dt, self._rate_at = now - self._rate_at, now
        self._rate *= 1.0 + 0.10 * min(dt, 10.0)
        if self._rate >= cap or (cap == float("inf") and self._rate > 5000):
            self._rate = cap

    def _unknown(self, part: _Part, why: str) -> None:
        if part.timer:
            part.timer.cancel()
        if self.settings.retry_unknown and not self._stopping:
            self.stats["resubmitted_unknown"] += 1
            log.warning("SMPP %s part %d/%d: %s; resubmitting (retry_unknown=true: the phone "
                        "may get it twice)", part.job.msg_ref, part.spec.index, part.spec.total, why)
            self._requeue(part)
            return
        self.stats["unknown"] += 1
        log.warning("SMPP %s part %d/%d to %s: fate unknown: %s", part.job.msg_ref,
                    part.spec.index, part.spec.total, part.job.to, why)
        self._finish_part(part, "unknown", error=why)

    def _finish_part(self, part: _Part, outcome: str, *, message_id: str | None = None,
                     status: int | None = None, error: str | None = None) -> None:
        if part.outcome is not None:
            return
        part.outcome, part.message_id, part.status, part.error = outcome, message_id, status, error
        job = part.job
        if outcome in ("failed", "retry"):
            # the text is broken: send no more of it (parts in flight: wait for their answer)
            for other in job.parts:
                if other.outcome is None and not _in_flight(other):
                    other.outcome = "cancelled"
            self._purge(job)
        if any(p.outcome is None for p in job.parts):
            return
        self._finish_job(job, self._result(job))

    def _result(self, job: _Job) -> SubmitResult:
        parts = job.parts
        ids = [p.message_id for p in parts if p.outcome == "sent" and p.message_id is not None]
        n = len(parts)

        def where(p):
            return f"part {p.spec.index}/{n}: " if n > 1 else ""
        for outcome in ("failed", "unknown", "retry"):
            bad = [p for p in parts if p.outcome == outcome]
            if not bad:
                continue
            p = bad[0]
            error = where(p) + (p.error or outcome)
            if n > 1 and ids:
                error += f" ({len(ids)} of {n} parts accepted)"
            if outcome == "retry" and ids:
                outcome = "failed"         # resending the whole text would duplicate parts
            return SubmitResult(outcome, ids, error, p.status,
                                self.settings.retry_after if outcome == "retry" else None, n)
        return SubmitResult("sent", ids, None, P.ESME_ROK, None, n)

    def _remember_id(self, message_id: str, msg_ref: str) -> None:
        keys = message_id_keys(message_id)
        if keys:
            self._sent_ids[keys[0]] = (message_id, msg_ref)
            if len(self._sent_ids) > REMEMBER_IDS:
                self._sent_ids.popitem(last=False)

    def match_message_id(self, message_id) -> tuple[str, str] | None:
        """(submit_id, msg_ref) for an id this process got from submit_sm_resp: exact
        (normalized) first, then the same number in the other base."""
        for k in message_id_keys(message_id):
            hit = self._sent_ids.get(k)
            if hit is not None:
                return hit
        return None

    # ---------------------------------------------------------------- deliver_sm
    async def _deliver(self, link: _Link, p) -> int:
        """Handle one deliver_sm; returns the deliver_sm_resp status."""
        esm = p.esm_class or 0
        if esm & 0x24:                 # 0x04 delivery receipt, 0x20 intermediate notification
            return await self._dlr(p)
        return self._mo(p)

    def _sm_text(self, p) -> tuple[str, bytes]:
        sm = getattr(p, "short_message", None) or b""      # data_sm has none
        if not sm and getattr(p, "message_payload", None):
            sm = p.message_payload
        udh = b""
        if (p.esm_class or 0) & P.ESM_UDHI:
            udh, sm = P.split_udh(sm)
        s = self.settings
        return P.decode_text(sm, p.data_coding or 0, data_coding_default=s.data_coding_default,
                             gsm7_packed=s.gsm7_packed, udh_len=len(udh)), udh

    async def _dlr(self, p) -> int:
        text, _ = self._sm_text(p)
        report = make_report(receipted_message_id=getattr(p, "receipted_message_id", None),
                             message_state=getattr(p, "message_state", None),
                             network_error_code=getattr(p, "network_error_code", None),
                             text=text, handset=P.text_field(p.source_addr),
                             sender=P.text_field(p.destination_addr), received_at=self.clock())
        if report is None:
            log.warning("SMPP delivery receipt without a message id: %r", text[:200])
            return P.ESME_ROK
        hit = self.match_message_id(report.message_id)
        if hit is not None:
            report = replace(report, submit_id=hit[0], msg_ref=hit[1])
        self.stats["dlr"] += 1
        log.info("SMPP DLR id=%s state=%s%s%s", report.message_id, report.state,
                 f" ({report.error})" if report.error else "",
                 f" msg_ref={report.msg_ref}" if report.msg_ref else "")
        if self.on_dlr is None:
            return P.ESME_ROK
        try:
            r = self.on_dlr(report)
            if inspect.isawaitable(r):
                await r
        except Exception:
            log.exception("SMPP on_dlr failed for %s: asking the SMSC to resend", report.message_id)
            return P.ESME_RX_T_APPN
        return P.ESME_ROK

    def _mo(self, p) -> int:
        text, udh = self._sm_text(p)
        source, dest = P.text_field(p.source_addr), P.text_field(p.destination_addr)
        dc = p.data_coding or 0
        concat = P.concat_info(udh) if udh else None
        if concat is None and getattr(p, "sar_msg_ref_num", None) is not None:
            sar = (p.sar_msg_ref_num, getattr(p, "sar_total_segments", None),
                   getattr(p, "sar_segment_seqnum", None))
            if valid_concat(*sar):
                concat = sar
            else:                    # as a UDH that names no valid part: one whole text
                log.warning("SMPP MO from %s: SAR TLVs ref=%r total=%r seq=%r are not a valid "
                            "part: taken as a whole text", source, *sar)
        if concat is None or concat[1] <= 1:
            return self._hand_over(InboundSms(source, dest, text, self.clock(), dc))
        ref, total, seq = concat
        key = (source, dest, ref, total)
        full = self._mo_parts.add(key, total, seq, text, time.monotonic(), dc)
        for old in self._mo_parts.overflow():          # too many half texts: the oldest go now
            self._hand_over_partial(old, self._mo_parts.partial(old), old[3], dc)
        if full is None:
            return P.ESME_ROK          # held in memory until the rest arrives
        status = self._hand_over(InboundSms(source, dest, full, self.clock(), dc, total))
        if status == P.ESME_ROK:
            self._mo_parts.done(key)
        return status

    def _hand_over_partial(self, key, text: str, total: int, dc) -> None:
        source, dest = key[0], key[1]
        msg = InboundSms(source, dest, text, self.clock(), dc or 0, total, incomplete=True)
        if self._hand_over(msg) == P.ESME_ROK:
            self._mo_parts.done(key)

    def _hand_over(self, msg: InboundSms) -> int:
        if self.on_mo is None:
            log.error("SMPP MO from %s but no on_mo handler: asking the SMSC to resend", msg.source)
            return P.ESME_RX_T_APPN
        try:
            ok = self.on_mo(msg)
        except Exception:
            log.exception("SMPP on_mo failed for a reply from %s: asking the SMSC to resend",
                          msg.source)
            ok = False
        if ok:
            self.stats["mo"] += 1
            log.info("SMPP MO from %s to %s stored (%d chars)", msg.source, msg.dest, len(msg.text))
            return P.ESME_ROK
        self.stats["mo_refused"] += 1
        log.warning("SMPP MO from %s not stored: answered %s so the SMSC resends it",
                    msg.source, P.status_name(P.ESME_RX_T_APPN))
        return P.ESME_RX_T_APPN

    def _sweep_mo(self) -> None:
        """Long replies still missing parts after mo_reassembly_timeout: hand over what came."""
        limit = time.monotonic() - self.settings.mo_reassembly_timeout
        for key, text, total, dc in self._mo_parts.expired(limit):
            self._hand_over_partial(key, text, total, dc)


async def probe_bind(settings: SmppSettings) -> SmppFault | None:
    """One connect + bind_transmitter, then unbind: None when the gateway took the bind, else
    the fault, named. Never retries, and never binds to receive (doctor must not take the
    running service's replies)."""
    link = SmppTransport(settings, send_only=True).links[0]
    try:
        await link._connect_and_bind()
    except SmppFault as f:
        return f
    finally:
        if link.bound or link.writer is not None:
            try:
                link.write(P.make("unbind", link.seqs).generate())
                await asyncio.wait_for(link._read_frame(), 1.0)       # the unbind_resp
            except Exception:
                pass
        link._close()
    return None
