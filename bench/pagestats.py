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


class PerStatement:
    """Page-cache misses, hits and thread CPU per SQL statement of one peewee database (and its
    commits), by the statement's first words: which statement reads the pages a grown store no
    longer keeps. Two ctypes calls per statement: a soak with it on is a little slower."""

    def __init__(self, db, cache: PageCache):
        import time
        self.db, self.cache, self.clock = db, cache, time.thread_time_ns
        self.by: dict[str, list] = {}
        self._execute, self._commit = db.execute_sql, db.commit
        db.execute_sql, db.commit = self.execute_sql, self.commit
        # the decision's transaction runs on the sqlite3 connection itself (BEGIN IMMEDIATE ...
        # COMMIT in store/fast.py): counted whole, its commit included
        try:
            from pbx_textback.store import fast
        except ImportError:
            return
        verdict = fast.record_verdict

        def record_verdict(*a, **kw):
            return self._count("record_verdict: BEGIN IMMEDIATE, inserts, COMMIT", verdict, *a, **kw)
        fast.record_verdict = record_verdict

    def _count(self, key: str, fn, *a, **kw):
        get, clock = self.cache.get, self.clock
        m0, h0, t0 = get(MISS), get(HIT), clock()
        try:
            return fn(*a, **kw)
        finally:
            m1, h1, t1 = get(MISS), get(HIT), clock()
            row = self.by.setdefault(key, [0, 0, 0, 0])
            row[0] += 1
            row[1] += m1 - m0
            row[2] += h1 - h0
            row[3] += t1 - t0

    def execute_sql(self, sql, params=None, *a, **kw):
        key = " ".join(str(sql).split())[:90]
        return self._count(key, self._execute, sql, params, *a, **kw)

    def commit(self, *a, **kw):
        return self._count("COMMIT", self._commit, *a, **kw)

    def reset(self) -> None:
        self.by.clear()

    def report(self, calls: int, top: int = 14) -> list[str]:
        calls = max(calls, 1)
        rows = sorted(self.by.items(), key=lambda kv: -(kv[1][1] * 20 + kv[1][3] / 1e4))[:top]
        out = [f"    {'per call:':<92} runs  misses    hits  CPU us"]
        for key, (n, m, h, t) in rows:
            out.append(f"    {key:<92} {n / calls:4.2f} {m / calls:7.2f} {h / calls:7.1f} {t / 1e3 / calls:7.1f}")
        tot = [sum(v[i] for v in self.by.values()) for i in range(4)]
        out.append(f"    {'all statements and commits':<92} {tot[0] / calls:4.1f} {tot[1] / calls:7.2f} "
                   f"{tot[2] / calls:7.1f} {tot[3] / 1e3 / calls:7.1f}")
        return out


def sqlite_memory() -> tuple[int, int] | None:
    """(bytes SQLite holds now, the most it ever held) in this process (sqlite3_status64)."""
    lib = _lib()
    if lib is None:
        return None
    cur, hi = ctypes.c_int64(0), ctypes.c_int64(0)
    lib.sqlite3_status64.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                     ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    if lib.sqlite3_status64(0, ctypes.byref(cur), ctypes.byref(hi), 0) != 0:      # MEMORY_USED
        return None
    return cur.value, hi.value
