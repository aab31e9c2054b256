"""The loopback AMI replay server in a thread of its own, for tests whose service or command
runs in another process (and uses asyncio.run itself)."""
from __future__ import annotations

import asyncio
import threading

from pbx_textback.ami.replay_server import AmiReplayServer


class ThreadedAmi:
    def __init__(self, traces=(), **kw):
        self.loop = asyncio.new_event_loop()
        self.server = AmiReplayServer(list(traces), **kw)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "ThreadedAmi":
        self.port = self.loop.run_until_complete(self.server.start())
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
