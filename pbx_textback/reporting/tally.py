"""Totals of rows that never change once written (an inbound call's line, reason and missed; a
reply's line; an opt-out's line), read incrementally: a scrape counts the rows it has not
counted before and adds them to what it kept, instead of reading the whole table each time
(on a store of a million calls that was seconds of CPU per scrape).

Two things could make the kept totals wrong, and both are handled:
- a row whose id was taken but whose transaction had not committed when a scrape read past it
  (PostgreSQL, two boxes writing at once): rows are folded into the kept totals only up to an
  id seen at least SETTLE_S ago; newer rows are counted afresh at every scrape;
- a purge, which deletes counted rows: the store's purge mark changes, and the next scrape
  counts the kept range again (once), so the totals still agree with the reports."""
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
        self._kept: dict = {}
        self._upto = 0
        self._seen: deque[tuple[float, int]] = deque()     # (when, newest id then)

    def read(self, newest_id: int, purge_mark: str) -> Rows:
        """The totals now, given the newest id in the table and the store's purge mark."""
        with self._lock:
            if purge_mark != self._mark:
                # rows counted before may be gone: the settled ids are counted again, now and
                # once (they stay settled: a purge deletes rows, it commits none late); the
                # scrapes in the minute after read only what is new, as before the purge
                self._mark, self._kept = purge_mark, {}
                if self._upto:
                    self.count_into(self._kept, 0, self._upto)
            now = self.monotonic()
            self._seen.append((now, newest_id))
            settled = None
            while self._seen and self._seen[0][0] <= now - self.settle_s:
                settled = self._seen.popleft()[1]
            if settled is not None and settled > self._upto:
                self.count_into(self._kept, self._upto, settled)
                self._upto = settled
            totals = dict(self._kept)
            self.count_into(totals, self._upto, None, newest_id)
        return [(*k, n) for k, n in totals.items()]

    def count_into(self, into: dict, after: int, upto: int | None, newest_id: int = 0) -> None:
        """count(after, upto) added to `into`, read in slices of at most CHUNK ids (upto None:
        slices up to newest_id, then the open end)."""
        end = upto if upto is not None else newest_id
        while end - after > CHUNK:
            add(into, self._count(after, after + CHUNK))
            after += CHUNK
        add(into, self._count(after, upto))
