"""The first-human-response histogram of /metrics, kept up to date by adding what is new.

Reading every clock in the store at each refresh costs more as the store grows (a year of
calls is a million rows). A clock's length is known once something stops it, so the histogram
keeps the sums of the clocks that stopped before a cut an hour back (late rows, e.g. a long
call written at its hangup, have settled by then) and, at each refresh, adds the clocks that
stopped between the old cut and the new one; the last hour is counted afresh each time. Each
window reads only the callers whose clock stopped in it, a week back (as the reports do).
"""
from __future__ import annotations

from pbx_textback.core.report.compute import episodes
from pbx_textback.store.metrics import response_events_of_stopped

SETTLE_S = 3600.0


class ResponseHistogram:
    def __init__(self, store, buckets: tuple[float, ...]):
        self.store, self.buckets = store, buckets
        self.cut: float | None = None              # clocks that stopped before this are counted
        self.counts = [0] * len(buckets)           # cumulative, as Prometheus wants them
        self.n, self.total = 0, 0.0

    def _stopped(self, lo: float, hi: float) -> list[float]:
        ev, closes = response_events_of_stopped(self.store, lo, hi)
        return [e["end"] - e["start"] for e in episodes(ev, closes)
                if e["end"] is not None and lo <= e["end"] < hi]

    def _tally(self, times: list[float]) -> tuple[list[int], int, float]:
        return [sum(1 for t in times if t <= b) for b in self.buckets], len(times), float(sum(times))

    def read(self, now: float) -> tuple[list[tuple[str, int]], float]:
        """([(le, cumulative count)...,('+Inf', n)], sum of seconds) of the clocks stopped by now."""
        cut = now - SETTLE_S
        if self.cut is None or cut > self.cut:
            counts, n, total = self._tally(self._stopped(0.0 if self.cut is None else self.cut, cut))
            self.counts = [a + b for a, b in zip(self.counts, counts)]
            self.n, self.total, self.cut = self.n + n, self.total + total, cut
        counts, n, total = self._tally(self._stopped(self.cut, now + 1))
        buckets = [(str(b), a + c) for b, a, c in zip(self.buckets, self.counts, counts)]
        return buckets + [("+Inf", self.n + n)], self.total + total
