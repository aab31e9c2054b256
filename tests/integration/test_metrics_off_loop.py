"""A /metrics scrape reads whole tables (its counters), which takes seconds on a big store:
it runs off the service's event loop, so calls and texts go on meanwhile. Shown with a
collector that waits for the loop to do something while the scrape is under way."""
import asyncio
import threading

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from pbx_textback.reporting.metrics import MetricsServer


class WaitsForTheLoop:
    def __init__(self):
        self.loop_ran = threading.Event()

    def collect(self):
        # a scrape that blocked the loop would wait here in vain: the loop sets this
        yield GaugeMetricFamily("loop_ran_during_scrape", "1: the loop ran", value=1.0 if self.loop_ran.wait(5) else 0.0)


def test_the_loop_runs_while_a_scrape_reads_the_store():
    async def main():
        c = WaitsForTheLoop()
        reg = CollectorRegistry(auto_describe=False)
        reg.register(c)
        server = MetricsServer(reg)
        port = await server.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                scrape = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/metrics"))
                await asyncio.sleep(0.3)             # the scrape is under way
                c.loop_ran.set()                     # ... and the loop still runs
                resp = await scrape
                return resp.status, await resp.text()
        finally:
            await server.stop()
    status, body = asyncio.run(main())
    assert status == 200 and "loop_ran_during_scrape 1.0" in body
