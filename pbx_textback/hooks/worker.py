"""The delivery loop: scan the feed, send what is due, record every attempt.

A 2xx is delivered; a 410 Gone disables the endpoint (the receiver said it is gone for good)
and alerts the admin; anything else (no answer in 15 s, a refused connection, another status)
is tried again on the schedule, then given up as failed. A stop leaves nothing `sending`.
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from ..store import hooks as sh
from . import events as ev
from .feed import Feed
from .sign import headers

log = logging.getLogger("pbx_textback.hooks")

TIMEOUT_S = 15.0
TICK_S = 0.5
MAX_IN_FLIGHT = 16
KEEP_DAYS = 30            # finished events kept for `hooks deliveries` and resends (retention_days if shorter)


class HookService:
    def __init__(self, cfg, store, *, clock=time.time, schedule=ev.SCHEDULE, tick_s: float = TICK_S,
                 timeout_s: float = TIMEOUT_S, alerter=None):
        self.store, self.clock, self.schedule = store, clock, schedule
        self.tick_s, self.timeout_s = tick_s, timeout_s
        self.endpoints = {e.name: e for e in cfg.hooks.endpoint}
        days = cfg.compliance.retention_days
        self.keep_days = min(KEEP_DAYS, days) if days else KEEP_DAYS
        self.feed = Feed(store, {e.name: tuple(e.events) for e in cfg.hooks.endpoint}, clock)
        if alerter is None:
            from ..senders import Alerter
            alerter = Alerter(cfg.transport.alert_email, cfg.transport.alert_mta, clock=clock)
        self.alerter = alerter
        self.in_flight: set[asyncio.Task] = set()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    async def run(self) -> None:
        back = sh.recover_interrupted(self.store, self.clock())
        if back:
            log.info("webhooks: %d deliveries interrupted by the last stop go out again (same webhook-id)", back)
        names = ", ".join(f"{e.name} ({_shown(e.url)})" for e in self.endpoints.values())
        log.info("webhooks on for %s", names)
        last_prune = 0.0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as http:
            while not self._stop.is_set():
                try:
                    if self.clock() - last_prune > 3600:
                        last_prune = self.clock()
                        gone = sh.prune(self.store, self.clock() - self.keep_days * 86400)
                        if gone:
                            log.info("webhooks: %d finished events older than %g days removed", gone, self.keep_days)
                    self.feed.scan()
                    room = MAX_IN_FLIGHT - len(self.in_flight)
                    for d, e in sh.claim_due(self.store, self.clock(), list(self.endpoints), room):
                        t = asyncio.create_task(self._deliver(http, d, e))
                        self.in_flight.add(t)
                        t.add_done_callback(self.in_flight.discard)
                except Exception:      # the store's trouble: the log says it, the loop goes on
                    log.exception("webhooks: a scan failed; trying again")
                try:
                    await asyncio.wait_for(self._wake.wait(), self.tick_s)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
            for t in list(self.in_flight):
                t.cancel()
            await asyncio.gather(*self.in_flight, return_exceptions=True)
        sh.recover_interrupted(self.store, self.clock())     # cut short: sent again at the next start

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def _deliver(self, http, d, e) -> None:
        ep = self.endpoints[d.endpoint]
        started = self.clock()
        t0 = time.monotonic()
        status, error = None, ""
        try:
            hdrs = headers(ep.secret, e.event_id, int(started), e.body)
            async with http.post(ep.url, data=e.body.encode(), headers=hdrs, allow_redirects=False) as resp:
                status = resp.status
                await resp.read()
        except asyncio.TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as ex:   # refused, reset, a bad URL
            error = f"{type(ex).__name__}: {ex}"
        ms = int((time.monotonic() - t0) * 1000)
        now = self.clock()
        if status is not None and 200 <= status < 300:
            sh.record_attempt(self.store, d.id, now=now, status=status, error="", ms=ms, state=sh.DELIVERED)
            log.debug("webhook %s %s -> %s: %d in %d ms", e.type, e.event_id, ep.name, status, ms)
            return
        if status == 410:
            reason = f"{_shown(ep.url)} answered 410 Gone to {e.event_id}"
            sh.record_attempt(self.store, d.id, now=now, status=status, error="410 Gone: endpoint disabled",
                              ms=ms, state=sh.FAILED)
            sh.disable_endpoint(self.store, ep.name, reason, now)
            self.alerter.alert(f"webhook endpoint {ep.name} disabled",
                               f"webhooks: endpoint {ep.name} disabled: {reason}. Its events wait; "
                               f"`pbx-textback hooks enable {ep.name}` sends them once it is back.")
            return
        error = error or f"HTTP {status}"
        due = ev.next_due(d.attempts + 1, now, self.schedule)
        if due is None:
            sh.record_attempt(self.store, d.id, now=now, status=status, error=error, ms=ms, state=sh.FAILED)
            log.error("webhook %s %s to %s given up after %d attempts: %s (`pbx-textback hooks resend %d`)",
                      e.type, e.event_id, ep.name, d.attempts + 1, error, d.id)
            return
        sh.record_attempt(self.store, d.id, now=now, status=status, error=error, ms=ms, state=sh.PENDING,
                          due_at=due)
        log.warning("webhook %s %s to %s failed (attempt %d): %s; next try in %s", e.type, e.event_id,
                    ep.name, d.attempts + 1, error, _span(due - now))


def _span(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.0f} h")


def _shown(url: str) -> str:
    """A URL for the log: a relay's key in the query string or user info stays out of it."""
    from urllib.parse import urlsplit
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname}{':' + str(u.port) if u.port else ''}{u.path}"
