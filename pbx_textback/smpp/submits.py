"""The submit book-keeping: one job per text, one part per submit_sm, the queue they wait in,
and how each answer (or its absence) becomes the text's result."""
from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from . import pdu as P

if TYPE_CHECKING:
    from .link import Link
    from .transport import SmppTransport

log = logging.getLogger("pbx_textback.smpp")

# A destination no longer remembered gets a random concatenation reference, as after a
# restart (bounded: see ids.py).
REMEMBER_REFS = 4096


@dataclass(frozen=True)
class SubmitResult:
    status: str                       # "sent" | "failed" | "retry" | "unknown"
    message_ids: list[str]            # the SMSC's id of every part it accepted, in part order
    error: str | None = None
    command_status: int | None = None
    retry_after: float | None = None  # with "retry": seconds the outbox should wait
    parts: int = 1



@dataclass(eq=False)
class Job:
    msg_ref: str
    to: str
    source: str
    parts: list["Part"]
    future: asyncio.Future
    last_look: Callable[[], bool] | None = None
    looked: bool = False              # last_look called (and said True): bytes may be out
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class Part:
    job: Job
    spec: P.PartSpec
    order: int                        # global submit order: requeued parts keep their place
    outcome: str | None = None        # sent | failed | retry | unknown | cancelled
    message_id: str | None = None
    status: int | None = None
    error: str | None = None
    written: int = 0                  # times written to a socket
    wseq: int = 0                     # the transport's write counter when last written
    temp_failures: int = 0
    link: "Link | None" = None
    seq: int = 0
    timer: asyncio.TimerHandle | None = None


def in_flight(part: Part) -> bool:
    return part.link is not None and part.link.inflight.get(part.seq) is part



class Submits:
    """Texts from submit() to their SubmitResult. The window (window.py) takes parts from
    `queue` and writes them; the link hands their answers back here."""

    def __init__(self, t: "SmppTransport"):
        self.t = t
        self.settings = t.settings
        self.stats = t.stats
        self.rate = t.rate
        self.queue: deque[Part] = deque()
        self.order = 0
        self.refs: dict[str, int] = {}

    def next_ref(self, to: str) -> int:
        """8-bit concatenation reference, a counter per destination (random start, so a
        restart does not reuse the last reference a phone saw)."""
        ref = self.refs.get(to)
        ref = random.randrange(256) if ref is None else (ref + 1) & 0xFF
        self.refs[to] = ref
        if len(self.refs) > REMEMBER_REFS:
            self.refs.pop(next(iter(self.refs)))
        return ref

    async def submit(self, msg_ref: str, to: str, text: str, source: str,
                     last_look: Callable[[], bool] | None = None) -> SubmitResult:
        """Send one text (all its parts); the result covers the whole text. `last_look` is
        called right before the first part's submit_sm is handed to the socket (same
        synchronous step): False -> nothing is written and the result is "retry". A text
        not written within queue_timeout (no bind, window full) is "retry" too."""
        s = self.settings
        if not self.t.started or self.t.stopping:
            return SubmitResult("retry", [], "SMPP transport is not running", None, s.retry_after)
        if not (to or "").strip():
            return SubmitResult("failed", [], "no destination number", None)
        specs = P.plan_parts(text, ref=self.next_ref(to), data_coding_default=s.data_coding_default,
                             gsm7_packed=s.gsm7_packed, long_mode=s.long_mode)
        loop = asyncio.get_running_loop()
        job = Job(msg_ref, to, source, [], loop.create_future(), last_look)
        for spec in specs:
            self.order += 1
            job.parts.append(Part(job, spec, self.order))
        job.timer = loop.call_later(s.queue_timeout, self.not_written, job)
        self.queue.extend(job.parts)
        self.t.window.wake()
        try:
            # not shielded: cancelling this await cancels job.future too, which finish_job and
            # not_written then leave alone (done); a shield cost two callbacks a text
            return await job.future
        except asyncio.CancelledError:
            for part in job.parts:
                if part.outcome is None and part.written == 0:
                    part.outcome = "cancelled"
            self.purge(job)
            if any(p.outcome is None for p in job.parts):
                log.warning("SMPP submit %s cancelled with parts outstanding: their result is "
                            "only logged", msg_ref)
            raise

    def not_written(self, job: Job) -> None:
        """queue_timeout passed: a text none of whose parts is accepted or on the wire goes
        back to the outbox (retry); one already partly out keeps going."""
        if job.future.done() or any(p.outcome == "sent" or in_flight(p) for p in job.parts):
            return
        link = self.t.window.send_link()
        why = (f"not bound to the SMSC (state {self.t.state})" if link is None else
               "the send window stayed full / throttled")
        self.stats["not_written"] += 1
        for p in job.parts:
            if p.outcome is None:
                p.outcome = "cancelled"
        self.purge(job)
        self.finish_job(job, SubmitResult(
            "retry", [], f"not written in {self.settings.queue_timeout:g}s: {why}", None,
            self.settings.retry_after if link is None else self.settings.throttle_pause))

    def finish_job(self, job: Job, result: SubmitResult) -> None:
        if job.timer:
            job.timer.cancel()
        if not job.future.done():
            job.future.set_result(result)

    def look(self, job: Job) -> bool:
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
            self.purge(job)
            self.finish_job(job, SubmitResult("retry", [], "held at the last look", None, 0.0))
        return ok

    def purge(self, job: Job) -> None:
        if any(p.job is job for p in self.queue):
            self.queue = deque(p for p in self.queue if p.job is not job)

    def late_answer(self, part: Part, status: int, message_id: str) -> None:
        """A submit_sm_resp after we gave up on it: evidence for an unknown text."""
        self.stats["late_resp"] += 1
        job = part.job
        if status == P.ESME_ROK:
            self.t.ids.remember(message_id, job.msg_ref)     # its receipt will match
        log.warning("SMPP %s part %d/%d: late submit_sm_resp %s%s", job.msg_ref, part.spec.index,
                    part.spec.total, P.status_name(status), f" id={message_id}" if message_id else "")
        if self.t.on_late is not None and part.outcome == "unknown":
            try:
                self.t.on_late(job.msg_ref, status, message_id)
            except Exception:
                log.exception("SMPP on_late failed for %s", job.msg_ref)

    def answered(self, part: Part, status: int, message_id: str) -> None:
        s = self.settings
        if part.timer:
            part.timer.cancel()
        if status == P.ESME_ROK:
            self.rate.accepted()
            self.t.ids.remember(message_id, part.job.msg_ref)
            self._finish_part(part, "sent", message_id=message_id)
        elif status in P.THROTTLE_STATUSES:
            self.stats["throttled"] += 1
            self.rate.throttled(status, part.wseq)
            self.requeue(part)
        elif status in P.TEMPORARY_STATUSES and part.spec.total > 1 and \
                part.temp_failures < s.part_retries:
            # one part of a long text: resend that part, not the whole text (no duplicate parts)
            part.temp_failures += 1
            log.warning("SMPP %s part %d/%d: %s; resending that part in %.1fs",
                        part.job.msg_ref, part.spec.index, part.spec.total,
                        P.status_name(status), s.throttle_pause)
            asyncio.get_running_loop().call_later(s.throttle_pause, self.requeue, part)
        elif status in P.TEMPORARY_STATUSES:
            self._finish_part(part, "retry", status=status, error=P.status_name(status))
        else:
            self._finish_part(part, "failed", status=status, error=P.status_name(status))
        if self.queue:
            # a slot came free for parts that wait (a part sent back to the queue woke the
            # window itself); with none waiting, waking it was a task step per text for nothing
            self.t.window.wake()

    def requeue(self, part: Part) -> None:
        """Back to the head of the queue, before parts submitted after it."""
        if part.outcome is not None or self.t.stopping:
            if self.t.stopping and part.outcome is None:
                self._finish_part(part, "retry", error="transport stopped before sending")
            return
        i = 0
        for i, q in enumerate(self.queue):
            if q.order > part.order:
                break
        else:
            i = len(self.queue)
        self.queue.insert(i, part)
        self.t.window.wake()

    def unknown(self, part: Part, why: str) -> None:
        if part.timer:
            part.timer.cancel()
        if self.settings.retry_unknown and not self.t.stopping:
            self.stats["resubmitted_unknown"] += 1
            log.warning("SMPP %s part %d/%d: %s; resubmitting (retry_unknown=true: the phone "
                        "may get it twice)", part.job.msg_ref, part.spec.index, part.spec.total, why)
            self.requeue(part)
            return
        self.stats["unknown"] += 1
        log.warning("SMPP %s part %d/%d to %s: fate unknown: %s", part.job.msg_ref,
                    part.spec.index, part.spec.total, part.job.to, why)
        self._finish_part(part, "unknown", error=why)

    def _finish_part(self, part: Part, outcome: str, *, message_id: str | None = None,
                     status: int | None = None, error: str | None = None) -> None:
        if part.outcome is not None:
            return
        part.outcome, part.message_id, part.status, part.error = outcome, message_id, status, error
        job = part.job
        if outcome in ("failed", "retry"):
            # the text is broken: send no more of it (parts in flight: wait for their answer)
            for other in job.parts:
                if other.outcome is None and not in_flight(other):
                    other.outcome = "cancelled"
            self.purge(job)
        if any(p.outcome is None for p in job.parts):
            return
        self.finish_job(job, self._result(job))

    def _result(self, job: Job) -> SubmitResult:
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


    def retry_queued(self) -> None:
        """Stopping: every part not yet written goes back to the outbox as retry."""
        while self.queue:
            part = self.queue.popleft()
            self._finish_part(part, "retry", error="transport stopped before sending")
