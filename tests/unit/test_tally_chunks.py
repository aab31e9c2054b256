"""/metrics' kept totals (reporting/tally.py) count in slices of at most CHUNK ids, so a first
scrape of a big store never sorts the whole table at once: the slices add up to the same
totals as one count over the range, for any ids, gaps, slice size and settle point."""
from contextlib import contextmanager

from hypothesis import given, settings, strategies as st

from pbx_textback.reporting import tally as tally_mod
from pbx_textback.reporting.tally import Tally


class Table:
    def __init__(self, rows: dict[int, str]):
        self.rows, self.ranges = rows, []

    def count(self, after, upto):
        self.ranges.append((after, upto))
        got: dict = {}
        for i, line in self.rows.items():
            if i > after and (upto is None or i <= upto):
                got[line] = got.get(line, 0) + 1
        return [(line, n) for line, n in got.items()]


def whole(rows: dict[int, str]) -> list:
    got: dict = {}
    for line in rows.values():
        got[line] = got.get(line, 0) + 1
    return sorted(got.items())


@contextmanager
def chunked(rows: dict, chunk: int):
    """A tally of `rows` counting `chunk` ids at most at a time, its table and its clock."""
    old = tally_mod.CHUNK
    tally_mod.CHUNK = chunk
    try:
        t = [0.0]
        table = Table(dict(rows))
        yield Tally(table.count, settle_s=60.0, monotonic=lambda: t[0]), table, t
    finally:
        tally_mod.CHUNK = old


def spans(ranges, newest, chunk):
    """Every count of a read spanned at most `chunk` ids, the open end's from newest on."""
    for after, upto in ranges:
        assert (upto if upto is not None else newest) - after <= chunk


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(1, 400), st.sampled_from("abc"), max_size=60),
       st.integers(1, 50), st.integers(0, 60))
def test_slices_add_up_to_one_count(rows, chunk, late):
    with chunked(rows, chunk) as (tally, table, t):
        newest = max(rows, default=0)
        assert sorted(tally.read(newest, "")) == whole(rows)
        spans(table.ranges, newest, chunk)
        # later: some rows arrive, the first read's ids settle and fold into the kept totals
        for i in range(late):
            table.rows[newest + 1 + i] = "b"
        t[0] = 61.0
        newer = max(table.rows, default=0)
        table.ranges.clear()
        assert sorted(tally.read(newer, "")) == whole(table.rows)
        spans(table.ranges, newer, chunk)


def test_a_first_scrape_of_many_ids_reads_them_in_slices():
    table = Table({i: "a" for i in range(1, 200_001)})
    assert Tally(table.count).read(200_000, "") == [("a", 200_000)]
    spans = [(upto if upto is not None else 200_000) - after for after, upto in table.ranges]
    assert len(spans) == 4 and max(spans) <= tally_mod.CHUNK


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(1, 400), st.sampled_from("abc"), max_size=80),
       st.integers(1, 50), st.integers(0, 400), st.integers(0, 40))
def test_after_a_purge_only_the_chunks_up_to_the_highest_id_gone_are_counted_again(rows, chunk, gone, slack):
    """A purge deletes rows with ids up to `gone` (the purge mark says so, with some slack
    above: a text still queued in the purged span): the totals are the rows left, and no chunk
    wholly above the mark's id is read again."""
    with chunked(rows, chunk) as (tally, table, t):
        newest = max(rows, default=0)
        tally.read(newest, "")
        t[0] = 61.0
        tally.read(newest, "")                               # everything is kept now
        for i in [i for i in table.rows if i <= gone and (i * 7) % 3]:   # most, not all, go
            del table.rows[i]
        table.ranges.clear()
        assert sorted(tally.read(newest, "1.0 %d 0" % (gone + slack), gone + slack)) == whole(table.rows)
        top = gone + slack
        assert all(after < top for after, upto in table.ranges if upto is not None and upto <= newest)
        spans(table.ranges, newest, chunk)
