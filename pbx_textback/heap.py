"""Keeps the heap from creeping (a fixed mmap threshold) and hands its free pages back to the
system (glibc's malloc_trim) when the service goes quiet after work.

Why the fixed threshold: glibc serves a block of 128 kB or more with its own mmap, given back
on free, until the first such block is freed; from then on it raises the threshold to that
block's size, and the next big blocks (a burst's AMI reads, a dict's table) come from the heap,
where a small block still in use above them keeps their pages. On the soak's process the main
heap grew 14.5 -> 16.8 MB over its first 90k calls and by 0.5 MB more near 165k; with the
threshold held at 128 kB it stayed 13.3-13.6 MB (bench/soak.py, 100k calls each).

Why the trim: glibc gives back memory freed at the top of its heap by itself, but not whole
pages freed in the middle of it, between chunks still in use. After a busy spell those stay in
RSS while the service idles: on a soak's process, with Python's objects and SQLite's caches
flat, malloc_trim(0) returned 1.3-2.2 MB (of 65). While calls keep coming the heap takes them
back within seconds, and a trim holds the event loop 5-26 ms (a fragmented 100 MB test heap),
so it runs only in a quiet spell. Where the C library has no such call (musl, macOS) nothing is
done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import time

log = logging.getLogger("pbx_textback.heap")

_UNSET = object()
_fns: dict = {}
M_MMAP_THRESHOLD = -3              # mallopt's parameter number (glibc's malloc.h)
MMAP_THRESHOLD = 128 * 1024        # glibc's own starting value, kept
# the admin's own choice, read by glibc at start: left alone
_ADMIN_SET = ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def _libc(name: str, argtypes: list):
    """glibc's function, or None (another C library has none)."""
    fn = _fns.get(name, _UNSET)
    if fn is _UNSET:
        fn = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            fn = getattr(libc, name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
        except (OSError, AttributeError):
            fn = None
        _fns[name] = fn
    return fn


def _malloc_trim():
    return _libc("malloc_trim", [ctypes.c_size_t])


def hold_mmap_threshold(environ=os.environ) -> bool:
    """Hold glibc's mmap threshold at 128 kB (see above); True when set. Not when the admin set
    it (or any malloc tunable) in the environment, nor where there is no mallopt."""
    if any(k in environ for k in _ADMIN_SET):
        return False
    fn = _libc("mallopt", [ctypes.c_int, ctypes.c_int])
    return fn is not None and fn(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


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
