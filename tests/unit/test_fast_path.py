"""The per-call fast path (issue 14) decides exactly what the long way decided.

- consent: the standing read from the few rows that decide it (store/fast.py) is the standing
  over every row ever (core/policy/consent.py), for any history;
- migration 23 fills the per-caller summary from a store's existing history;
- AMI framing's fast path gives the frames the careful parser gives, for any frame text.
"""
from __future__ import annotations

import string

from hypothesis import given, settings, strategies as hs

from pbx_textback.core.pbx.amiframe import AmiFraming
from pbx_textback.core.policy import consent as cs
from pbx_textback.store import fast
from pbx_textback.store.db import open_store
from tests.reads import careful_ami

NUMBERS = ("+15125550123", "+15125550124")
LINES = ("+15125550100", "+15125550101", "")

event = hs.builds(
    lambda kind, number, at, scope, line, confirms: cs.ConsentEvent(
        kind, number, float(at), scope=scope, line=line, source=f"{kind} at {at}",
        confirms=confirms if kind == cs.CONFIRMATION else ""),
    hs.sampled_from(cs.KINDS), hs.sampled_from(NUMBERS), hs.integers(0, 50),
    hs.sampled_from((cs.BUSINESS, cs.LINE)), hs.sampled_from(LINES),
    hs.sampled_from((cs.OPT_OUT, cs.OPT_IN)))


def _checks(hist, number):
    return [(cs.consent_check(hist, number, ln), cs.is_opted_out(hist, number, ln)) for ln in LINES]


@settings(max_examples=150, deadline=None)
@given(hs.lists(event, max_size=25))
def test_standing_from_the_deciding_rows_is_the_standing_from_all_rows(events):
    store = open_store(":memory:", box="b")
    try:
        with store.write():
            for ev in events:
                store.add_consent(ev)
        for number in NUMBERS:
            full = store.consent_history(number)
            few = store.consent_standing(number)
            assert len(few) <= len(full)
            assert _checks(few, number) == _checks(full, number)
            assert cs.owed(few, 60.0) == cs.owed(full, 60.0)
            # *89 "text again" asks this, business-wide (Service's FeatureCodes)
            assert cs.is_opted_out(few, number) == cs.is_opted_out(full, number)
    finally:
        store.close()


def test_a_frequent_callers_history_read_per_call_stays_small():
    store = open_store(":memory:", box="b")
    try:
        with store.write():
            for i in range(500):
                store.add_consent(cs.ConsentEvent(cs.INBOUND_CALL, NUMBERS[0], 1000.0 + i,
                                                  line=LINES[i % 2], source=f"call {i}"))
            store.add_consent(cs.ConsentEvent(cs.OPT_OUT, NUMBERS[0], 900.0, source="STOP"))
        few = store.consent_standing(NUMBERS[0])
        assert [e.source for e in few] == ["STOP", "call 498", "call 499"]
        assert len(store.consent_history(NUMBERS[0])) == 501       # the proof stays whole
    finally:
        store.close()


def test_migration_23_fills_the_summary_from_the_history_a_store_has(tmp_path):
    store = open_store(str(tmp_path / "s.sqlite3"), box="b")
    try:
        db = store.db
        for i, (number, line, at) in enumerate([(NUMBERS[0], LINES[0], 5.0), (NUMBERS[0], LINES[0], 7.0),
                                                (NUMBERS[0], LINES[1], 6.0), (NUMBERS[1], LINES[0], 7.0),
                                                (NUMBERS[1], LINES[0], 7.0)]):
            # rows as a store from before migration 23 holds them: no summary
            db.execute_sql('INSERT INTO "consent" (number, kind, at, scope, line, source, confirms, lang) '
                           "VALUES (?, 'inbound-call', ?, 'business', ?, ?, '', 'en')",
                           (number, at, line, f"call {i}"))
        db.execute_sql('DELETE FROM "consentlastcall"')
        fast.migrate_v23(db)
        got = {(n, ln): src for n, ln, src in db.execute_sql(
            'SELECT s.number, s.line, c.source FROM "consentlastcall" s JOIN "consent" c ON c.id = s.consent_id')}
        assert got == {(NUMBERS[0], LINES[0]): "call 1", (NUMBERS[0], LINES[1]): "call 2",
                       (NUMBERS[1], LINES[0]): "call 4"}     # the latest; of two at once the later row
        for number in NUMBERS:
            assert _checks(store.consent_standing(number), number) == _checks(store.consent_history(number), number)
    finally:
        store.close()


# ---- AMI framing: fast path == careful path ---------------------------------------------------
key = hs.text(string.ascii_letters + string.digits + "-_: ", min_size=0, max_size=8)
value = hs.text(string.ascii_letters + ": ,é\r", max_size=12)
line = hs.one_of(hs.tuples(key, value).map(lambda kv: f"{kv[0]}: {kv[1]}"), key)
frame_text = hs.lists(line, min_size=1, max_size=6).map(
    lambda ls: "\r\n".join((["Event: X"] if len(ls) % 2 else []) + ls))


@settings(max_examples=300, deadline=None)
@given(hs.lists(frame_text, min_size=1, max_size=5))
def test_fast_framing_gives_the_careful_frames(frames):
    data = "".join(t + "\r\n\r\n" for t in frames).encode("utf-8")
    fast_f, slow = AmiFraming(), careful_ami().feed(data)
    assert fast_f.feed(data) == slow
