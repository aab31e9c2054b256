"""The reports' SQL: rows for core/report/compute.py, aggregated here where the volume is (a year of
calls is a million rows; a report returns a few hundred). Sync functions that never await.

Every query takes the same grouping key (`by`): the line, the owner of the caller's
conversation (agent), or a 15-minute slot (day/week: the slot is turned into a local day in
core/report/compute.py; every time zone's offset is a multiple of 15 minutes, so it is exact across
DST). Plain SQL that runs the same on SQLite and PostgreSQL.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import peewee as pw

from .db import MIGRATIONS, NEW_STORE_TABLES, Store

AUTOMATED = ("missed-call", "follow-up", "manual", "resend")   # not written by a person
WENT_OUT = ("sent", "delivered", "no-receipt", "unknown")      # handed to the gateway
SLOT_S = 900
LOOKBACK_S = 7 * 86400     # a response clock that started this long before the period still counts

# Why a missed call got no text: the first failing check in this order (decision.checks is
# json.dumps of [{"name", "ok", "detail"}], so the pattern is exact)
_FAILED = '%%"name": "%s", "ok": false%%'
SKIP_WHY = (
    ("opted-out", [_FAILED % "consent"]),
    ("cap", [_FAILED % "cross-line-cap", _FAILED % "global-hourly-cap"]),
    ("withheld", ['%"name": "caller", "ok": false, "detail": "anonymous%']),
    ("dedupe", [_FAILED % "dedupe", _FAILED % "duplicate"]),
    ("not-textable", [_FAILED % "caller", _FAILED % "allowlist"]),
    ("off", [_FAILED % "line", _FAILED % "line-enabled", _FAILED % "reason-enabled"]),
    ("paused", [_FAILED % "paused"]),
    ("quiet-hours", [_FAILED % "quiet-hours"]),
)
# why an automated text did not go (its note; core/policy/gate.py and Store.cancel_pending)
_NOTE_WHY = (("reached", "caller reached%"), ("opted-out", "%opted out%"), ("replied", "caller replied%"))
# held by quiet hours: when decided (the pipeline moved its due time) or at the outbox's gate
_HELD = ("""(d.checks LIKE '%"name": "quiet-hours", "ok": true, "detail": "held until%'"""
         """ OR m.note LIKE 'quiet hours%')""")
_KEYWORD = ("stop", "start", "help")     # a reply that is only a keyword is not a conversation


@dataclass
class ReportRows:
    calls: list = field(default_factory=list)        # (key, reason, missed, n)
    texts: list = field(default_factory=list)        # (key, state, note_why, held, n)
    skipped: list = field(default_factory=list)      # (key, why, n)
    missed_callers: list = field(default_factory=list)   # (caller, key, first_at, reached_at, replied_at)
    texted: list = field(default_factory=list)       # (peer, key, first_at, replied_at, opted_out_at)
    events: list = field(default_factory=list)       # (peer, at, kind, line, who): core/report/compute.py
    closes: list = field(default_factory=list)       # (peer, at): conversation set done
    extensions: dict = field(default_factory=dict)   # desk phone extension -> user name


def _slot(store: Store, col: str) -> str:
    # SQLite's CAST truncates (a floor for positive times); PostgreSQL's rounds, so FLOOR there
    return f"CAST({col} / {SLOT_S} AS INTEGER)" if store.is_sqlite else f"CAST(FLOOR({col} / {SLOT_S}) AS BIGINT)"


def _key(store: Store, by: str, alias: str, at: str, peer: str, line: str) -> tuple[str, str]:
    """(key expression, join) for rows of table `alias`."""
    if by == "agent":
        return "COALESCE(s.owner, '')", f"LEFT JOIN conversationstate s ON s.peer = {alias}.{peer}"
    if by in ("day", "week"):
        return _slot(store, f"{alias}.{at}"), ""
    if alias == "c":      # an answered call decides nothing, so names no line: its DID is the line
        return "CASE WHEN c.line <> '' THEN c.line ELSE c.called END", ""
    return f"{alias}.{line}", ""


SCAN_S = 60 * 86400


def _at(alias: str, since: float, until: float) -> str:
    """A period's time column. Over a long period, reading the whole table in order is about
    twice as fast as a range on the time index (a row lookup per entry), and SQLite cannot
    tell which: a unary + keeps it off the index (bench/report.py)."""
    return f"+{alias}.created_at" if until - since > SCAN_S else f"{alias}.created_at"


def _not_keyword(alias: str) -> str:
    return " AND ".join(f"{alias}.note NOT LIKE '{k}%'" for k in _KEYWORD)


def _in(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"     # our own constants only


def _rows(store: Store, sql: str, params) -> list[tuple]:
    if not store.is_sqlite:      # psycopg2 reads % as a placeholder's start
        sql = sql.replace("%", "%%").replace("?", "%s")
    return list(store.db.execute_sql(sql, params).fetchall())


def call_counts(store: Store, since: float, until: float, by: str) -> list[tuple]:
    key, join = _key(store, by, "c", "created_at", "caller", "line")
    return _rows(store, f"""
        SELECT {key}, c.reason, c.missed, COUNT(*) FROM "call" c {join}
        WHERE c.direction = 'inbound' AND {_at('c', since, until)} >= ? AND {_at('c', since, until)} < ?
        GROUP BY 1, 2, 3""", (since, until))


def text_counts(store: Store, since: float, until: float, by: str) -> list[tuple]:
    key, join = _key(store, by, "m", "created_at", "peer", "line")
    why = " ".join(f"WHEN m.note LIKE '{pat}' THEN '{name}'" for name, pat in _NOTE_WHY)
    return _rows(store, f"""
        SELECT {key}, m.state, CASE {why} ELSE '' END, CASE WHEN {_HELD} THEN 1 ELSE 0 END, COUNT(*)
        FROM message m LEFT JOIN decision d ON d.call_id = m.call_id {join}
        WHERE m.direction = 'out' AND m.kind IN {_in(AUTOMATED)}
          AND {_at('m', since, until)} >= ? AND {_at('m', since, until)} < ?
        GROUP BY 1, 2, 3, 4""", (since, until))


def skipped_counts(store: Store, since: float, until: float, by: str) -> list[tuple]:
    key, join = _key(store, by, "c", "created_at", "caller", "line")
    whens = " ".join("WHEN " + " OR ".join(f"d.checks LIKE '{p}'" for p in pats) + f" THEN '{name}'"
                     for name, pats in SKIP_WHY)
    return _rows(store, f"""
        SELECT {key}, CASE {whens} ELSE 'other' END, COUNT(*)
        FROM "call" c JOIN decision d ON d.call_id = c.id {join}
        WHERE c.direction = 'inbound' AND c.missed AND d.action = 'skip'
          AND {_at('c', since, until)} >= ? AND {_at('c', since, until)} < ?
        GROUP BY 1, 2""", (since, until))


def missed_callers(store: Store, since: float, until: float, by: str) -> list[tuple]:
    """One row per missed caller (and line): their first missed call in the period and when a
    person first reached them by phone or they first replied after it (None: not yet)."""
    key, join = _key(store, by, "c", "created_at", "caller", "line")
    rows = _rows(store, f"""
        SELECT g.caller, g.k, g.first_at,
          (SELECT MIN(a.created_at) FROM "call" a WHERE a.caller = g.caller AND a.direction = 'inbound'
             AND a.answered AND a.created_at > g.first_at AND a.created_at < ?),
          (SELECT MIN(b.created_at) FROM "call" b WHERE b.called = g.caller AND b.direction = 'outbound'
             AND b.answered AND b.created_at > g.first_at AND b.created_at < ?),
          (SELECT MIN(x.created_at) FROM callback x WHERE x.peer = g.caller AND x.state = 'connected'
             AND x.created_at > g.first_at AND x.created_at < ?),
          (SELECT MIN(r.created_at) FROM message r WHERE r.peer = g.caller AND r.direction = 'in'
             AND {_not_keyword('r')} AND r.created_at > g.first_at AND r.created_at < ?)
        FROM (SELECT c.caller AS caller, {key} AS k, MIN(c.created_at) AS first_at FROM "call" c {join}
              WHERE c.direction = 'inbound' AND c.missed AND c.reason <> 'anonymous' AND c.caller <> ''
                AND {_at('c', since, until)} >= ? AND {_at('c', since, until)} < ?
              GROUP BY 1, 2) g""", (until, until, until, until, since, until))
    out = {}
    for caller, k, first, a, b, x, r in rows:      # a caller missed on two lines: the first line
        reached = min((t for t in (a, b, x) if t is not None), default=None)
        if caller not in out or first < out[caller][2]:
            out[caller] = (caller, k, first, reached, r)
    return list(out.values())


def texted_callers(store: Store, since: float, until: float, by: str) -> list[tuple]:
    """One row per caller an automated text went out to: the first such text in the period,
    their first reply after it and their opt-out after it. (+o.at: look opt-outs up by number,
    never by time, which SQLite otherwise picks and then scans every opt-out per caller.)"""
    key, join = _key(store, by, "m", "created_at", "peer", "line")
    rows = _rows(store, f"""
        SELECT g.peer, g.k, g.first_at,
          (SELECT MIN(r.created_at) FROM message r WHERE r.peer = g.peer AND r.direction = 'in'
             AND {_not_keyword('r')} AND r.created_at > g.first_at AND r.created_at < ?),
          (SELECT MIN(o.at) FROM consent o WHERE o.number = g.peer AND o.kind = 'opt-out'
             AND +o.at > g.first_at AND +o.at < ?)
        FROM (SELECT m.peer AS peer, {key} AS k, MIN(m.created_at) AS first_at FROM message m {join}
              WHERE m.direction = 'out' AND m.kind IN {_in(AUTOMATED)} AND m.state IN {_in(WENT_OUT)}
                AND {_at('m', since, until)} >= ? AND {_at('m', since, until)} < ?
              GROUP BY 1, 2) g""", (until, until, since, until))
    out = {}
    for peer, k, first, replied, opted in rows:
        if peer not in out or first < out[peer][2]:
            out[peer] = (peer, k, first, replied, opted)
    return list(out.values())


# every kind of row that starts (a missed call, a reply) or stops (an agent's text, a connected
# call back, a call in which a person spoke with the caller) a response clock:
# (kind, alias, table, the caller's column, the row's line and who, which rows)
CLOCK_ROWS = (
    ("missed", "c", "call", "caller", "c.line, ''",
     "c.direction = 'inbound' AND c.missed AND c.reason <> 'anonymous'"),
    ("reply", "r", "message", "peer", "r.line, ''", f"r.direction = 'in' AND {_not_keyword('r')}"),
    ("text", "m", "message", "peer", "m.line, m.note", "m.direction = 'out' AND m.kind = 'agent' AND m.state <> 'cancelled'"),
    ("callback", "x", "callback", "peer", "'', x.endpoint", "x.state = 'connected'"),
    ("answered", "a", "call", "caller", "a.line, ''", "a.direction = 'inbound' AND a.answered"),
    ("call", "b", "call", "called", "'', b.caller", "b.direction = 'outbound' AND b.answered"),
)


def clock_rows_sql(among, at, named_callers: bool = False) -> str:
    """(peer, at, kind, line, who) of every kind of CLOCK_ROWS, UNION ALL, each kind's rows in
    the window at(alias) >= ? AND at(alias) < ? (two parameters a kind, in CLOCK_ROWS' order).
    among(kind): a set of callers (a CTE with a column peer) that kind's rows are read for, or
    None (all of them). named_callers: no missed call from an empty number."""
    out = []
    for kind, a, table, peer, cols, where in CLOCK_ROWS:
        cte = among(kind)
        src = f'{cte} JOIN "{table}" {a} ON {a}.{peer} = {cte}.peer' if cte else f'"{table}" {a}'
        named = f" AND {a}.{peer} <> ''" if named_callers and kind == "missed" else ""
        out.append(f"SELECT {a}.{peer}, {a}.created_at, '{kind}', {cols} FROM {src}\n"
                   f"        WHERE {where}{named} AND {at(a)} >= ? AND {at(a)} < ?")
    return "\n        UNION ALL\n        ".join(out)


def response_events(store: Store, since: float, until: float) -> tuple[list, list, dict]:
    """What starts and stops the response clock, per caller, from a week before the period
    (CLOCK_ROWS). who: the agent's name, an extension, or ''."""
    lo = since - LOOKBACK_S
    # the callers whose clock may run (a missed call or a reply in the window), computed once;
    # answered calls are many, so only theirs are read (by the number's index); the other kinds
    # by the period's time column (_at)
    ev = _rows(store, f"""
        WITH active AS MATERIALIZED (
          SELECT c0.caller AS peer FROM "call" c0 WHERE c0.direction = 'inbound' AND c0.missed
            AND {_at('c0', lo, until)} >= ? AND {_at('c0', lo, until)} < ?
          UNION SELECT r0.peer FROM message r0 WHERE r0.direction = 'in'
            AND {_at('r0', lo, until)} >= ? AND {_at('r0', lo, until)} < ?)
        {clock_rows_sql(lambda kind: "active" if kind in ("answered", "call") else None,
                        lambda a: _at(a, lo, until) if a in ("c", "r", "m") else f"{a}.created_at",
                        named_callers=True)}""",
                (lo, until) * 8)
    closes = _rows(store, "SELECT peer, set_at FROM conversationstate WHERE state = 'done' AND set_at < ?",
                   (until,))
    ext = {e: n for n, e in _rows(store, "SELECT name, extension FROM webuser WHERE extension <> ''", ())}
    return ev, closes, ext


def report_rows(store: Store, since: float, until: float, by: str) -> ReportRows:
    """Everything a report needs, in one read transaction (one consistent view)."""
    with store.db.atomic():
        ev, closes, ext = response_events(store, since, until)
        return ReportRows(calls=call_counts(store, since, until, by), texts=text_counts(store, since, until, by),
                          skipped=skipped_counts(store, since, until, by),
                          missed_callers=missed_callers(store, since, until, by),
                          texted=texted_callers(store, since, until, by),
                          events=ev, closes=closes, extensions=ext)


# ---- indexes the reports' lookups use (migration 19) ---------------------------------------
INDEXES = (
    ("call_caller_created", "call", "caller, created_at"),
    ("call_called_created", "call", "called, created_at"),
    ("call_created_dir", "call", "created_at, direction"),
    ("message_peer_created", "message", "peer, created_at"),
    ("message_created_dir", "message", "created_at, direction"),
    ("callback_peer_created", "callback", "peer, created_at"),
)


def create_indexes(db: pw.Database) -> None:
    for name, table, cols in INDEXES:
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS {name} ON "{table}" ({cols})')


def _v19(db):
    """Reports: each missed caller's later calls, call backs and replies are looked up by
    number and time; a period's rows by time."""
    create_indexes(db)


MIGRATIONS.append((19, _v19))
NEW_STORE_TABLES.append(create_indexes)
