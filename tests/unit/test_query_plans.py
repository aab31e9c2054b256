"""The hot path's, the pages' and /metrics' queries read through an index, never a full pass
over the big tables (call, message, consent): migration 30 dropped indexes that these queries
must not have needed. Each query is the one the store really issues: the functions run on a
store holding some thousands of rows, their SQL is caught as SQLite runs it and asked for its
plan. (/metrics reads every row at its first scrapes and after a purge, by design; its later
scrapes count only new calls, replies and opt-outs, reporting/tally.py, and its texts' totals
are kept by triggers, store/text_tally.py: those reads are checked.)"""
from __future__ import annotations

import re
import time

from pbx_textback.store import api, boxes, desk, deskphones, fast, hooks, inbox, metrics, purge, sendpath, web
from pbx_textback.store.consent_owed import requests_since
from pbx_textback.store.db import open_store, waiting_texts

BIG = ("call", "message", "consent", "inboxconv")
N = 3000


def _fill(db, now):
    with db.atomic():
        for i in range(N):
            peer = f"+1512555{i % 1000:04d}"
            db.execute_sql(
                'INSERT INTO "call" (box, call_id, pbx, caller, caller_raw, called, line, direction, missed, reason, '
                'why, recovered, record, created_at, answered) VALUES (?, ?, \'asterisk\', ?, ?, \'+15125550100\', '
                '\'\', \'inbound\', 1, \'no-answer\', \'\', 0, \'{}\', ?, 0)', ("b1", f"{i}.1", peer, peer[2:], now - i))
            db.execute_sql(
                'INSERT INTO "message" (call_id, direction, kind, line, peer, body, state, due_at, attempts, transport, '
                'transport_id, error, created_at, updated_at, calls_missed, note, box, account) VALUES (?, \'out\', '
                '\'missed-call\', \'\', ?, \'hi\', ?, ?, 1, \'smpp\', ?, \'\', ?, ?, 1, \'\', \'b1\', \'smpp\')',
                (i + 1, peer, ("delivered", "sent", "failed", "pending")[i % 4], now - i, f"t{i}", now - i, now - i))
            db.execute_sql('INSERT INTO "consent" (number, kind, at, scope, line, source, confirms, lang) '
                           'VALUES (?, \'inbound-call\', ?, \'business\', \'\', \'\', \'\', \'en\')', (peer, now - i))


def _plans(store, run) -> list[tuple[str, list[str]]]:
    seen: list[str] = []
    conn = store.db.connection()
    conn.set_trace_callback(lambda sql: seen.append(sql))
    try:
        run()
    finally:
        conn.set_trace_callback(None)
    out = []
    for sql in seen:
        if re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)\b", sql, re.I):
            out.append((sql, [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]))
    return out


def aliases(sql: str) -> dict[str, str]:
    """peewee's "t1" -> the table it names (its plans say SCAN t1)."""
    return {a: t for t, a in re.findall(r'(?:FROM|JOIN) "(\w+)" AS "(\w+)"', sql)}


def _row(msg_id: int, peer: str, kind: str, created_at: float) -> fast.OutRow:
    row = fast.OutRow([None] * len(fast._MSG_COLS))
    row.id, row.peer, row.kind, row.created_at = msg_id, peer, kind, created_at
    return row


def test_hot_and_page_queries_never_scan_a_big_table(tmp_path):
    store = open_store(str(tmp_path / "s.sqlite3"), box="b1")
    now = time.time()
    _fill(store.db, now)
    peer = "+15125550007"
    steps = {
        "the decision's facts": lambda: fast.call_facts(store, "7.1", peer, ""),
        "seen": lambda: fast.seen(store, "7.1"),
        "gate reads": lambda: fast.gate_reads(store, peer, now - 3600),
        "last look reads": lambda: fast.last_look_reads(store, peer, now - 3600, True),
        "guarded take": lambda: sendpath.take_if_clear(store, _row(4, peer, "follow-up", now - 3600), now),
        "consent standing": lambda: fast.consent_standing_history(store, peer),
        "auto text times": lambda: fast.auto_text_times(store, peer, now - 86400),
        "has call": lambda: store.has_call("7.1"),
        "claim": lambda: fast.claim_due(store, now, 5),
        "next due": store.next_due,
        "expire overdue": lambda: store.expire_overdue(now, 10 * 86400),
        "restart recovery": lambda: store.recover_interrupted(now),
        "adopt unboxed": lambda: store.adopt_unboxed(now),
        "receipt": lambda: fast.dlr_by_id(store, 5, "delivered", "delivered", "", now),
        "receipt by the gateway's id": lambda: fast.dlr_by_gateway_id(store, "t5", "smpp", "delivered",
                                                                      "delivered", "", now),
        "the box of a line": lambda: boxes.box_of_line(store, "+15125550100"),
        "the box of a line no call came in on": lambda: boxes.box_of_line(store, "+15125550999"),
        **{f"inbox view {v}": (lambda v=v: inbox.rows(v, now, me="ann"))
           for v in ("needs-reply", "open", "mine", "snoozed", "done")},
        "inbox counts": lambda: inbox.counts(("needs-reply", "open", "mine", "snoozed", "done"), now, "ann"),
        "api: conversations": lambda: inbox.listing("all", now),
        "api: snoozed conversations": lambda: inbox.listing("snoozed", now, after=(now, "+1")),
        "a conversation's summary": lambda: inbox.one(peer, now),
        "no receipt": lambda: store.mark_no_receipt(now - 86400, now),
        "count by state": lambda: store.count_state("failed", now - 3600),
        "waiting texts (health, status)": lambda: waiting_texts(store),
        "metrics outbox": lambda: metrics.outbox(store, now),
        "late evidence": lambda: store.resolve_unknown(now=now, state="delivered", peer=peer, sender="",
                                                       text="hi", evidence="test"),
        "explain a call id": lambda: store.calls_for("7.1"),
        "explain a number": lambda: store.calls_for(peer),
        "conversation": lambda: store.messages_to(peer),
        "consent history": lambda: store.consent_history(peer),
        "start-up: confirmations owed": lambda: requests_since(store, now - 3 * 3600),
        "webhooks: consent events": lambda: hooks.consents_since(now - 3600, 100),
        "webhooks: idle fingerprint": lambda: hooks.fingerprint(store, {"consent": now - 3600}),
        "a number's call backs": lambda: deskphones.for_peer(store, peer),
        "desk phones: replies to push": lambda: deskphones.replies_after(store, 0),
        "desk phones: the last reply": lambda: deskphones.last_reply_id(store),
        "web desk: new replies": lambda: desk.inbound_since(store, 0),
        "api: a number's calls": lambda: api.calls_page(None, 50, number=peer),
        "api: a number's texts": lambda: api.messages_page(None, 50, number=peer),
        "live pages' change mark": lambda: web.change_mark(store),
        "purge count": lambda: store.purge_count(now - 86400),
        "metrics: newest ids": lambda: metrics.newest_ids(store),
        "metrics: calls to keep": lambda: metrics.call_totals(store, 10, 20),
        "metrics: new calls": lambda: metrics.call_totals(store, 20),
        "metrics: new replies": lambda: metrics.reply_totals(store, 20),
        "metrics: new opt-outs": lambda: metrics.opt_out_totals(store, 20),
        "metrics: texts": lambda: metrics.text_totals(store),
        # last: it deletes (the oldest 100 calls and texts, their callers' inbox rows remade)
        "purge: one slice": lambda: purge.one_slice(store, now - N + 500, 100),
    }
    checked = 0
    bad = []
    for name, run in steps.items():
        for sql, plan in _plans(store, run):
            checked += 1
            for step in plan:
                m = re.match(r"SCAN (\w+)", step)
                if m and aliases(sql).get(m.group(1), m.group(1)) in BIG:
                    bad.append(f"{name}: {step}\n    {sql}")
    assert checked >= len(steps), "the steps issued fewer queries than expected: the trace saw nothing"
    assert not bad, "full scans of a big table:\n" + "\n".join(bad)


def test_a_call_id_stays_unique_per_box(tmp_path):
    """The one unique (call_id, box) index keeps what (box, call_id) kept: the same id twice in
    one box is refused, the same id in another box is a different call."""
    import sqlite3

    import pytest
    store = open_store(str(tmp_path / "s.sqlite3"), box="b1")
    ins = ('INSERT INTO "call" (box, call_id, pbx, caller, caller_raw, called, line, direction, missed, reason, '
           'why, recovered, record, created_at, answered) VALUES (?, \'1.1\', \'asterisk\', \'+15125550007\', '
           '\'\', \'\', \'\', \'inbound\', 1, \'\', \'\', 0, \'{}\', 0, 0)')
    store.db.execute_sql(ins, ("b1",))
    store.db.execute_sql(ins, ("b2",))
    with pytest.raises((sqlite3.IntegrityError, Exception)) as e:
        store.db.execute_sql(ins, ("b1",))
    assert "UNIQUE" in str(e.value)


def _indexes(db, table):
    return {r[0] for r in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
                                         (table,))}


def test_a_store_made_before_loses_the_old_indexes_and_keeps_its_rows(tmp_path):
    from pbx_textback.store.db import MIGRATIONS
    path = str(tmp_path / "s.sqlite3")
    store = open_store(path, box="b1")
    db = store.db
    for sql in ('CREATE INDEX "consent_number" ON "consent" ("number")',
                'CREATE INDEX "message_state" ON "message" ("state")',
                'CREATE INDEX "message_due_at" ON "message" ("due_at")',
                'CREATE INDEX "message_box_state_due_at" ON "message" ("box", "state", "due_at")',
                'CREATE INDEX "call_call_id" ON "call" ("call_id")',
                'CREATE UNIQUE INDEX "call_box_call_id" ON "call" ("box", "call_id")',
                'DROP INDEX "call_call_id_box"', 'DROP INDEX "message_state_box_due"'):
        db.execute_sql(sql)
    _fill(db, time.time())
    store.close()
    store = open_store(path, box="b1")
    step = dict(MIGRATIONS)[30]       # run as the upgrade runs it (other steps may follow it)
    with store.db.atomic():
        step(store.db)
    assert _indexes(store.db, "call") >= {"call_call_id_box"}
    assert not _indexes(store.db, "call") & {"call_call_id", "call_box_call_id"}
    assert "message_state_box_due" in _indexes(store.db, "message")
    assert not _indexes(store.db, "message") & {"message_state", "message_due_at", "message_box_state_due_at"}
    assert "consent_number" not in _indexes(store.db, "consent")
    assert store.db.execute_sql('SELECT COUNT(*) FROM "call"').fetchone()[0] == N


def _uses(store, run) -> list[str]:
    return [step for _sql, plan in _plans(store, run) for step in plan]


def test_the_partial_indexes_serve_their_lookups(tmp_path):
    """Migration 32 (store/lean_pages.py) indexes only some rows; the lookups that need those
    rows must still be matched to them by the planner (a partial index is used only when the
    query's WHERE says what the index's WHERE says)."""
    store = open_store(str(tmp_path / "s.sqlite3"), box="b1")
    now = time.time()
    _fill(store.db, now)
    peer = "+15125550007"
    pending = "USING INDEX message_peer_pending (peer=?)"
    facts = _uses(store, lambda: fast.call_facts(store, "7.1", peer, ""))
    assert sum(pending in s for s in facts) == 2, facts            # the pending text, its count
    assert any(pending in s for s in _uses(store, lambda: store.pending_for(peer, "")))
    assert any(pending in s for s in _uses(store, lambda: store.cancel_pending(peer, "reached", now)))
    by_gw = _uses(store, lambda: fast.dlr_by_gateway_id(store, "t5", "smpp", "delivered", "delivered", "", now))
    assert any("USING INDEX message_transport_id (transport_id=?)" in s for s in by_gw), by_gw
    line = _uses(store, lambda: boxes.box_of_line(store, "+15125550100"))
    assert any("USING INDEX call_called_created (called=?)" in s for s in line), line
    assert any("USING INDEX call_line_created (line=?)" in s for s in line), line
    # no call on the line: its newest text, newest first in the index (no sort of its texts)
    texts = _uses(store, lambda: boxes.box_of_line(store, "+15125550999"))
    assert any("USING INDEX message_line_out (line=?)" in s for s in texts), texts
    assert not any("TEMP B-TREE" in s for s in texts), texts


def test_the_box_of_a_line_is_the_newest_call_by_line_or_called_number(tmp_path):
    """box_of_line's two index reads give what `line = ? OR called = ?` gave: the newest."""
    store = open_store(str(tmp_path / "s.sqlite3"), box="b1")
    ins = ('INSERT INTO "call" (box, call_id, pbx, caller, caller_raw, called, line, direction, missed, reason, '
           'why, recovered, record, created_at, answered) VALUES (?, ?, \'asterisk\', \'+15125550007\', '
           '\'\', ?, ?, \'inbound\', 1, \'\', \'\', 0, \'{}\', ?, 0)')
    line = "+15125550100"
    assert boxes.box_of_line(store, line) == ""
    store.db.execute_sql(ins, ("b1", "1.1", line, line, 100.0))            # its line is its called number
    assert boxes.box_of_line(store, line) == "b1"
    store.db.execute_sql(ins, ("b2", "2.1", "5125550100", line, 200.0))    # called as the PBX spells it
    assert boxes.box_of_line(store, line) == "b2"
    store.db.execute_sql(ins, ("b3", "3.1", line, "+15125550199", 300.0))  # another line's call, called this number
    assert boxes.box_of_line(store, line) == "b3"
    store.db.execute_sql(ins, ("", "4.1", line, line, 400.0))              # no box: not an owner
    assert boxes.box_of_line(store, line) == "b3"
    store.db.execute_sql(ins, ("b4", "5.1", "5125550100", line, 300.0))    # same time: the later row
    assert boxes.box_of_line(store, line) == "b4"
    assert boxes.box_of_line(store, "+15125550142") == ""
