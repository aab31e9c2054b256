"""A call the store refuses to write (another program holds its write lock past the shipped 5 s
busy timeout: a backup, an admin's sqlite3 shell) is kept and decided again by housekeeping
once the store takes writes: the caller is still texted, once. It used to be logged and lost."""
import asyncio
import logging
import sqlite3
import time
from datetime import datetime, timezone

from pbx_textback.config import loads
from pbx_textback.core.model import CallRecord
from pbx_textback.service import Service
from pbx_textback.store import db as st
from tests.service_toml import smpp_service_toml

CALLER = "+15125551234"


def missed(now: float) -> CallRecord:
    return CallRecord("asterisk", "1795734713.4", CALLER, "+15125550100", "inbound",
                      started_at=now - 20, ended_at=now, caller_cancelled=True,
                      dial_results=("CANCEL",), ring_seconds=20.0)


def test_a_call_the_locked_store_refused_is_recorded_once_it_takes_writes(tmp_path, caplog):
    path = tmp_path / "s.sqlite3"
    svc = Service(loads(smpp_service_toml(path, 1)))       # the shipped policy and timeouts
    other = sqlite3.connect(str(path), isolation_level=None)
    caplog.set_level(logging.INFO, logger="pbx_textback")

    def texts() -> int:
        return st.Message.select().where((st.Message.peer == CALLER) & (st.Message.direction == "out")).count()

    def alive() -> str:
        return svc.store.setting(svc._alive_key())

    async def main():
        svc._mark_alive()
        before = alive()
        other.execute("BEGIN IMMEDIATE")                 # another program writes, for long
        assert svc._decide(missed(time.time())) is None   # waits out the busy timeout
        assert st.Call.select().count() == 0
        t = time.monotonic()
        svc._record_unrecorded()                         # still locked: kept again, seen at once
        svc._mark_alive()          # not moved on, nor tried: a crash now leaves the call to the
        assert time.monotonic() - t < 1.0                # next start's CDR recovery, from before it
        assert alive() == before
        assert st.Call.select().count() == 0 and list(svc._unrecorded) == ["1795734713.4"]
        assert svc.store.db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000   # put back
        other.rollback()                                 # the other program is done
        svc._record_unrecorded()
        assert st.Call.select().count() == 1 and texts() == 1
        svc._mark_alive()
        assert float(alive()) > float(before)
        svc._record_unrecorded()                         # nothing left to do: no second text
        assert st.Call.select().count() == 1 and texts() == 1
    asyncio.run(main())
    other.close()
    said = [r.getMessage() for r in caplog.records]
    refused = [m for m in said if m.startswith("could not record call 1795734713.4")]
    assert len(refused) == 1 and all("database is locked" in m and "tried again" in m for m in refused)
    assert "1 call still waits for the store (it is locked); tried again in 30 s" in said
    assert "call 1795734713.4 recorded now (the store had refused it)" in said
    [row] = st.Call.select().where(st.Call.call_id == "1795734713.4")
    assert row.missed and row.caller == CALLER
    svc.store.close()


def test_calls_after_a_refused_one_wait_behind_it_without_holding_the_loop(tmp_path, caplog):
    """With the store locked, only the first call waits out the busy timeout: each later one
    goes behind it at once (the loop keeps answering the PBX), and all are recorded in the
    order they came once the store takes writes."""
    path = tmp_path / "s.sqlite3"
    svc = Service(loads(smpp_service_toml(path, 1)))
    other = sqlite3.connect(str(path), isolation_level=None)
    caplog.set_level(logging.INFO, logger="pbx_textback")
    ids = [f"179573471{i}.4" for i in range(3)]

    def call(i: int) -> CallRecord:
        rec = missed(time.time())
        return CallRecord(rec.pbx, ids[i], f"+1512555123{i}", rec.called, rec.direction,
                          started_at=rec.started_at, ended_at=rec.ended_at, caller_cancelled=True,
                          dial_results=rec.dial_results, ring_seconds=rec.ring_seconds)

    async def main():
        other.execute("BEGIN IMMEDIATE")
        t = time.monotonic()
        assert svc._decide(call(0)) is None
        first = time.monotonic() - t
        t = time.monotonic()
        assert svc._decide(call(1)) is None and svc._decide(call(2)) is None
        later = time.monotonic() - t
        assert first >= 4.5 and later < 0.5, (first, later)
        assert list(svc._unrecorded) == ids
        other.rollback()
        svc._record_unrecorded()
        assert not svc._unrecorded
    asyncio.run(main())
    other.close()
    rows = list(st.Call.select().order_by(st.Call.id))
    assert [r.call_id for r in rows] == ids and all(r.missed for r in rows)
    assert st.Message.select().where(st.Message.direction == "out").count() == 3
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"could not record call {ids[1]} (behind 1 call the store refused)") for m in said)
    assert all(f"call {i} recorded now (the store had refused it)" in said for i in ids)
    svc.store.close()


def test_after_a_crash_the_next_start_recovers_a_refused_call_from_the_cdr(tmp_path):
    """The store refused a call and the service died before it took it: the alive mark stayed
    before that call, so the next start reads it from the PBX's CDR and texts the caller."""
    from dataclasses import replace

    from pbx_textback.ami.replay_server import AmiReplayServer
    from tests.integration.test_cdr_recovery import FIX, cdr_rows, csv_cdr_config, write_master_csv
    master = tmp_path / "Master.csv"
    master.write_text("")
    path = tmp_path / "s.sqlite3"
    cfg = csv_cdr_config(master, path)
    first = Service(cfg)
    first._mark_alive()
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    rows = cdr_rows(["02-no-answer.ami"])
    caller = rows[0]["Source"]
    ended = time.time()
    rec = missed(ended)
    assert first._decide(replace(rec, caller=caller, call_id=rows[0]["UniqueID"])) is None
    first._record_unrecorded()
    first._mark_alive()                                  # a housekeeping round, still locked
    other.rollback()
    other.close()
    # (the busy timeout's 5 s have passed since the call ended: past the CDR's 2 s of slack)
    first._mark_alive()          # the store takes writes again, the call is not recorded yet:
    first.store.close()          # the mark must not pass it, for the service dies here
    end = max(datetime.fromisoformat(r["EndTime"]).replace(tzinfo=timezone.utc).timestamp() for r in rows)
    write_master_csv(master, rows, shift=ended - end)    # as the PBX wrote it, when it ended
    seen = []

    async def main():
        server = AmiReplayServer([FIX / "01-answered.ami"], username="t", secret="s")
        port = await server.start()
        svc = Service(replace(cfg, pbx=replace(cfg.pbx, ami=replace(cfg.pbx.ami, port=port))),
                      on_verdict=seen.append)

        async def stop_when_done():
            for _ in range(150):
                await asyncio.sleep(0.1)
                if any(v.call.recovered for v in seen):
                    break
            svc.stop()
        await svc.run(extra_tasks=[stop_when_done()])
        await server.stop()
    asyncio.run(main())
    [v] = [v for v in seen if v.call.recovered]
    assert v.call.caller.endswith(caller[-10:]) and v.decision.action == "text"
    st.open_store(str(path))
    assert st.Message.select().where((st.Message.peer == v.call.caller) & (st.Message.direction == "out")).count() == 1
