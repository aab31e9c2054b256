"""The real panoramisk-based AmiSource against AmiReplayServer over 127.0.0.1, playing the
traces recorded from a real Asterisk 22 (tests/fixtures/asterisk)."""
from __future__ import annotations

import asyncio
import logging
import time
import tomllib
from pathlib import Path

import pytest

from pbx_textback.ami.client import AmiConnectionLost, AmiNotConnected, AmiSource
from pbx_textback.ami.replay_server import AmiReplayServer, LOOP_SEQ_OFFSET

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
SCENARIOS = tomllib.loads((FIX / "scenarios.toml").read_text())["scenario"]
USER, SECRET = "textback", "textback-secret"


def expected_events(path: Path) -> list[dict]:
    """Independent of the code under test: split the recorded bytes at the blank lines and
    keep every `Event:` frame, headers as sent (a repeated header becomes a list)."""
    data = path.read_bytes()
    assert data.startswith(b"Asterisk Call Manager/")
    body = data.split(b"\r\n", 1)[1]
    out = []
    for raw in body.split(b"\r\n\r\n"):
        if not raw.startswith(b"Event: "):
            continue
        ev: dict = {}
        for line in raw.decode("utf-8").split("\r\n"):
            k, _, v = line.partition(": ")
            if k in ev:
                ev[k] = (ev[k] if isinstance(ev[k], list) else [ev[k]]) + [v]
            else:
                ev[k] = v
        out.append(ev)
    return out


def live(evs):
    return [e for e in evs if "_reconcile" not in e]


def assert_trace_events(got, want):
    """Exactly the recorded events, in order. After a trace that closes the connection the
    client reconnects, and the server (nothing left to play) answers that login with a
    FullyBooted of its own, as a booted Asterisk does: that one may follow."""
    assert got[:len(want)] == want
    extra = got[len(want):]
    assert all(e["Event"] == "FullyBooted" for e in extra), extra[:3]


class Harness:
    def __init__(self, traces, *, client_kw=None, on_event=None, **server_kw):
        self.server = AmiReplayServer(traces, username=USER, secret=SECRET, seed=7, **server_kw)
        self.client_kw = dict(reconnect_min=0.05, reconnect_max=0.5, ping_interval=5.0)
        self.client_kw.update(client_kw or {})
        self.events: list[dict] = []
        self.states: list[tuple[str, str]] = []
        self.timeline: list[tuple[str, str]] = []      # events and states, in delivery order
        self._on_event = on_event

    def _state(self, state, detail):
        self.states.append((state, detail))
        self.timeline.append(("state", state))

    def _ev(self, ev):
        self.events.append(ev)
        self.timeline.append(("event", ev.get("Event")))
        if self._on_event:
            self._on_event(ev)

    async def __aenter__(self):
        port = await self.server.start()
        self.client = AmiSource("127.0.0.1", port, self.client_kw.pop("username", USER),
                                self.client_kw.pop("secret", SECRET), on_event=self._ev,
                                on_state=self._state, **self.client_kw)
        self.task = asyncio.create_task(self.client.run())
        return self

    async def __aexit__(self, *exc):
        await self.client.stop()
        await asyncio.wait_for(self.task, 5)
        await self.server.stop()

    async def until(self, cond, timeout=10.0, what="condition"):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; states={self.states}")
            await asyncio.sleep(0.01)

    def state_names(self):
        return [s for s, _ in self.states]


def run(coro, timeout=30):
    asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.parametrize("chunking", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s["file"] for s in SCENARIOS])
def test_every_trace_delivered_exactly(sc, chunking):
    path = FIX / sc["file"]
    want = expected_events(path)
    assert len(want) == sc["events"]

    async def main():
        async with Harness([path], chunking=chunking) as h:
            await h.server.wait_idle()
            await h.until(lambda: len(live(h.events)) >= len(want), what="all events")
            await asyncio.sleep(0.05)                   # nothing extra trails in
            got = live(h.events)
            assert len(got[:len(want)]) == sc["events"]
            assert_trace_events(got, want)              # same order, same header values
            # really split into many reads (a trace that ends in Shutdown may already be on a
            # new session, whose protocol has read little: check the others)
            if chunking and len(want) > 50 and not any(e["Event"] == "Shutdown" for e in want):
                assert h.client._protocol.reads > len(want)
            if any(e["Event"] == "FullyBooted" for e in want):
                assert "connected" in h.state_names()
    run(main())


def test_utf8_caller_name_split_across_reads(tmp_path):
    name = "José Müller ✓"
    frame = ("Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/itsp-00000001\r\n"
             f"CallerIDNum: +15125550123\r\nCallerIDName: {name}\r\nExtra: \r\n\r\n")
    trace = tmp_path / "utf8.ami"
    trace.write_bytes(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n"
                      b"Message: Authentication accepted\r\n\r\n"
                      b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
                      + frame.encode("utf-8") * 3)

    async def main():
        async with Harness([trace], chunking=True, max_chunk=1) as h:   # one byte per write
            await h.until(lambda: len(live(h.events)) == 4, what="events")
            names = [e["CallerIDName"] for e in live(h.events)[1:]]
            assert names == [name] * 3
            assert all(e["Extra"] == "" for e in live(h.events)[1:])
            assert h.client._protocol.reads > 100
    run(main())


def test_stock_panoramisk_loses_split_utf8():
    """The sharp edge we work around: panoramisk 1.4 decodes each read on its own."""
    from panoramisk.ami_protocol import AMIProtocol

    class F:
        save_stream = None
        got = []

        def dispatch(self, m):
            self.got.append(m)

    p = AMIProtocol()
    p.connection_made(None)
    p.factory = F()
    p.encoding = "utf8"
    data = "Event: Newchannel\r\nCallerIDName: José\r\n\r\n".encode()
    cut = data.index("é".encode()) + 1
    p.data_received(data[:cut])
    p.data_received(data[cut:])
    assert F.got[0]["CallerIDName"] == "Jos"            # the é is gone


def test_login_failure_reported_and_not_retried_in_a_tight_loop(caplog):
    caplog.set_level(logging.INFO, logger="pbx_textback")

    async def main():
        async with Harness([FIX / "01-answered.ami"], client_kw={"secret": "wrong"}) as h:
            await h.until(lambda: h.client.state == "auth-failed", what="auth-failed")
            await asyncio.sleep(1.5)
            assert h.server.connections == 1 and h.server.failed_logins == 1
            assert h.client.attempts == 1
            assert h.states[-1] == ("auth-failed", "Authentication failed")
            assert h.events == []
    run(main())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "manager.conf" in errors[0].getMessage() and "secret" in errors[0].getMessage()


def test_login_failure_retries_slowly_and_recovers():
    async def main():
        h = Harness([FIX / "03-abandoned.ami"], client_kw={"auth_retry": 0.4})
        h.server.secret = "other"
        async with h:
            await h.until(lambda: h.server.failed_logins >= 2, what="a second attempt")
            assert h.state_names().count("auth-failed") == 1      # said once, not per retry
            h.server.secret = SECRET                              # the admin fixed it
            await h.until(lambda: h.client.state == "connected", what="connected")
            await h.until(lambda: len(live(h.events)) == 66, what="events")
            assert h.server.failed_logins <= 4
    run(main())


def test_restart_reconnects_relogs_in_and_reconciles():
    row = {"Channel": "PJSIP/itsp-00000009", "ChannelState": "6", "ChannelStateDesc": "Up",
           "CallerIDNum": "+15125550188", "Uniqueid": "1795734000.50",
           "Linkedid": "1795734000.50", "Application": "Dial", "Duration": "00:00:12"}
    p1, p2 = FIX / "20-restart-part1.ami", FIX / "20-restart-part2.ami"

    async def main():
        async with Harness([p1, p2], close_after_each=True, channels=[row], pace=0.2) as h:
            await h.server.wait_idle()
            want = expected_events(p1) + expected_events(p2)
            await h.until(lambda: len(live(h.events)) >= len(want), what="both connections")
            assert_trace_events(live(h.events), want)
            # the reconcile follows part2's last event: on a loaded machine it may not be in yet
            await h.until(lambda: sum("_reconcile" in e for e in h.events) >= 2, what="the reconcile")
            # part1 is played at once: its Shutdown comes in the same read as the login reply,
            # so that connection ends before its reconcile. The re-login reconciles.
            names = [a.get("Action") for a in h.server.actions]
            assert names[:3] == ["Login", "Login", "CoreShowChannels"]
            # the snapshot: the row, marked, then the completion
            recs = [e for e in h.events if "_reconcile" in e]
            assert [e["Event"] for e in recs[:2]] == ["CoreShowChannel", "CoreShowChannelsComplete"]
            assert recs[0]["Channel"] == row["Channel"] and recs[0]["_reconcile"] == "1"
            assert recs[0]["ActionID"] == h.server.actions[2]["ActionID"]
            # part2: FullyBooted came late as an ordinary event; the reconcile waited for it
            i_boot = next(i for i, e in enumerate(h.events)
                          if e.get("Event") == "FullyBooted" and e.get("Uptime") == "0")
            assert h.events.index(recs[0]) > i_boot
            s = h.state_names()
            assert s[:5] == ["connecting", "connected", "disconnected", "connecting", "connected"]
            assert "shutting down" in h.states[2][1]
            # states are delivered in stream order with the events: "connected" right behind
            # each FullyBooted, "disconnected" after the Shutdown
            t = h.timeline
            boots = [i for i, x in enumerate(t) if x == ("event", "FullyBooted")]
            assert t[boots[0] + 1] == ("state", "connected")
            assert t[boots[1] + 1] == ("state", "connected")
            i_shut = t.index(("event", "Shutdown"))
            assert t.index(("state", "disconnected")) > i_shut
    run(main())


def test_half_open_connection_is_dropped_by_the_watchdog():
    interval, timeout = 0.3, 0.3

    async def main():
        async with Harness([], client_kw={"ping_interval": interval, "ping_timeout": timeout}) as h:
            await h.until(lambda: h.client.state == "connected", what="connected")
            await asyncio.sleep(0.35)                   # one good Ping first
            assert any(a.get("Action") == "Ping" for a in h.server.actions)
            h.server.stall()
            t0 = time.monotonic()
            await h.until(lambda: h.server.logins == 2, timeout=5, what="second login")
            elapsed = time.monotonic() - t0
            assert elapsed < interval + timeout + 0.4, elapsed
            await h.until(lambda: h.client.state == "connected", what="connected again")
            assert h.state_names()[-3:] == ["disconnected", "connecting", "connected"]
    run(main())


def test_a_raising_callback_does_not_stop_later_events(caplog):
    caplog.set_level(logging.ERROR, logger="pbx_textback")
    path = FIX / "01-answered.ami"
    want = expected_events(path)

    def boom(ev):
        if ev.get("Event") in ("Newchannel", "Hangup"):
            raise ValueError(f"cannot handle {ev.get('CallerIDNum')}")

    async def main():
        async with Harness([path], on_event=boom, chunking=True) as h:
            await h.until(lambda: len(live(h.events)) >= len(want), what="events")
            assert live(h.events) == want
            assert h.client.state == "connected"
    run(main())
    errs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    n = sum(1 for e in want if e["Event"] in ("Newchannel", "Hangup"))
    assert len(errs) == n and all("ValueError" in e for e in errs)
    assert any("Newchannel" in e for e in errs)
    assert not any("+1512555" in e for e in errs)          # no caller number in the log


def test_send_action_rules():
    async def main():
        async with Harness([]) as h:
            await h.until(lambda: h.client.state == "connected", what="connected")
            res = await h.client.send_action({"Action": "Originate", "Channel": "PJSIP/100",
                                              "Context": "from-internal", "Exten": "100",
                                              "Priority": "1", "async": "false"})
            sent = h.server.actions[-1]
            assert sent["Async"] == "true" and "async" not in sent
            assert [r.get("Event") or r.get("Response") for r in res] == ["Success", "OriginateResponse"]
            pong = await h.client.send_action({"Action": "Ping"})
            assert pong["Ping"] == "Pong"
            with pytest.raises(ValueError):
                await h.client.send_action({"Action": "MessageSend", "Destination": "pjsip:100",
                                            "Body": "hi\r\nAction: Originate"})
            # an action pending when the connection drops fails at once and is never re-sent
            h.server.stall()
            pending = asyncio.create_task(h.client.send_action({"Action": "MessageSend",
                                                                "Destination": "pjsip:100",
                                                                "Body": "once"}, timeout=5))
            await asyncio.sleep(0.1)
            h.server.close_connections()
            with pytest.raises(AmiConnectionLost):
                await pending
            await h.until(lambda: h.server.logins == 2 and h.client.state == "connected",
                          what="reconnected")
            await asyncio.sleep(0.2)
            assert sum(1 for a in h.server.actions if a.get("Action") == "MessageSend") == 1, h.server.actions
        with pytest.raises(AmiNotConnected):
            await h.client.send_action({"Action": "Ping"})
    run(main())


def test_loop_rewrites_ids_so_calls_stay_distinct():
    path = FIX / "03-abandoned.ami"
    want = expected_events(path)

    async def main():
        async with Harness([path], loop=True) as h:
            await h.until(lambda: len(live(h.events)) >= 2 * len(want), what="two passes")
            first, second = live(h.events)[:len(want)], live(h.events)[len(want):2 * len(want)]
            assert first == want
            assert [e["Event"] for e in second] == [e["Event"] for e in want]
            a = next(e for e in first if e["Event"] == "Newchannel")
            b = next(e for e in second if e["Event"] == "Newchannel")
            ep, seq = a["Uniqueid"].split(".")
            assert b["Uniqueid"] == f"{ep}.{int(seq) + LOOP_SEQ_OFFSET}"
            assert b["Linkedid"] != a["Linkedid"] and b["CallerIDNum"] == a["CallerIDNum"]
    run(main())


def test_speed_paces_by_the_trace_clock():
    path = FIX / "03-abandoned.ami"        # CEL EventTime spans ~8 s

    async def main():
        async with Harness([path], speed=40.0) as h:
            t0 = time.monotonic()
            await h.server.wait_idle()
            took = time.monotonic() - t0
            assert 0.1 < took < 2.0, took
    run(main())


def test_unreachable_pbx_backs_off_exponentially_and_stops_promptly():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                  # nothing listens there now: connection refused
    states = []

    async def main():
        src = AmiSource("127.0.0.1", port, USER, SECRET, on_event=lambda e: None,
                        on_state=lambda st, d: states.append((st, d)),
                        reconnect_min=0.05, reconnect_max=0.4)
        task = asyncio.create_task(src.run())
        await asyncio.sleep(1.2)
        # 0.05, 0.1, 0.2, 0.4, 0.4 ... (±20 %): a handful of attempts, not hundreds
        assert 3 <= src.attempts <= 8, src.attempts
        assert src.state == "disconnected" and "cannot connect" in src.state_detail
        t0 = time.monotonic()
        await src.stop()
        await asyncio.wait_for(task, 2)
        assert time.monotonic() - t0 < 0.5
    run(main())
    assert states[0][0] == "connecting" and states[-1][0] == "disconnected"


def test_a_burst_in_few_reads_comes_in_order_with_the_loop_served_and_a_bad_event_skipped(tmp_path, caplog):
    """The events of one read go to the consumer as one batch: still one on_event per event, in
    stream order, "connected" right behind FullyBooted, other tasks served at least every
    CONSUME_SLICE events, and an event whose handler raises skipped alone."""
    from pbx_textback.ami.client import CONSUME_SLICE
    n = 600
    frames = "".join(f"Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/100-{i:08x}\r\n"
                     f"Uniqueid: 1795734000.{i}\r\nExten: {i}\r\n\r\n" for i in range(n))
    trace = tmp_path / "burst.ami"
    trace.write_bytes(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n"
                      b"Message: Authentication accepted\r\n\r\n"
                      b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
                      + frames.encode())
    ticks: list[int] = []

    def boom(ev):
        if ev.get("Exten") == "100":
            raise ValueError("a handler bug")

    async def main():
        async with Harness([trace], on_event=boom) as h:
            async def ticker():
                while True:
                    ticks.append(len(h.events))
                    await asyncio.sleep(0)
            t = asyncio.create_task(ticker())
            await h.until(lambda: len(live(h.events)) >= n + 1, what="all events")
            t.cancel()
            got = live(h.events)
            assert got[0]["Event"] == "FullyBooted"
            assert [e["Exten"] for e in got[1:n + 1]] == [str(i) for i in range(n)]
            i = h.timeline.index(("event", "FullyBooted"))
            assert h.timeline[i + 1] == ("state", "connected")
            assert h.client._protocol.reads < n / 10        # many events per read: batches
            steps = [b - a for a, b in zip(ticks, ticks[1:])]
            assert max(steps) <= CONSUME_SLICE
    caplog.set_level(logging.ERROR, logger="pbx_textback")
    run(main())
    errs = [r.getMessage() for r in caplog.records if "handler raised" in r.getMessage()]
    assert len(errs) == 1 and "ValueError on Newexten" in errs[0]
