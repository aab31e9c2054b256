"""The per-call hot path in hand-written SQL (issue 14).

The ORM built each statement afresh (most of a missed call's CPU went into composing SQL);
here every statement is a constant string, and what one call needs from the store is read in
one statement and written in one transaction. Same rows, same rules as db.py: a decision is
durable before any send, one transaction per step.

SQL is written with `?` placeholders; PostgreSQL's driver wants `%s` (converted once).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import peewee as pw

from ..core.model import Check
from . import db as st      # db imports this module lazily: no cycle at import time

_PG_CACHE: dict[str, str] = {}


def _sql(store, sql: str) -> str:
    if store.is_sqlite:
        return sql
    out = _PG_CACHE.get(sql)
    if out is None:
        out = _PG_CACHE[sql] = sql.replace("?", "%s")
    return out


def rows(store, sql: str, params=()) -> list[tuple]:
    return store.db.execute_sql(_sql(store, sql), params).fetchall()


def one(store, sql: str, params=()):
    return store.db.execute_sql(_sql(store, sql), params).fetchone()


def run(store, sql: str, params=()) -> int:
    """A write; returns the rows it changed."""
    return store.db.execute_sql(_sql(store, sql), params).rowcount


def insert(store, sql: str, params=()) -> int:
    """An INSERT ... RETURNING id (SQLite >= 3.35 and PostgreSQL both have RETURNING)."""
    return store.db.execute_sql(_sql(store, sql), params).fetchone()[0]


@dataclass(frozen=True)
class CallFacts:
    """What the store knows that bears on one call, read in one statement."""
    seen: bool = False                     # this call was already decided
    pending_id: int | None = None          # a text for this caller on this line still waiting
    pending_calls: int = 1
    last_text_at: float | None = None
    hours_mode: str | None = None          # HoursOverride row (None: auto)
    hours_until: float | None = None
    paused: bool = False
    consent_events: bool = True            # the caller has consent events on record (else none to read)
    other_due: bool = True                 # a text of this box was already due (store/sendpath.py)


_FACTS = (
    'SELECT '
    '(SELECT 1 FROM "call" WHERE call_id = ? AND box IN (?, \'\') LIMIT 1), '
    '(SELECT id FROM "message" WHERE peer = ? AND line = ? AND state = \'pending\' '
    '   AND kind = \'missed-call\' ORDER BY id LIMIT 1), '
    '(SELECT calls_missed FROM "message" WHERE peer = ? AND line = ? AND state = \'pending\' '
    '   AND kind = \'missed-call\' ORDER BY id LIMIT 1), '
    # newest first through the (peer, created_at) index: stops at the first that counts
    '(SELECT created_at FROM "message" WHERE peer = ? AND line = ? AND direction = \'out\' '
    '   AND kind = \'missed-call\' AND state != \'cancelled\' ORDER BY created_at DESC LIMIT 1), '
    '(SELECT mode FROM "hoursoverride" WHERE line = ? LIMIT 1), '
    '(SELECT "until" FROM "hoursoverride" WHERE line = ? LIMIT 1), '
    '(SELECT value FROM "setting" WHERE "key" = \'paused\' LIMIT 1), '
    # a first-time caller has no consent event: one probe of the (number, kind) index says
    # so, and the standing's read (a UNION of two lookups, its rows made into events) is saved
    '(SELECT 1 FROM "consent" WHERE number = ? LIMIT 1), '
    # a text of this box due by now, before this call's: none (the usual case), and the text
    # this call queues is the only one due, handed to the outbox as written (store/sendpath.py)
    '(SELECT 1 FROM "message" WHERE state = \'pending\' AND box = ? AND due_at <= ? '
    '   AND direction = \'out\' LIMIT 1)')


def call_facts(store, call_id: str, peer: str, line: str, now: float | None = None) -> CallFacts:
    """now: the decision's time, for other_due (None: the clock)."""
    r = one(store, _FACTS, (call_id, store.box, peer, line, peer, line, peer, line, line, line, peer,
                            store.box, time.time() if now is None else now))
    return CallFacts(seen=r[0] is not None, pending_id=r[1], pending_calls=r[2] or 1,
                     last_text_at=r[3], hours_mode=r[4], hours_until=r[5], paused=r[6] == "1",
                     consent_events=r[7] is not None, other_due=r[8] is not None)


def hours_mode(f: CallFacts, now: float) -> str:
    """As Store.hours_override: an override whose end has passed is auto."""
    if f.hours_mode is None or (f.hours_until is not None and now >= f.hours_until):
        return "auto"
    return f.hours_mode


def seen(store, call_id: str) -> bool:
    return one(store, 'SELECT 1 FROM "call" WHERE call_id = ? AND box IN (?, \'\') LIMIT 1',
               (call_id, store.box)) is not None


def paused(store) -> bool:
    r = one(store, 'SELECT value FROM "setting" WHERE "key" = \'paused\' LIMIT 1')
    return r is not None and r[0] == "1"


_AUTO = "('missed-call', 'follow-up', 'manual')"      # Store.AUTOMATED


def auto_text_times(store, peer: str, since: float) -> list[float]:
    return [r[0] for r in rows(
        store, 'SELECT created_at FROM "message" WHERE peer = ? AND created_at > ? '
               f'AND direction = \'out\' AND kind IN {_AUTO} '
               'AND state NOT IN (\'cancelled\', \'expired\', \'failed\')', (peer, since))]


def texts_since(store, since: float) -> int:
    return one(store, f'SELECT COUNT(*) FROM "message" WHERE created_at > ? AND direction = \'out\' '
                      f'AND kind IN {_AUTO} AND state || \'\' IN (\'sending\', \'sent\', \'delivered\', \'unknown\')',  # ||'': not the state index (all texts ever)
               (since,))[0]


# a call after `since` in which a person spoke with the number, as 'inbound call ID'
_REACHED = ('SELECT direction || \' call \' || call_id FROM "call" WHERE created_at > ? AND answered = ? '
            'AND ((direction = \'inbound\' AND caller = ?) OR (direction = \'outbound\' AND called = ?)) '
            'ORDER BY created_at LIMIT 1')


def reached_since(store, peer: str, since: float) -> str:
    r = one(store, _REACHED, (since, True, peer, peer))
    return r[0] if r else ""


_GATE = f'SELECT ({_REACHED}), (SELECT value FROM "setting" WHERE "key" = \'paused\' LIMIT 1)'
# the last look's other facts in the same statement: whether the number ever opted out (no
# opt-out event, no opt-out standing: core/policy/consent.py sets opted-out only on one, so the
# consent history is read only for the few numbers that have one), and for a follow-up whether
# the caller wrote since (? = 0 for other texts: SQLite and PostgreSQL skip the EXISTS then)
_LAST_LOOK = (_GATE + ', (SELECT 1 FROM "consent" WHERE number = ? AND kind = \'opt-out\' LIMIT 1), '
              '(SELECT 1 FROM "message" WHERE ? = 1 AND peer = ? AND direction = \'in\' AND created_at > ? LIMIT 1)')


def gate_reads(store, peer: str, since: float) -> tuple[str, bool]:
    """The outbox's last look: reached_since and paused in one statement."""
    r = one(store, _GATE, (since, True, peer, peer))
    return r[0] or "", r[1] == "1"


def last_look_reads(store, peer: str, since: float, follow_up: bool) -> tuple[str, bool, bool, bool]:
    """The outbox's last look, one statement: (reached since, paused, ever opted out, replied
    since — asked only for a follow-up, else False)."""
    r = one(store, _LAST_LOOK, (since, True, peer, peer, peer, int(follow_up), peer, since))
    return r[0] or "", r[1] == "1", r[2] is not None, r[3] is not None


# ---- consent: what the state machine needs, not every row ever --------------------------------
_CONSENT_COLS = "kind, number, at, scope, line, source, confirms, lang, id"
REQUEST_KINDS = "('opt-out', 'opt-in', 'confirmation')"      # consent.KINDS but inbound-call


_STANDING = (f'SELECT {_CONSENT_COLS} FROM "consent" WHERE number = ? AND kind IN {REQUEST_KINDS} '
             f'UNION ALL SELECT {", ".join("c." + c for c in _CONSENT_COLS.split(", "))} '
             'FROM "consentlastcall" l JOIN "consent" c ON c.id = l.consent_id WHERE l.number = ?')


def consent_standing_history(store, number: str) -> list:
    """The consent events that decide `number`'s standing: every opt-out, opt-in and
    confirmation, and of the inbound-call events only the latest per line. An earlier
    inbound call changes nothing a later one on the same line does not (core/policy/consent.py:
    it only ever sets `conversational` since its time, and never undoes an opt-out), so the
    standing is the same as over the full history — and one "inbound-call" row per call no
    longer makes every call of a frequent caller slower than the last."""
    # kind IN (...), not kind != 'inbound-call': the (number, kind) index then seeks the few
    # rows instead of walking every inbound call the number ever made
    # the few rows are put in order here: an ORDER BY over the UNION made SQLite sort each
    # half through a temporary b-tree (a third of the statement's time)
    return consent_events(sorted(rows(store, _STANDING, (number, number)), key=lambda r: (r[2], r[8])))


def consent_events(got) -> list:
    """Rows of _CONSENT_COLS as ConsentEvents."""
    from ..core.policy.consent import ConsentEvent
    return [ConsentEvent(k, n, at, sc, ln, src, conf, lang, str(i))
            for k, n, at, sc, ln, src, conf, lang, i in got]


_ADD_CONSENT = ('INSERT INTO "consent" (number, kind, at, scope, line, source, confirms, lang) '
                'VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id')
_LAST_CALL = ('INSERT INTO "consentlastcall" (number, line, at, consent_id) VALUES (?, ?, ?, ?) '
              'ON CONFLICT (number, line) DO UPDATE SET at = excluded.at, consent_id = excluded.consent_id '
              'WHERE excluded.at >= "consentlastcall".at')


def add_consent(store, ev) -> int:
    """Call inside write() when it must be atomic with other rows."""
    return _add_consent(_executor(store), ev)


def _add_consent(ex, ev) -> int:
    cid = ex(_ADD_CONSENT, (ev.number, ev.kind, ev.at, ev.scope, ev.line, ev.source,
                            ev.confirms, ev.lang)).fetchone()[0]
    if ev.kind == "inbound-call":
        ex(_LAST_CALL, (ev.number, ev.line, ev.at, cid))
    return cid


# ---- one call's decision: call + decision + outbox row (+ consent) in one transaction ----------
_INS_CALL = ('INSERT INTO "call" (box, call_id, pbx, caller, caller_raw, called, line, direction, missed, '
             'reason, why, voicemail_left, recovered, started_at, ended_at, record, created_at, answered) '
             'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id')
_INS_DECISION = ('INSERT INTO "decision" (call_id, action, checks, line, created_at, template) '
                 'VALUES (?, ?, ?, ?, ?, ?)')
# A missed call's new text: its columns and their values in one place, for the INSERT here and
# for the row the decision hands the outbox as written (store/sendpath.py queued_row). The
# values are what the store gives back when the row is read (a due time as a float).
NEW_TEXT_COLS = ("box", "call_id", "direction", "kind", "line", "peer", "body", "state", "due_at", "attempts",
                 "transport", "transport_id", "error", "created_at", "updated_at", "calls_missed", "note",
                 "account")


def new_text_values(box: str, call_id: int, decision, shown: dict, now: float) -> tuple:
    """The NEW_TEXT_COLS of the text `decision` queues (decided at `now`)."""
    due = decision.due_at if decision.due_at is not None else now
    return (box, call_id, "out", "missed-call", decision.line, decision.to, decision.body, "pending",
            float(due), 0, "", "", "", float(now), float(now), shown.get("calls_missed", 1), "", "")


_INS_MESSAGE = (f'INSERT INTO "message" ({", ".join(NEW_TEXT_COLS)}) '
                f'VALUES ({", ".join("?" * len(NEW_TEXT_COLS))}) RETURNING id')
_COLLAPSE = ('UPDATE "message" SET body = ?, calls_missed = ?, updated_at = ? '
             'WHERE id = ? AND state = \'pending\'')
_EXISTING = 'SELECT id FROM "call" WHERE call_id = ? AND box IN (?, \'\') LIMIT 1'


_INS_NEW_CALL = _INS_CALL.replace(' RETURNING id', ' ON CONFLICT (box, call_id) DO NOTHING RETURNING id')


def _executor(store):
    """execute(sql, params) -> cursor through peewee, `?` made `%s` for PostgreSQL."""
    if store.is_sqlite:
        return store.db.execute_sql
    return lambda sql, params=(): store.db.execute_sql(_sql(store, sql), params)


def _bare_sqlite(store):
    """The sqlite3 connection when this step may run its own transaction on it: a file or
    memory store with no transaction open (peewee's or another). Else None (PostgreSQL, or a
    caller's write() around this one: that one's transaction holds it, as before)."""
    if not store.is_sqlite or store.db.in_transaction():
        return None
    conn = store.db.connection()
    return None if conn.in_transaction else conn


def record_verdict(store, verdict, *, now: float, consent=None, checked: bool = False) -> tuple[int, int | None]:
    """Store.record_verdict, plus the caller's inbound-call consent event in the same
    transaction (one step, one commit). checked: the caller read call_facts(...).seen for
    this call on this connection in the same synchronous step and found it new; the insert
    itself then stands guard (another writer of this box meanwhile: its unique key), and the
    statement that looked again is saved.
    On SQLite the transaction is the connection's own BEGIN IMMEDIATE ... COMMIT, the same
    statements peewee's atomic() sends, without its wrappers around each (~15 us a call);
    errors come out as peewee's, as before."""
    conn = _bare_sqlite(store)
    if conn is None:
        with store.write():
            return _write_verdict(store, _executor(store), verdict, now, consent, checked)
    with pw.__exception_wrapper__:
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = _write_verdict(store, conn.execute, verdict, now, consent, checked)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return out


_CHECK_JSON: dict[tuple, str] = {}
_CHECK_JSON_MAX = 512      # a call adds ~1 (its caller check): cleared every few hundred calls


def checks_json(checks) -> str:
    """json.dumps([c.to_dict() for c in checks]), the same text: most of a call's checks say
    what the last call's said ("line +1... is enabled", "not on the denylist"), so each
    check's JSON is kept by its (name, ok, detail) and the list joined as json.dumps joins it."""
    parts = []
    for ch in checks:
        if type(ch) is not Check or type(ch.ok) is not bool or type(ch.name) is not str \
                or type(ch.detail) is not str:
            return json.dumps([c.to_dict() for c in checks])
        key = (ch.name, ch.ok, ch.detail)
        got = _CHECK_JSON.get(key)
        if got is None:
            if len(_CHECK_JSON) >= _CHECK_JSON_MAX:
                _CHECK_JSON.clear()
            got = _CHECK_JSON[key] = json.dumps(ch.to_dict())
        parts.append(got)
    return "[" + ", ".join(parts) + "]"


def _write_verdict(store, ex, verdict, now, consent, checked) -> tuple[int, int | None]:
    c, o, d = verdict.call, verdict.outcome, verdict.decision
    shown = verdict.extra
    if not checked:
        existing = ex(_EXISTING, (c.call_id, store.box)).fetchone()
        if existing is not None:
            return existing[0], None
    got = ex(_INS_NEW_CALL if checked else _INS_CALL, (
        store.box, c.call_id, c.pbx, shown.get("caller", c.caller), c.caller,
        shown.get("called", c.called), d.line, c.direction, o.missed, o.reason, o.why,
        c.voicemail_left, c.recovered, c.started_at, c.ended_at,
        json.dumps(c.to_dict(), default=str), now, c.answered_by_human)).fetchone()
    if got is None:                 # checked, yet another writer recorded it meanwhile
        return ex(_EXISTING, (c.call_id, store.box)).fetchone()[0], None
    call_id = got[0]
    ex(_INS_DECISION, (call_id, d.action, checks_json(d.checks),
                       d.line, now, st._template_version(d.template) if d.action == "text" else ""))
    msg_id = None
    if d.action == "text":
        msg_id = ex(_INS_MESSAGE, new_text_values(store.box, call_id, d, shown, now)).fetchone()[0]
    elif shown.get("collapse_into"):
        mid, body, n = shown["collapse_into"]
        ex(_COLLAPSE, (body, n, now, mid))
    if consent is not None:
        _add_consent(ex, consent)
    return call_id, msg_id


# ---- migration 23: the indexes the hot path reads through, and the consent summary -------------
def create_tables(db) -> None:
    from .lean_writes import consentlastcall_sql      # WITHOUT ROWID on SQLite (migration 31)
    db.execute_sql(consentlastcall_sql(db))
    # (peer, created_at), (caller, created_at) and (created_at, ...) come from the reports'
    # indexes (store/reports.py, migration 19): made here too they were each kept twice
    # (message_peer_state, peer and state, was made here: migration 32 put a partial
    # message_peer_pending in its place, store/lean_pages.py)
    for name, table, cols in (
            ("consent_number_kind", "consent", "number, kind"),):
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({cols})')


# Indexes every insert of a call or a text kept up to date for nothing: the same columns twice
# (this module's migration 23 and the reports' 19), or a column another index starts with (a
# lookup by caller alone reads (caller, created_at) as fast). Each cost every call's insert
# an index entry and its page at commit.
REDUNDANT_INDEXES = (
    "call_caller_created_at",       # = call_caller_created
    "message_peer_created_at",      # = message_peer_created
    "call_caller",                  # (caller): call_caller_created starts with it
    "call_created_at",              # (created_at): call_created_dir starts with it
    "message_peer",                 # (peer): message_peer_created starts with it
    "message_created_at",           # (created_at): message_created_dir starts with it
)


def drop_redundant_indexes(db) -> None:
    """Migration 27 (a new store never makes them: the models no longer declare them)."""
    for name in REDUNDANT_INDEXES:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')


def migrate_v23(db) -> None:
    """Stores made before: the indexes, and the summary filled from the history they hold."""
    create_tables(db)
    db.execute_sql(
        'INSERT INTO "consentlastcall" (number, line, at, consent_id) '
        'SELECT c.number, c.line, c.at, c.id FROM "consent" c WHERE c.kind = \'inbound-call\' '
        'AND c.id = (SELECT d.id FROM "consent" d WHERE d.number = c.number AND d.line = c.line '
        'AND d.kind = \'inbound-call\' ORDER BY d.at DESC, d.id DESC LIMIT 1) '
        'ON CONFLICT (number, line) DO NOTHING')


# ---- the outbox: claim, write, sent, receipt ----------------------------------------------------
# A step of the send path that is ONE write statement runs without BEGIN/COMMIT around it: the
# connection is in autocommit (peewee opens SQLite with isolation_level=None and psycopg2 with
# autocommit), so SQLite and PostgreSQL each make a lone statement a transaction of its own —
# atomic and committed when it returns, as durable as a write() block (same WAL, same
# synchronous), and a SQLite writer still waits out the busy timeout for the lock. Inside a
# caller's write() it is part of that transaction, as before. The BEGIN IMMEDIATE round and
# peewee's transaction bookkeeping were about 40 % of each of these steps' CPU.
_MSG_COLS = ("id", "call_id", "direction", "kind", "line", "peer", "body", "state", "due_at", "attempts",
             "transport", "transport_id", "error", "created_at", "updated_at", "calls_missed", "note",
             "ref", "written_at", "box", "account")
_CLAIM = (f'SELECT {", ".join(_MSG_COLS)} FROM "message" WHERE state = \'pending\' AND due_at <= ? '
          'AND direction = \'out\' AND box = ? ORDER BY due_at, id LIMIT ?')


_ANY_DUE = ('SELECT 1 FROM "message" WHERE state = \'pending\' AND due_at <= ? AND direction = \'out\' '
            'AND box = ? LIMIT 1')


def _message(values) -> st.Message:
    kw = dict(zip(_MSG_COLS, values))
    kw["call"] = kw.pop("call_id")
    return st.Message(__no_default__=1, **kw)


def claim_due(store, now: float, limit: int) -> list:
    """Store.claim_due in two constant statements; when nothing is due (most wake-ups: a
    text finished, a call was decided but its text waits), one read and no transaction."""
    if one(store, _ANY_DUE, (now, store.box)) is None:
        return []
    with store.write():
        sql = _CLAIM if store.is_sqlite else _CLAIM + " FOR UPDATE SKIP LOCKED"
        got = rows(store, sql, (now, store.box, limit))
        if not got:
            return []
        ids = [r[0] for r in got]
        run(store, f'UPDATE "message" SET state = \'sending\', written_at = NULL, updated_at = ? '
                   f'WHERE id IN ({", ".join("?" * len(ids))}) AND state = \'pending\'', (now, *ids))
    out = [_message(r) for r in got]
    for m in out:
        m.state, m.written_at = st.SENDING, None
    return out


class OutRow:
    """An outbox row as the worker carries it to its transport: the Message's fields as plain
    attributes (call_id for the call). Building a peewee Message for it cost more than reading
    it, and every attribute read and write went through a field descriptor."""
    __slots__ = _MSG_COLS

    def __init__(self, values):
        for k, v in zip(_MSG_COLS, values):
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"<OutRow {self.id} {self.kind} {self.state}>"


def due_rows(store, now: float, limit: int, skip) -> list:
    """The outbox worker's pick: due pending rows, oldest due first, not those it already
    carries (skip: their ids). One read, no write: the row is taken (pending -> sending) at
    its last look, in the same transaction as its written mark (take_written)."""
    got = rows(store, _CLAIM, (now, store.box, limit + len(skip)))
    return [OutRow(r) for r in got if r[0] not in skip][:limit]


_TAKE = ('UPDATE "message" SET state = \'sending\', written_at = ?, attempts = attempts + 1, updated_at = ? '
         'WHERE id = ? AND state = \'pending\' AND box = ?')


def take_written(store, msg_id: int, now: float) -> bool:
    """Right before the first byte: pending -> sending with written_at, one UPDATE in one
    transaction. False when the row is no longer pending (cancelled, held, or another worker's
    meanwhile): nothing may be written then."""
    return run(store, _TAKE, (now, now, msg_id, store.box)) == 1


def take_unlooked(store, msg_id: int, now: float) -> bool:
    """A transport answered without asking its last look (it wrote nothing it says, or it is
    a transport that never asks): the row leaves pending so that its result can be recorded."""
    return run(store, 'UPDATE "message" SET state = \'sending\', updated_at = ? '
                      'WHERE id = ? AND state = \'pending\'', (now, msg_id)) == 1


def mark_written(store, msg_id: int, now: float) -> bool:
    return run(store, 'UPDATE "message" SET written_at = ?, attempts = attempts + 1, updated_at = ? '
                      'WHERE id = ? AND state = \'sending\'', (now, now, msg_id)) == 1


def mark_sent(store, msg_id: int, *, now: float, transport: str, account: str, transport_id: str) -> None:
    """Never steps back from delivered/failed (a receipt that came first) to sent."""
    run(store, 'UPDATE "message" SET transport = ?, transport_id = ?, account = ?, updated_at = ?, '
               'error = \'\', state = CASE WHEN state = \'sending\' THEN \'sent\' ELSE state END '
               'WHERE id = ?', (transport, transport_id, account, now, msg_id))


_SET_STATE: dict[tuple, str] = {}


def set_state(store, msg_id: int, fields: dict, only_from: str | None) -> bool:
    key = (tuple(fields), only_from is not None)
    sql = _SET_STATE.get(key)
    if sql is None:
        sets = ", ".join(f'"{k}" = ?' for k in fields)
        sql = _SET_STATE[key] = (f'UPDATE "message" SET {sets} WHERE id = ?'
                                 + (" AND state = ?" if only_from is not None else ""))
    params = (*fields.values(), msg_id) + ((only_from,) if only_from is not None else ())
    return run(store, sql, params) == 1


def receipt_error(final: str, state: str, error: str) -> str:
    """The error a receipt leaves on its text: none when delivered."""
    return "" if final == st.DELIVERED else f"receipt {state}: {error}".strip(": ")


def dlr_by_id(store, msg_id: int, final: str | None, state: str, error: str, now: float) -> int:
    """A receipt for the text this process submitted (its row id known): 1, or 0 when there
    is no such outgoing text (the caller then looks by the gateway's id). One UPDATE, a step of
    its own (see above); the row is read only when it changed nothing (a failed text stays
    failed: one failed part fails the text)."""
    if final is None:
        n = run(store, 'UPDATE "message" SET note = ?, updated_at = ? WHERE id = ? AND direction = \'out\'',
                (f"receipt: {state}", now, msg_id))
    else:
        n = run(store, 'UPDATE "message" SET state = ?, updated_at = ?, error = ? '
                       'WHERE id = ? AND direction = \'out\' AND state != ?',
                (final, now, receipt_error(final, state, error), msg_id, st.FAILED))
    if n:
        return 1
    return int(one(store, 'SELECT 1 FROM "message" WHERE id = ? AND direction = \'out\'', (msg_id,)) is not None)


# `transport_id <> ''`: the index holds only set ids (store/lean_pages.py), and saying so lets the
# planner use it (a bound id could be '' as far as it knows); an empty id names no text anyway
_DLR_NOTE_BY_GW = ('UPDATE "message" SET note = ?, updated_at = ? '
                   'WHERE transport_id = ? AND transport_id <> \'\' AND direction = \'out\' AND account IN (?, \'\')')
# a failed text stays failed (one failed part fails the text) and is left as it was, yet counted:
# every SET reads the row as it was before the statement
_DLR_FINAL_BY_GW = ('UPDATE "message" SET state = CASE WHEN state = \'failed\' THEN state ELSE ? END, '
                    'updated_at = CASE WHEN state = \'failed\' THEN updated_at ELSE ? END, '
                    'error = CASE WHEN state = \'failed\' THEN error ELSE ? END '
                    'WHERE transport_id = ? AND transport_id <> \'\' AND direction = \'out\' AND account IN (?, \'\')')


def dlr_by_gateway_id(store, key: str, account: str, final: str | None, state: str, error: str,
                      now: float) -> int:
    """A receipt matched by the gateway's id of a one-part text (its row id unknown: sent before
    a restart, or long ago) among this account's texts: how many texts it names (0: none). One
    UPDATE through the transport_id index, no read first."""
    if final is None:
        return run(store, _DLR_NOTE_BY_GW, (f"receipt: {state}", now, key, account))
    return run(store, _DLR_FINAL_BY_GW, (
        final, now, receipt_error(final, state, error), key, account))
