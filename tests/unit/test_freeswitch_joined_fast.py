"""Shortcuts of the FreeSWITCH tracker against the careful way.

The tracker skips the union for an id a leg already joined (FsLeg.joined: a
b-leg names its a-leg on every event). Fast way against the careful way (every link id
united on every event, as before): the same call records, in the same order, for recorded
events cut, thinned and interleaved any way. The event time of the usual 16-digit value is
read by a shortcut: the same time as the careful reading for any value."""
from pathlib import Path

from hypothesis import given, settings, strategies as st

from pbx_textback.core.pbx import freeswitch_call
from pbx_textback.core.pbx.eslframe import parse_stream
from pbx_textback.core.pbx.freeswitch import _LINK_VARS, FreeswitchTracker

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"

_TRACES = [[f for f in parse_stream(p.read_bytes()) if "Event-Name" in f]
           for p in sorted(FIX.glob("*.esl")) if "sms" not in p.name and "json" not in p.name]


class _Forgets(set):
    def add(self, _):            # never remembers: every link id goes to the union again
        pass


def _records(events, careful: bool, unions: list | None = None):
    t = FreeswitchTracker()
    new_leg, union = t.graph.new_leg, t.graph.union

    def leg(uid):
        lg = new_leg(uid)
        if careful:
            lg.joined = _Forgets()
        return lg

    def counted(a, b):
        if unions is not None:
            unions.append((a, b))
        return union(a, b)
    t.graph.new_leg, t.graph.union = leg, counted
    out = []
    for ev in events:
        out.extend(t.feed(ev))
    return out + t.flush()


def _thin(ev: dict, rnd, drop_link: float) -> dict:
    """The event without some of its link headers (so a link may come from one event)."""
    return {k: v for k, v in ev.items() if k not in _LINK_VARS or rnd.random() >= drop_link}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, len(_TRACES) - 1), min_size=1, max_size=3),
       st.randoms(use_true_random=False), st.floats(0.0, 0.3), st.floats(0.0, 0.95))
def test_joined_ids_skip_the_union_and_change_nothing(picks, rnd, drop, drop_link):
    streams = [[_thin(ev, rnd, drop_link) for ev in _TRACES[i] if rnd.random() >= drop]
               for i in picks]
    events = []
    while any(streams):         # interleave, each stream in its own order
        s = rnd.choice([s for s in streams if s])
        events.append(s.pop(0))
    fast, careful = _records(events, False), _records(events, True)
    assert fast == careful


def test_the_fast_way_is_taken():
    """(So the property compares two ways, not one way twice.)"""
    fast, careful = [], []
    events = [ev for tr in _TRACES for ev in tr]
    assert _records(events, False, fast) == _records(events, True, careful)
    assert 0 < len(fast) < len(careful) / 2


def _usec_careful(v):
    """freeswitch_call.usec before its 16-digit shortcut."""
    if not isinstance(v, str) or not v.isascii() or not v.isdigit() or len(v) > 19:
        return None
    n = int(v)
    return n / 1e6 if 0 < n <= 253402300799 * 1_000_000 else None


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789", min_size=14, max_size=20),
                 st.text(alphabet="0129 +-_.²١", min_size=15, max_size=17),
                 st.none(), st.integers()))
def test_event_time_shortcut_reads_as_the_careful_way(v):
    assert freeswitch_call.usec(v) == _usec_careful(v)
