"""What each call and each text asks the store must not cost more as the store grows: a year
of texts is a million rows, and a query that walks them all made every call slower than the
last (the soak, bench/soak.py). Cost is counted as SQLite virtual-machine steps (its progress
handler): the same for the same work on any machine, unlike a time. Each lookup is done on a
store with a little history and on one with twenty times more; the steps must stay about the
same (a walk over the history would take ~20 times more)."""
import time

import pytest

from pbx_textback.store import db as st
from tests.sqlite_steps import steps

NOW = time.time()
PEER = "+15125550100"


def history(store, n: int, start: int = 0) -> None:
    """n old delivered texts (two days ago), half to one frequent caller, and their calls."""
    with store.write():
        for i in range(start, start + n):
            peer = PEER if i % 2 else f"+1512556{i:04d}"
            at = NOW - 2 * 86400 + i
            st.Call.create(call_id=f"c{i}", pbx="asterisk", caller=peer, caller_raw=peer, called="+15125550140",
                           line="+15125550140", direction="inbound", missed=True, answered=False,
                           reason="abandoned", record="{}", created_at=at)
            store.add_message(direction="out", kind="missed-call", line="+15125550140", peer=peer, body="Sorry",
                              state="delivered", due_at=at, created_at=at)


LOOKUPS = {
    # the global hourly cap (shipped on: 200 texts an hour) counts the last hour's texts
    "texts in the last hour": lambda s: s.texts_since(NOW - 3600),
    "was the caller reached since the call": lambda s: s.reached_since(PEER, NOW - 60),
    "the caller's texts of the last day (per-caller caps)": lambda s: s.auto_text_times(PEER, NOW - 86400),
}


@pytest.mark.parametrize("what", LOOKUPS)
def test_a_lookup_costs_the_same_with_twenty_times_the_history(tmp_path, what):
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    history(store, 200)
    fn = LOOKUPS[what]
    fn(store)
    small = steps(store, lambda: fn(store))
    history(store, 3800, start=200)
    big = steps(store, lambda: fn(store))
    assert big <= 2 * small + 20, (what, small, big)
    store.close()


def test_the_hourly_count_counts_the_last_hours_texts_that_went_out(store_factory):
    """The count the global hourly cap reads, on SQLite and PostgreSQL: texts of the last hour
    that went out (or may have), not older ones, not the held or cancelled ones."""
    store = store_factory()
    history(store, 50)
    with store.write():
        for n, (state, kind) in enumerate([("sent", "missed-call"), ("delivered", "follow-up"), ("unknown", "manual"),
                                           ("sending", "missed-call"), ("pending", "missed-call"),
                                           ("cancelled", "missed-call"), ("failed", "missed-call"),
                                           ("delivered", "agent")]):
            store.add_message(direction="out", kind=kind, line="+15125550140", peer=f"+1512557{n:04d}", body="x",
                              state=state, due_at=NOW - 600, created_at=NOW - 600)
    assert store.texts_since(NOW - 3600) == 4
    assert store.texts_since(NOW - 3 * 86400) == 54


def test_a_missed_call_costs_the_same_with_twenty_times_the_calls_before_it(tmp_path):
    """The whole of one missed call, through the real pipeline and outbox: decide (dedupe, caps,
    consent, the inbox summary's triggers), write, send. Callers as in the soak: one in five is
    one of a few who call again and again, the rest call once."""
    from tests.replay.test_timing import Clock, Harness
    from tests.report_day import B, trace
    cfg = ('[business]\nname = "Acme Dental"\ntimezone = "America/Chicago"\n'
           '[compliance]\nquiet_hours = ""\n')
    h = Harness({"path": str(tmp_path / "s.sqlite3"), "dsn": ""}, cfg, clock=Clock(NOW))

    def one(i: int) -> None:
        who = f"+1512555{100 + i % 4:04d}" if i % 5 == 0 else f"+1512556{i:04d}"
        h.play(trace("03-abandoned.ami", copy=i + 1, swap=(B, who)))
        h.clock.t += 61
        h.drain()

    def cost(first: int) -> int:          # the median of five calls' steps
        return sorted(steps(h.store, lambda i=i: one(i)) for i in range(first, first + 5))[2]
    for i in range(100):
        one(i)
    small = cost(100)
    for i in range(105, 2000):
        one(i)
    big = cost(2000)
    assert len(h.tx.sent) > 1500
    assert big <= 1.5 * small, (small, big)
