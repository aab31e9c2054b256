"""/metrics' outgoing-text totals (pbx_textback_texts_total by kind and result) are kept by the
store's triggers as texts change (store/text_tally.py) instead of counted over every text at
each scrape. What a scrape shows must be what a full count of the message table shows: on the
replayed day of tests/report_day.py, through every kind of state change (sent, receipts, no
receipt, a late receipt, a resend, a cancel, an expiry, a restart), and after purges; on
SQLite and on PostgreSQL. A purge takes texts out of the store but not out of the counters."""
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pbx_textback.reporting.metrics import StoreCollector, registry_for
from pbx_textback.store.db import Message
from tests.report_day import A, B, C, E, T0, agent_text, at, play_day

NAME = "pbx_textback_texts_total"


def scraped(store) -> dict:
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry_for(StoreCollector(store))).decode()):
        for s in fam.samples:
            if s.name == NAME:
                out[(s.labels["kind"], s.labels["result"])] = s.value
    return out


def full_count(store) -> dict:
    """What /metrics showed before: a pass over every outgoing text."""
    return {(k, s): float(n) for k, s, n in store.db.execute_sql(
        "SELECT kind, state, COUNT(*) FROM message WHERE direction = 'out' GROUP BY 1, 2")}


def text_of(peer: str, kind: str = "missed-call") -> Message:
    return Message.select().where((Message.peer == peer) & (Message.kind == kind)).order_by(Message.id.desc()).get()


def test_scraped_text_totals_are_a_full_count_through_every_change_and_purges(store_target):
    h = play_day(store_target)
    day = scraped(h.store)
    assert day == full_count(h.store)
    # the day by hand: A, B and D delivered, E failed, C and H sent (no receipt yet)
    assert day[("missed-call", "delivered")] == 3 and day[("missed-call", "failed")] == 1
    assert day[("missed-call", "sent")] == 2 and day[("agent", "sent")] == 3

    at(h, 40100)
    now = h.clock.t
    c, e = text_of(C), text_of(E)
    assert h.store.mark_no_receipt(now, now, transport=c.transport)          # C, H, agents': no receipt
    h.store.apply_dlr([c.transport_id], "delivered", "", now, transport=c.transport)   # C's came late
    a = text_of(A)
    h.store.apply_dlr([a.transport_id], "undeliverable", "", now, transport=a.transport)  # delivered -> failed
    h.store.resend(e.id, now)                                                  # a copy of E's failed text
    h.drain()
    with h.store.write():                                                      # queued, then the caller is reached
        h.store.add_message(direction="out", kind="agent", line="+15125550140", peer=B, body="later",
                            state="pending", due_at=now + 3600, created_at=now)
    h.store.cancel_pending(B, "reached by phone", now)
    with h.store.write():                                                      # due long before a restart
        h.store.add_message(direction="out", kind="agent", line="+15125550140", peer=B, body="old",
                            state="pending", due_at=now - 3 * 3600, created_at=now - 3 * 3600)
    h.restart()
    h.store.expire_overdue(now, 7200)
    changed = scraped(h.store)
    assert changed == full_count(h.store)
    assert changed[("missed-call", "no-receipt")] == 1 and changed[("missed-call", "delivered")] == 3
    assert changed[("missed-call", "failed")] == 2 and changed[("resend", "pending")] == 1   # quiet hours (21:08)
    assert changed[("agent", "cancelled")] == 1 and changed[("agent", "expired")] == 1

    # a purge of the morning: its texts leave the store, not the counters (a counter that went
    # down would read as a reset to Prometheus, and every text would be counted again)
    h.store.purge(T0 + 600)
    assert sum(full_count(h.store).values()) < sum(changed.values())
    assert scraped(h.store) == changed
    # more traffic after the purge is counted on top
    at(h, 40200)
    agent_text(h, A, "+15125550110", "maria", "Following up")
    after = scraped(h.store)
    assert {k: n - changed.get(k, 0) for k, n in after.items() if n != changed.get(k, 0)} in (
        {("agent", "sent"): 1}, {("agent", "delivered"): 1})
    # everything purged but the texts still waiting (a purge keeps those): I's, held by the
    # quiet hours, and the resend; the counters stay as they were
    h.store.purge(T0 + 10**6)
    assert full_count(h.store) == {("missed-call", "pending"): 1, ("resend", "pending"): 1}
    assert scraped(h.store) == after
    for m in Message.select().where(Message.state == "pending"):
        h.store.set_state(m.id, "cancelled", now=h.clock.t, note="by hand")
    moved = dict(after)
    for kind in ("missed-call", "resend"):
        moved[(kind, "pending")] -= 1
        moved[(kind, "cancelled")] = moved.get((kind, "cancelled"), 0) + 1
    moved = {k: n for k, n in moved.items() if n}
    assert scraped(h.store) == moved
    h.store.purge(T0 + 10**6)
    assert full_count(h.store) == {} and scraped(h.store) == moved
    with h.store.write():
        h.store.add_message(direction="out", kind="agent", line="+15125550140", peer=B, body="again",
                            state="pending", due_at=T0 + 10**6, created_at=T0 + 10**6)
    assert scraped(h.store) == {**moved, ("agent", "pending"): moved.get(("agent", "pending"), 0) + 1}
