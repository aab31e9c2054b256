"""Several PBX boxes, one inbox (issue 12 item 11): one `pbx-textback run` per PBX box, both
writing to one real PostgreSQL, each fed by its own loopback AMI server (the recorded abandoned
call) and sending through its own real test SMSC (two node-smpp processes, two accounts).

What a user sees: every caller of box A texted once through A's gateway from A's line, every
caller of box B through B's; a call of B whose Asterisk Uniqueid equals one of A's is texted; a
receipt from A's gateway never settles B's text; A's start-up leaves B's texts alone; two
services starting at once on an empty database both run; `explain` names the box and account.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import (CallFeeder, ServiceProc, call_bytes, e164, first_parts, service_command,
                           shipped_config)

OVERRIDES = {("compliance", "quiet_hours"): '""', ("compliance", "global_hourly_cap"): "0"}
LINES = {"pbx-a": "+15125550100", "pbx-b": "+15125550200"}
PREFIX = {"pbx-a": "+1512556", "pbx-b": "+1737556"}      # distinct callers per box


def fresh_schema(dsn: str) -> None:
    import psycopg2
    c = psycopg2.connect(dsn)
    c.autocommit = True
    c.cursor().execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    c.close()


def rows(dsn: str, sql: str, args=()) -> list[dict]:
    """The store read with plain psycopg2, no product code."""
    import psycopg2
    import psycopg2.extras
    c = psycopg2.connect(dsn)
    try:
        cur = c.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        cur.execute(sql, args)
        return [dict(r) for r in cur.fetchall()]
    finally:
        c.close()


def texts(dsn: str) -> list[dict]:
    return rows(dsn, "SELECT * FROM message WHERE direction = 'out' AND kind = 'missed-call' ORDER BY id")


class Box:
    """One PBX box: its AMI feed, its SMSC, its config (store: the shared PostgreSQL)."""

    def __init__(self, name: str, tmp: Path, smsc, dsn: str):
        self.name, self.tmp, self.smsc, self.dsn = name, tmp / name, smsc, dsn
        self.line = LINES[name]
        self.feeder = CallFeeder()
        self.svc: ServiceProc | None = None
        self.callers: list[str] = []
        self.n = itertools.count()

    async def __aenter__(self):
        port = await self.feeder.start()
        over = dict(OVERRIDES)
        over.update({("store", "dsn"): f'"{self.dsn}"', ("pbx", "id"): f'"{self.name}"',
                     ("transport.smpp", "system_id"): f'"acme-{self.name[-1]}"'})
        self.setup = shipped_config(self.tmp, ami_port=port, smsc_port=self.smsc.port, overrides=over)
        text = self.setup.config.read_text()           # the example's one line -> this box's DID
        assert text.count(f'number = "{LINES["pbx-a"]}"') == 1
        self.setup.config.write_text(text.replace(f'number = "{LINES["pbx-a"]}"', f'number = "{self.line}"'))
        return self

    async def __aexit__(self, *exc):
        if self.svc is not None and exc[0] is not None:
            print(f"--- {self.name}'s service, last lines:\n{self.svc.tail(40)}")
        if self.svc is not None:
            await self.svc.stop(signal.SIGKILL)
        await self.feeder.stop()

    @property
    def account(self) -> str:
        return f"acme-{self.name[-1]}@127.0.0.1:{self.smsc.port}"

    def spawn(self) -> ServiceProc:
        self.svc = ServiceProc(self.setup)
        return self.svc

    async def up(self, timeout: float = 60.0, bound: bool = True) -> None:
        """Until the service is logged in to its PBX (and bound to its SMSC)."""
        binds = len(self.smsc.log_events("bind")) if bound else 0
        svc = self.svc or self.spawn()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not svc.alive():
                raise AssertionError(f"{self.name}: the service exited at start:\n{svc.tail()}")
            if await self.feeder.wait_login(0.05) and (
                    not bound or len(self.smsc.log_events("bind")) > binds):
                await asyncio.sleep(0.2)
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name}: not ready within {timeout} s:\n{svc.tail()}")

    async def down(self) -> None:
        code = await self.svc.stop(signal.SIGTERM, timeout=30)
        assert code == 0, f"{self.name}: exit {code}\n{self.svc.tail()}"
        self.svc = None

    def caller(self) -> str:
        i = next(self.n)
        return f"{PREFIX[self.name]}{1001 + i:04d}"

    async def call(self, caller: str, seq: int) -> None:
        """One missed call; seq sets its Uniqueids (the same seq on two boxes: the same ids)."""
        head, tail = call_bytes(caller, seq, did=self.line)
        assert await self.feeder.wait_login(30), f"{self.name}: no AMI login"
        assert await self.feeder.write(head + tail) is not None
        self.callers.append(caller)

    def at_smsc(self) -> list[dict]:
        """The texts this box's SMSC accepted, one per text (no caller replies in these runs)."""
        return first_parts(self.smsc.messages()) if self.smsc.proc is not None else []


async def until(pred, timeout: float, what: str, interval: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = await asyncio.to_thread(pred)
        if v:
            return v
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def figure(label: str, a: Box, b: Box) -> str:
    """Texts per box and cross-sent count, as the report quotes them."""
    got_a, got_b = a.at_smsc(), b.at_smsc()
    cross = (sum(e164(m["destination_addr"]) in b.callers for m in got_a)
             + sum(e164(m["destination_addr"]) in a.callers for m in got_b))
    line = (f"{label}: box A {len(a.callers)} callers, {len(got_a)} texts at A's SMSC; box B "
            f"{len(b.callers)} callers, {len(got_b)} texts at B's SMSC; cross-sent {cross}")
    print(line)
    return line


@pytest.fixture
def pg(pg_dsn):
    fresh_schema(pg_dsn)
    return pg_dsn


def test_each_service_sends_only_its_own_boxs_texts_while_the_other_gateway_is_down(tmp_path, pg, smsc_factory):
    """(a) B's gateway is down while both boxes take calls: B's texts wait for B's gateway;
    none goes out through A's account with B's number as sender."""
    smsc_a = smsc_factory(dlr_delay_ms=50)
    smsc_b = smsc_factory(start=False, dlr_delay_ms=50)
    n = int(os.environ.get("MULTIPBX_CALLS", "15"))      # callers per box (more: for a measurement)

    async def main():
        async with Box("pbx-a", tmp_path, smsc_a, pg) as a, Box("pbx-b", tmp_path, smsc_b, pg) as b:
            await a.up()
            await b.up(bound=False)
            for i in range(n):
                await b.call(b.caller(), seq=1000 + i)
                await a.call(a.caller(), seq=1 + i)
            await until(lambda: sum(e164(m["destination_addr"]) in a.callers for m in a.at_smsc()) >= n,
                        60 + n / 5, "A's texts at A's SMSC")
            await asyncio.sleep(3)          # A's outbox polls on: B's due texts are in the store
            figure("B's gateway down", a, b)
            b_rows = [t for t in texts(pg) if t["peer"] in b.callers]
            assert len(b_rows) == n
            # waiting for B's gateway (claimed by B, or back in B's queue), never written
            assert {t["state"] for t in b_rows} <= {"pending", "sending"}, b_rows[:3]
            assert all(t["written_at"] is None for t in b_rows), b_rows[:3]
            smsc_b.start()
            await until(lambda: len(b.at_smsc()) >= n, 90 + n / 5, "B's texts at B's SMSC once it is up")
            await until(lambda: {t["state"] for t in texts(pg)} == {"delivered"}, 30, "receipts")
            await asyncio.sleep(1)
            figure("after B's gateway came back", a, b)
            got_a, got_b = a.at_smsc(), b.at_smsc()
            assert sorted(e164(m["destination_addr"]) for m in got_a) == sorted(a.callers)
            assert sorted(e164(m["destination_addr"]) for m in got_b) == sorted(b.callers)
            assert {e164(m["source_addr"]) for m in got_a} == {a.line}
            assert {e164(m["source_addr"]) for m in got_b} == {b.line}
            by_peer = {t["peer"]: t for t in texts(pg)}
            assert {by_peer[c]["box"] for c in a.callers} == {"pbx-a"}
            assert {by_peer[c]["account"] for c in b.callers} == {b.account}
            await a.down()
            await b.down()
    asyncio.run(main())


def test_a_call_of_box_b_with_the_same_uniqueid_as_a_call_of_box_a_is_texted(tmp_path, pg, smsc_factory):
    """(b) Asterisk's epoch.counter Uniqueids repeat across boxes: a call is its box and its id."""
    smsc_a, smsc_b = smsc_factory(dlr_delay_ms=50), smsc_factory(dlr_delay_ms=50)
    n = 5

    async def main():
        async with Box("pbx-a", tmp_path, smsc_a, pg) as a, Box("pbx-b", tmp_path, smsc_b, pg) as b:
            await a.up()
            await b.up()
            for i in range(n):
                await a.call(a.caller(), seq=1 + i)
            await until(lambda: len(a.at_smsc()) >= n, 60, "A's texts")
            for i in range(n):
                await b.call(b.caller(), seq=1 + i)        # the same Uniqueids as A's calls
            await until(lambda: len(rows(pg, "SELECT id FROM call")) >= 2 * n, 30, "B's calls recorded")
            await until(lambda: len(b.at_smsc()) >= n, 30, "B's texts at B's SMSC")
            figure("same Uniqueids on both boxes", a, b)
            calls = rows(pg, "SELECT box, call_id, caller FROM call ORDER BY id")
            ids_a = {c["call_id"] for c in calls if c["box"] == "pbx-a"}
            ids_b = {c["call_id"] for c in calls if c["box"] == "pbx-b"}
            assert len(ids_a) == n and ids_a == ids_b           # the ids did repeat
            assert sorted(e164(m["destination_addr"]) for m in b.at_smsc()) == sorted(b.callers)
            await a.down()
            await b.down()
    asyncio.run(main())


def test_a_receipt_through_box_a_account_never_settles_box_b_text(tmp_path, pg, smsc_factory):
    """(c) Both gateways number their messages alike; A's receipt, arriving after A restarted
    (so only the store can place it), must settle A's text and leave B's as B's receipt set it."""
    smsc_a = smsc_factory(dlr_delay_ms=8000)
    smsc_b = smsc_factory(dlr_delay_ms=50)

    async def main():
        async with Box("pbx-a", tmp_path, smsc_a, pg) as a, Box("pbx-b", tmp_path, smsc_b, pg) as b:
            await a.up()
            await b.up()
            undeliverable = PREFIX["pbx-a"] + "0000"          # the test SMSC answers UNDELIV
            await a.call(undeliverable, seq=1)
            t_sent = (await until(lambda: [t for t in texts(pg) if t["peer"] == undeliverable
                                           and t["state"] == "sent"], 30, "A's text sent"), time.monotonic())[1]
            await a.down()
            assert time.monotonic() - t_sent < 7, "A took too long to stop: its receipt came before"
            mine = b.caller()
            await b.call(mine, seq=2)
            await until(lambda: [t for t in texts(pg) if t["peer"] == mine and t["state"] == "delivered"],
                        30, "B's text delivered")
            by_peer = {t["peer"]: t for t in texts(pg)}
            assert by_peer[undeliverable]["transport_id"] == by_peer[mine]["transport_id"]   # ids repeat
            await a.up()
            await until(lambda: {t["peer"]: t for t in texts(pg)}[undeliverable]["state"] == "failed",
                        30, "A's receipt (UNDELIV) recorded on A's text")
            await asyncio.sleep(1.0)
            b_row = {t["peer"]: t for t in texts(pg)}[mine]
            assert (b_row["state"], b_row["error"]) == ("delivered", ""), b_row
            await a.down()
            await b.down()
    asyncio.run(main())


def test_a_service_starting_leaves_the_other_boxs_texts_in_flight_alone(tmp_path, pg, smsc_factory):
    """(d) B's texts are written and waiting for B's gateway's answer when A restarts: A's
    start-up recovery must not call them unknown (B is running; they go out and are delivered)."""
    smsc_a, smsc_b = smsc_factory(dlr_delay_ms=50), smsc_factory(dlr_delay_ms=50)
    n = 3

    async def main():
        async with Box("pbx-a", tmp_path, smsc_a, pg) as a, Box("pbx-b", tmp_path, smsc_b, pg) as b:
            await a.up()
            await b.up()
            smsc_b.hang(15000)
            for i in range(n):
                await b.call(b.caller(), seq=1 + i)
            await until(lambda: len([t for t in texts(pg) if t["state"] == "sending" and t["written_at"]]) >= n,
                        30, "B's texts written, unanswered")
            await a.down()
            await a.up()
            states = [t["state"] for t in texts(pg) if t["peer"] in b.callers]
            assert states == ["sending"] * n, states
            await until(lambda: [t["state"] for t in texts(pg)] == ["delivered"] * n, 40,
                        "B's texts delivered once B's gateway answers")
            assert sorted(e164(m["destination_addr"]) for m in b.at_smsc()) == sorted(b.callers)
            assert not a.svc.grep("marked unknown"), a.svc.tail()
            await a.down()
            await b.down()
    asyncio.run(main())


def test_two_services_starting_at_once_on_an_empty_database_both_run(tmp_path, pg, smsc_factory):
    """(e) Both boxes' services start together on an empty PostgreSQL: one migrates, the other
    waits for it; both log in to their PBX and text their callers."""
    smsc_a, smsc_b = smsc_factory(dlr_delay_ms=50), smsc_factory(dlr_delay_ms=50)

    async def main():
        for _ in range(2):
            fresh_schema(pg)
            async with Box("pbx-a", tmp_path, smsc_a, pg) as a, Box("pbx-b", tmp_path, smsc_b, pg) as b:
                a.spawn()
                b.spawn()
                await asyncio.gather(a.up(bound=False), b.up(bound=False))
                await a.call(a.caller(), seq=1 + 2 * _)
                await b.call(b.caller(), seq=2 + 2 * _)
                await until(lambda: len(a.at_smsc()) + len(b.at_smsc()) >= 2 * (_ + 1), 30, "both texted")
                assert len(rows(pg, "SELECT id FROM schemaversion")) == 1
                await a.down()
                await b.down()
    asyncio.run(main())


OPEN_AT = """import sys, time
from pbx_textback.store.db import open_store
at = float(sys.argv[2])
time.sleep(max(0.0, at - time.time()))
open_store(dsn=sys.argv[1]).close()
"""


START_AT = """import sys, time
from pbx_textback.store.db import open_store, check_writable
at = float(sys.argv[2])
time.sleep(max(0.0, at - time.time()))
store = open_store(dsn=sys.argv[1])
time.sleep(max(0.0, at + 3.0 - time.time()))     # all opened: now write at one instant
check_writable(store, "", time.time())
store.close()
"""


def four_at_one_instant(pg, script: str) -> None:
    """Four processes run script on a fresh empty store, started to act at one instant."""
    fresh_schema(pg)
    at = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", script, pg, str(at)], stderr=subprocess.PIPE)
             for _ in range(4)]
    errs = [(p.wait(60), p.stderr.read().decode()[-600:]) for p in procs]
    assert [code for code, _ in errs] == [0] * 4, errs


def test_services_passing_their_start_up_write_at_the_same_instant_all_start(pg):
    """(e), the start-up write: every service records service_started_at before it says it is
    ready; four at one instant on an empty store must all get past it (it once raced)."""
    for _ in range(4):
        four_at_one_instant(pg, START_AT)
        assert len(rows(pg, "SELECT key FROM setting WHERE key = 'service_started_at'")) == 1


def test_stores_opened_at_the_same_instant_on_an_empty_database_all_open(pg):
    """(e), tighter: four processes open the empty store at one instant (the migration races)."""
    for _ in range(3):
        four_at_one_instant(pg, OPEN_AT)
        assert len(rows(pg, "SELECT id FROM schemaversion")) == 1


def test_explain_names_the_box_and_the_account(tmp_path, pg, smsc_factory):
    """(f) `explain` on either box tells which PBX took the call and which account sent the text."""
    smsc_a, smsc_b = smsc_factory(dlr_delay_ms=50), smsc_factory(dlr_delay_ms=50)

    async def main():
        async with Box("pbx-a", tmp_path, smsc_a, pg) as a, Box("pbx-b", tmp_path, smsc_b, pg) as b:
            await a.up()
            await b.up()
            ca, cb = a.caller(), b.caller()
            await a.call(ca, seq=1)
            await b.call(cb, seq=1)
            await until(lambda: [t["state"] for t in texts(pg)] == ["delivered"] * 2, 30, "both delivered")
            await a.down()
            await b.down()
            return a, b, ca, cb
    a, b, ca, cb = asyncio.run(main())

    def explain(box: Box, *args) -> str:
        r = subprocess.run(service_command() + ["explain", *args, "-c", str(box.setup.config)],
                           env=box.setup.env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout
    out = explain(a, cb)                      # asked on box A about B's caller
    assert "box pbx-b" in out and f"account {b.account}" in out, out
    assert "pbx-a" not in out and a.account not in out, out
    call_id = rows(pg, "SELECT call_id FROM call WHERE caller = %s", (ca,))[0]["call_id"]
    out = explain(b, call_id)                 # the same Uniqueid on both boxes: both calls shown
    assert "box pbx-a" in out and "box pbx-b" in out, out
    doc = json.loads(explain(a, ca, "--json"))
    (msg,) = doc["calls"][0]["messages"]
    assert (doc["calls"][0]["box"], msg["box"], msg["account"]) == ("pbx-a", "pbx-a", a.account)
