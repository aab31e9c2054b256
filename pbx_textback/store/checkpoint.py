"""WAL checkpoints for the running service, in a thread of their own.

Why: with SQLite's default the commit that pushes the WAL past 1,000 pages copies them into
the database file and fsyncs it, inside that commit, on the event loop: every ~60th call's
decision waited for a disk flush (the latency tail), and a page written by every call (an
index leaf, the inbox counts) was copied once per 1,000 WAL pages. Here a thread checkpoints
every second (PASSIVE: it never blocks a writer; sqlite3 releases the GIL while it works), so
a hot page is copied once per second whatever the call rate. The service's own connection
keeps an automatic checkpoint as a backstop at FALLBACK_PAGES, should this thread stall.
"""
from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("pbx_textback.store")

FALLBACK_PAGES = 20_000          # ~80 MB of WAL before a writer checkpoints by itself


class Checkpointer:
    def __init__(self, path: str, every: float = 1.0):
        self.path, self.every = path, every
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self, store) -> "Checkpointer":
        """Only for a file store (PostgreSQL and :memory: have nothing to checkpoint)."""
        if not store.is_sqlite or self.path in ("", ":memory:"):
            return self
        store.db.execute_sql(f"PRAGMA wal_autocheckpoint = {FALLBACK_PAGES}")
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = None
        failed = False
        try:
            conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            while not self._halt.wait(self.every):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                    failed = False
                except sqlite3.Error as e:       # said once per outage: writers still checkpoint
                    if not failed:
                        log.warning("WAL checkpoint failed (%s): the service's writes checkpoint "
                                    "by themselves meanwhile", e)
                    failed = True
        except sqlite3.Error as e:
            log.warning("WAL checkpoint thread could not open the store (%s): writes checkpoint "
                        "by themselves", e)
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
