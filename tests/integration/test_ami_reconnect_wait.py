"""Issue 11: after a PBX outage the AMI client's wait between attempts stays a few seconds (the
PBX is on this box): it used to double up to 30 s, so a PBX back after half a minute was seen
half a minute late. Real sockets, the shipped defaults, the real clock."""
import asyncio
import re
import time

from pbx_textback.ami.client import AmiSource
from pbx_textback.ami.replay_server import AmiReplayServer
from tests.peers.smsc_peer import free_port


def test_the_reconnect_wait_stays_a_few_seconds_and_the_pbx_is_back_within_them():
    port = free_port()                       # nothing listens: the PBX is down
    states = []

    async def main():
        src = AmiSource("127.0.0.1", port, "textback", "s", on_event=lambda ev: None,
                        on_state=lambda st, d="": states.append((time.monotonic(), st, d)))
        task = asyncio.create_task(src.run())
        t0 = time.monotonic()
        while time.monotonic() - t0 < 14 and sum(s == "disconnected" for _, s, _ in states) < 6:
            await asyncio.sleep(0.1)
        server = AmiReplayServer([], username="textback", secret="s", port=port)   # the PBX is back
        await server.start()
        back = time.monotonic()
        while src.state != "connected" and time.monotonic() - back < 15:
            await asyncio.sleep(0.05)
        took = time.monotonic() - back
        await src.stop()
        await task
        await server.stop()
        return took
    took = asyncio.run(main())
    waits = [float(m.group(1)) for _, s, d in states if s == "disconnected"
             for m in [re.search(r"retry in ([\d.]+) s", d)] if m]
    assert len(waits) >= 5, states
    assert max(waits) <= 5.0, waits             # 4 s and its jitter, never 8, 16, 30
    assert took <= 5.5, took
