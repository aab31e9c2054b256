"""A call the store refuses to write (another program holds its write lock past the shipped 5 s
busy timeout: a backup, an admin's sqlite3 shell) is kept and decided again by housekeeping
once the store takes writes: the caller is still texted, once. It used to be logged and lost.
Meanwhile it is also kept in a file beside the store, so a stop or a crash loses it neither."""
import asyncio
import json
import logging
import os
import sqlite3
import stat
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
    spool = tmp_path / "refused-calls.jsonl"

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
        [kept] = spool.read_text().splitlines()          # on disk, once, for its owner only
        assert json.loads(kept)["call_id"] == "1795734713.4" and json.loads(kept)["caller"] == CALLER
        assert stat.S_IMODE(os.stat(spool).st_mode) == 0o600
        other.rollback()                                 # the other program is done
        svc._record_unrecorded()
        assert st.Call.select().count() == 1 and texts() == 1
        assert not spool.exists()                        # recorded: the file is gone
        svc._mark_alive()
        assert float(alive()) > float(before)
        svc._record_unrecorded()                         # nothing left to do: no second text
        assert st.Call.select().count() == 1 and texts() == 1
    asyncio.run(main())
    other.close()
    said = [r.getMessage() for r in caplog.records]
    refused = [m for m in said if m.startswith("could not record call 1795734713.4")]
    assert len(refused) == 1 and all("database is locked" in m and "tried again" in m for m in refused)
    assert refused[0].endswith(f"(on disk until then: {spool})")
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
    """The store refused a call and the service died before it took it, and the file that kept
    it is lost too (a disk that refused it as well): the alive mark stayed before that call, so
    the next start reads it from the PBX's CDR and texts the caller."""
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
    (tmp_path / "refused-calls.jsonl").unlink()
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


def crash_with_a_refused_call(tmp_path, toml: str, call_id: str = "1795734713.4") -> CallRecord:
    """A service whose store refuses one call, and which dies before the store takes it."""
    path = tmp_path / "s.sqlite3"
    first = Service(loads(toml))
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    rec = CallRecord(**{**missed(time.time()).__dict__, "call_id": call_id})
    assert first._decide(rec) is None
    other.rollback()
    other.close()
    first.store.close()                  # dies: no housekeeping round, no stop
    return rec


def start_and_stop(toml: str, seen: list) -> None:
    async def main():
        svc = Service(loads(toml), on_verdict=seen.append)

        async def stop_soon():
            await asyncio.sleep(0.5)
            svc.stop()
        assert await svc.run(extra_tasks=[stop_soon()]) == 0
    asyncio.run(main())


def test_without_a_cdr_the_next_start_records_the_refused_call_from_its_file(tmp_path, caplog):
    """No [pbx.cdr]: the file beside the store is all that keeps the call. The next start
    decides it before any new call and the caller gets one text, under the shipped quiet
    hours on the real clock (a held text is still the one text)."""
    toml = smpp_service_toml(tmp_path / "s.sqlite3", 1).replace('quiet_hours = ""\n', "")
    assert "quiet_hours" not in toml
    crash_with_a_refused_call(tmp_path, toml)
    spool = tmp_path / "refused-calls.jsonl"
    assert len(spool.read_text().splitlines()) == 1
    caplog.set_level(logging.INFO, logger="pbx_textback")
    seen: list = []
    start_and_stop(toml, seen)
    [v] = seen
    assert v.call.call_id == "1795734713.4" and v.decision.action == "text"
    assert not spool.exists()
    said = [r.getMessage() for r in caplog.records]
    assert f"1 call(s) the store refused before the last stop were kept in {spool}: 1 to record now" in said
    st.open_store(str(tmp_path / "s.sqlite3"))
    assert st.Call.select().where(st.Call.call_id == "1795734713.4").count() == 1
    out = list(st.Message.select().where((st.Message.peer == CALLER) & (st.Message.direction == "out")))
    assert len(out) == 1 and out[0].state in (st.PENDING, st.SENDING, st.UNKNOWN)

    seen.clear()                         # a second start: nothing left to record, no second text
    start_and_stop(toml, seen)
    assert seen == []
    st.open_store(str(tmp_path / "s.sqlite3"))
    assert st.Message.select().where((st.Message.peer == CALLER) & (st.Message.direction == "out")).count() == 1


def test_a_call_recorded_before_its_file_was_rewritten_is_not_decided_twice(tmp_path, caplog):
    """The store took the call, then the service died before it rewrote the file: the next
    start finds the call in the store and leaves it; a line cut short by the crash is skipped
    with one error, and the file is gone after."""
    toml = smpp_service_toml(tmp_path / "s.sqlite3", 1)
    rec = crash_with_a_refused_call(tmp_path, toml)
    spool = tmp_path / "refused-calls.jsonl"
    svc = Service(loads(toml))
    svc.pipeline.record_call(rec)        # recorded; the file still lists it
    svc.store.close()
    with spool.open("a") as f:
        f.write('{"pbx":"asterisk","call_id":"17957')          # a write the crash cut short
    caplog.set_level(logging.INFO, logger="pbx_textback")
    seen: list = []
    start_and_stop(toml, seen)
    assert seen == [] and not spool.exists()
    said = [r.getMessage() for r in caplog.records]
    assert f"{spool}: 1 line(s) that are no call skipped (a write cut short by a crash?)" in said
    assert f"1 call(s) the store refused before the last stop were kept in {spool}: 0 to record now, " \
           "1 recorded already" in said
    st.open_store(str(tmp_path / "s.sqlite3"))
    assert st.Message.select().where((st.Message.peer == CALLER) & (st.Message.direction == "out")).count() == 1


def test_doctor_and_status_tell_the_admin_refused_calls_wait_on_disk(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    toml = smpp_service_toml(tmp_path / "s.sqlite3", 1)
    crash_with_a_refused_call(tmp_path, toml)
    (tmp_path / "c.toml").write_text(toml)
    root = Path(__file__).resolve().parents[2]
    spool = tmp_path / "refused-calls.jsonl"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args, "-c", str(tmp_path / "c.toml")],
                              cwd=root, env=dict(os.environ, PYTHONPATH=str(root), RUNTIME_DIRECTORY=str(tmp_path)),
                              capture_output=True, text=True, timeout=60)
    p = cli("doctor")
    assert f"refused calls: 1 call(s) the store refused wait in {spool}" in p.stdout, p.stdout
    assert "the service records them when it next starts" in p.stdout
    p = cli("status")
    assert f"calls the store refused: 1, kept in {spool} (the next start records them)" in p.stdout, p.stdout
    assert p.returncode == 1


def test_a_stop_while_the_store_is_locked_leaves_the_call_to_the_next_start(tmp_path, caplog):
    """The store is locked when the service is stopped: the stop says where the call is kept,
    and the next start (lock gone) records it and queues its one text."""
    toml = smpp_service_toml(tmp_path / "s.sqlite3", 1).replace('quiet_hours = ""\n', "")
    caplog.set_level(logging.INFO, logger="pbx_textback")
    other = sqlite3.connect(str(tmp_path / "s.sqlite3"), isolation_level=None, check_same_thread=False)

    async def main():
        svc = Service(loads(toml))

        async def lock_call_stop():
            await asyncio.sleep(0.3)
            other.execute("BEGIN IMMEDIATE")
            assert svc._decide(missed(time.time())) is None        # refused after the 5 s
            svc.stop()
        assert await svc.run(extra_tasks=[lock_call_stop()]) == 0
    asyncio.run(main())
    other.rollback()
    other.close()
    spool = tmp_path / "refused-calls.jsonl"
    said = [r.getMessage() for r in caplog.records]
    assert f"stopping with 1 call(s) the store refused, not recorded: 1795734713.4 (kept in {spool}: " \
           "the next start records them)" in said
    seen: list = []
    start_and_stop(toml, seen)
    assert [v.call.call_id for v in seen] == ["1795734713.4"] and seen[0].decision.action == "text"
    assert not spool.exists()
    st.open_store(str(tmp_path / "s.sqlite3"))
    assert st.Message.select().where((st.Message.peer == CALLER) & (st.Message.direction == "out")).count() == 1
