"""Call backs queued for this box by another box's inbox (store/boxcalls.py): on a store several
PBX boxes share, the call goes through the PBX that owns the caller's line, so each service
polls for its own box's queued rows and places them through its DeskPhones, as if asked here.

A poll, not a notification: SQLite has none, and one indexed query a half-second is nothing
next to the desk phone's ring. A row found too late (this service was down when it was asked)
is not rung: the agent has long moved on, and a desk phone ringing by itself minutes later
would be a surprise; it fails with why, on the caller's timeline."""
from __future__ import annotations

import asyncio
import logging

from .store import boxcalls

log = logging.getLogger("pbx_textback.deskphone")

POLL_S = 0.5
STALE_S = 120          # asked longer ago than this: not rung


async def run(desk) -> None:
    while True:
        await asyncio.sleep(POLL_S)
        try:
            await tick(desk)
        except Exception:
            log.exception("placing call backs queued for this box failed; trying again")


async def tick(desk) -> int:
    """Place (or refuse, when stale) every queued call back of this box: how many were rung."""
    rung = 0
    if not boxcalls.any_queued(desk.store, desk.store.box):
        return 0
    for row in boxcalls.queued_for(desk.store, desk.store.box):
        late = desk.clock() - row["at"]
        if late > STALE_S:
            boxcalls.refuse(desk.store, row["id"], now=desk.clock(),
                            detail=f"not rung: box {desk.store.box}'s service found it {late / 60:.0f} min "
                                   "after it was asked (was it running?)")
            log.warning("call back %d by %s not rung: found %.0f s after it was asked", row["id"],
                        row["agent"], late)
            continue
        rung += await desk.call_back_row(row["id"], row["peer"], row["agent"], row["extension"])
    return rung
