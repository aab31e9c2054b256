"""The outbox's last look reads its facts in one statement and the consent history only for a
number that ever opted out (store/fast.py last_look_reads). What the caller sees must not change:
an opted-out number is not texted, one that opted back in is, a follow-up to a caller who wrote
since is cancelled and one to a caller who wrote before is sent. On SQLite and PostgreSQL, each
text through the real outbox worker and its gate on the real clock."""
import asyncio
import time

import pytest

from pbx_textback.config import loads
from pbx_textback.core.policy import consent
from pbx_textback.core.policy.consent import ConsentEvent
from pbx_textback.outbox import LogTransport, OutboxWorker
from pbx_textback.pipeline import Pipeline
from pbx_textback.store import db as st
from pbx_textback.store import fast

LINE = "+15125550100"
CFG = f"""
[business]
name = "Acme"
timezone = "America/Chicago"
[compliance]
quiet_hours = ""          # any hour: what is judged here is consent and replies
[[line]]
number = "{LINE}"
"""


def queue(store, peer: str, kind: str, created_at: float) -> int:
    with store.write():
        return store.add_message(direction="out", kind=kind, line=LINE, peer=peer, body="Acme: hi",
                                 state=st.PENDING, due_at=created_at, created_at=created_at)


def reply(store, peer: str, at: float) -> None:
    with store.write():
        store.add_message(direction="in", kind="reply", line=LINE, peer=peer, body="ok thanks",
                          state="received", due_at=at, created_at=at)


def consent_ev(store, kind: str, peer: str, at: float, scope: str = consent.BUSINESS) -> None:
    with store.write():
        store.add_consent(ConsentEvent(kind, peer, at, scope, LINE, "test"))


def drain(store, pipe) -> None:
    w = OutboxWorker(store, LogTransport(), gate_facts=pipe.gate_facts)
    asyncio.run(asyncio.wait_for(w.drain(), 10))


def test_opt_outs_and_replies_at_the_last_look(store_factory):
    store = store_factory()
    now = time.time()
    pipe = Pipeline(loads(CFG), store)
    never, out, back, line_out = "+15125551001", "+15125551002", "+15125551003", "+15125551004"
    consent_ev(store, consent.INBOUND_CALL, never, now - 50)
    consent_ev(store, consent.OPT_OUT, out, now - 40)
    consent_ev(store, consent.OPT_OUT, back, now - 40)
    consent_ev(store, consent.OPT_IN, back, now - 30)
    consent_ev(store, consent.OPT_OUT, line_out, now - 40, scope="line")
    wrote_since, wrote_before, no_reply = "+15125551005", "+15125551006", "+15125551007"
    reply(store, wrote_since, now - 5)
    reply(store, wrote_before, now - 500)
    reply(store, never, now - 5)          # a reply does not cancel a missed-call text
    ids = {p: queue(store, p, "missed-call", now - 10) for p in (never, out, back, line_out)}
    ids.update({p: queue(store, p, "follow-up", now - 10) for p in (wrote_since, wrote_before, no_reply)})
    drain(store, pipe)
    got = {p: st.Message.get_by_id(i) for p, i in ids.items()}
    assert {p: m.state for p, m in got.items()} == {
        never: st.SENT, out: st.CANCELLED, back: st.SENT, line_out: st.CANCELLED,
        wrote_since: st.CANCELLED, wrote_before: st.SENT, no_reply: st.SENT}
    assert got[out].note == got[line_out].note == "caller opted out"
    assert got[wrote_since].note == "caller replied: no follow-up needed"


def test_the_one_statement_reads_what_the_separate_reads_do(store_factory):
    """Each fact of last_look_reads against the store's own reads of it, on rows that make
    each one true and false."""
    store = store_factory()
    now = time.time()
    a, b = "+15125552001", "+15125552002"
    consent_ev(store, consent.OPT_OUT, a, now - 100)
    consent_ev(store, consent.OPT_IN, a, now - 90)
    reply(store, a, now - 5)
    with store.write():
        store.db.execute_sql(fast._sql(store, 'INSERT INTO "call" (box, call_id, pbx, caller, caller_raw, called, '
                             'line, direction, missed, reason, why, recovered, record, created_at, answered) '
                             'VALUES (?, \'9.1\', \'asterisk\', ?, ?, ?, ?, \'inbound\', ?, \'\', \'\', ?, '
                             '\'{}\', ?, ?)'), (store.box, b, b, LINE, LINE, False, False, now - 3, True))
    for peer in (a, b):
        for since in (now - 60, now - 1):
            for follow_up in (True, False):
                reached, paused, ever_out, replied = fast.last_look_reads(store, peer, since, follow_up)
                assert (reached, paused) == fast.gate_reads(store, peer, since)
                assert replied == (follow_up and store.replied_since(peer, since))
                assert ever_out == any(e.kind == consent.OPT_OUT for e in store.consent_standing(peer))
    assert fast.last_look_reads(store, a, now - 60, True)[1:] == (False, True, True)
    assert fast.last_look_reads(store, b, now - 60, False)[0] == "inbound call 9.1"
    store.set_setting("paused", "1", now)
    assert fast.last_look_reads(store, b, now - 60, False)[1] is True


@pytest.mark.parametrize("kind", [consent.OPT_OUT, consent.OPT_IN])
def test_the_gate_facts_match_the_full_consent_reading(store_factory, kind):
    store = store_factory()
    now = time.time()
    pipe = Pipeline(loads(CFG), store)
    peer = "+15125553001"
    consent_ev(store, consent.OPT_OUT, peer, now - 100)
    consent_ev(store, kind, peer, now - 50)
    mid = queue(store, peer, "missed-call", now - 10)
    row = st.Message.get_by_id(mid)
    facts = pipe.gate_facts(row, now)
    assert facts.opted_out == consent.is_opted_out(store.consent_standing(peer), peer, LINE)
    assert facts.opted_out == (kind == consent.OPT_OUT)
