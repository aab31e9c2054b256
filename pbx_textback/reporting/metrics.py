"""`/metrics` in the Prometheus text format (prometheus-client), on its own loopback listener.

Counts come from the store at each scrape (they survive restarts and agree with the
reports; rows that never change are counted once, reporting/tally.py; the texts' totals are
kept by the store as texts change, store/text_tally.py), plus what purges deleted
(store/purged.py: a counter never goes down); the PBX connection and the SMSC bind come from the running service. Label values are
lines (our own DIDs), reasons, kinds and results: never a caller's number.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pbx_textback.reporting.response_hist import ResponseHistogram
from pbx_textback.reporting.tally import SETTLE_S, Tally
from pbx_textback.store import metrics as sql
from pbx_textback.store.purged import gone_upto, totals as purged

log = logging.getLogger("pbx_textback.reporting.metrics")
NS = "pbx_textback"
RESPONSE_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
HISTOGRAM_TTL_S = 60.0      # the response histogram reads the store once a minute at most


class StoreCollector:
    """A prometheus_client collector: each scrape reads the store."""

    def __init__(self, store, *, lines=(), clock=time.time, pbx_up=None, smsc_bound=None,
                 settle_s: float = SETTLE_S):
        """lines: the configured DIDs (another number in a label becomes 'other'; none
        configured: every inbound number is a line). pbx_up / smsc_bound: () -> bool | None."""
        self.store, self.lines, self.clock = store, set(lines), clock
        self.pbx_up, self.smsc_bound = pbx_up, smsc_bound
        self._hist: tuple[float, list, float] | None = None
        self._responses = ResponseHistogram(store, RESPONSE_BUCKETS)
        self._lock = threading.Lock()          # scrapes run in threads: one adds to the sums at a time
        self._calls, self._replies, self._opt_outs = (
            Tally(lambda a, b, f=f: f(store, a, b), settle_s)
            for f in (sql.call_totals, sql.reply_totals, sql.opt_out_totals))

    def _line(self, line: str) -> str:
        if not line:
            return "none"
        return line if not self.lines or line in self.lines else "other"

    def collect(self):
        now = self.clock()
        missed = CounterMetricFamily(f"{NS}_missed_calls", "Inbound calls no person answered", labels=["line", "reason"])
        inbound = CounterMetricFamily(f"{NS}_inbound_calls", "Inbound calls", labels=["line"])
        # one snapshot: a purge slice that commits meanwhile moves rows from the store's
        # counts to the purged ones (store/purged.py), and must not be read half before it
        with self.store.snapshot():
            mark = sql.purge_mark(self.store)
            gone = gone_upto(mark) or (None, None)       # (None: which ids went is not known)
            newest_call, newest_msg, newest_consent = sql.newest_ids(self.store)
            calls = self._calls.read(newest_call, mark, gone[0]) + [
                (line, reason, missed_ == "1", n) for line, reason, missed_, n in purged(self.store, "calls")]
            text_rows = sql.text_totals(self.store) + [
                (kind, state, n) for kind, state, _, n in purged(self.store, "texts")]
            replies = self._replies.read(newest_msg, mark, gone[1]) + [
                (line, n) for line, _, _, n in purged(self.store, "replies")]
            opt_outs = self._opt_outs.read(newest_consent, mark, 0)    # consent is never purged
        acc_m, acc_i = {}, {}
        for line, reason, was_missed, n in calls:
            ln = self._line(line)
            acc_i[ln] = acc_i.get(ln, 0) + n
            if was_missed:
                acc_m[(ln, reason)] = acc_m.get((ln, reason), 0) + n
        for (ln, reason), n in sorted(acc_m.items()):
            missed.add_metric([ln, reason], n)
        for ln, n in sorted(acc_i.items()):
            inbound.add_metric([ln], n)
        yield missed
        yield inbound
        texts = CounterMetricFamily(f"{NS}_texts", "Outgoing texts by kind and result (state)", labels=["kind", "result"])
        acc_t: dict = {}
        for kind, state, n in text_rows:
            acc_t[(kind, state)] = acc_t.get((kind, state), 0) + n
        for (kind, state), n in sorted(acc_t.items()):
            texts.add_metric([kind, state], n)
        yield texts
        yield self._by_line(f"{NS}_replies", "Texts from callers", replies)
        yield self._by_line(f"{NS}_opt_outs", "Opt-outs (STOP or by staff)", opt_outs)
        cb = CounterMetricFamily(f"{NS}_callbacks", "Call backs by feature code, by result", labels=["result"])
        for state, n in sql.callback_totals(self.store):
            cb.add_metric([state], n)
        yield cb
        hooks = sql.webhook_delivery_totals(self.store)
        if hooks is not None:
            wh = CounterMetricFamily(f"{NS}_webhook_deliveries", "Webhook deliveries by result", labels=["result"])
            for state, n in hooks:
                wh.add_metric([state], n)
            yield wh
        depth, oldest = sql.outbox(self.store, now)
        yield GaugeMetricFamily(f"{NS}_outbox_depth", "Texts waiting to go (pending or being sent)", value=depth)
        yield GaugeMetricFamily(f"{NS}_outbox_oldest_due_seconds", "Age of the oldest text that is due and not sent",
                                value=oldest or 0.0)
        for name, doc, fn in ((f"{NS}_pbx_up", "1 while the PBX event connection is up", self.pbx_up),
                              (f"{NS}_smsc_bound", "1 while the SMPP bind is up", self.smsc_bound)):
            if fn is not None:
                v = fn()
                if v is not None:
                    yield GaugeMetricFamily(name, doc, value=1.0 if v else 0.0)
        yield self._response_histogram(now)

    def _by_line(self, name, doc, rows):
        m = CounterMetricFamily(name, doc, labels=["line"])
        acc = {}
        for line, n in rows:
            acc[self._line(line)] = acc.get(self._line(line), 0) + n
        for ln, n in sorted(acc.items()):
            m.add_metric([ln], n)
        return m

    def _response_histogram(self, now: float):
        with self._lock:
            if self._hist is None or now - self._hist[0] > HISTOGRAM_TTL_S:
                self._hist = (now, *self._responses.read(now))
            _, buckets, total = self._hist
        h = HistogramMetricFamily(f"{NS}_first_human_response_seconds",
                                  "From a caller's first reply (or missed call) to a person's text or call")
        h.add_metric([], buckets, sum_value=total)
        return h


def registry_for(collector: StoreCollector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


class MetricsServer:
    """GET /metrics on its own listener (the config only allows a loopback address)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry, self.runner = registry, None

    async def handle(self, request):
        try:
            # in a thread: the counts read whole tables (a year of calls: seconds), and the
            # service's loop must go on taking calls meanwhile
            body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, self.registry)
        except Exception as e:          # the store's trouble: say so, keep serving
            log.warning("metrics scrape failed: %s", e)
            return web.Response(status=503, text=f"metrics unavailable: {e}\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        app.add_routes([web.get("/metrics", self.handle)])
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
