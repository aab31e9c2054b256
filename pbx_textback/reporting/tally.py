"""Totals of rows that never change once written (an inbound call's line, reason and missed; a
reply's line; an opt-out's line), read incrementally: a scrape counts the rows it has not
counted before and adds them to what it kept, instead of reading the whole table each time
(on a store of a million calls that was seconds of CPU per scrape).

Two things could make the kept totals wrong, and both are handled:
- a row whose id was taken but whose transaction had not committed when a scrape read past it
  (PostgreSQL, two boxes writing at once): rows are folded into the kept totals only up to an
  id seen at least SETTLE_S ago; newer rows are counted afresh at every scrape;
- a purge, which deletes counted rows: the store's purge mark changes, and the next scrape
  counts again (once) the kept ids up to the highest id any purge has deleted (the mark says
  it; unknown: all of them), so the totals still agree with the reports. The kept totals are
  held per CHUNK of ids, so the chunks above are not read again; a purge deletes the oldest
  rows, so the chunks read again are mostly empty by then (a backlog purge's slices changed
  the mark every 0.17 s, and each scrape meanwhile counted the whole table again: 4 s of CPU
  per scrape on 1M calls)."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

SETTLE_S = 60.0
# ids per count: a GROUP BY sorts what it reads, and SQLite holds that sort in memory (temp
# storage in memory, store/db.py) and the heap it grew stays: the first scrape of the 1M-call
# soak's store in one count peaked at 75 MB of SQLite, +98 MB RSS kept; in slices, 6 MB and +7 MB
CHUNK = 50_000

Rows = list[tuple]            # (*labels, n)


def add(into: dict, rows: Rows) -> None:
    for *key, n in rows:
        into[tuple(key)] = into.get(tuple(key), 0) + n


class Tally:
    def __init__(self, count: Callable[[int, int | None], Rows], settle_s: float = SETTLE_S,
                 monotonic: Callable[[], float] = time.monotonic):
        """count(after, upto): the totals of rows with after < id <= upto (upto None: no end)."""
        self.settle_s, self.monotonic = settle_s, monotonic
        self._count = count
        self._lock = threading.Lock()        # scrapes run in threads
        self._mark: object = None
        self._kept: dict[int, dict] = {}     # chunk c -> totals of the ids in (c*CHUNK, (c+1)*CHUNK], up to _upto
        self._upto = 0
        self._seen: deque[tuple[float, int]] = deque()     # (when, newest id then)

    def read(self, newest_id: int, purge_mark: str, gone_upto: int | None = None) -> Rows:
        """The totals now, given the newest id in the table and the store's purge mark.
        gone_upto: no purge has deleted an id above it (None: any may have been)."""
        with self._lock:
            if purge_mark != self._mark:
                # rows counted before may be gone: their chunks are counted again, now and once
                # (they stay settled: a purge deletes rows, it commits none late); the scrapes
                # in the minute after read only what is new, as before the purge
                self._mark = purge_mark
                top = self._upto if gone_upto is None else min(self._upto, gone_upto)
                again = sorted(c for c in self._kept if c * CHUNK < top)
                for c in again:
                    del self._kept[c]
                    self._fold(c * CHUNK, min((c + 1) * CHUNK, self._upto))
            now = self.monotonic()
            self._seen.append((now, newest_id))
            settled = None
            while self._seen and self._seen[0][0] <= now - self.settle_s:
                settled = self._seen.popleft()[1]
            if settled is not None and settled > self._upto:
                self._fold(self._upto, settled)
                self._upto = settled
            totals: dict = {}
            for part in self._kept.values():
                for k, n in part.items():
                    totals[k] = totals.get(k, 0) + n
            # the ids not settled, up to newest_id, the last span with the open end (not kept:
            # no need to end on chunks, and one count when they are fewer than CHUNK)
            fresh = list(spans(self._upto, newest_id, aligned=False)) or [(self._upto, None)]
            fresh[-1] = (fresh[-1][0], None)
            for after, upto in fresh:
                add(totals, self._count(after, upto))
        return [(*k, n) for k, n in totals.items() if n]

    def _fold(self, after: int, upto: int) -> None:
        """count(after, upto) into the kept totals, one count per chunk of ids it spans."""
        for a, b in spans(after, upto):
            add(self._kept.setdefault(a // CHUNK, {}), self._count(a, b))


def spans(after: int, upto: int, aligned: bool = True):
    """The ids (after, upto] as spans of at most CHUNK ids, each inside one chunk (aligned)
    or each CHUNK ids from `after` on."""
    while after < upto:
        end = min(upto, (after // CHUNK + 1) * CHUNK if aligned else after + CHUNK)
        yield after, end
        after = end
