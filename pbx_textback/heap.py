"""Hands the heap's free pages back to the system (glibc's malloc_trim) when the service goes
quiet after work.

Why: glibc gives back memory freed at the top of its heap by itself, but not whole pages freed
in the middle of it, between chunks still in use. After a busy spell those stay in RSS while
the service idles: on a soak's process, with Python's objects and SQLite's caches flat,
malloc_trim(0) returned 1.3-2.2 MB (of 65). While calls keep coming the heap takes them back
within seconds, and a trim holds the event loop 5-26 ms (a fragmented 100 MB test heap), so it
runs only in a quiet spell. Where the C library has no such call (musl, macOS) nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time

log = logging.getLogger("pbx_textback.heap")

_UNSET = object()
_trim = _UNSET


def _malloc_trim():
    global _trim
    if _trim is _UNSET:
        _trim = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            fn = libc.malloc_trim
            fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
            _trim = fn
        except (OSError, AttributeError):
            pass
    return _trim


def available() -> bool:
    return _malloc_trim() is not None


def give_back() -> bool:
    """Return the heap's free pages to the system; True when some were."""
    fn = _malloc_trim()
    if fn is None:
        return False
    t = time.perf_counter()
    released = bool(fn(0))
    log.debug("heap trimmed in %.1f ms (%s)", (time.perf_counter() - t) * 1000,
              "pages returned" if released else "nothing to return")
    return released


class QuietTrim:
    """Once per quiet spell: round(n) is called every housekeeping round with the number of
    calls decided so far; it trims when calls came since the last trim and none since the
    previous round (or when told to, after a purge). Returns whether it trimmed."""

    def __init__(self):
        self.seen = self.trimmed = 0

    def round(self, decided: int, force: bool = False) -> bool:
        quiet = decided == self.seen
        self.seen = decided
        if force or (quiet and decided != self.trimmed):
            self.trimmed = decided
            give_back()
            return True
        return False
