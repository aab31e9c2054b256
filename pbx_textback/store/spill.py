"""Sorts over a whole big table spill to disk, not into memory (issue 14: the RSS of a restart
on a grown store).

The store's connection keeps temporary data in memory (temp_store = memory, open_store): a
call's insert fires triggers that open a statement journal, and a temp file per transaction
doubled the insert's time. But SQLite then never spills a sort either: with temp storage in
memory its sorter holds every row it sorts. A migration that builds an index on, or counts
by group over, the message or call table sorts all their rows: ~40 bytes a row, 17 MB on a
store of 370k texts and ~40 MB on a million, in the service's own process as it starts, and
the C allocator may keep much of it after. With temp storage in files the sorter keeps at
most its cache-sized runs in memory (~2 MB) and merges them from a temp file; a migration
runs once, so its temp file costs nothing that matters.
"""
from __future__ import annotations

from contextlib import contextmanager

import peewee as pw


@contextmanager
def sorts_on_disk(db):
    """SQLite: temp storage in files inside the block (outside any transaction: SQLite
    refuses the switch within one), then as it was."""
    if not isinstance(db, pw.SqliteDatabase):
        yield
        return
    was = db.execute_sql("PRAGMA temp_store").fetchone()[0]
    db.execute_sql("PRAGMA temp_store = FILE")
    try:
        yield
    finally:
        db.execute_sql(f"PRAGMA temp_store = {int(was)}")
