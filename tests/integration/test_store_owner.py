"""Issue 11 finding 2: a command run as root never leaves the store unwritable for the service,
and a service whose store or outbox dies exits non-zero with the reason, never READY=1 and
then a quiet exit 0. The service runs as an unprivileged user (setpriv), as under its unit."""
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.peers.smsc_peer import free_port

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                             reason="needs root and setpriv (CI runs as root)")


@pytest.fixture
def tmp_path():
    """Outside pytest's own tmp (0700, reset by other pytest sessions): the service's user
    must reach its state directory."""
    d = Path(tempfile.mkdtemp(prefix="ptb-store-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def state_dir(tmp_path) -> Path:
    """Like the unit's StateDirectory: owned by the service's user, 0750."""
    d = tmp_path / "state"
    d.mkdir()
    os.chown(d, NOBODY, NOBODY)
    os.chmod(d, 0o750)
    return d


def cli(*args, user=None, env=None, **kw):
    pre = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user else []
    return subprocess.run([*pre, sys.executable, "-m", "pbx_textback.cli", *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
                          capture_output=True, text=True, timeout=60, **kw)


def write_cfg(tmp_path, store, ami_port):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[pbx.ami]\nport = {ami_port}\nsecret = "x"\n[store]\npath = "{store}"\n')
    os.chmod(cfg, 0o644)
    return cfg


@as_root
def test_a_store_a_root_command_creates_belongs_to_the_service_user(tmp_path):
    d = state_dir(tmp_path)
    store = d / "textback.sqlite3"
    cfg = write_cfg(tmp_path, store, free_port())
    p = cli("pause", "-c", str(cfg))                      # the admin, as root, first
    assert p.returncode == 0, p.stderr
    for f in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
        if f.exists():
            assert f.stat().st_uid == NOBODY, f"{f} belongs to uid {f.stat().st_uid}"
    p = cli("resume", "-c", str(cfg), user=NOBODY)        # the service's user can write it
    assert p.returncode == 0, p.stderr
    assert "automated texting resumed" in p.stdout


@as_root
def test_a_store_left_to_root_by_an_older_version_is_given_back(tmp_path):
    d = state_dir(tmp_path)
    store = d / "textback.sqlite3"
    sqlite3.connect(store).execute("create table x(y)").connection.close()   # root-owned
    cfg = write_cfg(tmp_path, store, free_port())
    p = cli("pause", "-c", str(cfg))
    assert p.returncode == 0, p.stderr
    assert store.stat().st_uid == NOBODY
    assert "given back" in p.stderr


def run_service(cfg, *, user=None, until_ready=True, timeout=20):
    """`pbx-textback run` with a real notify socket; returns (proc, datagrams)."""
    sock_path = Path(cfg).parent / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    os.chmod(sock_path, 0o777)
    sock.settimeout(0.2)
    pre = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user else []
    proc = subprocess.Popen([*pre, sys.executable, "-m", "pbx_textback.cli", "run", "-c", str(cfg)],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=str(sock_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = []
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        if until_ready and any("READY=1" in g for g in got):
            break
    return proc, got, sock


@as_root
def test_a_service_that_cannot_write_its_store_exits_2_with_the_fix_and_never_says_ready(tmp_path):
    d = state_dir(tmp_path)
    store = d / "textback.sqlite3"
    seed = tmp_path / "seed"                       # what an older doctor run as root left:
    seed.mkdir()                                   # a whole store, owned by root
    from pbx_textback.store.db import open_store
    open_store(str(seed / "s.sqlite3")).close()
    shutil.copy(seed / "s.sqlite3", store)
    assert store.stat().st_uid == 0
    cfg = write_cfg(tmp_path, store, free_port())
    proc, got, sock = run_service(cfg, user=NOBODY, until_ready=False)
    try:
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    err = proc.stderr.read()
    assert proc.returncode == 2, err
    assert "cannot write the store" in err and f"chown nobody: {store}" in err, err
    assert not any("READY=1" in g for g in got)


@as_root
def test_a_store_that_dies_under_the_running_service_stops_it_with_exit_1(tmp_path):
    d = state_dir(tmp_path)
    store = d / "textback.sqlite3"
    cfg = write_cfg(tmp_path, store, free_port())        # PBX down: the service still runs
    proc, got, sock = run_service(cfg, user=NOBODY)
    try:
        assert any("READY=1" in g for g in got), proc.stderr.read() if proc.poll() is not None else got
        con = sqlite3.connect(store)
        con.execute("DROP TABLE message")                # the store is gone from under it
        con.commit()
        con.close()
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    err = proc.stderr.read()
    assert proc.returncode == 1, err
    assert "the outbox task stopped: OperationalError: no such table: message" in err, err
