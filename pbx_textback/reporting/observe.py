"""What the service starts for the people watching it from outside: /metrics (metrics.py)
and e-mail to staff (staffmail.py). Each is off by default; each failing to start is logged
and never stops the texting."""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("pbx_textback.reporting.observe")


class Observers:
    def __init__(self):
        self.metrics = None
        self.metrics_port: int | None = None
        self.tasks: list[asyncio.Task] = []

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.stop()


def pbx_up(svc):
    if svc.cfg.pbx.type == "mail":
        return None                     # no event connection to be up or down
    return svc.pbx_state == "connected"


def smsc_bound(svc):
    states = svc._transport_states() if getattr(svc, "transport", None) is not None else {}
    return states["smpp"] == "bound" if "smpp" in states else None


async def start(svc) -> Observers:
    obs = Observers()
    m = svc.cfg.metrics
    if m.enabled:
        from pbx_textback.config import web_listen
        from pbx_textback.reporting.metrics import MetricsServer, StoreCollector, registry_for
        collector = StoreCollector(svc.store, lines=[ln.number for ln in svc.cfg.line], clock=svc.clock,
                                   pbx_up=lambda: pbx_up(svc), smsc_bound=lambda: smsc_bound(svc))
        server = MetricsServer(registry_for(collector))
        host, port = web_listen(m.listen)
        try:
            obs.metrics_port = await server.start(host, port)
            obs.metrics = server
            log.info("metrics on http://%s:%d/metrics", host, obs.metrics_port)
        except OSError as e:
            log.error("metrics not served: cannot listen on %s: %s", m.listen, e.strerror or e)
    if svc.cfg.mail.to:
        from pbx_textback.reporting.staffmail import run as mail_loop
        obs.tasks.append(asyncio.create_task(mail_loop(svc.cfg, svc.store, svc.clock), name="staff-mail"))
    return obs
