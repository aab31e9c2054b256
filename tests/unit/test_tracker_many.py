"""AsteriskTracker.feed_many (a read's events in one call, its own copy of feed()'s shortcut)
against the careful way (every event to its handler, one at a time): the same records, field
for field, and the same errors, whatever the reads and however the events are cut into
batches; on every recorded trace and on made-up streams that also start new AMI sessions
(FullyBooted) and reconcile in the middle of a batch (the epoch feed_many keeps in a local)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as hs

from pbx_textback.core.pbx.amiframe import AmiFraming
from pbx_textback.core.pbx.asterisk import SERVICE_AMI_EVENTS, AsteriskTracker, records_from_stream
from pbx_textback.core.pbx.streams import split_at
from tests.unit.test_tracker_quick import (
    MARKED, NO_TC, TRACES, _END, _START, Careful, _edges, _ev, _frame, run)


def run_many(pieces, s=None, filtered=True, cuts=()):
    """Each read's events to feed_many, cut again at `cuts` (indexes into the read's events)."""
    t = AsteriskTracker(s)
    f = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=t.read_vars) if filtered else AmiFraming()
    out = []
    for piece in pieces:
        evs = f.feed(piece)
        at = sorted({c % (len(evs) + 1) for c in cuts}) if evs else []
        for a, b in zip([0] + at, at + [len(evs)]):
            out += t.feed_many(evs[a:b])
    return out + t.expire(0.0) + t.expire(10.0 ** 9) + t.flush(), t.errors


def test_every_recorded_trace_gives_the_careful_records():
    calls = 0
    for p in TRACES:
        data = p.read_bytes()
        for s in (None, MARKED, NO_TC):
            for filtered in (True, False):
                want = run(Careful, [data], s, filtered)
                calls += len(want[0])
                assert run_many([data], s, filtered) == want, (p.name, s, filtered)
                assert run_many([data], s, filtered, cuts=(1, 7, 40)) == want, (p.name, s)
    assert calls > 100


def test_replay_reads_the_careful_records():
    """records_from_stream (replay, whatif) hands each read to feed_many."""
    for p in TRACES:
        data = p.read_bytes()
        t = Careful()
        f = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=t.read_vars)
        want = [r for ev in f.feed(data) for r in t.feed(ev)] + t.flush()
        assert records_from_stream(data) == want, p.name
        assert records_from_stream(data, chunks=[100, 5000]) == want, p.name


def test_the_shortcut_is_taken():
    """(So the property compares two ways, not one way twice.)"""
    t = AsteriskTracker()
    handled = []
    orig = t._dispatch
    t._dispatch = lambda ev: handled.append(ev) or orig(ev)
    f = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=t.read_vars)
    evs = [ev for p in TRACES for ev in f.feed(p.read_bytes())]
    t.feed_many(evs)
    assert 0 < len(handled) < len(evs) / 3


_session = hs.sampled_from([
    "Event: FullyBooted\r\nStatus: Fully Booted",
    "Event: CoreShowChannel\r\n_reconcile: 1\r\nChannel: PJSIP/itsp-1.1\r\nUniqueid: 1.1\r\n"
    "Linkedid: 1.1\r\nChannelState: 6\r\nChannelStateDesc: Up",
    "Event: CoreShowChannelsComplete\r\n_reconcile: 1\r\nEventList: Complete",
])


@settings(max_examples=600, deadline=None)
@given(hs.lists(hs.one_of(_ev, _session), min_size=1, max_size=14),
       hs.sampled_from([None, MARKED, NO_TC]), hs.booleans(),
       hs.lists(hs.integers(0, 10 ** 4), max_size=3), hs.lists(hs.integers(0, 40), max_size=4))
def test_made_up_streams_in_any_batches_give_the_careful_records(evs, s, filtered, reads, cuts):
    data = "".join(e + "\r\n\r\n" for e in [_START] + evs + _END).encode("utf-8")
    pieces = split_at(data, [c % (len(data) + 1) for c in reads])
    assert run_many(pieces, s, filtered, cuts) == run(Careful, pieces, s, filtered)


def test_each_event_the_shortcut_looks_at_gives_the_careful_record():
    did = _frame("VarSet", "1.1", "1.1", "Variable: __FROM_DID\r\nValue: 5125550111")
    for ev in _edges():
        for before in ([], [did]):
            data = "".join(e + "\r\n\r\n" for e in [_START] + before + [ev] + _END).encode()
            for s in (None, MARKED, NO_TC):
                assert run_many([data], s) == run(Careful, [data], s), (ev, s)


def test_a_new_session_in_the_middle_of_a_batch():
    """A channel that moves on after a FullyBooted in the same batch belongs to the new AMI
    session: the reconcile that follows (listing nothing) must not close it as unseen."""
    boot, done = ("Event: FullyBooted\r\nStatus: Fully Booted",
                  "Event: CoreShowChannelsComplete\r\n_reconcile: 1\r\nEventList: Complete")
    moved = _frame("VarSet", "1.1", "1.1", "Variable: RINGTIME\r\nValue: 5")
    for s in (None, MARKED):
        for filtered in (True, False):
            data = "".join(e + "\r\n\r\n" for e in [_START, boot, moved, done] + _END).encode()
            want = run(Careful, [data], s, filtered)
            assert [r.recovered for r in want[0]] == [False]
            assert run_many([data], s, filtered) == want
