"""pbx_textback_texts_total as Prometheus scrapes it from the running service: recorded missed
calls (a loopback AMI server), their texts through the real SMSC peer and its receipts, a purge
by `pbx-textback purge` from another process while the service runs, and a caller's STOP after
it. Until the purge the scrape shows exactly what a full count of the store's texts shows (the
totals are kept by the store's triggers, store/text_tally.py); after it, what the purge took
stays counted (store/purged.py); on SQLite and on PostgreSQL."""
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.test_metrics import CALLERS, FIX, cfg_text, running, scrape, wait_for

ROOT = Path(__file__).resolve().parents[2]
FULL = "SELECT kind, state, COUNT(*) FROM message WHERE direction = 'out' GROUP BY 1, 2"
DAY = 86400


class Db:
    """The store, read and aged from outside the service (its own connection, as psql would)."""
    def __init__(self, target):
        self.target = target

    def run(self, sql: str):
        if self.target["dsn"]:
            import psycopg2
            c = psycopg2.connect(self.target["dsn"])
        else:
            import sqlite3
            c = sqlite3.connect(self.target["path"])
        try:
            cur = c.cursor()
            cur.execute(sql)
            rows = cur.fetchall() if cur.description else None
            c.commit()
            return rows
        finally:
            c.close()

    def full_count(self) -> dict:
        return {(k, s): float(n) for k, s, n in self.run(FULL)}


def texts(samples: dict) -> dict:
    return {(dict(labels)["kind"], dict(labels)["result"]): v for (name, labels), v in samples.items()
            if name == "pbx_textback_texts_total"}


def test_scraped_text_totals_match_the_store_through_receipts_a_purge_and_a_stop(tmp_path, smsc, store_target):
    toml = cfg_text(tmp_path, smsc, '[metrics]\nenabled = true\nlisten = "127.0.0.1:0"')
    if store_target["dsn"]:
        toml = toml.replace(f'path = "{tmp_path / "s.sqlite3"}"', f'dsn = "{store_target["dsn"]}"')
    else:
        store_target = {"path": str(tmp_path / "s.sqlite3"), "dsn": ""}
    (tmp_path / "config.toml").write_text(toml)
    db = Db(store_target)
    run = running(toml, [FIX / "02-no-answer.ami", FIX / "03-abandoned.ami"])
    run.thread.start()
    try:
        assert run.ready.wait(20)
        port = run.svc.observers.metrics_port
        delivered = wait_for(lambda: (lambda t: t if t.get(("missed-call", "delivered")) == 2 else None)(
            texts(scrape(port)[1])))
        assert delivered == db.full_count() == {("missed-call", "delivered"): 2}

        # two days later (the records aged by hand), the admin purges what is older than a day
        db.run(f'UPDATE "call" SET created_at = created_at - {2 * DAY}')
        db.run(f"UPDATE message SET created_at = created_at - {2 * DAY}")
        p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "purge", "-c", str(tmp_path / "config.toml"),
                            "--older-than", "1", "--yes"], capture_output=True, text=True, timeout=120,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert p.returncode == 0 and "purged 2 calls" in p.stdout and "2 messages" in p.stdout, p.stdout + p.stderr
        # the texts leave the store, not the counter: one that went down would read as a
        # reset to Prometheus, and increase() would count every text still kept once more
        body, samples = scrape(port)
        assert db.full_count() == {}
        assert texts(samples) == delivered
        assert "# TYPE pbx_textback_texts_total counter" in body

        # a caller's STOP after the purge: its confirmation goes out and is delivered, on top
        smsc.mo(CALLERS[0], "+15125550110", "STOP")
        after = wait_for(lambda: (lambda t: t if t.get(("confirmation", "delivered")) == 1 else None)(
            texts(scrape(port)[1])))
        assert db.full_count() == {("confirmation", "delivered"): 1}
        assert after == {**delivered, ("confirmation", "delivered"): 1}
    finally:
        run.stop()
