"""Retention (`retention_days`): the running service purges calls and texts older than that, a
short transaction at a time (each sized to take about purge.SLICE_S), and takes its calls
between them. On a big store the first purge
(the day retention is turned on, or after an upgrade) is a long run of deletes: the service
must not stop hearing the PBX for its length."""
import asyncio
import logging
import sqlite3
import time

from pbx_textback import service
from pbx_textback.config import loads
from pbx_textback.service import Service
from pbx_textback.store import db as st
from pbx_textback.store import purge
from tests.service_toml import smpp_service_toml

DAY = 86400.0


def seed(path, old: int, recent: int, now: float) -> None:
    store = st.open_store(str(path))
    rows = [dict(call_id=f"c{i}", pbx="asterisk", caller=f"+1512556{i % 3000:04d}", caller_raw="",
                 called="+15125550140", line="+15125550140", direction="inbound", missed=True,
                 reason="abandoned", record="{}",
                 created_at=now - (40 * DAY if i < old else 3600) + i)
            for i in range(old + recent)]
    with store.write():
        for i in range(0, len(rows), 500):
            st.Call.insert_many(rows[i:i + 500]).execute()
        st.Message.insert_many([dict(direction="in", kind="reply", peer="+15125560007", body="hi",
                                     state="received", due_at=now - 40 * DAY, created_at=now - 40 * DAY,
                                     updated_at=now - 40 * DAY)]).execute()
    store.close()


def test_the_services_retention_purge_takes_calls_between_its_slices(tmp_path, monkeypatch):
    monkeypatch.setattr(purge, "FIRST_ROWS", 100)
    monkeypatch.setattr(purge, "SLICE_S", 1e-6)          # every slice "too long": the smallest next
    now = time.time()
    old = 3 * 100 + 17
    seed(tmp_path / "s.sqlite3", old, 5, now)
    svc = Service(loads(smpp_service_toml(tmp_path / "s.sqlite3", 1, compliance="retention_days = 30")))

    async def main():
        seen = set()
        done = asyncio.Event()

        async def other_work():             # what the PBX's events and the outbox would be
            while not done.is_set():
                seen.add(st.Call.select().count())      # how many calls it finds at its turn
                await asyncio.sleep(0)
        ticker = asyncio.create_task(other_work())
        keeper = asyncio.create_task(svc._housekeeping())   # its first round purges at once
        while st.Call.select().where(st.Call.created_at < now - 30 * DAY).count():
            await asyncio.sleep(0.01)
        done.set()
        keeper.cancel()
        await ticker
        return seen
    seen = asyncio.run(main())
    assert st.Call.select().count() == 5                                 # the last hour's are kept
    assert st.Message.select().count() == 0
    # other work ran between the slices (100 calls, then 50 at a time), each time finding one
    # slice more gone (not only before and after one long transaction)
    between = sorted(n for n in seen if 5 < n < old + 5)
    assert len(between) >= 4, sorted(seen)
    steps = [b - a for a, b in zip([5] + between, between + [old + 5])]
    assert max(steps) <= 100, sorted(seen)
    svc.store.close()


def test_without_retention_nothing_is_purged(tmp_path):
    now = time.time()
    seed(tmp_path / "s.sqlite3", 20, 5, now)
    svc = Service(loads(smpp_service_toml(tmp_path / "s.sqlite3", 1)))     # the shipped 0: keep

    async def main():
        keeper = asyncio.create_task(svc._housekeeping())
        await asyncio.sleep(0.2)
        keeper.cancel()
    asyncio.run(main())
    assert st.Call.select().count() == 25
    svc.store.close()


def test_a_purge_the_store_refuses_is_tried_again_and_housekeeping_goes_on(tmp_path, monkeypatch, caplog):
    """Another program holds the store's write lock past the busy timeout (a backup, a second
    writer): the purge's slice gives up with "database is locked". That must not end the
    housekeeping task (its watchdog, the stuck calls' expiry, the alive mark would stop with
    it, silently): the error is logged and the purge tried again later."""
    monkeypatch.setattr(service, "HOUSEKEEPING_S", 0.05)
    monkeypatch.setattr(service, "PURGE_RETRY_S", 0.0)
    now = time.time()
    path = tmp_path / "s.sqlite3"
    seed(path, 50, 5, now)
    svc = Service(loads(smpp_service_toml(path, 1, compliance="retention_days = 30")))
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")            # held for longer than the store's 5 s busy timeout
    caplog.set_level(logging.INFO, logger="pbx_textback")

    async def main():
        keeper = asyncio.create_task(svc._housekeeping())
        while not any("purge stopped" in r.getMessage() for r in caplog.records):
            assert not keeper.done(), keeper
            await asyncio.sleep(0.05)
        assert not keeper.done()
        assert st.Call.select().count() == 55            # the refused slice changed nothing
        other.rollback()                                 # the other program is done
        t0 = time.monotonic()
        while not any("retention: purged" in r.getMessage() for r in caplog.records) \
                and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.05)
        assert not keeper.done()
        keeper.cancel()
    asyncio.run(main())
    other.close()
    [err] = [r for r in caplog.records if "purge stopped" in r.getMessage()]
    assert err.levelname == "ERROR" and "database is locked" in err.getMessage()
    assert "tried again" in err.getMessage()
    assert any("retention: purged" in r.getMessage() for r in caplog.records)
    assert st.Call.select().count() == 5                 # the retry purged the old calls
    svc.store.close()


def test_the_cli_purge_lets_the_services_writes_in_between_its_slices(tmp_path, monkeypatch):
    """`pbx-textback purge` (Store.purge) runs while the service writes to the same store: it
    goes in slices, and between two of them another connection writes without waiting (one
    transaction held the lock past the service's 5 s busy timeout on a big store)."""
    monkeypatch.setattr(purge, "FIRST_ROWS", 100)
    monkeypatch.setattr(purge, "CLI_SLICE_S", 1e-6)      # every slice "too long": the smallest next
    now = time.time()
    path = tmp_path / "s.sqlite3"
    seed(path, 3 * 100 + 17, 5, now)
    store = st.open_store(str(path))
    service = sqlite3.connect(str(path), timeout=0, isolation_level=None)   # never waits
    left, one_slice = [], purge.one_slice

    def then_the_service_writes(*args):
        got = one_slice(*args)
        service.execute("BEGIN IMMEDIATE")              # "database is locked" if still held
        left.append(service.execute('SELECT COUNT(*) FROM "call" WHERE "created_at" < ?',
                                    (now - 30 * DAY,)).fetchone()[0])
        service.execute("UPDATE setting SET set_at = set_at")
        service.execute("COMMIT")
        return got
    monkeypatch.setattr(purge, "one_slice", then_the_service_writes)
    got = store.purge(now - 30 * DAY)
    service.close()
    assert got["calls"] == 317 and st.Call.select().count() == 5
    assert len([n for n in left if n > 0]) >= 4, left    # it got in while old calls were left
    store.close()
