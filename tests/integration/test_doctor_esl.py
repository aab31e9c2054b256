"""`pbx-textback doctor` on a FreeSWITCH box, against the loopback ESL server (it answers auth
and `event` like FreeSWITCH)."""
import asyncio
import subprocess
import sys
import threading

import pytest

from pbx_textback.esl.events import DEFAULT_EVENTS
from pbx_textback.esl.replay_server import EslReplayServer


@pytest.fixture
def esl():
    """An ESL server in its own thread and loop, so doctor can use asyncio.run itself."""
    loop = asyncio.new_event_loop()
    servers = []

    def start(password):
        server = EslReplayServer([], password=password)
        servers.append(server)
        return server, asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield start
    for s in servers:
        asyncio.run_coroutine_threadsafe(s.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


def doctor(tmp_path, port, password):
    p = tmp_path / "c.toml"
    p.write_text(f'[pbx]\ntype = "freeswitch"\n[pbx.esl]\nport = {port}\npassword = "{password}"\n'
                 f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", "doctor", "-c", str(p)],
                          capture_output=True, text=True, timeout=60)


def test_freeswitchs_default_password_is_a_warning_with_the_fix(esl, tmp_path):
    server, port = esl("ClueCon")
    out = doctor(tmp_path, port, "ClueCon").stdout
    line = next(ln for ln in out.splitlines() if "] esl:" in ln)
    assert line.startswith("[warn] esl:") and "default password ClueCon" in line, out
    assert "event_socket.conf.xml" in out
    assert server.auths == 1


def test_a_password_of_its_own_passes_and_the_services_events_are_subscribed(esl, tmp_path):
    server, port = esl("k3Vq-long-random")
    out = doctor(tmp_path, port, "k3Vq-long-random").stdout
    assert "[ok  ] esl: authenticated and subscribed" in out, out
    assert f"event plain {DEFAULT_EVENTS}" in server.commands
    assert "k3Vq" not in out                    # no secret in what doctor prints


def test_a_wrong_password_fails(esl, tmp_path):
    _, port = esl("right")
    out = doctor(tmp_path, port, "wrong").stdout
    assert "[FAIL] esl: authentication refused" in out
