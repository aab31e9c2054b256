"""`pbx-textback web -c FILE`: the inbox alone, for a box that only hosts the web page. No PBX
connection, no transport: a reply or call back typed here is queued in the shared store for the
box that owns the conversation's line, and that box's service sends it (store/boxes.py)."""
from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web

from pbx_textback.admin.reload import Reloader, with_page
from .store.boxes import queue_for_line_box

log = logging.getLogger("pbx_textback.web")


def queue_reply(store, clock=time.time):
    """Inbox's send(peer, line, body, by) for a box that sends nothing itself."""
    def send(peer: str, line: str, body: str, by: str) -> int:
        try:
            mid, box = queue_for_line_box(store, peer=peer, line=line, body=body, kind="agent",
                                          note=f"by {by} (web box {store.box})", now=clock())
        except ValueError as e:
            raise web.HTTPConflict(text=f"Not sent: {e}.") from None
        log.info("message %s queued by %s for box %s to send", mid, by, box)
        return mid
    return send


async def serve(cfg, store, *, stop: asyncio.Event | None = None) -> int:
    from .config import web_listen
    from .web.app import Inbox
    cfg = with_page(cfg, store, secrets=False)
    inbox = Inbox(cfg, store, send=queue_reply(store))
    reloader = Reloader(cfg, store, lambda c: setattr(inbox, "cfg", c), secrets=False)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig, handler in ((signal.SIGINT, stop.set), (signal.SIGTERM, stop.set), (signal.SIGHUP, reloader.reload_file)):
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):
            pass
    host, port = web_listen(cfg.web.listen)
    try:
        port = await inbox.start(host, port)
    except OSError as e:
        log.error("web inbox not served: cannot listen on %s: %s", cfg.web.listen, e.strerror or e)
        return 1
    log.info("web inbox only (no PBX connection, no transport) on http://%s:%d/, store %s", host, port,
             "postgresql" if cfg.store.dsn else cfg.store.path)
    watch = asyncio.create_task(reloader.watch())
    await stop.wait()
    watch.cancel()
    await inbox.stop()
    store.close()
    log.info("web inbox stopped")
    return 0
