"""/metrics' first-human-response histogram, kept up to date by adding each refresh's new
clocks (reporting/response_hist.py), over the replayed day of tests/report_day.py. Its five
responses (worked out in tests/replay/test_reports_day.py): A 420 s, B 1800 s (call back),
E 10800 s, B again 1800 s, H 5000 s (its answered redial)."""
import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pbx_textback.reporting.metrics import HISTOGRAM_TTL_S, StoreCollector, registry_for
from pbx_textback.reporting.report import report
from tests.report_day import CFG, DAY_START, T0, A, agent_text, at, play_day

NAME = "pbx_textback_first_human_response_seconds"


def histogram(collector) -> dict:
    body = generate_latest(registry_for(collector)).decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if s.name == f"{NAME}_bucket":
                out[s.labels["le"]] = s.value
            elif s.name in (f"{NAME}_count", f"{NAME}_sum"):
                out[s.name[len(NAME) + 1:]] = s.value
    return out


def day_histogram(times) -> dict:
    les = ("60.0", "300.0", "900.0", "3600.0", "14400.0", "86400.0")
    out = {le: float(sum(1 for t in times if t <= float(le))) for le in les}
    out.update({"+Inf": float(len(times)), "count": float(len(times)), "sum": float(sum(times))})
    return out


DAY = [420, 1800, 10800, 1800, 5000]
ENDS = [T0 + 720, T0 + 1860, T0 + 11200, T0 + 30000, T0 + 5900]     # when each clock stopped


def test_the_histogram_counts_each_clock_once_as_the_day_goes_by(store_target):
    h = play_day(store_target)
    now = [T0 - 600.0]
    c = StoreCollector(h.store, clock=lambda: now[0])
    # scraped all day long, once a minute and more: at each moment the clocks stopped by then
    while now[0] < T0 + 50000:
        stopped = [d for d, end in zip(DAY, ENDS) if end <= now[0]]
        assert histogram(c) == day_histogram(stopped), now[0] - T0
        now[0] += HISTOGRAM_TTL_S * 7 + 1
    assert histogram(c) == day_histogram(DAY)
    # the reports find the same responses
    assert report(h.store, DAY_START, DAY_START + 86400, "line", h.cfg)["total"]["response"]["count"] == 5
    # a new conversation after the day: a reply, a person answers 200 s later; counted once,
    # both while it is new and after it settled into the kept sums
    at(h, 60000)
    h.pipe.on_inbound(A, "+15125550110", "are you open tomorrow?", now=h.clock.t)
    h.drain()
    at(h, 60200)
    agent_text(h, A, "+15125550110", "maria", "Yes, from 8")
    for later in (60201, 60400, 64000, 70000, 200000):
        now[0] = T0 + later
        assert histogram(c) == day_histogram(DAY + [200]), later


def test_a_new_collector_on_a_store_with_history_counts_it_all(store_target):
    h = play_day(store_target)
    c = StoreCollector(h.store, clock=lambda: T0 + 50000)
    assert histogram(c) == day_histogram(DAY)


def test_on_the_real_clock(tmp_path):
    """The shipped default clock: a reply five minutes ago, a person's text now."""
    from tests.replay.test_timing import Harness
    h = Harness({"path": str(tmp_path / "s.sqlite3"), "dsn": ""}, CFG)
    t = time.time()
    h.clock.t = t - 300
    h.pipe.on_inbound(A, "+15125550110", "can you call me back?", now=h.clock.t)
    h.drain()
    h.clock.t = t
    agent_text(h, A, "+15125550110", "maria", "Calling you now")
    got = histogram(StoreCollector(h.store))
    assert got["count"] == 1 and got["300.0"] == 1 and got["60.0"] == 0 and 299 <= got["sum"] <= 301
