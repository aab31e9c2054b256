"""The inbox's live counts (per-bucket rows kept by triggers, store/inbox.py) say what the rows
and a rebuild from scratch say, on SQLite and on a real PostgreSQL: a missed call from a
withheld number is no conversation, a call neither missed nor answered makes no row, and a
stored missed call turned into an answered one moves its caller out of Needs reply."""
from pbx_textback.store import db as st
from pbx_textback.store import inbox
from pbx_textback.store import web as sw
from tests.integration.test_inbox_summary import counted, snapshot

CALLER, OTHER = "+15125550003", "+15125550002"


def call(store, cid, caller, *, missed, answered, at=100.0):
    with store.write():
        st.Call.create(call_id=cid, pbx="asterisk", caller=caller, caller_raw=caller or "anonymous",
                       called="+15125550140", line="+15125550140", direction="inbound", missed=missed,
                       answered=answered, reason="x", record="{}", created_at=at)


def equals_a_rebuild(store):
    kept = snapshot()
    assert kept[0] == counted()                       # each bucket's count: its rows
    inbox.rebuild(store.db)
    rebuilt = snapshot()
    assert rebuilt[0] == kept[0] and rebuilt[1] == kept[1]
    return kept


def test_a_missed_call_answered_after_all_leaves_the_counts_as_a_rebuild_makes_them(store_factory):
    store = store_factory()
    call(store, "a", "", missed=True, answered=False)                 # caller ID withheld
    call(store, "b", OTHER, missed=False, answered=False)             # neither (a leg passed on)
    call(store, "c", CALLER, missed=True, answered=False)
    assert sw.counts(store, 200.0)["needs-reply"] == 1                # the caller, not "" too
    assert [r[0] for r in equals_a_rebuild(store)[1]] == [CALLER]

    with store.write():                                               # the PBX: answered after all
        st.Call.update(missed=False, answered=True).where(st.Call.call_id == "c").execute()
    assert sw.counts(store, 200.0) == {"needs-reply": 0, "mine": 0, "open": 0, "snoozed": 0, "done": 0}
    equals_a_rebuild(store)

    with store.write():                                               # ... and then neither
        st.Call.update(answered=False).where(st.Call.call_id == "c").execute()
    assert equals_a_rebuild(store) == ([], [])                        # nothing left of the caller
    store.close()


def test_migration_28_puts_a_store_made_before_right(store_factory):
    """The rows the old triggers left (a withheld number's conversation, a caller with nothing
    that counts) go, with their counts; the new triggers are in place, made twice or not."""
    store = store_factory()
    call(store, "c", CALLER, missed=True, answered=False)
    # as the old triggers left them (the count trigger counts them)
    for peer, status, waiting in (("", "open", 1), (OTHER, "", 0)):
        inbox.InboxConv.create(peer=peer, first_in=100.0 if peer == "" else None, last_in=100.0 if peer == "" else 0,
                               missed=1 if peer == "" else 0, status=status, waiting=waiting, since=100.0)
    assert sw.counts(store, 200.0)["needs-reply"] == 2
    (step,) = [f for v, f in st.MIGRATIONS if v == 28]
    with store.db.atomic():
        step(store.db)
        step(store.db)
    assert sw.counts(store, 200.0)["needs-reply"] == 1
    assert [r[0] for r in equals_a_rebuild(store)[1]] == [CALLER]
    call(store, "a", "", missed=True, answered=False, at=150.0)
    call(store, "b", OTHER, missed=False, answered=False, at=150.0)
    assert sw.counts(store, 200.0)["needs-reply"] == 1
    assert [r[0] for r in equals_a_rebuild(store)[1]] == [CALLER]
    store.close()
