"""The outbox worker: due rows -> a transport -> their final state.

Due rows are read and handed to the transport; the transport calls `last_look()` in the same
step as it writes the text's first byte: the gate runs then (quiet hours, max age, opt-out,
reached) and the row is taken, pending -> sending with `written_at`, in one transaction (one
commit per text instead of a claim and then a written mark; a row cancelled or held while it
waited for the transport is simply no longer pending, and nothing is written). So a stop or a
crash leaves only written rows in `sending`: unanswered -> `unknown` at start-up, shown to the
admin and never resent silently (`pbx-textback resend ID` records a copy as the admin's
choice). Rows of an older version claimed but never written go back to pending at start-up.

Texts go out as independent tasks, as many at once as the transport can carry (`capacity`: an
SMSC's window), and a free slot is refilled at once: one slow text never holds the others.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, replace

from .core.policy.gate import CANCEL, EXPIRE, HOLD, SEND, GateFacts, gate, regardless
from .pipeline import mask
from .store import db as st
from .store.sendpath import take_if_clear
from .wakeup import Wakeup

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
    capacity = 4

    def __init__(self):
        self._ids = itertools.count(1)

    async def start(self):
        pass

    async def stop(self):
        pass

    async def send(self, msg, last_look=None) -> SendResult:
        if last_look is not None and not last_look():
            return SendResult("retry")
        return SendResult("sent", self.deliver(msg))

    def deliver(self, msg) -> str:
        """Where the text goes (the log here); returns its id."""
        tid = f"log-{next(self._ids)}"
        log.info("TEXT to %s from line %s [%s]: %s", msg.peer, msg.line or "-", tid, msg.body)
        return tid


DEFAULT_CAPACITY = 4       # texts in flight for a transport that does not say (SMPP: its window)


def capacity_of(transport) -> int:
    """How many texts a transport takes at once: its own `capacity`, else the default."""
    return getattr(transport, "capacity", 0) or DEFAULT_CAPACITY


class OutboxWorker:
    def __init__(self, store: st.Store, transport, *, clock=time.time, poll: float = 1.0,
                 max_attempts: int = 5, max_age_s: float = 7200.0, gate_facts=None, after_sent=None,
                 capacity: int | None = None, gate_clear=None):
        self.store, self.transport, self.clock, self.poll = store, transport, clock, poll
        self.max_attempts = max_attempts
        self.max_age_s = max_age_s
        self._capacity = capacity
        self.gate_facts = gate_facts or (lambda row, now: GateFacts())
        self.after_sent = after_sent or (lambda row, now: None)
        # (row, now) -> the gate's facts that are no reading of the number's history (quiet
        # hours, the hourly cap), the others as when clear: with it, the last look takes a row
        # in one statement when they are (store/sendpath.py), and reads them only when not
        self.gate_clear = gate_clear
        self._running = False          # start-up recovery done: offered rows may be started
        self._sleep = Wakeup()         # until woken or the next poll
        self._full = False             # the last look for rows found no free slot left
        self._stop = False
        self._tasks: dict[int, asyncio.Task] = {}     # message id -> its send
        self.sent = 0

    @property
    def capacity(self) -> int:
        return max(1, int(self._capacity or capacity_of(self.transport)))

    def wake(self) -> None:
        """A new row was written or a slot freed: look now instead of at the next poll."""
        self._sleep.wake()

    def offer(self, row) -> None:
        """A decision has just committed `row`, due now, and its facts said no other text was
        due (Pipeline.record_call's `queued`): it goes into a free slot as written, the due
        rows not read back. Else (recovery not yet run, stopping, no free slot, already
        carried) as wake()."""
        if not self._running or self._stop or row.id in self._tasks or len(self._tasks) >= self.capacity:
            self.wake()
            return
        self._start(row)

    def _start(self, row) -> None:
        task = asyncio.get_running_loop().create_task(self._send(row), name=f"text-{row.id}")
        self._tasks[row.id] = task
        task.add_done_callback(lambda t, mid=row.id: self._done(mid))

    async def run(self) -> None:
        adopted = self.store.adopt_unboxed(self.clock())
        if adopted:
            log.info("%d queued text(s) from before boxes were named: sent by this box (%s)",
                     adopted, self.store.box)
        back, unknown = self.store.recover_interrupted(self.clock())
        if back:
            log.warning("%d text(s) were claimed but not yet written when the service stopped: "
                        "back in the queue", back)
        if unknown:
            log.warning("%d text(s) were written but unanswered when the service stopped: marked "
                        "unknown, they may have gone out (`pbx-textback explain NUMBER`); a receipt "
                        "that still arrives settles them", unknown)
        self._running = True
        while not self._stop:
            self._sleep.woken = False
            self._fill()
            if not self._stop:
                await self._sleep.sleep(self.poll)

    def _fill(self) -> int:
        """Claim due rows into the free slots; each goes out as a task of its own."""
        n = 0
        self._full = False
        while not self._stop:
            free = self.capacity - len(self._tasks)
            if free <= 0:
                self._full = True
                break
            rows = self.store.due_rows(self.clock(), limit=free, skip=self._tasks.keys())
            for row in rows:
                self._start(row)
            n += len(rows)
            if len(rows) < free:
                break
        return n

    def _done(self, msg_id: int) -> None:
        self._tasks.pop(msg_id, None)
        # a freed slot matters when rows were left waiting for one; otherwise nothing became
        # due because of it (new rows wake the worker, rows due later are found at the poll),
        # and the look it cost was one statement per text for nothing
        if self._full:
            self.wake()

    async def drain(self) -> int:
        """Send everything due now and wait until it is settled (tests, one-shot runs)."""
        done = 0
        while True:
            done += self._fill()
            if not self._tasks:
                return done
            await asyncio.wait(set(self._tasks.values()), return_when=asyncio.FIRST_COMPLETED)

    def _gate(self, row, now: float) -> bool:
        """Send, or record why not (hold, cancel, expire). One clock reading per decision."""
        g = gate(row.kind, row.due_at, now, self.gate_facts(row, now), max_age_s=self.max_age_s,
                 created_at=row.created_at)
        if g.action == SEND:
            return True
        if g.action == CANCEL:
            self.store.set_state(row.id, st.CANCELLED, now=now, note=g.why)
            log.info("message %s cancelled: %s", row.id, g.why)
        elif g.action == EXPIRE:
            self.store.set_state(row.id, st.EXPIRED, now=now, note=g.why)
            log.warning("message %s expired: %s", row.id, g.why)
        elif g.action == HOLD:
            self.store.set_state(row.id, st.PENDING, now=now, note=g.why, due_at=g.until)
            log.info("message %s held until %s: %s", row.id,
                     time.strftime("%H:%M:%S", time.localtime(g.until)), g.why)
        return False

    def _last_look(self, row) -> bool:
        """Right before the first byte: the gate at this instant, then `written_at`."""
        now = self.clock()
        if self.gate_clear is not None and self._take_if_clear(row, now):
            row.state, row.written_at = st.SENDING, now
            return True
        if not (self._gate(row, now) and self.store.take_written(row.id, now)):
            return False
        row.state, row.written_at = st.SENDING, now
        return True

    def _take_if_clear(self, row, now: float) -> bool:
        """The gate on the facts as they are when nothing stands in the way; when it says send,
        the row is taken on the condition that they are (one statement). A text the gate sends
        whatever the facts (gate.regardless: a reply the rules require) is taken without them.
        False: not taken, the usual last look decides (it reads the facts, records a hold or a
        cancel)."""
        first = regardless(row.kind)
        if first is not None:
            return first.action == SEND and self.store.take_written(row.id, now)
        g = gate(row.kind, row.due_at, now, self.gate_clear(row, now), max_age_s=self.max_age_s,
                 created_at=row.created_at)
        if g.action != SEND:
            return False
        return take_if_clear(self.store, row, now)

    async def _send(self, row) -> None:
        try:
            await self._send_one(row)
        except Exception:          # e.g. the store is unreachable: the row must not stay claimed
            log.exception("message %s: could not be sent or recorded; it stays queued", row.id)
            try:
                self.store.return_unwritten([row.id], self.clock())
            except Exception:
                pass               # start-up recovery puts it back (it was never written)

    async def _send_one(self, row) -> None:
        # the gate runs once, at the last look right before the first byte (every transport
        # calls it): a text that waited its turn is judged when it would really go
        looked: list[bool] = []

        def last_look() -> bool:                   # once per text, whatever the transport asks
            if not looked:
                looked.append(self._last_look(row))
            return looked[0]
        try:
            res = await self.transport.send(row, last_look)
        except Exception as e:     # a transport bug must not lose the row
            log.exception("transport %s failed on message %s", self.transport.name, row.id)
            res = SendResult("unknown", error=f"transport error: {e}")
        if looked == [False]:
            return                                  # the last look recorded hold/cancel/expire
        if not looked and res.status != "retry":
            # an answer without a last look (nothing written, it says, or a transport that does
            # not ask): the row must leave pending to be recorded, or it would go out again
            if not self.store.take_unlooked(row.id, self.clock()):
                log.warning("message %s: %s without a last look, and no longer pending: left as it is",
                            row.id, res.status)
                return
            row.state = st.SENDING
        written = looked == [True]
        if res.status == "unknown" and not written:
            res = SendResult("retry", error=res.error or "not written")    # no byte left: not unknown
        self._record(row, res, written)

    def _record(self, row, res: SendResult, written: bool) -> None:
        now = self.clock()
        attempts = row.attempts + written
        if self._stop and res.status == "retry":
            res = replace(res, retry_after=0.001)     # our own stop: due again at the next start
        if res.status == "sent":
            self.sent += 1
            self.store.mark_sent(row.id, now=now, transport=res.via or self.transport.name,
                                 transport_id=res.transport_id)
            self.after_sent(row, now)
        elif res.status == "retry" and not written:
            # never written (gateway down…): it waits its turn again, unless meanwhile it is
            # too old, cancelled or held (the gate, as at a last look)
            if not self._gate(row, now):
                return
            delay = res.retry_after or 5.0
            self.store.set_state(row.id, st.PENDING, now=now, error=res.error, due_at=now + delay,
                                 only_from=row.state)          # never taken: still pending
            # said once per cause: an outage must not write a line per text every few seconds
            log.log(logging.WARNING if res.error != row.error else logging.DEBUG,
                    "message %s not sent yet (%s): it waits in the queue, next try in %.0f s",
                    row.id, res.error, delay)
        elif res.status == "retry" and attempts < self.max_attempts:
            delay = res.retry_after or min(300, 5 * 2 ** attempts)
            self.store.set_state(row.id, st.PENDING, now=now, error=res.error, due_at=now + delay,
                                 only_from=st.SENDING)
            log.warning("message %s: temporary failure (%s), retry in %.0f s", row.id, res.error, delay)
        elif res.status == "unknown":
            if not self.store.set_state(row.id, st.UNKNOWN, now=now, error=res.error, only_from=st.SENDING):
                log.info("message %s: no answer to the submit, but a receipt already settled it", row.id)
                return
            log.error("message %s to %s: fate unknown (%s): it was written and may have gone out; a "
                      "receipt that still arrives settles it (`pbx-textback explain %s`)",
                      row.id, mask(row.peer), res.error, row.peer)
        else:
            self.store.set_state(row.id, st.FAILED, now=now, error=res.error, only_from=row.state)
            log.error("message %s to %s failed: %s", row.id, mask(row.peer), res.error)

    def stop(self) -> None:
        self._stop = True
        self.wake()

    async def close(self, grace: float = 5.0) -> None:
        """On shutdown, after the transport's stop() (which makes waiting sends return):
        let running sends record their result, then put back what was never written."""
        self.stop()
        tasks = set(self._tasks.values())
        ids = set(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        n = self.store.return_unwritten(ids, self.clock())
        if n:
            log.info("%d text(s) not yet written: back in the queue for the next start", n)

