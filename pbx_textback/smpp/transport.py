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

Where each room lives: link.py (a connection and its bind), window.py (writing submit_sm as
the window and rate allow), rate.py (throttling), submits.py (texts, parts and their results),
ids.py (message ids for receipts), inbound.py (deliver_sm: receipts and replies), faults.py
(a failed bind, named), settings.py. This module ties them into one account.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Callable

from . import pdu as P
from .dlr import DeliveryReport
from .faults import BindRefused, LinkClosed, SmppFault, name_fault
from .ids import REMEMBER_IDS, SentIds
from .inbound import Inbound, InboundSms
from .link import Link
from .rate import Rate
from .settings import BIND_MODES, SmppSettings
from .submits import REMEMBER_REFS, SubmitResult, Submits
from .window import Window

__all__ = ["BIND_MODES", "REMEMBER_IDS", "REMEMBER_REFS", "BindRefused", "InboundSms", "LinkClosed",
           "SmppFault", "SmppSettings", "SmppTransport", "SubmitResult", "name_fault", "probe_bind"]

log = logging.getLogger("pbx_textback.smpp")


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
            self.links = [Link(self, "transmitter")]
        elif settings.bind_mode == "transceiver":
            self.links = [Link(self, "transceiver")]
        else:
            self.links = [Link(self, "transmitter"), Link(self, "receiver")]
        self._state = "down"
        self.stopping = False
        self.started = False
        self.stats = {"submit_sm": 0, "throttled": 0, "unknown": 0, "resubmitted_unknown": 0,
                      "dlr": 0, "mo": 0, "mo_refused": 0, "late_resp": 0, "not_written": 0,
                      "answers": 0, "answer_writes": 0}
        self.ids = SentIds()
        self.rate = Rate(settings)
        self.submits = Submits(self)
        self.window = Window(self)
        self.inbound = Inbound(self)

    # ---------------------------------------------------------------- lifecycle
    @property
    def state(self) -> str:
        return self._state

    @property
    def outstanding(self) -> int:
        return sum(len(link.inflight) for link in self.links)

    async def start(self) -> None:
        if self.started:
            return
        self.started, self.stopping = True, False
        for link in self.links:
            link.task = asyncio.create_task(link.run(), name=f"smpp-{link.role}")
        self.window.start()

    async def wait_bound(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._state != "bound":
            if time.monotonic() > deadline:
                raise asyncio.TimeoutError(f"SMPP not bound after {timeout}s (state {self._state})")
            await asyncio.sleep(0.01)

    async def stop(self, grace: float = 2.0) -> None:
        """Stop sending, wait up to `grace` s for outstanding answers, unbind, close. Queued
        submits end "retry" (never written); still-unanswered ones "unknown"."""
        if not self.started:
            return
        self.stopping = True
        self.window.wake()
        # every text not yet written goes back now: nothing waits in memory across a stop
        self.submits.retry_queued()
        deadline = time.monotonic() + grace
        while self.outstanding and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        dispatcher = self.window.task
        if dispatcher:
            dispatcher.cancel()
        for link in self.links:
            if link.bound:
                try:
                    await link.request("unbind", min(grace, 1.0))
                except Exception:
                    pass
            link.lost("transport stopped")
            if link.sleeper is not None and not link.sleeper.done():
                link.sleeper.set_result(None)
            if link.task:
                link.task.cancel()
        await asyncio.gather(*(t for t in [dispatcher] + [lk.task for lk in self.links] if t),
                             return_exceptions=True)
        self.submits.retry_queued()
        self.started = False
        self._set_state("down", "stopped")

    # ---------------------------------------------------------------- state
    def link_state(self, link: Link, state: str, detail: str) -> None:
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
            logging.WARNING if state == "down" and old == "bound" and not self.stopping \
            else logging.INFO
        log.log(level, "SMPP state %s -> %s: %s", old, state, detail)
        if self.on_state is not None:
            try:
                self.on_state(state, detail)
            except Exception:
                log.exception("SMPP on_state callback failed")

    # ---------------------------------------------------------------- submit, receipts
    async def submit(self, msg_ref: str, to: str, text: str, source: str,
                     last_look: Callable[[], bool] | None = None) -> SubmitResult:
        """Send one text (all its parts); the result covers the whole text. `last_look` is
        called right before the first part's submit_sm is handed to the socket (same
        synchronous step): False -> nothing is written and the result is "retry". A text
        not written within queue_timeout (no bind, window full) is "retry" too."""
        return await self.submits.submit(msg_ref, to, text, source, last_look)

    def match_message_id(self, message_id) -> tuple[str, str] | None:
        """(submit_id, msg_ref) for an id this process got from submit_sm_resp."""
        return self.ids.match(message_id)


async def probe_bind(settings: SmppSettings) -> SmppFault | None:
    """One connect + bind_transmitter, then unbind: None when the gateway took the bind, else
    the fault, named. Never retries, and never binds to receive (doctor must not take the
    running service's replies)."""
    link = SmppTransport(settings, send_only=True).links[0]
    try:
        await link.connect_and_bind()
    except SmppFault as f:
        return f
    finally:
        if link.bound or link.writer is not None:
            try:
                link.write(P.make("unbind", link.seqs).generate())
                await asyncio.wait_for(link.read_frame(), 1.0)       # the unbind_resp
            except Exception:
                pass
        link.close()
    return None
