"""`pbx-textback doctor` against a loopback AMI server that logs in like Asterisk."""
import asyncio
import socket
import subprocess
import sys
import threading

import pytest

from pbx_textback.ami.replay_server import AmiReplayServer


@pytest.fixture
def ami():
    """An AMI server in its own thread and loop, so doctor can use asyncio.run itself."""
    loop = asyncio.new_event_loop()
    server = AmiReplayServer([], username="textback", secret="right")
    port = loop.run_until_complete(server.start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield port
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


def write_cfg(tmp_path, port, secret="right", store=None):
    p = tmp_path / "c.toml"
    p.write_text(f'[pbx.ami]\nport = {port}\nusername = "textback"\nsecret = "{secret}"\n'
                 f'[store]\npath = "{store or tmp_path / "s.sqlite3"}"\n')
    return p


def doctor(cfg, *extra):
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", "doctor", "-c", str(cfg), *extra],
                          capture_output=True, text=True, timeout=60)


def test_all_good_but_missing_read_classes_prints_the_lines_to_add(ami, tmp_path):
    conf = tmp_path / "manager_custom.conf"
    conf.write_text("[textback]\nsecret = right\nread = call,dialplan ; too little\nwrite = originate\n")
    p = doctor(write_cfg(tmp_path, ami), "--manager-conf", str(conf))
    assert "[ok  ] ami login: logged in" in p.stdout
    assert "[FAIL] ami read classes" in p.stdout
    assert f"fix: add 'user' to `read =` of [textback] in {conf}" in p.stdout
    assert "fix: add 'agent'" in p.stdout and "[ok  ] store" in p.stdout
    assert p.returncode == 1


def test_everything_passes_with_the_shipped_snippet(ami, tmp_path):
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[2] / "ami" / "manager_custom.conf"
    if not shipped.exists():
        pytest.skip("ami/manager_custom.conf not written yet")
    p = doctor(write_cfg(tmp_path, ami), "--manager-conf", str(shipped))
    assert "[ok  ] ami read classes" in p.stdout, p.stdout
    assert p.returncode == 0, p.stdout


def test_wrong_secret_says_how_to_fix(ami, tmp_path):
    p = doctor(write_cfg(tmp_path, ami, secret="wrong"))
    assert "[FAIL] ami login: login refused: Authentication failed" in p.stdout
    assert "manager_custom.conf" in p.stdout and p.returncode == 1


def test_nothing_listening(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = doctor(write_cfg(tmp_path, port))
    assert "[FAIL] ami login: cannot connect" in p.stdout and "enabled = yes" in p.stdout


def test_unwritable_store(ami, tmp_path):
    p = doctor(write_cfg(tmp_path, ami, store="/proc/nope/s.sqlite3"))
    assert "[FAIL] store" in p.stdout and "writable" in p.stdout


def test_smpp_bind_checked_for_real(ami, tmp_path, smsc_factory):
    smsc = smsc_factory(system_id="acme", password="right")
    for pw, want in (("right", "[ok  ] transport: smpp: bound"),
                     ("wrong", "[FAIL] transport: smpp: the gateway refused the bind with ESME_RBINDFAIL")):
        p = write_cfg(tmp_path, ami)
        p.write_text(p.read_text() + f'[transport]\ntype = "smpp"\n[transport.smpp]\nport = {smsc.port}\n'
                                     f'system_id = "acme"\npassword = "{pw}"\n')
        out = doctor(p).stdout
        assert want in out, out
    assert "bind limit" in out and "system_type" in out      # what RBINDFAIL can mean


def test_smtp_listener_port(ami, tmp_path):
    import socket as sk
    busy = sk.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    p = write_cfg(tmp_path, ami)
    p.write_text(p.read_text() + f"[smtp]\nenabled = true\nlisten_port = {port}\n")
    out = doctor(p).stdout
    busy.close()
    assert "smtp listener" in out and ("not SMTP" in out or "another program" in out), out
