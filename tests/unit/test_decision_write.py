"""The decision's write (store/fast.py record_verdict): on SQLite its own BEGIN IMMEDIATE ...
COMMIT on the connection; all or nothing, inside a caller's write() too; and the stored checks'
JSON is json.dumps's text to the byte."""
from __future__ import annotations

import json

import peewee as pw
import pytest
from hypothesis import given, strategies as st

from pbx_textback.core.model import CallRecord, Check, Decision, Outcome, Verdict
from pbx_textback.core.policy.consent import ConsentEvent
from pbx_textback.store import fast
from pbx_textback.store.db import open_store


def verdict(call_id="c1", caller="+15125550123"):
    call = CallRecord("asterisk", call_id, caller, "+15125550100", "inbound")
    checks = (Check("missed", True, "rang out"), Check("caller", True, caller))
    dec = Decision("text", checks, "+15125550100", caller, "Hi", "tpl", 1000.0)
    return Verdict(call, Outcome(True, "no-answer", "rang out"), dec, {"caller": caller})


def count(store, table):
    return store.db.execute_sql(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "s.sqlite3"), box="b")
    yield s
    s.close()


def test_a_decision_is_stored_whole_and_committed(store, tmp_path):
    ev = ConsentEvent("inbound-call", "+15125550123", 1000.0, line="+15125550100", source="call c1")
    call_id, msg_id = store.record_verdict(verdict(), now=1000.0, consent=ev, checked=True)
    assert not store.db.connection().in_transaction
    other = open_store(str(tmp_path / "s.sqlite3"), box="b")      # another connection sees it all
    try:
        assert [count(other, t) for t in ("call", "decision", "message", "consent", "consentlastcall")] == [1] * 5
    finally:
        other.close()


def test_a_failing_statement_leaves_nothing_and_no_transaction_open(store):
    bad = ConsentEvent("inbound-call", None, 1000.0, line="+15125550100")      # number NOT NULL
    with pytest.raises(pw.IntegrityError):         # peewee's error, as before
        store.record_verdict(verdict(), now=1000.0, consent=bad, checked=True)
    assert not store.db.connection().in_transaction
    assert [count(store, t) for t in ("call", "decision", "message", "consent")] == [0, 0, 0, 0]
    store.record_verdict(verdict(), now=1000.0, checked=True)          # the store writes on
    assert count(store, "call") == 1


def test_inside_a_callers_write_it_joins_that_transaction(store):
    with pytest.raises(RuntimeError):
        with store.write():
            store.record_verdict(verdict("c1"), now=1000.0, checked=True)
            raise RuntimeError("the caller's step fails after")
    assert count(store, "call") == 0            # rolled back with the caller's transaction
    with store.write():
        store.record_verdict(verdict("c2"), now=1000.0, checked=True)
    assert count(store, "call") == 1


def test_the_same_call_twice_keeps_its_first_decision(store):
    first = store.record_verdict(verdict("c1"), now=1000.0, checked=True)
    again = store.record_verdict(verdict("c1"), now=1001.0, checked=True)
    assert again == (first[0], None) and count(store, "message") == 1
    assert store.record_verdict(verdict("c1"), now=1002.0) == (first[0], None)


text = st.text(max_size=40)
checks = st.lists(st.builds(Check, st.sampled_from(["line", "caller", "consent", "dedupe", "é", ""]),
                            st.booleans(), st.sampled_from(["", "x", "line +15125550100 is enabled"]) | text),
                  max_size=12)


@given(st.lists(checks, min_size=1, max_size=4))
def test_the_checks_json_is_json_dumps_text(lists):
    for cs in lists:                # later lists hit the kept pieces of earlier ones
        assert fast.checks_json(tuple(cs)) == json.dumps([c.to_dict() for c in cs])


def test_checks_json_of_odd_values_falls_back_to_json_dumps():
    cs = (Check("a", 1, "x"), Check("b", True, "y"))          # ok as int: dumps says 1, not true
    assert fast.checks_json(cs) == json.dumps([c.to_dict() for c in cs])
    assert fast.checks_json((Check("a", True, "x"),)) == '[{"name": "a", "ok": true, "detail": "x"}]'


def test_a_call_is_found_by_each_spelling_of_its_number(store):
    """call (caller_raw) holds only calls whose raw number is not their E.164: a timeline asked
    by either spelling, by the called number or by the call id still finds every call."""
    raw = verdict("c1", "+15125550123")
    raw = raw.__class__(raw.call.__class__(**{**raw.call.__dict__, "caller": "5125550123"}),
                        raw.outcome, raw.decision, {"caller": "+15125550123"})
    store.record_verdict(raw, now=1000.0, checked=True)                      # raw 5125550123
    store.record_verdict(verdict("c2", "+15125550123"), now=1001.0, checked=True)  # raw = E.164
    assert [c["call_id"] for c in store.calls_for("5125550123")] == ["c1"]
    assert [c["call_id"] for c in store.calls_for("+15125550123")] == ["c1", "c2"]
    assert [c["call_id"] for c in store.calls_for("+15125550100")] == ["c1", "c2"]
    assert [c["call_id"] for c in store.calls_for("c2")] == ["c2"]
    assert store.db.execute_sql('SELECT COUNT(*) FROM "call" INDEXED BY "call_caller_raw" '
                                'WHERE caller_raw <> caller').fetchone()[0] == 1
