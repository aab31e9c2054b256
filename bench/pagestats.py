"""Counters that say where a store's pages come from, for the soak bench (issue 14):

  * the service connection's SQLite page cache: hits, misses (a page read from the WAL or the
    file), writes, via sqlite3_db_status on the connection the Python sqlite3 module holds;
  * this process's read/write syscalls and bytes (/proc/self/io);
  * CPU per thread (the event loop vs the WAL checkpoint thread vs the rest).

Linux and CPython only; every counter that cannot be read is left out, never guessed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sqlite3
import threading

HIT, MISS, WRITE, USED, SPILL = 7, 8, 9, 1, 12          # SQLITE_DBSTATUS_*
_TICK = os.sysconf("SC_CLK_TCK")


def _lib():
    name = ctypes.util.find_library("sqlite3") or "libsqlite3.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.sqlite3_db_status.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                      ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.sqlite3_db_filename.restype = ctypes.c_char_p
    lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


class PageCache:
    """sqlite3_db_status of one sqlite3.Connection. CPython's connection object holds its
    `sqlite3 *` right after the object header; the handle is trusted only if SQLite names the
    expected file through it (else every figure is None)."""

    def __init__(self, conn: sqlite3.Connection, path: str):
        self.lib, self.db = _lib(), None
        if self.lib is None:
            return
        ptr = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
        try:
            name = self.lib.sqlite3_db_filename(ptr, b"main") if ptr else None
        except Exception:                                  # noqa: BLE001 - a wrong layout
            name = None
        if name and os.path.realpath(name.decode()) == os.path.realpath(path):
            self.db = ptr

    def get(self, op: int) -> int | None:
        if self.db is None:
            return None
        cur, hi = ctypes.c_int(0), ctypes.c_int(0)
        if self.lib.sqlite3_db_status(self.db, op, ctypes.byref(cur), ctypes.byref(hi), 0) != 0:
            return None
        return cur.value

    def counts(self) -> dict:
        out = {k: self.get(op) for k, op in (("hit", HIT), ("miss", MISS), ("write", WRITE),
                                              ("spill", SPILL), ("cache_bytes", USED))}
        return {k: v for k, v in out.items() if v is not None}


def proc_io() -> dict:
    try:
        with open("/proc/self/io") as f:
            return {k: int(v) for k, v in (line.split(": ") for line in f.read().splitlines())}
    except OSError:
        return {}


def thread_cpu() -> dict:
    """CPU seconds per live Python thread (by name), the rest of the process as 'other'."""
    out: dict[str, float] = {}
    named = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        s = (int(fields[11]) + int(fields[12])) / _TICK            # utime, stime
        name = named.get(int(tid), "other")
        name = "loop" if name == "MainThread" else name
        out[name] = out.get(name, 0.0) + s
    return out
