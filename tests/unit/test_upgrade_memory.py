"""The first start after an upgrade, on a grown store: a migration that builds an index on, or
counts by group over, a big table sorts all its rows, and with the store's temp storage in
memory (open_store: temp_store = memory, for the statement journals) SQLite's sorter held them
all: ~40 bytes a text, 17 MB on a store of 370k texts, in the service's own process. The
migrations now run with temp storage in files (store/spill.py): the sorter keeps cache-sized
runs in memory, however big the store. The memory is SQLite's own count (sqlite3_status64,
the most it held), not a time."""
from __future__ import annotations

import ctypes
import ctypes.util
import sqlite3
from pathlib import Path

import pytest

from pbx_textback.store.db import MIGRATIONS, open_store

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "stores" / "new-store-v28.sql"
TEXTS = 300_000


def _sqlite_memory(reset: bool = False) -> tuple[int, int]:
    """(bytes SQLite holds now, the most it held since the last reset) in this process."""
    lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    lib.sqlite3_status64.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                     ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    cur, hi = ctypes.c_int64(0), ctypes.c_int64(0)
    assert lib.sqlite3_status64(0, ctypes.byref(cur), ctypes.byref(hi), int(reset)) == 0   # MEMORY_USED
    return cur.value, hi.value


def _grown_old_store(path: str) -> None:
    """The release before migration 30's store, with TEXTS texts sent and delivered."""
    c = sqlite3.connect(path)
    c.executescript(OLD.read_text())
    c.execute(
        'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) '
        'INSERT INTO "message" (direction, kind, line, peer, body, state, due_at, attempts, transport, '
        'transport_id, error, created_at, updated_at, calls_missed, note, box, account) '
        "SELECT 'out', 'missed-call', '+15125550140', '+1512556' || printf('%04d', i % 10000), 'Sorry we missed you', "
        "'delivered', 1.7e9 + i, 1, 'smpp', printf('%x', i), '', 1.7e9 + i, 1.7e9 + i, 1, '', 'b', 'smpp' FROM n",
        (TEXTS,))
    c.commit()
    c.close()


def test_the_upgrade_of_a_grown_store_sorts_without_holding_every_row(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    _grown_old_store(path)
    before, _ = _sqlite_memory(reset=True)      # what stores other tests left open hold
    store = open_store(path, box="b")                   # the upgrade, as the service runs it
    held, peak = _sqlite_memory()
    held, peak = held - before, peak - before
    assert store.db.execute_sql("SELECT MAX(version) FROM schemaversion").fetchone()[0] == max(v for v, _ in MIGRATIONS)
    # the texts' totals (migration 36) counted all of them
    assert store.db.execute_sql("SELECT SUM(n) FROM texttally").fetchone()[0] == TEXTS
    # the page cache (2 MB) and a sorter's run (~2 MB); every row in memory was 14+ MB
    assert 0 < held and peak < 8_000_000, f"SQLite held up to {peak / 1e6:.1f} MB during the upgrade"
    # after the upgrade the connection keeps its temp storage in memory, as open_store set it
    assert store.db.execute_sql("PRAGMA temp_store").fetchone()[0] == 2
    store.close()


@pytest.mark.parametrize("setting", [0, 1, 2])
def test_the_upgrade_gives_back_the_temp_storage_it_found(tmp_path, setting):
    import peewee as pw
    from pbx_textback.store.spill import sorts_on_disk
    db = pw.SqliteDatabase(str(tmp_path / "s.sqlite3"), pragmas={"temp_store": setting})
    db.connect()
    with sorts_on_disk(db):
        assert db.execute_sql("PRAGMA temp_store").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA temp_store").fetchone()[0] == setting
    db.close()
