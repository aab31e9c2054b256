"""A call the store refuses to write (another program holds its write lock past the shipped 5 s
busy timeout: a backup, an admin's sqlite3 shell) is kept and decided again by housekeeping
once the store takes writes: the caller is still texted, once. It used to be logged and lost."""
import asyncio
import logging
import sqlite3
import time

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

    async def main():
        other.execute("BEGIN IMMEDIATE")                 # another program writes, for long
        assert svc._decide(missed(time.time())) is None   # waits out the busy timeout
        assert st.Call.select().count() == 0
        svc._record_unrecorded()                         # still locked: kept again
        assert st.Call.select().count() == 0
        other.rollback()                                 # the other program is done
        svc._record_unrecorded()
        assert st.Call.select().count() == 1 and texts() == 1
        svc._record_unrecorded()                         # nothing left to do: no second text
        assert st.Call.select().count() == 1 and texts() == 1
    asyncio.run(main())
    other.close()
    said = [r.getMessage() for r in caplog.records]
    refused = [m for m in said if m.startswith("could not record call 1795734713.4")]
    assert len(refused) == 2 and all("database is locked" in m and "tried again" in m for m in refused)
    assert "call 1795734713.4 recorded now (the store had refused it)" in said
    [row] = st.Call.select().where(st.Call.call_id == "1795734713.4")
    assert row.missed and row.caller == CALLER
    svc.store.close()
