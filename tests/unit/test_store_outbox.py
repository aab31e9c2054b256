"""The store and the durable outbox: a decision and its row are written together before any
transport sees them; a crash never loses or doubles a text."""
import asyncio

import pytest

from pbx_textback.core.model import CallRecord, Check, Decision, Outcome, Verdict
from pbx_textback.outbox import OutboxWorker, SendResult
from pbx_textback.store import db as st


def verdict(call_id="c1", caller="+15125550123", action="text", due=1000.0):
    call = CallRecord("asterisk", call_id, caller, "+15125550100", "inbound", notes=("n1",))
    checks = (Check("missed", True, "rang out"), Check("caller", action == "text", "x"))
    dec = Decision(action, checks, "+15125550100", caller, "Hi" if action == "text" else "",
                   "tpl", due if action == "text" else None)
    return Verdict(call, Outcome(True, "no-answer", "rang out"), dec, {"caller": caller})


@pytest.fixture
def store(store_factory):
    return lambda _tmp=None: store_factory()


def test_schema_is_versioned_and_reopening_is_idempotent(store, tmp_path):
    s = store(tmp_path)
    assert st.SchemaVersion.select().count() == 1
    s.close()
    s = store(tmp_path)
    assert st.migrate(s.db) == max(v for v, _ in st.MIGRATIONS) and st.SchemaVersion.select().count() == 1
    if s.is_sqlite:
        assert s.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    else:   # epoch seconds need 8 bytes: a 4-byte REAL rounds them to minutes
        kinds = dict(s.db.execute_sql("SELECT column_name, data_type FROM information_schema.columns "
                                      "WHERE table_name = 'message'").fetchall())
        assert kinds["due_at"] == kinds["created_at"] == "double precision"


def test_verdict_and_outbox_row_in_one_transaction_and_once_per_call(store, tmp_path):
    s = store(tmp_path)
    _, msg = s.record_verdict(verdict(), now=1000.0)
    assert msg is not None
    _, again = s.record_verdict(verdict(), now=1001.0)       # the same call seen again
    assert again is None and st.Message.select().count() == 1
    _, none = s.record_verdict(verdict("c2", action="skip"), now=1002.0)
    assert none is None and st.Call.select().count() == 2
    assert s.last_text_at("+15125550123", "+15125550100") == 1000.0
    explained = s.calls_for("+15125550123")
    assert [c["decision"] for c in explained] == ["text", "skip"]
    assert explained[0]["checks"][0] == {"name": "missed", "ok": True, "detail": "rang out"}
    assert explained[0]["notes"] == ["n1"]



def test_a_call_checked_new_but_recorded_meanwhile_keeps_its_first_decision(store, tmp_path):
    """The pipeline reads that a call is new and then records it without looking again
    (checked=True): should another writer of this box have recorded it in between, the
    insert yields to the first record: one call, one decision, one text."""
    s = store(tmp_path)
    first, msg = s.record_verdict(verdict(), now=1000.0)
    again, none = s.record_verdict(verdict(), now=1001.0, checked=True)
    assert (again, none) == (first, None) and msg is not None
    assert st.Call.select().count() == 1 and st.DecisionRow.select().count() == 1
    assert st.Message.select().count() == 1
    other, msg2 = s.record_verdict(verdict("c2"), now=1002.0, checked=True)
    assert other != first and msg2 is not None and st.Message.select().count() == 2

class Flaky:
    name = "flaky"

    def __init__(self, results):
        self.results = list(results)
        self.calls = []

    async def send(self, msg, last_look):
        self.calls.append(msg.id)
        assert last_look()
        r = self.results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r


def run(coro):
    return asyncio.run(coro)


def test_worker_sends_due_rows_only_and_records_the_id(store, tmp_path):
    s = store(tmp_path)
    s.record_verdict(verdict("a", due=100.0), now=100.0)
    s.record_verdict(verdict("b", "+15125550124", due=500.0), now=100.0)
    t = Flaky([SendResult("sent", "id-1")])
    w = OutboxWorker(s, t, clock=lambda: 200.0)
    assert run(w.drain()) == 1
    rows = {m.peer: m for m in st.Message.select()}
    assert rows["+15125550123"].state == st.SENT and rows["+15125550123"].transport_id == "id-1"
    assert rows["+15125550124"].state == st.PENDING      # not due until 500


def test_temporary_failure_is_retried_later_permanent_is_failed(store, tmp_path):
    s = store(tmp_path)
    s.record_verdict(verdict("a"), now=1000.0)
    s.record_verdict(verdict("b", "+15125550124"), now=1000.0)
    t = Flaky([SendResult("retry", error="SMSC busy"), SendResult("failed", error="invalid destination")])
    w = OutboxWorker(s, t, clock=lambda: 1000.0)
    run(w.drain())
    a, b = st.Message.select().order_by(st.Message.id)
    assert a.state == st.PENDING and a.due_at > 1000.0 and a.error == "SMSC busy"
    assert b.state == st.FAILED and b.error == "invalid destination"


def test_transport_exception_marks_unknown_never_lost_or_resent(store, tmp_path):
    s = store(tmp_path)
    s.record_verdict(verdict("a"), now=1000.0)
    t = Flaky([RuntimeError("socket died after write")])
    run(OutboxWorker(s, t, clock=lambda: 1000.0).drain())
    m = st.Message.get()
    assert m.state == st.UNKNOWN and "socket died" in m.error
    t2 = Flaky([])
    assert run(OutboxWorker(s, t2, clock=lambda: 2000.0).drain()) == 0 and t2.calls == []


def test_a_crash_before_the_write_requeues_after_the_write_leaves_unknown(store, tmp_path):
    """Issue 10 finding 2: only a text written to the wire may be unknown."""
    s = store(tmp_path)
    s.record_verdict(verdict("a"), now=1000.0)
    s.record_verdict(verdict("b", "+15125550124"), now=1000.0)
    a, b = s.claim_due(1000.0)                       # both claimed ...
    assert s.mark_written(b.id, 1000.5)              # ... b written, then the process dies
    s.close()
    s = store(tmp_path)
    assert s.recover_interrupted(2000.0) == (1, 1)
    assert st.Message.get_by_id(a.id).state == st.PENDING         # no byte left: it goes out
    assert st.Message.get_by_id(b.id).state == st.UNKNOWN         # may have: never resent silently
    assert [m.id for m in s.claim_due(3000.0)] == [a.id]


def test_a_send_test_row_cut_before_its_write_is_never_sent_by_the_service(store, tmp_path):
    """send-test writes its own row; a service starting meanwhile must not take it for a text
    of its own (the person would get the test text from both)."""
    s = store(tmp_path)
    with s.write():
        mid = s.add_message(direction="out", kind="test", line="+15125550100", peer="+15125550123",
                            body="test", state=st.SENDING, due_at=1000.0, attempts=0)
    assert s.recover_interrupted(2000.0) == (0, 0)
    m = st.Message.get_by_id(mid)
    assert m.state == st.FAILED and "send-test" in m.error
    assert s.claim_due(3000.0) == []


def test_two_workers_never_claim_the_same_row(store, tmp_path):
    s1 = store(tmp_path)
    for i in range(20):
        s1.record_verdict(verdict(f"c{i}", f"+1512555{i:04d}"), now=1000.0)
    got = s1.claim_due(1000.0, limit=10) + s1.claim_due(1000.0, limit=10) + s1.claim_due(1000.0, limit=10)
    assert len({m.id for m in got}) == len(got) == 20


def test_a_version_1_store_is_migrated_in_place(tmp_path):
    """A store written by the first release keeps its rows and gains the new columns."""
    import peewee as pw
    path = tmp_path / "old.sqlite3"
    db = pw.SqliteDatabase(str(path))
    db.execute_sql("CREATE TABLE schemaversion (id INTEGER PRIMARY KEY, version INTEGER, applied_at REAL)")
    db.execute_sql("INSERT INTO schemaversion (version, applied_at) VALUES (1, 0)")
    for sql in (
        "CREATE TABLE call (id INTEGER PRIMARY KEY, call_id VARCHAR UNIQUE, pbx VARCHAR, caller VARCHAR, "
        "caller_raw VARCHAR, called VARCHAR, line VARCHAR, direction VARCHAR, missed INTEGER, reason VARCHAR, "
        "why TEXT, voicemail_left INTEGER, recovered INTEGER, started_at REAL, ended_at REAL, record TEXT, created_at REAL)",
        "CREATE TABLE decision (id INTEGER PRIMARY KEY, call_id INTEGER, action VARCHAR, checks TEXT, line VARCHAR, created_at REAL)",
        "CREATE TABLE message (id INTEGER PRIMARY KEY, call_id INTEGER, direction VARCHAR, kind VARCHAR, line VARCHAR, "
        "peer VARCHAR, body TEXT, state VARCHAR, due_at REAL, attempts INTEGER, transport VARCHAR, transport_id VARCHAR, "
        "error TEXT, created_at REAL, updated_at REAL)",
        "CREATE TABLE hoursoverride (id INTEGER PRIMARY KEY, line VARCHAR UNIQUE, mode VARCHAR, set_at REAL)",
        "INSERT INTO message (direction, kind, line, peer, body, state, due_at, attempts, transport, transport_id, "
        "error, created_at, updated_at) VALUES ('out','missed-call','L','+15125550123','old','sent',1,1,'log','x','',1,1)"):
        db.execute_sql(sql)
    db.close()
    s = st.open_store(str(path))
    m = st.Message.get()
    assert m.body == "old" and m.calls_missed == 1 and m.note == ""
    assert st.SchemaVersion.select(pw.fn.MAX(st.SchemaVersion.version)).scalar() == max(v for v, _ in st.MIGRATIONS)


def test_a_receipt_faster_than_the_submit_answer_is_not_lost(store, tmp_path):
    """A fast SMSC can deliver the receipt before the outbox has stored the submit's id."""
    s = store(tmp_path)
    s.record_verdict(verdict("a"), now=1000.0)
    (row,) = s.claim_due(1000.0)                    # sending, no transport id yet
    assert s.apply_dlr(("1a2b",), "delivered", "", 1000.1, msg_id=row.id) == 1
    s.mark_sent(row.id, now=1000.2, transport="smpp", transport_id="1a2b")
    m = st.Message.get()
    assert m.state == st.DELIVERED and m.transport_id == "1a2b" and m.transport == "smpp"
    assert s.apply_dlr(("1a2b",), "delivered", "", 1001.0) == 1       # by id, later receipts


def test_a_receipt_before_a_lost_submit_answer_keeps_the_text_delivered(store, tmp_path):
    """The gateway delivered and sent its receipt, then the submit's answer was lost (the
    connection dropped): the text is delivered, not unknown, failed or queued again."""
    s = store(tmp_path)
    s.record_verdict(verdict("a"), now=1000.0)
    s.record_verdict(verdict("b", "+15125550124"), now=1000.0)

    class ReceiptFirst:
        name = "smpp"

        def __init__(self, answers):
            self.answers = answers

        async def send(self, row, last_look):
            assert last_look()
            s.apply_dlr([], "delivered", "", 1000.5, msg_id=row.id)    # the receipt comes first
            return self.answers.pop(0)
    t = ReceiptFirst([SendResult("unknown", error="connection lost"), SendResult("failed", error="x")])
    run(OutboxWorker(s, t, clock=lambda: 1001.0).drain())
    assert [m.state for m in st.Message.select().order_by(st.Message.id)] == [st.DELIVERED, st.DELIVERED]


def test_two_boxes_on_one_store_claim_recover_and_match_only_their_own(store, tmp_path):
    """Issue 12 item 11 at the store (SQLite and PostgreSQL alike): one store, two boxes."""
    first = store(tmp_path)
    a, b = st.Store(first.db, "pbx-a"), st.Store(first.db, "pbx-b")
    a.accounts, b.accounts = {"smpp": "acme-a@gw:2775"}, {"smpp": "acme-b@gw:2775"}
    a.record_verdict(verdict("1700000000.1", "+15125550111"), now=1000.0)
    _, b_msg = b.record_verdict(verdict("1700000000.1", "+15125550122"), now=1000.0)
    assert b_msg is not None and st.Call.select().count() == 2     # the same Uniqueid, another box
    assert a.has_call("1700000000.1") and b.has_call("1700000000.1") and not a.has_call("x")
    (ra,) = a.claim_due(1001.0)
    assert ra.peer == "+15125550111" and a.claim_due(1001.0) == []     # B's row is not A's to send
    (rb,) = b.claim_due(1001.0)
    assert b.mark_written(rb.id, 1001.0)
    assert a.recover_interrupted(1002.0) == (1, 0)                     # B's written row untouched
    assert st.Message.get_by_id(rb.id).state == st.SENDING
    b.mark_sent(rb.id, now=1003.0, transport="smpp", transport_id="1000")
    (ra,) = a.claim_due(1004.0)
    a.mark_sent(ra.id, now=1005.0, transport="smpp", transport_id="1000")   # ids repeat across accounts
    assert b.apply_dlr(("1000",), "delivered", "", 1006.0) == 1
    assert a.apply_dlr(("1000",), "undeliverable", "UNDELIV", 1007.0) == 1
    assert (st.Message.get_by_id(ra.id).state, st.Message.get_by_id(rb.id).state) == (st.FAILED, st.DELIVERED)
    assert st.Message.get_by_id(rb.id).account == "acme-b@gw:2775"
    assert a.boxes() == ["pbx-a", "pbx-b"]


def test_rows_from_before_box_names_stay_one_boxs(store, tmp_path):
    """After the upgrade: an old call still counts as seen, an old queued text is adopted."""
    s = store(tmp_path)
    s.record_verdict(verdict("old-1", "+15125550111"), now=1000.0)
    st.Call.update(box="").execute()
    st.Message.update(box="").execute()
    new = st.Store(s.db, "pbx-a")
    assert new.has_call("old-1") and new.record_verdict(verdict("old-1"), now=1001.0)[1] is None
    assert new.claim_due(1002.0) == [] and new.adopt_unboxed(1002.0) == 1
    assert [r.peer for r in new.claim_due(1003.0)] == ["+15125550111"]


class Slow:
    """Takes `capacity` texts at once; each answers when the test lets it."""
    name = "slow"

    def __init__(self, capacity):
        self.capacity = capacity
        self.calls, self.inflight = [], 0
        self.peak = 0
        self.go = asyncio.Event()

    async def send(self, msg, last_look):
        assert last_look()
        self.calls.append(msg.id)
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        await self.go.wait()
        self.inflight -= 1
        return SendResult("sent", f"id-{msg.id}")


def test_the_running_worker_refills_freed_slots_and_wakes_for_new_rows(store, tmp_path):
    """The worker's own loop (run), with a poll far longer than the test: five due texts
    through two slots go out as slots free up, and a text queued later goes out on wake()
    alone. What drives it is the wake-ups, never the poll."""
    s = store(tmp_path)
    for i in range(5):
        s.record_verdict(verdict(f"c{i}", f"+1512555{1000 + i:04d}", due=100.0), now=100.0)
    t = Slow(capacity=2)
    w = OutboxWorker(s, t, clock=lambda: 200.0, poll=3600.0)

    async def main():
        task = asyncio.create_task(w.run())
        while len(t.calls) < 2:
            await asyncio.sleep(0.01)
        assert t.inflight == 2            # the window is full: the other three wait for a slot
        t.go.set()
        while w.sent < 5:
            await asyncio.sleep(0.01)
        s.record_verdict(verdict("late", "+15125559999", due=150.0), now=150.0)
        w.wake()
        while w.sent < 6:
            await asyncio.sleep(0.01)
        w.stop()
        await asyncio.wait_for(task, 30)
    run(asyncio.wait_for(main(), 60))
    assert t.peak == 2 and len(t.calls) == 6
    assert {m.state for m in st.Message.select()} == {st.SENT}
