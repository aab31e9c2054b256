"""The outbox worker: due rows -> a transport -> their final state. Rows are claimed
(pending -> sending) in a transaction before any transport sees them, so a crash leaves them
`sending`, which start-up turns into `unknown` for the admin to decide (never resent silently).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

from .core.gate import CANCEL, EXPIRE, HOLD, GateFacts, gate
from .store import db as st

log = logging.getLogger("pbx_textback.outbox")


@dataclass(frozen=True)
class SendResult:
    status: str                 # sent | failed | retry | unknown
    transport_id: str = ""
    error: str = ""
    retry_after: float = 0.0
    via: str = ""               # which transport carried it (a router of several says)


class LogTransport:
    """Writes what would be sent to the log and calls it sent: for trying the service out."""
    name = "log"

    def __init__(self):
        self._ids = itertools.count(1)

    async def start(self):
        pass

    async def stop(self):
        pass

    async def send(self, msg) -> SendResult:
        tid = f"log-{next(self._ids)}"
        log.info("TEXT to %s from line %s [%s]: %s", msg.peer, msg.line or "-", tid, msg.body)
        return SendResult("sent", tid)


class OutboxWorker:
    def __init__(self, store: st.Store, transport, *, clock=time.time, poll: float = 1.0,
                 max_attempts: int = 5, max_age_s: float = 7200.0, gate_facts=None, after_sent=None):
        self.store, self.transport, self.clock, self.poll = store, transport, clock, poll
        self.max_attempts = max_attempts
        self.max_age_s = max_age_s
        self.batch = 20
        self.gate_facts = gate_facts or (lambda row: GateFacts())
        self.after_sent = after_sent or (lambda row, now: None)
        self._wake = asyncio.Event()
        self._stop = False
        self.sent = 0

    def wake(self) -> None:
        """A new row was written: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        n = self.store.recover_interrupted(self.clock())
        if n:
            log.warning("%d text(s) were being sent when the service stopped: marked unknown "
                        "(see `pbx-textback explain`); not resent automatically", n)
        while not self._stop:
            await self.drain()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def drain(self) -> int:
        done = 0
        while True:
            rows = self.store.claim_due(self.clock(), limit=self.batch)
            if not rows:
                return done
            # concurrently: the transport has its own window and rate; one at a time would
            # leave an SMSC's window idle while each answer crosses the wire
            await asyncio.gather(*(self._send(row) for row in rows))
            done += len(rows)

    async def _send(self, row) -> None:
        now = self.clock()
        g = gate(row.kind, row.due_at, now, self.gate_facts(row), max_age_s=self.max_age_s,
                 created_at=row.created_at)
        if g.action == CANCEL:
            self.store.set_state(row.id, st.CANCELLED, now=now, note=g.why)
            log.info("message %s cancelled: %s", row.id, g.why)
            return
        if g.action == EXPIRE:
            self.store.set_state(row.id, st.EXPIRED, now=now, note=g.why)
            log.warning("message %s expired: %s", row.id, g.why)
            return
        if g.action == HOLD:
            self.store.set_state(row.id, st.PENDING, now=now, note=g.why, due_at=g.until)
            log.info("message %s held until %s: %s", row.id, time.strftime("%H:%M:%S", time.localtime(g.until)), g.why)
            return
        try:
            res = await self.transport.send(row)
        except Exception as e:     # a transport bug must not lose the row
            log.exception("transport %s failed on message %s", self.transport.name, row.id)
            res = SendResult("unknown", error=f"transport error: {e}")
        now = self.clock()
        if res.status == "sent":
            self.sent += 1
            self.store.mark_sent(row.id, now=now, transport=res.via or self.transport.name,
                                 transport_id=res.transport_id)
            self.after_sent(row, now)
        elif res.status == "retry" and row.attempts < self.max_attempts:
            delay = res.retry_after or min(300, 5 * 2 ** row.attempts)
            self.store.set_state(row.id, st.PENDING, now=now, error=res.error, due_at=now + delay)
            log.warning("message %s: temporary failure (%s), retry in %.0f s", row.id, res.error, delay)
        elif res.status == "unknown":
            self.store.set_state(row.id, st.UNKNOWN, now=now, error=res.error)
            log.error("message %s: fate unknown (%s): check explain, resend by hand if needed",
                      row.id, res.error)
        else:
            self.store.set_state(row.id, st.FAILED, now=now, error=res.error)
            log.error("message %s to %s failed: %s", row.id, row.peer, res.error)

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
