"""The decision's write on PostgreSQL (store/fast.py record_verdict through peewee's atomic()):
the same rows and the same all-or-nothing as on SQLite (tests/unit/test_decision_write.py)."""
from __future__ import annotations

import peewee as pw
import pytest

from pbx_textback.core.policy.consent import ConsentEvent
from pbx_textback.store.db import open_store
from tests.unit.test_decision_write import count, verdict


@pytest.fixture
def store(pg_dsn):
    import psycopg2
    c = psycopg2.connect(pg_dsn)
    c.autocommit = True
    c.cursor().execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    c.close()
    s = open_store(dsn=pg_dsn, box="b")
    yield s
    s.close()


def test_a_decision_is_stored_whole_or_not_at_all_on_postgresql(store):
    ev = ConsentEvent("inbound-call", "+15125550123", 1000.0, line="+15125550100", source="call c1")
    call_id, msg_id = store.record_verdict(verdict("c1"), now=1000.0, consent=ev, checked=True)
    assert msg_id is not None
    assert [count(store, t) for t in ("call", "decision", "message", "consent", "consentlastcall")] == [1] * 5
    assert store.record_verdict(verdict("c1"), now=1001.0, checked=True) == (call_id, None)
    bad = ConsentEvent("inbound-call", None, 1000.0, line="+15125550100")
    with pytest.raises(pw.IntegrityError):
        store.record_verdict(verdict("c2"), now=1000.0, consent=bad, checked=True)
    assert [count(store, t) for t in ("call", "decision", "message", "consent")] == [1, 1, 1, 1]
    assert [c["call_id"] for c in store.calls_for("+15125550123")] == ["c1"]
