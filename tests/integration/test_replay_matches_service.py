"""`replay` says what the real service does: the same joined recorded trace (events stamped as
Asterisk does with `timestampevents = yes`) is played by the loopback AMI server, at its own
pace, to the real service (panoramisk client, tracker, pipeline, SQLite store, outbox on the
real clock), and replayed by the CLI; the texts sent and their fates must be the same.

Margins between a text's due time and the call that would cancel or collapse it are >= 2 s,
so the service's own latency and its login time cannot decide the outcome."""
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import pytest

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.config import Ami, loads
from pbx_textback.service import Service
from pbx_textback.store import db as st
from tests.tracejoin import ami_call, ami_trace

A = "+15125550177"       # 03-abandoned.ami's caller, on line +15125550140
B = "+17375550188"       # 02-no-answer.ami's caller, on line +15125550110
CFG = """
[business]
name = "Acme"
timezone = "America/Chicago"
[compliance]
quiet_hours = ""
[[line]]
number = "+15125550140"
delay_seconds = {delay}
template = "Acme: sorry we missed {{% if calls_missed > 1 %}}your {{{{ calls_missed }}}} calls{{% else %}}your call{{% endif %}}. Reply STOP to opt out."
[[line]]
number = "+15125550110"
delay_seconds = {delay}
"""


def scenario(delay: int, t0: float) -> bytes:
    """A abandons three times (their ends 3 s apart), B is not answered and redials A's line
    and gets through 3 s later; then A redials and gets through after A's text was due."""
    calls, t = [], t0
    for i in range(3):
        calls.append(ami_call("03-abandoned.ami", start=t, span=2, copy=i + 1))
        t += 3
    calls.append(ami_call("02-no-answer.ami", start=t, span=2))
    t += 3
    calls.append(ami_call("01-answered.ami", start=t, span=2, swap={"+15125550123": B}))
    t += 3 + (delay if delay else 0)
    calls.append(ami_call("01-answered.ami", start=t, span=2, copy=9, swap={"+15125550123": A}))
    return ami_trace(*calls)


async def run_service(tmp_path, trace, cfg_text, calls: int = 6) -> list:
    server = AmiReplayServer([trace], username="t", secret="s", speed=1.0)
    port = await server.start()
    cfg = loads(cfg_text)
    cfg = replace(cfg, store=replace(cfg.store, path=str(tmp_path / "svc.sqlite3")),
                  pbx=replace(cfg.pbx, type="asterisk", ami=Ami(port=port, username="t", secret="s")))
    seen = []
    svc = Service(cfg, on_verdict=seen.append)

    async def stop_when_done():
        await asyncio.wait_for(server.idle.wait(), 120)
        for _ in range(300):                      # every call decided, nothing left to send
            await asyncio.sleep(0.1)
            if len(seen) >= calls and svc.store.next_due() is None:
                break
        svc.stop()
    await svc.run(extra_tasks=[stop_when_done()])
    await server.stop()
    st.open_store(str(tmp_path / "svc.sqlite3"))
    rows = [(m.peer, m.line, m.state, m.calls_missed, m.body) for m in
            st.Message.select().where((st.Message.direction == "out") & (st.Message.kind == "missed-call"))]
    st.proxy.obj.close()
    return rows


@pytest.mark.parametrize("delay", [0, 8])
def test_replay_reports_the_texts_the_service_sent(tmp_path, delay):
    cfg_text = CFG.format(delay=delay)
    trace = tmp_path / "joined.ami"
    trace.write_bytes(scenario(delay, time.time() + 0.5))
    service = asyncio.run(run_service(tmp_path, trace, cfg_text))
    (tmp_path / "c.toml").write_text(cfg_text)
    p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "replay", str(trace), "-c",
                        str(tmp_path / "c.toml"), "--json"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    texts = [j for j in map(json.loads, p.stdout.splitlines()) if "text" in j]
    replayed = [(t["peer"], t["line"], t["state"], t["calls_missed"], t["body"]) for t in texts]
    assert Counter(replayed) == Counter(service)
    states = {(peer, state, n) for peer, _, state, n, _ in service}
    if delay == 0:     # each caller texted at once: A's later calls are dedupes, not cancels
        assert states == {(A, "sent", 1), (B, "sent", 1)}
    else:              # A's three calls collapse into one text; B's redial cancels B's
        assert states == {(A, "sent", 3), (B, "cancelled", 1)}
