"""A loop's sleep that another callback can cut short: the outbox worker and the SMPP window
each look for work, then sleep until woken or until a deadline. A bare future and a timer:
wait_for around Event.wait made a task, a timeout handle and a done callback per wake-up."""
from __future__ import annotations

import asyncio


def _wake_up(w: asyncio.Future) -> None:
    if not w.done():
        w.set_result(None)


class Wakeup:
    def __init__(self) -> None:
        self._waiter: asyncio.Future | None = None
        self.woken = False             # a wake-up while not sleeping: look again at once

    def reset(self) -> None:
        self._waiter, self.woken = None, False

    def wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
        else:
            self.woken = True

    async def sleep(self, timeout: float | None) -> None:
        """Until woken or `timeout` s (None: until woken). Returns at once when a wake-up came
        since the caller last cleared `woken` (at the top of its look)."""
        if self.woken:
            return
        loop = asyncio.get_running_loop()
        self._waiter = fut = loop.create_future()
        timer = loop.call_later(timeout, _wake_up, fut) if timeout is not None else None
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None
