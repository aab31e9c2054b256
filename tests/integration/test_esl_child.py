"""The real greenswitch client (our InboundESL subclass) in the real child process
(`python -m pbx_textback.esl`), driven by EslChild, against the loopback ESL replay server
playing every recorded trace: plain and json, a FreeSWITCH restart mid-stream, a wrong
password."""
import asyncio
import time
import tomllib
from pathlib import Path

import pytest

from pbx_textback.core.policy.classify import classify
from pbx_textback.core.pbx.freeswitch import FreeswitchTracker, FsMarker, FsTrackerSettings
from pbx_textback.esl.parent import EslChild, EslError, EslNotConnected
from pbx_textback.esl.replay_server import EslReplayServer, trace_frames

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"
MANIFEST = tomllib.loads((FIX / "scenarios.toml").read_text())["fixture"]
SITE = FsTrackerSettings(after_hours_markers=(FsMarker("variable", "office_open", "false"),))
PLAIN = sorted(p for p in FIX.glob("*.esl") if not p.name.endswith(".json.esl"))
JSON = sorted(FIX.glob("*.json.esl"))


def want_for(paths):
    out = {}
    for fx in MANIFEST:
        if Path(fx["file"]).name in {p.name for p in paths}:
            for c in fx.get("calls") or ([fx] if fx.get("kind") != "sms" else []):
                out[c["caller_leg_uuid"]] = (c["missed"], c["reason"])
    return out


class Harness:
    def __init__(self, server, password="s3cret", fmt="json", **kw):
        self.server = server
        self.tracker = FreeswitchTracker(SITE)
        self.got, self.states, self.events = {}, [], 0
        self.child = EslChild("127.0.0.1", server.port, password, on_event=self.on_event,
                              on_state=lambda s, d: self.states.append((s, d)), fmt=fmt,
                              reconnect_min=0.1, reconnect_max=0.5, restart_min=0.1,
                              connect_timeout=2.0, **kw)

    def on_event(self, ev):
        self.events += 1
        for r in self.tracker.feed(ev):
            o = classify(r)
            self.got[r.call_id] = (o.missed, o.reason)

    async def until(self, cond, timeout=20.0):
        t0 = time.monotonic()
        while not cond():
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"timeout; states {self.states[-5:]}, got {self.got}")
            await asyncio.sleep(0.05)


async def run_with(server, fmt, want, **kw):
    await server.start()
    h = Harness(server, fmt=fmt, **kw)
    task = asyncio.create_task(h.child.run())
    try:
        await h.until(lambda: len(h.got) >= len(want))
        assert h.child.state == "connected"
        assert await h.child.api("show channels as json") == '{"row_count":0}'
        with pytest.raises(EslError):
            await h.child.api("no such command")
        assert (await h.child.bgapi("status")).startswith("00000000-")
    finally:
        await h.child.stop()
        await asyncio.wait_for(task, 10)
        await server.stop()
    return h


@pytest.mark.parametrize("fmt,paths", [("plain", PLAIN), ("json", JSON)])
def test_every_trace_through_the_child(fmt, paths):
    want = want_for(paths)
    server = EslReplayServer(paths, password="s3cret", chunk=97)
    h = asyncio.run(run_with(server, fmt, want))
    assert h.got == want
    assert server.subscriptions == 1 and server.failed_auths == 0
    assert any(c.startswith(f"event {fmt} ") for c in server.commands)
    assert h.states[-1][0] == "disconnected"


def test_freeswitch_restart_mid_stream_reconnects_and_resubscribes():
    paths = [FIX / n for n in ("01-answered.esl", "02-no-answer.esl", "03-abandoned.esl",
                               "04-busy.esl")]
    first = len(trace_frames(paths[0].read_bytes()))
    # the socket dies in the middle of trace 02 (a call is up); the next connection
    # goes on with 03 and 04
    server = EslReplayServer(paths, password="s3cret", close_after=first + 40)

    async def go():
        await server.start()
        h = Harness(server, fmt="plain")
        task = asyncio.create_task(h.child.run())
        try:
            await h.until(lambda: len(h.got) >= 4 and server.subscriptions >= 2)
        finally:
            await h.child.stop()
            await asyncio.wait_for(task, 10)
            await server.stop()
        return h

    h = asyncio.run(go())
    want = want_for(paths)
    for uid in ("7ec5a433-936a-4646-8dc9-161e77b32ea4", "bdcb56c4-a15a-493f-8a9c-e93b4e3fc4b1",
                "a8b2dd92-ab75-4e47-ba5c-f4e9dd790dda"):
        assert h.got[uid] == want[uid]
    # the call cut by the restart is ended by the reconcile after reconnect, not left open
    assert "29511ed2-dee1-4a00-a2d8-c6354150761c" in h.got
    assert h.tracker.open_calls() == 0
    assert server.connections >= 2 and server.subscriptions >= 2
    kinds = [s for s, _ in h.states]
    assert kinds.count("connected") >= 2 and "disconnected" in kinds
    # the reconcile after the 2nd connect ended the cut call; the child itself reconnected
    assert h.child.reconciled >= 1 and h.child.starts == 1


def test_wrong_password_reports_auth_failed_without_a_tight_loop():
    server = EslReplayServer(PLAIN[:1], password="right")

    async def go():
        await server.start()
        h = Harness(server, password="wrong", fmt="plain", auth_retry=5.0)
        task = asyncio.create_task(h.child.run())
        try:
            await h.until(lambda: any(s == "auth-failed" for s, _ in h.states), 15)
            await asyncio.sleep(1.5)
            with pytest.raises(EslNotConnected):
                await h.child.api("status")
        finally:
            await h.child.stop()
            await asyncio.wait_for(task, 10)
            await server.stop()
        return h

    h = asyncio.run(go())
    assert server.failed_auths == 1          # waits auth_retry, no hammering
    assert server.auths == 0 and h.got == {}
    detail = next(d for s, d in h.states if s == "auth-failed")
    assert "password" in detail
