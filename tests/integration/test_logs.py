"""What the admin reads in journald: one line per event, JSON on request, never a secret."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pbx_textback.ami.replay_server import AmiReplayServer

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
SECRET = "s3cr3t-Never-Logged"


def serve(traces, secret):
    loop = asyncio.new_event_loop()
    server = AmiReplayServer(traces, username="textback", secret=secret)
    port = loop.run_until_complete(server.start())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return port, loop, server


def run_service(tmp_path, port, *, fmt, secret, seconds, journal=False):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[pbx.ami]\nport = {port}\nsecret = "{secret}"\n[store]\npath = "{tmp_path / "s.db"}"\n'
                   '[compliance]\nquiet_hours = ""\n')
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    if journal:
        env["JOURNAL_STREAM"] = "8:1234"
    p = subprocess.Popen([sys.executable, "-m", "pbx_textback.cli", "--log-format", fmt, "run", "-c", str(cfg)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(seconds)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    return p.returncode, err


def test_json_logs_and_an_auth_failure_without_the_secret(tmp_path):
    port, loop, server = serve([], secret="the-right-one")
    code, err = run_service(tmp_path, port, fmt="json", secret=SECRET, seconds=2.5)
    lines = [json.loads(x) for x in err.splitlines() if x.strip()]
    assert code == 0 and lines
    assert all(set(r) >= {"level", "logger", "msg"} for r in lines)
    errors = [r for r in lines if r["level"] == "error"]
    assert any("auth" in r["msg"].lower() for r in errors), errors
    assert SECRET not in err
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)


def test_journald_lines_carry_priorities_and_masked_numbers(tmp_path):
    port, loop, server = serve([FIX / "03-abandoned.ami", FIX / "01-answered.ami"], secret=SECRET)
    code, err = run_service(tmp_path, port, fmt="text", secret=SECRET, seconds=3, journal=True)
    lines = err.splitlines()
    assert all(line.startswith("<") for line in lines), lines[:3]
    call_lines = [x for x in lines if "call 1795734713.4" in x]
    assert call_lines and "+1512555****" in call_lines[0] and "+15125550177" not in call_lines[0]
    text_line = [x for x in lines if "TEXT to" in x]
    assert text_line and text_line[0].startswith("<6>")
    assert SECRET not in err
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
