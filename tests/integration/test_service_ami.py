"""The whole service over real sockets: recorded Asterisk traffic served by a loopback AMI
server, the real panoramisk client, tracker, decision, SQLite store and the log transport."""
import asyncio
import json
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.config import Ami, default_config
from pbx_textback.service import Service
from pbx_textback.store import db as st

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
MANIFEST = tomllib.loads((FIX / "scenarios.toml").read_text())["scenario"]
CALLS = [sc for sc in MANIFEST if sc.get("calls") or sc.get("reason")]


def expected():
    out = {}
    for sc in CALLS:
        for w in sc.get("calls") or [sc]:
            out.setdefault(w["caller"], []).append(w)
    return out


async def serve_all(tmp_path, *, chunking=False, close_after_each=False):
    traces = [FIX / sc["file"] for sc in CALLS]
    server = AmiReplayServer(traces, username="t", secret="s", chunking=chunking,
                             close_after_each=close_after_each, pace=0.05 if close_after_each else 0.0, seed=7)
    port = await server.start()
    cfg = default_config()
    cfg = replace(cfg, store=replace(cfg.store, path=str(tmp_path / "s.sqlite3")),
                  compliance=replace(cfg.compliance, quiet_hours=""),
                  pbx=replace(cfg.pbx, ami=Ami(port=port, username="t", secret="s", ping_interval=5)))
    seen = []
    svc = Service(cfg, on_verdict=seen.append)
    n_calls = sum(len(sc.get("calls") or [sc]) for sc in CALLS)

    async def stop_when_done():
        for _ in range(400):
            await asyncio.sleep(0.05)
            if len(seen) >= n_calls and svc.store.next_due() is None:
                break
        svc.stop()
    await svc.run(extra_tasks=[stop_when_done()])
    await server.stop()
    return seen, server


def check(seen):
    want = expected()
    got = {}
    for v in seen:
        j = v.to_json()
        got.setdefault(j["caller"], []).append(j)
    for caller, ws in want.items():
        gs = sorted(got[caller], key=lambda j: j["called"])
        ws = sorted(ws, key=lambda w: w["did"])
        assert len(gs) == len(ws), caller
        for g, w in zip(gs, ws):
            assert (g["missed"], g["called"]) == (w["missed"], w["did"]), (caller, g)
            if w["missed"]:
                assert g["reason"] == w["reason"]


def test_every_recorded_call_through_the_real_service(tmp_path):
    seen, _ = asyncio.run(serve_all(tmp_path))
    check(seen)
    st.open_store(str(tmp_path / "s.sqlite3"))
    sent = list(st.Message.select().where(st.Message.state == st.SENT))
    texted = {v.decision.to for v in seen if v.decision.action == "text"}
    assert {m.peer for m in sent} == texted and len(sent) == len(texted)
    assert all(m.transport == "log" and m.transport_id.startswith("log-") for m in sent)


def test_random_tcp_chunks_and_a_restart_after_each_trace(tmp_path):
    seen, server = asyncio.run(serve_all(tmp_path, chunking=True, close_after_each=True))
    check(seen)
    assert server.logins >= len(CALLS)        # it reconnected after every "restart"


def test_demo_once_prints_every_verdict_and_the_texts(tmp_path):
    import os
    p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "demo", "--once", "--pace", "0"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, XDG_STATE_HOME=str(tmp_path)))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "call from +15125550177 to +15125550140: MISSED, abandoned" in p.stdout
    assert "call from +17375550188 to +15125550110: MISSED, no-answer (rang out with no answer) - text to " \
           "+17375550188 queued" in p.stdout
    assert "call from +15125550123 to +15125550140: answered" in p.stdout
    assert "TEXT to +17375550188 from line +15125550110 [log-1]: Hi, this is Acme Dental." in p.stderr
    assert any(x.startswith("demo: 13 calls, 9 missed") for x in p.stdout.splitlines())


def test_explain_after_a_run_shows_every_check(tmp_path):
    seen, _ = asyncio.run(serve_all(tmp_path))
    cfgf = tmp_path / "c.toml"
    cfgf.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "explain", "+17375550188", "-c", str(cfgf)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "verdict: missed: no-answer" in p.stdout and "[ok] caller: +17375550188" in p.stdout
    assert "message 1" not in p.stdout or "sent via log" in p.stdout
    assert "sent via log" in p.stdout
    j = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "explain", "5125550123", "-c", str(cfgf),
                        "--json"], capture_output=True, text=True, timeout=60)
    rows = json.loads(j.stdout)["calls"]      # one JSON document
    assert rows and all(r["reason"] == "answered" and r["decision"] == "skip" for r in rows)
