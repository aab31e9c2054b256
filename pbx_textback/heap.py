"""Hands the heap's free pages back to the system (glibc's malloc_trim), now and then.

Why: glibc gives back memory freed at the top of its heap by itself, but not whole pages freed
in the middle of it, between chunks still in use. A long run's RSS crept that way, about 1 %
per million calls (bench/soak.py: Python's objects and SQLite's caches stayed flat, the heap's
free pages were not returned); malloc_trim(0) returns them in about a millisecond. Where the C
library has no such call (musl, macOS) nothing is done.
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
