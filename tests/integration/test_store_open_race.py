"""Several processes opening a new SQLite store at once (the service starting while `status`
or `explain` asks): each waits its turn for the schema instead of failing with "database is
locked" (a CI run hit that: the service never started)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPEN = ("import sys, time\n"
        "from pbx_textback.store import db as st\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"     # all start together
        "s = st.open_store(sys.argv[1]); print(st.SchemaVersion.select().count()); s.close()\n")


def test_processes_opening_a_new_store_at_once_all_get_it(tmp_path):
    import time
    for round_ in range(3):
        path = tmp_path / f"s{round_}.sqlite3"
        start = str(time.time() + 1.5)
        procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(path), start], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
        results = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err for _, err in results]
        assert {out.strip() for out, _ in results} == {"1"}          # one schema, made once
