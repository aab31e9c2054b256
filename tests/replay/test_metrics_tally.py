"""/metrics' call, reply and opt-out totals: rows that never change are counted once and kept
(reporting/tally.py). What a scrape shows must be what a full count shows, on the replayed day
of tests/report_day.py, after more traffic, and after a purge (which never lowers them)."""
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pbx_textback.reporting.metrics import StoreCollector, registry_for
from pbx_textback.reporting.tally import Tally
from pbx_textback.store import db as st, metrics as sql
from pbx_textback.store.purged import gone_upto
from tests.report_day import A, T0, at, play_day, trace

NAMES = ("pbx_textback_inbound_calls_total", "pbx_textback_missed_calls_total",
         "pbx_textback_replies_total", "pbx_textback_opt_outs_total")
J = "+15125550133"


def scrape(collector) -> dict:
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry_for(collector)).decode()):
        for s in fam.samples:
            if s.name in NAMES:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(sc: dict, name: str) -> float:
    return sum(v for (n, _), v in sc.items() if n == name)


def test_kept_totals_agree_with_a_full_count_through_new_traffic_and_a_purge(store_target):
    h = play_day(store_target)
    kept = StoreCollector(h.store, clock=lambda: h.clock.t, settle_s=0.0)   # folds at once
    shipped = StoreCollector(h.store, clock=lambda: h.clock.t)               # the 60 s default
    first = scrape(kept)
    # the day by hand: 11 inbound calls, 8 of them missed; 5 texts from callers, one a STOP
    assert [total(first, n) for n in NAMES] == [11, 8, 5, 1]
    assert first == scrape(StoreCollector(h.store)) == scrape(shipped)
    # more traffic: J's missed call, and a STOP from A
    at(h, 42000)
    h.play(trace("02-no-answer.ami", copy=4, swap=(A, J)))
    h.pipe.on_inbound(A, "+15125550110", "STOP", now=h.clock.t)
    h.drain()
    later = scrape(kept)
    assert [total(later, n) for n in NAMES] == [12, 9, 6, 2]
    assert later[("pbx_textback_missed_calls_total", (("line", "+15125550110"), ("reason", "no-answer")))] == \
        first[("pbx_textback_missed_calls_total", (("line", "+15125550110"), ("reason", "no-answer")))] + 1
    assert later == scrape(StoreCollector(h.store)) == scrape(shipped)
    # a purge deletes counted calls and replies (consent stays): the store holds fewer, but a
    # counter never goes down (Prometheus would read a counter reset, and count them all again)
    going = [c.id for c in st.Call.select(st.Call.id).where(st.Call.created_at < T0 + 39000)]
    h.store.purge(T0 + 39000)
    # the mark names the highest call id gone: the kept totals above it are not read again
    assert going and gone_upto(sql.purge_mark(h.store))[0] == max(going)
    after = scrape(kept)
    assert [sum(r[-1] for r in sql.call_totals(h.store)), sum(r[-1] for r in sql.reply_totals(h.store))] == [2, 1]
    assert after == later
    assert after == scrape(StoreCollector(h.store)) == scrape(shipped)
    # and after it, new traffic adds to them as before
    at(h, 43000)
    h.play(trace("02-no-answer.ami", copy=5, swap=(A, J)))
    h.drain()
    assert [total(scrape(kept), n) for n in NAMES] == [13, 10, 6, 2]
    assert scrape(kept) == scrape(StoreCollector(h.store)) == scrape(shipped)


class Table:
    """Rows (id, line) as a reader sees them: a row is visible once its transaction commits."""
    def __init__(self):
        self.rows: dict[int, str] = {}

    def count(self, after, upto):
        got: dict = {}
        for i, line in self.rows.items():
            if i > after and (upto is None or i <= upto):
                got[line] = got.get(line, 0) + 1
        return [(line, n) for line, n in got.items()]


def test_a_row_committed_after_a_later_id_is_still_counted():
    """PostgreSQL with two boxes: id 3 is taken first but commits after id 4 is seen."""
    t = [0.0]
    table = Table()
    tally = Tally(table.count, settle_s=60.0, monotonic=lambda: t[0])
    table.rows.update({1: "a", 2: "a", 4: "b"})
    assert sorted(tally.read(4, "")) == [("a", 2), ("b", 1)]
    t[0] = 30.0
    table.rows[3] = "b"                                     # committed late, within the settle time
    assert sorted(tally.read(4, "")) == [("a", 2), ("b", 2)]
    t[0] = 61.0                                             # ids up to 4 fold into the kept totals
    table.rows[5] = "a"
    assert sorted(tally.read(5, "")) == [("a", 3), ("b", 2)]
    t[0] = 200.0
    table.rows[6] = "b"
    assert sorted(tally.read(6, "")) == [("a", 3), ("b", 3)]
    # the kept part is not read again: a purge mark change is what makes it recount
    del table.rows[1]
    assert sorted(tally.read(6, "")) == [("a", 3), ("b", 3)]
    assert sorted(tally.read(6, "purged once")) == [("a", 2), ("b", 3)]


def test_after_a_purge_the_kept_range_is_counted_again_once_not_at_every_scrape():
    """Each scrape in the minute after a purge counted the whole table again (4 s of CPU per
    scrape on a store of 1M calls): now the first counts the kept range again, the rest read
    only what is new."""
    t = [0.0]
    table = Table()
    reads: list = []

    def count(after, upto):
        reads.append((after, upto))
        return table.count(after, upto)
    tally = Tally(count, settle_s=60.0, monotonic=lambda: t[0])
    table.rows.update({i: "ab"[i % 2] for i in range(1, 101)})
    tally.read(100, "")
    t[0] = 61.0
    tally.read(100, "")                                     # ids up to 100 kept
    for i in range(1, 41):                                  # a purge: the oldest 40 go
        del table.rows[i]
    reads.clear()
    t[0] = 62.0
    assert sorted(tally.read(100, "purged")) == [("a", 30), ("b", 30)]
    assert reads[0] == (0, 100)                             # the kept range, once
    for s in range(63, 120, 15):                            # the scrapes of the next minute
        reads.clear()
        t[0] = float(s)
        table.rows[s + 1000] = "a"
        got = dict(tally.read(s + 1000, "purged"))
        assert got["b"] == 30 and all(after >= 100 for after, _ in reads), reads
    assert got["a"] == 34
