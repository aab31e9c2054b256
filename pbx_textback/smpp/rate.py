"""How fast submit_sm may go out: the tps cap, cut to the gateway's quota when it throttles,
then climbing back."""
from __future__ import annotations

import asyncio
import logging
from collections import deque

from . import pdu as P
from .settings import SmppSettings

log = logging.getLogger("pbx_textback.smpp")


class Rate:
    def __init__(self, settings: SmppSettings):
        self.settings = settings
        self.rate = float(settings.tps) if settings.tps else float("inf")
        self.next_send = 0.0                 # loop time the next submit_sm may be written
        self.paused_until = 0.0
        self.rate_at = 0.0                   # when the rate last changed
        self.writes = 0
        self.cut_wseq = 0                    # parts written before the last cut: their throttle
                                             # answers are the same congestion, not a new one
        self.accepts: deque[float] = deque()     # when submits were accepted, the last second

    def written(self, now: float) -> int:
        """One submit_sm written at loop time `now`; returns its write number (wseq)."""
        self.writes += 1
        # a wake-up that comes late (a busy loop) may catch up by up to 50 ms of sends: without
        # that credit every late wake-up is rate lost, 20 % and more at a few hundred per second
        self.next_send = max(now - 0.05, self.next_send) + (1.0 / self.rate if self.rate else 0.0)
        return self.writes

    def accepted(self) -> None:
        """A submit_sm_resp ESME_ROK."""
        self.recover()
        now = asyncio.get_running_loop().time()
        self.accepts.append(now)
        self.accepted_last_second(now)          # keeps the deque to one second

    def accepted_last_second(self, now: float) -> int:
        while self.accepts and self.accepts[0] < now - 1.0:
            self.accepts.popleft()
        return len(self.accepts)

    def throttled(self, status: int, wseq: int) -> None:
        """The gateway is over its quota. Once per congestion (not once per throttled answer:
        a full window answers 0x58 ten times for one overrun) the rate drops to just under
        what the gateway accepted in the last second, its quota; a gateway that accepted
        nothing gets a pause of throttle_pause as well."""
        if wseq <= self.cut_wseq:
            return                         # written before the last cut: same congestion
        self.cut_wseq = self.writes
        loop = asyncio.get_running_loop()
        s = self.settings
        now = loop.time()
        old = self.rate
        accepted = self.accepted_last_second(now)
        self.rate = max(1.0, min(old, accepted * 0.95))
        self.rate_at = now
        pause = s.throttle_pause if accepted == 0 else 0.0
        self.paused_until = now + pause
        self.next_send = max(self.next_send, now + pause + 1.0 / self.rate)
        log.warning("SMPP %s: the gateway accepted %d submits in the last second; rate %s -> "
                    "%.1f/s%s", P.status_name(status), accepted,
                    "uncapped" if old == float("inf") else f"{old:.1f}/s", self.rate,
                    f", pausing {pause:g}s" if pause else "")

    def recover(self) -> None:
        """After a cut the rate climbs back 10 % per second towards tps (or uncapped)."""
        cap = float(self.settings.tps) if self.settings.tps else float("inf")
        if self.rate >= cap:
            return
        now = asyncio.get_running_loop().time()
        dt, self.rate_at = now - self.rate_at, now
        self.rate *= 1.0 + 0.10 * min(dt, 10.0)
        if self.rate >= cap or (cap == float("inf") and self.rate > 5000):
            self.rate = cap
