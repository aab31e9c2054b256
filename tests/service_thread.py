"""The running service against a loopback AMI server that replays recorded traces, in a thread
with its own event loop, for tests that talk to it from their own thread (a browser, an HTTP
client): start(), wait on ready, stop()."""
from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.service import Service


class ServiceThread:
    def __init__(self, cfg, traces, *, pace: float = 0.2, before_trace=None, is_ready=None):
        """is_ready(svc): when the test may go on (default: the web inbox is listening)."""
        self.cfg, self.traces, self.pace, self.before_trace = cfg, traces, pace, before_trace
        self.is_ready = is_ready or (lambda svc: svc.web_port is not None)
        self.svc, self.ready = None, threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self):
        server = AmiReplayServer(self.traces, username="t", secret="s", pace=self.pace,
                                 before_trace=self.before_trace)
        port = await server.start()
        cfg = replace(self.cfg, pbx=replace(self.cfg.pbx, ami=replace(self.cfg.pbx.ami, port=port,
                                                                       username="t", secret="s")))
        self.svc = Service(cfg)
        self.loop = asyncio.get_running_loop()

        async def mark_ready():
            while not self.is_ready(self.svc):
                await asyncio.sleep(0.05)
            self.ready.set()
        await self.svc.run(extra_tasks=[mark_ready()])
        await server.stop()

    def stop(self):
        if self.svc is not None:
            self.loop.call_soon_threadsafe(self.svc.stop)
        self.thread.join(15)
