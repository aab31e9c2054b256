"""Issue 11: after a PBX outage the ESL child's wait between attempts stays a few seconds (the
PBX is on this box), as the AMI client's does: it used to double up to 30 s, so a FreeSWITCH
back after half a minute was seen up to half a minute late. The real child process, a real
socket, the shipped defaults, the real clock."""
import asyncio
import time

from pbx_textback.esl.parent import EslChild
from pbx_textback.esl.replay_server import EslReplayServer
from tests.peers.smsc_peer import free_port


def test_freeswitch_back_after_an_outage_is_seen_within_a_few_seconds():
    port = free_port()                       # nothing listens: FreeSWITCH is down

    async def main():
        child = EslChild("127.0.0.1", port, "ClueCon", on_event=lambda ev: None)
        task = asyncio.create_task(child.run())
        # 19 s: a doubling wait (0.5, 1, 2 ... 16 s, ±20 %) has its next try 25 s or more in;
        # a capped one tries every 4 s (±20 %)
        await asyncio.sleep(19)
        server = EslReplayServer([], port=port)                  # FreeSWITCH is back
        await server.start()
        back = time.monotonic()
        while child.state != "connected" and time.monotonic() - back < 25:
            await asyncio.sleep(0.05)
        took = time.monotonic() - back
        await child.stop()
        await task
        await server.stop()
        return took
    took = asyncio.run(main())
    assert took <= 6.0, f"connected {took:.1f} s after FreeSWITCH was back"
