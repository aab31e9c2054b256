"""Totals of rows that never change once written (an inbound call's line, reason and missed; a
reply's line; an opt-out's line), read incrementally: a scrape counts the rows it has not
counted before and adds them to what it kept, instead of reading the whole table each time
(on a store of a million calls that was seconds of CPU per scrape).

Two things could make the kept totals wrong, and both are handled:
- a row whose id was taken but whose transaction had not committed when a scrape read past it
  (PostgreSQL, two boxes writing at once): rows are folded into the kept totals only up to an
  id seen at least SETTLE_S ago; newer rows are counted afresh at every scrape;
- a purge, which deletes counted rows: the store's purge mark changes, and the next scrape
  counts everything again, so the totals still agree with the reports."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

SETTLE_S = 60.0

Rows = list[tuple]            # (*labels, n)


def add(into: dict, rows: Rows) -> None:
    for *key, n in rows:
        into[tuple(key)] = into.get(tuple(key), 0) + n


class Tally:
    def __init__(self, count: Callable[[int, int | None], Rows], settle_s: float = SETTLE_S,
                 monotonic: Callable[[], float] = time.monotonic):
        """count(after, upto): the totals of rows with after < id <= upto (upto None: no end)."""
        self.count, self.settle_s, self.monotonic = count, settle_s, monotonic
        self._lock = threading.Lock()        # scrapes run in threads
        self._mark: object = None
        self._kept: dict = {}
        self._upto = 0
        self._seen: deque[tuple[float, int]] = deque()     # (when, newest id then)

    def read(self, newest_id: int, purge_mark: str) -> Rows:
        """The totals now, given the newest id in the table and the store's purge mark."""
        with self._lock:
            if purge_mark != self._mark:
                self._mark, self._kept, self._upto = purge_mark, {}, 0
                self._seen.clear()
            now = self.monotonic()
            self._seen.append((now, newest_id))
            settled = None
            while self._seen and self._seen[0][0] <= now - self.settle_s:
                settled = self._seen.popleft()[1]
            if settled is not None and settled > self._upto:
                add(self._kept, self.count(self._upto, settled))
                self._upto = settled
            totals = dict(self._kept)
            add(totals, self.count(self._upto, None))
        return [(*k, n) for k, n in totals.items()]
