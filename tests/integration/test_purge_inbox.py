"""`purge` on a store with a frequent caller (hundreds of calls) and many one-time callers: it
holds the inbox summary's per-row delete triggers off for its deletes and makes the rows of the
callers it touched once (a frequent caller's purge was quadratic: bench/soak.py times it), or
rebuilds them all when most calls go. What the inbox shows after it is what the remaining rows
say, and the triggers keep working for the writes that follow."""
from pbx_textback.store import db as st
from pbx_textback.store import inbox
from pbx_textback.store import purge
from pbx_textback.store import web as sw

FREQUENT = "+15125550100"


def call(i: int, caller: str, at: float, missed: bool = True) -> None:
    st.Call.create(call_id=f"c{i}", pbx="asterisk", caller=caller, caller_raw=caller, called="+15125550140",
                   line="+15125550140", direction="inbound", missed=missed, answered=not missed,
                   reason="abandoned" if missed else "answered", record="{}", created_at=at)


def rows():
    return sorted((r["peer"], r["first_in"], r["last_in"], r["handled"], r["missed"], r["replies"], r["status"],
                   r["waiting"]) for r in inbox.InboxConv.select().dicts())


def fill(store) -> None:
    with store.write():
        for i in range(400):
            call(i, FREQUENT, 1000.0 + i)                                     # calls again and again
            call(1000 + i, f"+1512556{i:04d}", 1000.0 + i)                    # once each
            if i % 50 == 0:
                store.add_message(direction="in", kind="reply", peer=f"+1512556{i:04d}", body="hi",
                                  state="received", due_at=1000.5 + i)
    sw.set_state(store, "+15125560399", sw.DONE, "maria", 1500.0)


def test_purge_leaves_the_inbox_as_the_rows_left_say_and_triggers_on(store_factory):
    store = store_factory()
    fill(store)
    assert sw.counts(store, 2000.0)["needs-reply"] == 400                     # every caller but the one done
    got = store.purge(before=1300.0)                                         # the first 300 of each
    assert got == {"calls": 600, "decisions": 0, "messages": 6}
    left = rows()
    (freq,) = [r for r in left if r[0] == FREQUENT]
    assert freq[1:6] == (1300.0, 1399.0, 0.0, 100, 0)                         # first_in, last_in, handled, missed, replies
    assert not any(r[0] == "+15125560000" for r in left)                       # nothing of theirs is left
    assert sw.counts(store, 2000.0)["needs-reply"] == 100                     # the frequent one, 99 of the last 100
    inbox.rebuild(store.db)
    assert rows() == left                                                      # as a rebuild from scratch
    # the triggers are back: a new caller's reply, and an answered call, after the purge show at once
    with store.write():
        store.add_message(direction="in", kind="reply", peer="+15125559999", body="hi", state="received", due_at=2100.0)
        store.add_message(direction="in", kind="reply", peer=FREQUENT, body="call me", state="received", due_at=2100.0)
    assert sw.counts(store, 2200.0)["needs-reply"] == 101
    with store.write():
        call(5000, FREQUENT, 2150.0, missed=False)
    assert sw.counts(store, 2200.0)["needs-reply"] == 100
    (freq,) = [r for r in rows() if r[0] == FREQUENT]
    assert freq[3:6] == (2150.0, 100, 1)
    kept = rows()
    inbox.rebuild(store.db)
    assert rows() == kept
    store.close()


def test_a_purge_of_a_few_remakes_the_rows_it_touched_as_a_rebuild_makes_them(store_factory):
    store = store_factory()
    fill(store)
    got = store.purge(before=1100.0)                          # a quarter of the calls: row by row
    assert got == {"calls": 200, "decisions": 0, "messages": 2}
    left, counts = rows(), sw.counts(store, 2000.0)
    (freq,) = [r for r in left if r[0] == FREQUENT]
    assert freq[1:6] == (1100.0, 1399.0, 0.0, 300, 0)
    inbox.rebuild(store.db)
    assert rows() == left and sw.counts(store, 2000.0) == counts
    store.close()


def test_a_purge_in_many_small_slices_leaves_what_one_big_slice_does(store_factory):
    """The service purges a slice at a time (a short transaction each); where the slices cut a
    frequent caller's history or a caller's calls from their texts, nothing shows."""
    store = store_factory()
    fill(store)
    slices = []
    while not (slices and slices[-1].pop("last")):
        slices.append(purge.one_slice(store, 1300.0, rows=7))
    assert len(slices) > 50                                      # 600 calls: 7 (and the 8th, a tie) a slice
    assert all(s["calls"] <= 8 for s in slices)
    assert sum(s["calls"] for s in slices) == 600
    assert sum(s["messages"] for s in slices) == 6
    left, counts = rows(), sw.counts(store, 2000.0)
    assert counts["needs-reply"] == 100
    assert list(purge.slices(store, 1300.0)) == [purge.nothing()]  # nothing older: the checkpoint only
    inbox.rebuild(store.db)
    assert rows() == left and sw.counts(store, 2000.0) == counts
    store.close()


def test_a_slice_cut_short_leaves_everything_as_it_was_and_the_triggers_on(store_factory, monkeypatch):
    """A slice is one transaction: when it fails after its deletes (a crash, a full disk), they
    roll back with its hold on the inbox's delete triggers; a delete after it is counted."""
    store = store_factory()
    fill(store)
    was = rows()

    def broken(pg):
        raise RuntimeError("cut short")
    monkeypatch.setattr(purge.purge_inbox, "remake", broken)
    try:
        purge.one_slice(store, 1300.0, rows=50)
    except RuntimeError:
        pass
    monkeypatch.undo()
    assert rows() == was and st.Call.select().count() == 800
    assert store.db.execute_sql(f'SELECT COUNT(*) FROM "{inbox.HOLD}"').fetchone()[0] == 0
    st.Call.delete().where(st.Call.caller == "+15125560001").execute()    # not a purge: the triggers
    assert not any(r[0] == "+15125560001" for r in rows())
    store.close()
