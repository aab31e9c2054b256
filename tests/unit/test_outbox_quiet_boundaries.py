"""Quiet hours at the instant the caller's window opens and closes (issue 10 #1). The clock
ticks a microsecond on every reading, as a real one does: a gate that reads it twice for one
decision held every text 'until now' and spun. The twin on the real clock with the example
config as shipped is tests/integration/test_outbox_sending.py."""
import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pbx_textback.config import loads
from pbx_textback.outbox import LogTransport, OutboxWorker
from pbx_textback.pipeline import Pipeline
from pbx_textback.store import db as st

CFG = """
[business]
name = "Acme"
timezone = "America/Chicago"
[compliance]
quiet_hours = "08:00-20:00"
[[line]]
number = "+15125550100"
"""


class Ticking:
    """A clock that moves on by a microsecond each time it is read."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        self.t += 1e-6
        return self.t


def local(zone: str, y, mo, d, h, mi, s=0.0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(zone)).timestamp() + s


def send_once(store, peer: str, at: float):
    clock = Ticking(at - 1e-6)
    pipe = Pipeline(loads(CFG), store, clock=clock)
    with store.write():
        mid = store.add_message(direction="out", kind="missed-call", line="+15125550100", peer=peer,
                                body="Acme: sorry we missed your call", state=st.PENDING, due_at=at - 1,
                                created_at=at - 1)
    w = OutboxWorker(store, LogTransport(), clock=clock, gate_facts=pipe.gate_facts)
    asyncio.run(asyncio.wait_for(w.drain(), 5))
    return st.Message.get_by_id(mid)


# (caller, zone): the window is the caller's, not the business's (Chicago)
NY = ("+12125550147", "America/New_York")
HNL = ("+18085550147", "Pacific/Honolulu")


@pytest.mark.parametrize("who", [NY, HNL], ids=["new-york", "honolulu"])
def test_at_the_instant_the_window_opens_the_text_goes(store_factory, who):
    peer, zone = who
    m = send_once(store_factory(), peer, local(zone, 2026, 3, 10, 8, 0))
    assert m.state == st.SENT


@pytest.mark.parametrize("who", [NY, HNL], ids=["new-york", "honolulu"])
def test_just_before_the_window_opens_it_waits_for_the_opening(store_factory, who):
    peer, zone = who
    opening = local(zone, 2026, 3, 10, 8, 0)
    m = send_once(store_factory(), peer, opening - 0.5)
    assert m.state == st.PENDING and m.due_at == opening and "quiet hours" in m.note


@pytest.mark.parametrize("who", [NY, HNL], ids=["new-york", "honolulu"])
def test_just_before_the_window_closes_the_text_goes(store_factory, who):
    peer, zone = who
    m = send_once(store_factory(), peer, local(zone, 2026, 3, 10, 19, 59, 59.5))
    assert m.state == st.SENT


@pytest.mark.parametrize("who", [NY, HNL], ids=["new-york", "honolulu"])
def test_at_the_instant_the_window_closes_it_waits_for_the_next_morning(store_factory, who):
    peer, zone = who
    m = send_once(store_factory(), peer, local(zone, 2026, 3, 10, 20, 0))
    assert m.state == st.PENDING and m.due_at == local(zone, 2026, 3, 11, 8, 0)
