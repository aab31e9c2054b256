"""sd_notify(3) over $NOTIFY_SOCKET: READY, STATUS and the watchdog ping. A no-op outside
systemd. Small enough to own: the protocol is one datagram per message."""
from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger("pbx_textback.systemd")


class Notifier:
    def __init__(self, env: dict | None = None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):                      # abstract namespace
            addr = "\0" + addr[1:]
        self.addr = addr or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ok_pid = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and ok_pid else None
        self._sock = None

    @property
    def enabled(self) -> bool:
        return self.addr is not None

    def notify(self, msg: str) -> bool:
        if not self.addr:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(msg.encode(), self.addr)
            return True
        except OSError as e:
            log.warning("sd_notify failed: %s", e)
            return False

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping from the event loop itself: a blocked loop stops the pings and systemd restarts us."""
        if not self.watchdog_s:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / 3)
