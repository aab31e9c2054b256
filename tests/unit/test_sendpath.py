"""The send path's saved statements (store/sendpath.py) change nothing a caller or an admin sees:
the guarded take takes a text exactly when the last look's facts are clear, the outbox with it
leaves every text in the state the outbox without it does, and the row a decision hands to the
outbox is the row the outbox would have read back. On SQLite and PostgreSQL, real clock."""
import asyncio
import time

import pytest

from pbx_textback.config import loads
from pbx_textback.core.model import CallRecord
from pbx_textback.core.policy import consent
from pbx_textback.outbox import LogTransport, OutboxWorker
from pbx_textback.pipeline import Pipeline
from pbx_textback.store import db as st
from pbx_textback.store import fast, sendpath
from tests.unit.test_last_look_facts import CFG, LINE, consent_ev, queue, reply


def _call(store, peer: str, at: float, answered: bool, direction: str = "inbound", cid: str = "9.1") -> None:
    caller, called = (peer, LINE) if direction == "inbound" else (LINE, peer)
    with store.write():
        store.db.execute_sql(fast._sql(store, 'INSERT INTO "call" (box, call_id, pbx, caller, caller_raw, called, '
                             'line, direction, missed, reason, why, recovered, record, created_at, answered) '
                             'VALUES (?, ?, \'asterisk\', ?, ?, ?, ?, ?, ?, \'\', \'\', ?, '
                             '\'{}\', ?, ?)'), (store.box, cid, caller, caller, called, LINE, direction,
                                                not answered, False, at, answered))


def _clear(store, row) -> bool:
    reached, paused, ever_out, replied = fast.last_look_reads(store, row.peer, row.created_at,
                                                             row.kind == "follow-up")
    return not reached and not paused and not ever_out and not replied


def test_the_guarded_take_takes_exactly_when_the_facts_are_clear(store_factory):
    store = store_factory()
    now = time.time()
    names = ("clear", "opted out", "opted back in", "reached", "called back", "reached before", "replied",
             "replied before")
    peers = {p: f"+1512555{4000 + i}" for i, p in enumerate(names)}
    consent_ev(store, consent.OPT_OUT, peers["opted out"], now - 100)
    consent_ev(store, consent.OPT_OUT, peers["opted back in"], now - 100)
    consent_ev(store, consent.OPT_IN, peers["opted back in"], now - 90)
    _call(store, peers["reached"], now - 3, True)
    _call(store, peers["called back"], now - 3, True, "outbound", "9.2")
    _call(store, peers["reached before"], now - 30, True, cid="9.3")
    reply(store, peers["replied"], now - 5)
    reply(store, peers["replied before"], now - 500)
    for kind in ("missed-call", "follow-up"):
        ids = {name: queue(store, p, kind, now - 10) for name, p in peers.items()}
        for name, mid in ids.items():
            row = st.Message.get_by_id(mid)
            clear = _clear(store, row)
            assert sendpath.take_if_clear(store, row, now) == clear, (kind, name)
            got = st.Message.get_by_id(mid)
            assert (got.state, got.written_at, got.attempts) == (
                (st.SENDING, now, 1) if clear else (st.PENDING, None, 0)), (kind, name)
    # a replied-to missed-call text is clear (only a follow-up is cancelled by a reply)
    assert _clear(store, st.Message.get_by_id(ids["replied"])) is False
    # paused: nothing is clear; and a row no longer pending is never taken
    mid = queue(store, peers["clear"], "missed-call", now - 10)
    store.set_setting("paused", "1", now)
    assert not sendpath.take_if_clear(store, st.Message.get_by_id(mid), now)
    store.set_setting("paused", "0", now)
    row = st.Message.get_by_id(mid)
    store.set_state(mid, st.CANCELLED, now=now, note="test")
    assert not sendpath.take_if_clear(store, row, now)
    assert st.Message.get_by_id(mid).state == st.CANCELLED


@pytest.mark.parametrize("clear_first", [True, False], ids=["shipped: guarded take", "facts read first"])
def test_the_outbox_leaves_each_text_as_the_full_last_look_does(store_factory, clear_first):
    """Every kind of text, every fact: the states and notes are those the last look without the
    guarded take gives (test_last_look_facts.py checks those against the consent rules)."""
    store = store_factory()
    now = time.time()
    pipe = Pipeline(loads(CFG), store)
    never, out, back, reached = "+15125555001", "+15125555002", "+15125555003", "+15125555004"
    consent_ev(store, consent.OPT_OUT, out, now - 40)
    consent_ev(store, consent.OPT_OUT, back, now - 40)
    consent_ev(store, consent.OPT_IN, back, now - 30)
    _call(store, reached, now - 3, True)
    wrote_since, wrote_before = "+15125555005", "+15125555006"
    reply(store, wrote_since, now - 5)
    reply(store, wrote_before, now - 500)
    ids = {(p, "missed-call"): queue(store, p, "missed-call", now - 10) for p in (never, out, back, reached)}
    ids.update({(p, "follow-up"): queue(store, p, "follow-up", now - 10) for p in (wrote_since, wrote_before)})
    # the confirmation of a STOP goes out although the number opted out (the rules require it)
    ids[(out, "confirmation")] = queue(store, out, "confirmation", now - 10)
    ids[(out, "agent")] = queue(store, out, "agent", now - 10)
    w = OutboxWorker(store, LogTransport(), gate_facts=pipe.gate_facts,
                     gate_clear=pipe.gate_clear if clear_first else None)
    asyncio.run(asyncio.wait_for(w.drain(), 10))
    got = {k: st.Message.get_by_id(i) for k, i in ids.items()}
    assert {k: m.state for k, m in got.items()} == {
        (never, "missed-call"): st.SENT, (out, "missed-call"): st.CANCELLED, (back, "missed-call"): st.SENT,
        (reached, "missed-call"): st.CANCELLED, (wrote_since, "follow-up"): st.CANCELLED,
        (wrote_before, "follow-up"): st.SENT, (out, "confirmation"): st.SENT, (out, "agent"): st.CANCELLED}
    assert got[(reached, "missed-call")].note == "caller reached before the text went out (inbound call 9.1)"
    assert all(m.attempts == (m.state == st.SENT) for m in got.values())


def test_paused_holds_the_text_with_the_guarded_take(store_factory):
    store = store_factory()
    now = time.time()
    pipe = Pipeline(loads(CFG), store)
    mid = queue(store, "+15125556001", "missed-call", now - 10)
    store.set_setting("paused", "1", now)
    w = OutboxWorker(store, LogTransport(), gate_facts=pipe.gate_facts, gate_clear=pipe.gate_clear)
    asyncio.run(asyncio.wait_for(w.drain(), 10))
    m = st.Message.get_by_id(mid)
    assert (m.state, m.note, m.attempts) == (st.PENDING, "automated texting is paused", 0)
    assert m.due_at > now


def _missed(i: int, now: float) -> CallRecord:
    return CallRecord("asterisk", f"1795734713.{i}", f"+1512555{7000 + i}", LINE, "inbound",
                      started_at=now - 20, ended_at=now, caller_cancelled=True, dial_results=("CANCEL",),
                      ring_seconds=20.0)


def test_the_handed_down_row_is_the_row_the_outbox_reads(store_factory):
    store = store_factory()
    pipe = Pipeline(loads(CFG), store)
    now = time.time()
    v, handed = pipe.record_call(_missed(1, now), now=now)
    assert v.decision.action == "text" and handed is not None
    [read] = store.due_rows(now, limit=10)
    for col in fast._MSG_COLS:
        a, b = getattr(handed, col), getattr(read, col)
        assert (a, type(a)) == (b, type(b)), col
    # another text due and not yet taken: the outbox reads the due rows itself (oldest first)
    v2, handed2 = pipe.record_call(_missed(2, now + 1), now=now + 1)
    assert v2.decision.action == "text" and handed2 is None
    # a call that queues no text hands nothing down
    v3, handed3 = pipe.record_call(_missed(1, now + 2), now=now + 2)   # seen again: its first decision stands
    assert v3.decision.action == "skip" and handed3 is None
    # on_record (replay, whatif) gives the same verdict, without the row
    assert pipe.on_record(_missed(1, now + 3), now=now + 3).decision.checks == v3.decision.checks


def test_a_text_due_later_is_not_handed_down(store_factory):
    store = store_factory()
    cfg = loads(CFG + "delay_seconds = 60\n")      # the line waits a minute before texting
    pipe = Pipeline(cfg, store)
    now = time.time()
    v, handed = pipe.record_call(_missed(3, now), now=now)
    assert v.decision.action == "text" and v.decision.due_at > now and handed is None


def test_an_offered_row_goes_out_once(store_factory):
    """The service's path: the decision's row offered to the running worker is sent, once."""
    store = store_factory()
    pipe = Pipeline(loads(CFG), store)

    class Counting(LogTransport):
        def __init__(self):
            super().__init__()
            self.sent: list[int] = []

        def deliver(self, msg):
            self.sent.append(msg.id)
            return super().deliver(msg)

    tx = Counting()
    w = OutboxWorker(store, tx, gate_facts=pipe.gate_facts, gate_clear=pipe.gate_clear, poll=0.05)

    async def go():
        runner = asyncio.create_task(w.run())
        while not w._running:
            await asyncio.sleep(0.01)
        now = time.time()
        _, row = pipe.record_call(_missed(4, now), now=now)
        assert row is not None
        w.offer(row)
        w.offer(row)                  # offered twice (or found by a poll meanwhile): carried once
        for _ in range(100):
            await asyncio.sleep(0.02)
            if st.Message.get_by_id(row.id).state == st.SENT:
                break
        await asyncio.sleep(0.2)      # a few polls: nothing goes out again
        w.stop()
        await runner
        return row.id
    mid = asyncio.run(asyncio.wait_for(go(), 10))
    assert tx.sent == [mid]
    assert st.Message.get_by_id(mid).attempts == 1
