"""The inbox's per-caller summary rows (store/inbox.py) are kept by triggers on every write:
after any mix of calls, replies, agent texts, states, owners and a purge, each row equals what a
rebuild from scratch computes, on SQLite and on a real PostgreSQL."""
import random

import peewee as pw
import pytest

from pbx_textback.store import db as st
from pbx_textback.store import inbox
from pbx_textback.store import web as sw


def snapshot():
    """(the per-bucket counts, the summary rows): both are compared with a rebuild's."""
    counts = sorted((r.status, r.owner, r.waiting, r.n) for r in inbox.InboxCount.select() if r.n)
    return counts, sorted((r["peer"], r["line"], r["first_in"], r["last_in"], r["handled"], r["missed"], r["replies"],
                   r["state"], r["owner"], r["until"], r["status"], r["waiting"], r["since"])
                  for r in inbox.InboxConv.select().dicts())


def counted():
    """The counts as the rows say (what each bucket's count must be at any moment)."""
    q = (inbox.InboxConv.select(inbox.InboxConv.status, inbox.InboxConv.owner, inbox.InboxConv.waiting,
                                pw.fn.COUNT(inbox.InboxConv.id))
         .group_by(inbox.InboxConv.status, inbox.InboxConv.owner, inbox.InboxConv.waiting))
    return sorted(q.tuples())


@pytest.mark.parametrize("seed", [7, 3, 11])
def test_trigger_kept_rows_equal_a_rebuild_after_every_kind_of_write(store_factory, seed):
    """Inserts add to a caller's row (no recount), so every kind of insert is here: missed and
    answered calls (and both, and neither, and outbound, and from a withheld number), replies,
    agent and automated texts, first states and owners; in time order, at the same time as the
    one before, and stored late (a call older than the caller's last word looks its line up);
    updates that turn a stored missed call into an answered one (or into neither); then a purge.
    Rows and per-bucket counts are compared with a rebuild's every few writes."""
    store = store_factory()
    rnd = random.Random(seed)
    peers = [f"+1512555{n:04d}" for n in range(12)]
    t = 1000.0
    for i in range(600):
        r = rnd.random()
        t += 0 if r < 0.1 else rnd.uniform(1, 50)
        at = t - rnd.uniform(1, 400) if r > 0.85 else t             # some stored late, some at the same time
        p, what = rnd.choice(peers), rnd.random()
        if what < 0.3 and rnd.random() < 0.1:
            p = ""                                                   # a call with its caller ID withheld
        with store.write():
            if what < 0.3:
                st.Call.create(call_id=f"c{i}", pbx="asterisk", caller=p, caller_raw=p, called="+15125550140",
                               line=rnd.choice(["+15125550140", "+15125550141"]),
                               direction="inbound" if rnd.random() < 0.9 else "outbound",
                               missed=rnd.random() < 0.7, answered=rnd.random() < 0.3, reason="x", record="{}",
                               created_at=at)
            elif what < 0.6:
                store.add_message(direction="in", kind="reply", peer=p, body="hi", state="received", due_at=at)
            elif what < 0.75:
                store.add_message(direction="out", kind=rnd.choice(["agent", "missed-call", "confirmation", "manual"]),
                                  peer=p, body="ok", state="pending", due_at=at)
        if 0.75 <= what < 0.85:
            sw.set_state(store, p, rnd.choice([sw.DONE, sw.SNOOZED, sw.OPEN]), "maria", t,
                         until=rnd.choice([None, t + 100]))
        elif what >= 0.85:
            sw.set_owner(store, p, rnd.choice(["", "maria", "joe"]), "maria", t)
        if rnd.random() < 0.15:
            # a stored call learns it was answered after all (or that it was neither)
            stored = [c.id for c in st.Call.select(st.Call.id).where(st.Call.caller == p).order_by(st.Call.id)]
            if stored:
                with store.write():
                    st.Call.update(**rnd.choice([dict(missed=False, answered=True), dict(answered=True),
                                                 dict(missed=False)])).where(st.Call.id == rnd.choice(stored)).execute()
        assert snapshot()[0] == counted(), f"the counts left the rows after write {i}"
        if i % 5 == 4:         # often: a state change recounts the caller, hiding an error
            kept = snapshot()
            inbox.rebuild(store.db)
            rebuilt = snapshot()
            assert rebuilt[0] == kept[0], f"the counts after write {i}"
            assert rebuilt[1] == kept[1], f"the rows after write {i}"
    kept = snapshot()
    assert any(r[10] == "open" for r in kept[1]) and any(r[10] in ("done", "snoozed") for r in kept[1])
    assert not any(r[0] == "" for r in kept[1])                  # a withheld number is no conversation
    inbox.rebuild(store.db)
    assert snapshot() == kept
    store.purge(before=t / 2 + 500)                 # deletes: the rows follow them down
    kept = snapshot()
    inbox.rebuild(store.db)
    assert snapshot() == kept
    store.close()


def test_migration_26_gives_a_store_the_adding_triggers(store_factory):
    """A store with the recounting insert triggers gets the adding ones, and they keep the rows."""
    store = store_factory()
    (step,) = [f for v, f in st.MIGRATIONS if v == 26]
    with store.db.atomic():
        step(store.db)
        step(store.db)                               # twice: no trigger left twice or missing
    with store.write():
        for n in range(5):
            store.add_message(direction="in", kind="reply", peer="+15125550101", body="hi", state="received",
                              due_at=10.0 + n)
        store.add_message(direction="out", kind="agent", peer="+15125550101", body="ok", state="pending", due_at=12.5)
    assert sw.counts(store, 20.0)["needs-reply"] == 1
    (row,) = [r for r in snapshot()[1] if r[0] == "+15125550101"]
    assert row[2:7] == (10.0, 14.0, 12.5, 0, 5)     # first_in, last_in, handled, missed, replies
    kept = snapshot()
    inbox.rebuild(store.db)
    assert snapshot() == kept
    store.close()


def test_needs_reply_pages_stop_at_the_limit_and_keep_oldest_first(store_factory):
    store = store_factory()
    with store.write():
        for n in range(30):
            store.add_message(direction="in", kind="reply", peer=f"+1512555{n:04d}", body="hi", state="received",
                              due_at=5000.0 - n)
    got = [c["peer"] for c in sw.view(store, "needs-reply", 6000.0, limit=10)]
    assert got == [f"+1512555{n:04d}" for n in range(29, 19, -1)]
    assert sw.counts(store, 6000.0)["needs-reply"] == 30
    sw.set_owner(store, "+15125550003", "maria", "maria", 6000.0)
    sw.set_state(store, "+15125550004", sw.SNOOZED, "maria", 6000.0, until=6100.0)
    sw.set_state(store, "+15125550005", sw.DONE, "maria", 6000.0)
    assert sw.counts(store, 6050.0, me="maria") == {"needs-reply": 27, "mine": 1, "open": 28, "snoozed": 1, "done": 1}
    assert sw.counts(store, 6100.0, me="maria") == {"needs-reply": 28, "mine": 1, "open": 29, "snoozed": 0, "done": 1}
    assert [c["peer"] for c in sw.view(store, "open", 6000.0, search="0003")] == ["+15125550003"]
    store.close()


def test_migration_18_gives_a_store_from_before_the_summary_its_rows(store_factory):
    store = store_factory()
    with store.write():
        store.add_message(direction="in", kind="reply", peer="+15125550101", body="hi", state="received", due_at=10.0)
    sw.set_state(store, "+15125550101", sw.DONE, "maria", 5.0)          # before the reply: open again
    inbox.drop_triggers(store.db)
    store.db.execute_sql('DROP TABLE "inboxcount"')
    store.db.execute_sql('DROP TABLE "inboxconv"')                     # the store as it was before
    (step,) = [f for v, f in st.MIGRATIONS if v == 18]
    with store.db.atomic():
        step(store.db)
    assert [c["peer"] for c in sw.view(store, "needs-reply", 20.0)] == ["+15125550101"]
    assert sw.counts(store, 20.0)["needs-reply"] == 1
    with store.write():                                                 # and its triggers are back
        store.add_message(direction="in", kind="reply", peer="+15125550102", body="hi", state="received", due_at=11.0)
    assert sw.counts(store, 20.0)["needs-reply"] == 2
    store.close()
