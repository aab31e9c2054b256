"""systemd integration: the unit's hardening score, and sd_notify against a real notify socket
with the real `pbx-textback run` process."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.peers.smsc_peer import free_port

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "pbx-textback.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_hardening_scores_two_or_better():
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", p.stdout + p.stderr)
    assert m, p.stdout[-500:] + p.stderr[-500:]
    assert float(m.group(1)) <= 2.0


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_verifies():
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=always" in text
    assert "Requires=" not in text        # a PBX restart must not stop us
    assert re.search(r"^Wants=", text, re.M) and "After=network-online.target asterisk.service" in text




def test_ready_status_watchdog_and_stopping_over_a_real_notify_socket(tmp_path):
    sock_path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    dead = free_port()                    # the PBX is down at boot
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[pbx.ami]
port = {dead}
secret = "x"
[store]
path = "{tmp_path / 'store.sqlite3'}"
""")
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="300000")
    proc = subprocess.Popen([sys.executable, "-m", "pbx_textback.cli", "run", "-c", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = []
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                got.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
            joined = "\n".join(got)
            if "READY=1" in joined and joined.count("WATCHDOG=1") >= 3 and "STATUS=PBX" in joined:
                break
        assert proc.poll() is None, proc.stderr.read()       # PBX down: still running
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        try:
            while True:
                got.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    joined = "\n".join(got)
    assert "READY=1" in joined
    assert joined.count("WATCHDOG=1") >= 3
    assert re.search(r"STATUS=PBX (connecting|disconnected)", joined), joined
    assert "STOPPING=1" in joined
    assert proc.returncode == 0
