"""Shared test peers. PostgreSQL: a private cluster in a temp dir on a free loopback port,
started once per session (CI installs the Debian package; nothing is faked)."""
import glob
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from hypothesis import settings

# Hypothesis's 200 ms per-example deadline is a timed assert: on a loaded 2-core CI box a
# slow example fails a test whose answers are right. Correctness only; speed lives in bench/.
settings.register_profile("pbx", deadline=None)
settings.load_profile("pbx")

from tests.peers.smsc_peer import free_port as _free_port




def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


@pytest.fixture(scope="session")
def pg_dsn():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="ptb-pg-")
    data = os.path.join(root, "data")
    port = _free_port()
    as_user = []
    if os.geteuid() == 0:                  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_user + [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                              "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-l",
                              os.path.join(root, "log"), "-w", "start"], check=True, capture_output=True)
    try:
        for _ in range(50):
            if subprocess.run([f"{bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run([f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "textback"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/textback"
    finally:
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request, tmp_path):
    """Opens the store on SQLite and on a real PostgreSQL; each test starts from empty."""
    from pbx_textback.store import db as st
    if request.param == "sqlite":
        yield lambda: st.open_store(str(tmp_path / "t.sqlite3"))
        return
    dsn = request.getfixturevalue("pg_dsn")
    s = st.open_store(dsn=dsn)
    s.db.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    s.close()
    opened = []

    def make():
        opened.append(st.open_store(dsn=dsn))
        return opened[-1]
    yield make
    for s in opened:
        s.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request, tmp_path):
    """Where a test's store lives: (path, dsn) for open_store / the [store] config table.
    PostgreSQL starts each test from an empty schema."""
    if request.param == "sqlite":
        return {"path": str(tmp_path / "t.sqlite3"), "dsn": ""}
    dsn = request.getfixturevalue("pg_dsn")
    from pbx_textback.store import db as st
    s = st.open_store(dsn=dsn)
    s.db.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    s.close()
    return {"path": "", "dsn": dsn}


@pytest.fixture(scope="session")
def mariadb():
    """A private MariaDB server (FreePBX keeps its CDR there) on a free loopback port.
    Yields (port, admin_connect) where admin_connect() opens a root connection."""
    mariadbd = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
    install = shutil.which("mariadb-install-db")
    if not mariadbd or not install:
        pytest.skip("MariaDB server not installed (apt-get install mariadb-server)")
    pymysql = pytest.importorskip("pymysql")
    root = tempfile.mkdtemp(prefix="ptb-maria-")
    data, sock = os.path.join(root, "data"), os.path.join(root, "sock")
    port = _free_port()
    user = ["--user=mysql"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(root, "mysql")
    subprocess.run([install, "--no-defaults", f"--datadir={data}", *user, "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True)
    proc = subprocess.Popen([mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={sock}",
                             f"--port={port}", "--bind-address=127.0.0.1", *user,
                             f"--pid-file={os.path.join(root, 'pid')}", "--skip-log-bin"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def admin():
        return pymysql.connect(unix_socket=sock, user="root", autocommit=True)
    try:
        for _ in range(100):
            try:
                admin().close()
                break
            except pymysql.MySQLError:
                time.sleep(0.1)
        yield port, admin
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(root, ignore_errors=True)
