"""Texts through FreeSWITCH's `chat` (the `pbx` transport) over the real ESL child against the
loopback ESL server, through what a PBX restart does to a command in flight (issue 10 finding
18): the sending contract's statuses and its last look (COMMON: send(row, last_look))."""
import asyncio
import time
from pathlib import Path
from types import SimpleNamespace as NS

from pbx_textback.esl.parent import EslChild
from pbx_textback.esl.replay_server import EslReplayServer
from pbx_textback.sip.via_pbx import EslChatTransport

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"
MSG = NS(id=41, peer="+15125550123", line="+15125550100", body="Sorry we missed your call")


class LastLook:
    """The outbox's last look: counts its calls, answers as told."""

    def __init__(self, answer=True):
        self.answer, self.calls = answer, 0

    def __call__(self):
        self.calls += 1
        return self.answer


async def until(cond, timeout=15.0):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timeout"
        await asyncio.sleep(0.05)


async def connected(server, states=("connected",)):
    await server.start()
    child = EslChild("127.0.0.1", server.port, "s3cret", on_event=lambda ev: None,
                     reconnect_min=0.1, reconnect_max=0.3, restart_min=0.1, connect_timeout=2.0,
                     reconcile=False)
    task = asyncio.create_task(child.run())
    await until(lambda: child.state in states)
    return child, task


async def shut(server, child, task):
    await child.stop()
    await asyncio.wait_for(task, 10)
    await server.stop()


def transport(child, timeout):
    return EslChatTransport(child.api, "external/sip:{peer}@127.0.0.1:5380", "{line}@127.0.0.1",
                            timeout=timeout)


def test_a_chat_command_freeswitch_never_answers_is_unknown_not_failed():
    """FreeSWITCH took the command and went quiet (restarting). The transport's own deadline
    (11 s, longer than the child's 10 s default) decides; no hint about mod_dptools."""
    server = EslReplayServer([], password="s3cret", api_hold={"chat"})

    async def go():
        child, task = await connected(server)
        try:
            look = LastLook()
            t0 = time.monotonic()
            res = await transport(child, 11.0).send(MSG, look)
            return res, look, time.monotonic() - t0
        finally:
            await shut(server, child, task)
    res, look, took = asyncio.run(go())
    assert res.status == "unknown", res
    assert look.calls == 1 and "mod_dptools" not in res.error
    assert took >= 10.5
    assert server.held and server.held[0].startswith("chat sip|+15125550100@127.0.0.1|")


def test_a_pbx_restart_with_a_chat_in_flight_then_retries_after_the_reconnect():
    server = EslReplayServer([], password="s3cret", api_hold={"chat"},
                             api_replies={"chat": "Sent"})

    async def go():
        child, task = await connected(server)
        t = transport(child, 40.0)
        out = {}
        try:
            # in flight when FreeSWITCH goes away: written, never answered
            look = LastLook()
            sending = asyncio.create_task(t.send(MSG, look))
            await until(lambda: server.held)
            await server.stop()                   # FreeSWITCH goes down
            out["in_flight"] = (await sending, look.calls)
            # while it is down: nothing is written, the last look is not even asked
            await until(lambda: child.state != "connected")
            look = LastLook()
            out["down"] = (await t.send(MSG, look), look.calls)
            # back up on the same port: the text goes
            server.api_hold.clear()
            await server.start()
            await until(lambda: child.state == "connected")
            look = LastLook()
            out["up"] = (await t.send(MSG, look), look.calls)
            # the last look says hold: nothing written
            look = LastLook(False)
            n = len(server.commands)
            out["held"] = (await t.send(MSG, look), look.calls, server.commands[n:])
        finally:
            await shut(server, child, task)
        return out
    out = asyncio.run(go())
    res, looks = out["in_flight"]
    assert res.status == "unknown" and looks == 1, res
    res, looks = out["down"]
    assert res.status == "retry" and looks == 0, res
    res, looks = out["up"]
    assert res.status == "sent" and looks == 1, res
    res, looks, cmds = out["held"]
    assert res.status == "retry" and looks == 1 and not any(c.startswith("api chat") for c in cmds)


def test_freeswitch_refusing_chat_is_failed_with_the_hint():
    server = EslReplayServer([], password="s3cret")      # no mod_dptools: -ERR command not found

    async def go():
        child, task = await connected(server)
        try:
            return await transport(child, 5.0).send(MSG, LastLook())
        finally:
            await shut(server, child, task)
    res = asyncio.run(go())
    assert res.status == "failed" and "mod_dptools" in res.error


def test_after_freeswitch_says_it_is_shutting_down_nothing_is_written(tmp_path):
    """switch_core_destroy fires SHUTDOWN, then hangs up every call and unloads the event
    socket: a chat written then is never answered (unknown). The service stops writing at the
    SHUTDOWN event: the text stays pending (retry) and goes after the restart."""
    from urllib.parse import quote
    body = "".join(f"{k}: {quote(v)}\n" for k, v in {
        "Event-Name": "SHUTDOWN", "Core-UUID": "3150d247-a4e5-43ca-9e0c-23f8f87ad02e",
        "Event-Date-Timestamp": str(int(time.time() * 1e6)),
        "Event-Info": "System Shutting Down"}.items()).encode() + b"\n"
    trace = tmp_path / "shutdown.esl"
    trace.write_bytes(b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body)
    server = EslReplayServer([trace], password="s3cret", api_hold={"chat"})

    async def go():
        child, task = await connected(server, ("connected", "shutting-down"))
        try:
            await until(lambda: child.state == "shutting-down")
            look = LastLook()
            return await transport(child, 2.0).send(MSG, look), look.calls, child.state_detail
        finally:
            await shut(server, child, task)
    res, looks, detail = asyncio.run(go())
    assert res.status == "retry" and looks == 0, res
    assert "shutting down" in detail and not server.held
