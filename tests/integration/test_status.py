"""`pbx-textback status` (issue 11): the running service publishes its state in
$RUNTIME_DIRECTORY/status.json, the command adds the store's pause switch and waiting texts.
Also: `pause` twice says so; the start-up line shows the AMI port, not the SMTP listener's."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.ami_thread import ThreadedAmi
from tests.peers.smsc_peer import free_port
from tests.service_toml import smpp_service_toml

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "asterisk"


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def until(pred, timeout=30.0, what=""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_tells_running_connected_bound_paused_and_waiting(tmp_path, smsc_factory):
    smsc = smsc_factory(system_id="acme", password="pw", dlr_delay_ms=50)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), RUNTIME_DIRECTORY=str(run_dir))
    smtp_port = free_port()
    with ThreadedAmi([FIX / "02-no-answer.ami"], username="t", secret="s") as ami:
        cfg = tmp_path / "config.toml"
        cfg.write_text(smpp_service_toml(tmp_path / "s.sqlite3", smsc.port, ami_port=ami.port, phone="",
                                         extra=f'[smtp]\nenabled = true\nlisten_port = {smtp_port}\n'
                                               '[[line]]\nnumber = "+15125550110"'))
        c = ["-c", str(cfg)]
        p = cli("status", *c, env=env)
        assert p.returncode == 1 and "service: NOT RUNNING" in p.stdout, p.stdout
        proc = subprocess.Popen([sys.executable, "-m", "pbx_textback.cli", "run", *c], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            until(lambda: smsc.messages(), what="the missed call's text at the SMSC")
            out = until(lambda: (r := cli("status", *c, env=env)).returncode == 0 and r.stdout,
                        what="status exit 0")
            assert "service: running (pid" in out
            assert f"PBX: connected (asterisk 127.0.0.1:{ami.port})" in out, out
            assert "transport smpp: bound (SMSC)" in out
            assert "texting: active" in out and "texts waiting: 0" in out and "last error: none" in out

            assert "automated texting paused" in cli("pause", *c, env=env).stdout
            again = cli("pause", *c, env=env)
            assert again.returncode == 0 and again.stdout.startswith("already paused since"), again.stdout
            assert "texting: PAUSED since" in cli("status", *c, env=env).stdout
            assert cli("resume", *c, env=env).stdout.startswith("automated texting resumed")
            assert cli("resume", *c, env=env).stdout.startswith("not paused")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        # the start-up line names the PBX's address, not the voicemail listener's port
        assert f"pbx-textback running: asterisk at 127.0.0.1:{ami.port}," in err, err
        assert f"voicemail e-mail listener on 127.0.0.1:{smtp_port}" in err
        p = cli("status", *c, env=env)
        assert p.returncode == 1 and "service: NOT RUNNING" in p.stdout
        assert not (run_dir / "status.json").exists()


def test_the_start_up_line_shows_the_ami_port_not_the_smtp_listeners(tmp_path, caplog):
    import asyncio
    import logging

    from pbx_textback.config import loads
    from pbx_textback.service import Service
    ami_port, smtp_port = free_port(), free_port()
    cfg = loads(f'[pbx.ami]\nport = {ami_port}\nsecret = "s"\n[store]\npath = "{tmp_path / "s.sqlite3"}"\n'
                f'[smtp]\nenabled = true\nlisten_port = {smtp_port}\n')
    caplog.set_level(logging.INFO, logger="pbx_textback")
    svc = Service(cfg)

    async def soon():
        await asyncio.sleep(0.5)
        svc.stop()
    assert asyncio.run(svc.run(extra_tasks=[soon()])) == 0
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("pbx-textback running"))
    assert f"asterisk at 127.0.0.1:{ami_port}," in line, line


def test_pause_twice_says_already_paused(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    first = cli("pause", "-c", str(cfg), env=env)
    assert first.stdout.startswith("automated texting paused")
    second = cli("pause", "-c", str(cfg), env=env)
    assert second.returncode == 0 and second.stdout.startswith("already paused since"), second.stdout
    assert "PAUSED" not in second.stderr          # nothing logged: nothing changed


def test_status_counts_the_texts_waiting_and_the_oldest_ones_age(tmp_path):
    from pbx_textback.store.db import open_store
    env = dict(os.environ, PYTHONPATH=str(ROOT), RUNTIME_DIRECTORY=str(tmp_path))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    store = open_store(str(tmp_path / "s.sqlite3"))
    now = time.time()
    for age_min, state in ((7, "pending"), (2, "sending"), (30, "sent"), (40, "unknown")):
        store.add_message(direction="out", kind="missed-call", line="+15125550110", peer="+17375550188",
                          body="hi", state=state, due_at=now, created_at=now - age_min * 60,
                          updated_at=now)
    store.close()
    out = cli("status", "-c", str(cfg), env=env).stdout
    assert "texts waiting: 2, the oldest for 7 min" in out, out
    assert "texts of unknown fate: 1" in out


def test_status_shows_a_refused_bind_and_the_last_error(tmp_path, smsc_factory):
    smsc = smsc_factory(system_id="acme", password="right")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), RUNTIME_DIRECTORY=str(run_dir))
    with ThreadedAmi([], username="t", secret="s") as ami:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[pbx.ami]\nport = {ami.port}\nusername = "t"\nsecret = "s"\n'
                       f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n[transport]\ntype = "smpp"\n'
                       f'[transport.smpp]\nhost = "127.0.0.1"\nport = {smsc.port}\nsystem_id = "acme"\n'
                       f'password = "wrong"\n')
        c = ["-c", str(cfg)]
        proc = subprocess.Popen([sys.executable, "-m", "pbx_textback.cli", "run", *c], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            r = until(lambda: (r := cli("status", *c, env=env)) and "last error: none" not in r.stdout
                      and "bind-failed" in r.stdout and r, timeout=90, what="the refused bind in status")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    assert r.returncode == 1
    assert "transport smpp: bind-failed (SMSC)" in r.stdout
    assert "PBX: connected" in r.stdout
    last = next(ln for ln in r.stdout.splitlines() if ln.startswith("last error: "))
    assert "bind" in last.lower() and "wrong" not in last, last          # no secret in it
