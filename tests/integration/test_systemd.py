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


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_the_unit_verifies_where_it_is_installed_documentation_included(tmp_path):
    """Issue 11 finding 12: Documentation= named a man page and a file nobody installs, so
    `systemd-analyze verify` failed on every box. Here: the unit where the README puts it, the
    program and the README's source where the install block puts them, man pages checked."""
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    exe = root / "opt/pbx-textback/bin/pbx-textback"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "bin").mkdir()
    shutil.copy(shutil.which("kill") or "/bin/kill", root / "bin/kill")     # ExecReload= (every box has it)
    (root / "opt/pbx-textback-src").mkdir(parents=True)
    shutil.copy(ROOT / "README.md", root / "opt/pbx-textback-src")
    docs = re.findall(r"^Documentation=(.*)$", UNIT.read_text(), re.M)
    for url in " ".join(docs).split():
        assert url.startswith("file://") and (root / url[len("file:///"):]).exists(), url
    p = subprocess.run(["systemd-analyze", "verify", "--man=yes", f"--root={root}", "pbx-textback.service"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_command_explains_itself_with_its_config_and_an_example():
    from pbx_textback.cli import DEFAULT_CONFIG, build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "cmd")
    for name, parser in sub.choices.items():
        text = parser.format_help()
        if name != "esl":                              # the child process started by run
            assert "example:\n  pbx-textback " + name.split()[0] in text, name
        if any("--config" in a.option_strings for a in parser._actions) and name != "check-config":
            assert f"default: {DEFAULT_CONFIG}" in text.replace("\n", "").replace(" ", "").replace(
                "default:", "default: "), name
