"""The inbox's list, kept as one summary row per caller number (table `inboxconv`).

Why a summary row and not clever queries: the Needs-reply page asks "open, unassigned, waiting,
oldest waiting first" over every caller, and "waiting" compares a caller's last call or text
with the last answer — an aggregate over all of that caller's calls and messages. No index
can order 100k callers by an aggregate; a row per caller holding the aggregates can, so each
view is an index range read in order and stops at the page's end, and each live count is a
count over one index range.

Why triggers keep it: the rows it sums are written in many places (the pipeline, the outbox,
the SMPP receiver, the inbox, other boxes' services on a shared PostgreSQL, `purge`). A
trigger on call, message and conversationstate keeps the one caller's row in the same
transaction as the write, so no writer can forget it and it can never disagree with the rows
it sums. An insert (nearly every write) adds to the row: a count up by one, a time that only
grows, so its cost does not grow with the caller's history (a frequent caller's thousands of
texts). An update or a delete recomputes the caller's row from that caller's rows (indexed by
caller/peer), since it can take a count or a time back, and drops the row when nothing of the
caller counts any more. The triggers make exactly the rows rebuild() makes: none for a caller
with no number (a withheld caller ID) or for a call neither missed nor answered.

`status` is the state as the page shows it (a done or snoozed conversation is open again once
the caller calls or writes after it was set). A snooze with an end time stays `snoozed` here;
the queries treat it as open from `until` on (the database knows no app clock).
"""
from __future__ import annotations

import peewee as pw

from .db import Base

OPEN, SNOOZED, DONE = "open", "snoozed", "done"
# 'snoozed' written into the SQL where a snooze's end is asked: the planner matches the partial
# index inboxconv_snoozed_until (store/lean_pages.py) only to the query's own text, not a bound value
_SNOOZED_SQL = pw.SQL("'snoozed'")


class InboxConv(Base):
    peer = pw.CharField(unique=True)
    line = pw.CharField(default="")            # the line of the caller's latest missed call
    first_in = pw.DoubleField(null=True)       # first missed call or reply (None: not a conversation)
    last_in = pw.DoubleField(default=0.0)
    handled = pw.DoubleField(default=0.0)      # last agent text or answered inbound call
    missed = pw.IntegerField(default=0)
    replies = pw.IntegerField(default=0)
    state = pw.CharField(default="")           # conversationstate's copy: as a person set it
    until = pw.DoubleField(null=True)
    owner = pw.CharField(default="")
    set_at = pw.DoubleField(default=0.0)
    status = pw.CharField(default="")          # open | snoozed | done ('' = no call or reply)
    waiting = pw.IntegerField(default=0)       # 1: the caller's last word is unanswered
    since = pw.DoubleField(default=0.0)        # waiting since (what Needs reply sorts by)

    class Meta:
        indexes = ((("status", "owner", "waiting", "since", "peer"), False),
                   (("status", "last_in", "peer"), False))
        # (until) WHERE status = 'snoozed': store/lean_pages.py (migration 32)


class InboxCount(Base):
    """How many summary rows have each (status, owner, waiting): the live counts read these few
    rows instead of counting 100k index entries on every page and every live refresh. Kept by
    a trigger on inboxconv. On a shared PostgreSQL two writers of the same bucket queue for a
    moment on its row: the inbox's write rate (calls and texts) is far below where that shows."""
    status = pw.CharField()
    owner = pw.CharField()
    waiting = pw.IntegerField()
    n = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("status", "owner", "waiting"), True),)


# ---- the recompute, as SQL both databases run ------------------------------------------------------
def _in_rows(p: str) -> str:
    """(created_at) of a caller's missed inbound calls and replies."""
    return (f'SELECT "created_at" AS x FROM "call" WHERE "caller" = {p} AND "direction" = \'inbound\' AND "missed" '
            f'UNION ALL SELECT "created_at" FROM "message" WHERE "peer" = {p} AND "direction" = \'in\'')


def _refresh(p: str, pg: bool) -> list[str]:
    """Statements that recompute the row of caller `p` (an SQL expression) from scratch."""
    state = lambda col, dflt: f'COALESCE((SELECT "{col}" FROM "conversationstate" WHERE "peer" = {p}), {dflt})'  # noqa: E731
    greatest = "GREATEST" if pg else "MAX"
    # no number (a withheld caller ID): no conversation, as the rebuild has it
    insert = (f'INSERT INTO "inboxconv" ("peer", "line", "last_in", "handled", "missed", "replies", "state", "owner", '
              f'"set_at", "status", "waiting", "since") SELECT {p}, \'\', 0, 0, 0, 0, \'\', \'\', 0, \'\', 0, 0 '
              f'WHERE {p} <> \'\'')
    out = [insert + ' ON CONFLICT ("peer") DO NOTHING' if pg else insert.replace("INSERT", "INSERT OR IGNORE", 1)]
    if pg:
        # wait for a concurrent writer of the same caller (another box's service), so that the
        # sums below, read after it committed, include its row
        out.append(f'PERFORM 1 FROM "inboxconv" WHERE "peer" = {p} FOR UPDATE')
    out.append(
        f'UPDATE "inboxconv" SET '
        f'"missed" = (SELECT COUNT(*) FROM "call" WHERE "caller" = {p} AND "direction" = \'inbound\' AND "missed"), '
        f'"line" = COALESCE((SELECT "line" FROM "call" WHERE "caller" = {p} AND "direction" = \'inbound\' AND "missed" '
        f'ORDER BY "created_at" DESC, "id" DESC LIMIT 1), \'\'), '
        f'"replies" = (SELECT COUNT(*) FROM "message" WHERE "peer" = {p} AND "direction" = \'in\'), '
        f'"first_in" = (SELECT MIN(x) FROM ({_in_rows(p)}) AS t), '
        f'"last_in" = COALESCE((SELECT MAX(x) FROM ({_in_rows(p)}) AS t), 0), '
        f'"handled" = COALESCE((SELECT MAX(x) FROM (SELECT "created_at" AS x FROM "message" WHERE "peer" = {p} '
        f'AND "direction" = \'out\' AND "kind" = \'agent\' UNION ALL SELECT "created_at" FROM "call" '
        f'WHERE "caller" = {p} AND "direction" = \'inbound\' AND "answered") AS t), 0), '
        f'"state" = {state("state", "%s")}, "owner" = {state("owner", "%s")}, "set_at" = {state("set_at", "0")}, '
        f'"until" = (SELECT "until" FROM "conversationstate" WHERE "peer" = {p}) '
        f'WHERE "peer" = {p}'.replace("%s", "''"))
    out.append(_derive(f'"peer" = {p}', greatest))
    out.append(f'DELETE FROM "inboxconv" WHERE "peer" = {p} AND {_EMPTY}')
    return out


# a row whose caller has nothing left that the rebuild makes a row from (an update or a delete
# took the last of it): the rebuild has no such row, so the triggers drop it, and its count
_EMPTY = ('"first_in" IS NULL AND NOT EXISTS (SELECT 1 FROM "call" WHERE "caller" = "inboxconv"."peer" '
          'AND "direction" = \'inbound\' AND "answered") AND NOT EXISTS (SELECT 1 FROM "message" '
          'WHERE "peer" = "inboxconv"."peer" AND "direction" = \'out\' AND "kind" = \'agent\') '
          'AND NOT EXISTS (SELECT 1 FROM "conversationstate" WHERE "peer" = "inboxconv"."peer")')


def _derive(where: str, greatest: str) -> str:
    """The columns the views read, from the sums (a second statement: an UPDATE's SET sees the
    row as it was before that UPDATE)."""
    return f'UPDATE "inboxconv" SET {derived(greatest)} WHERE {where}'


def derived(greatest: str, col=lambda name: f'"{name}"') -> str:
    """_derive's SET list; col(name): where each sum or state is read (store/purge_inbox.py:
    the new sums from its own table)."""
    first, last, handled, set_at, state = (col(n) for n in ("first_in", "last_in", "handled", "set_at", "state"))
    return (f'"waiting" = CASE WHEN {last} > {handled} THEN 1 ELSE 0 END, '
            # waiting since the first call or text nobody answered yet; when someone answered or
            # closed it in between, since the latest
            f'"since" = CASE WHEN {first} IS NULL THEN 0 WHEN {greatest}({handled}, {set_at}) < {first} '
            f'THEN {first} ELSE {last} END, '
            f'"status" = CASE WHEN {first} IS NULL THEN \'\' '
            f'WHEN {state} = \'done\' AND {last} <= {set_at} THEN \'done\' '
            f'WHEN {state} = \'snoozed\' AND {last} <= {set_at} THEN \'snoozed\' ELSE \'open\' END')


def _add(table: str, r: str, pg: bool) -> list[str]:
    """Statements that add one inserted row `r` (NEW) of `table` to its caller's row: O(1) however
    long the caller's history (counts go up by one, times only grow), where _refresh re-reads all of
    it. Equal to a _refresh for any insert (the integration test holds them to a rebuild). An update
    or a delete can lower a count or a time, so those still recompute."""
    key = dict((t, k) for t, k, *_ in _SOURCES)[table]
    p, x = f'{r}."{key}"', f'{r}."created_at"'
    greatest = "GREATEST" if pg else "MAX"
    insert = (f'INSERT INTO "inboxconv" ("peer", "line", "last_in", "handled", "missed", "replies", "state", "owner", '
              f'"set_at", "status", "waiting", "since") VALUES ({p}, \'\', 0, 0, 0, 0, \'\', \'\', 0, \'\', 0, 0)')
    out = [insert + ' ON CONFLICT ("peer") DO NOTHING' if pg else insert.replace("INSERT", "INSERT OR IGNORE", 1)]
    # the UPDATE below takes the row's lock and, on PostgreSQL, re-reads it after a concurrent
    # writer of the same caller committed: the increments add to that writer's result

    def came_in(is_in: str) -> list[str]:
        # SET reads the row as it was: first_in IS NULL means no call or reply counted yet
        fresh = f'({x} IS NOT NULL AND ("first_in" IS NULL OR {x} > "last_in"))'
        return [f'"first_in" = CASE WHEN {is_in} AND {x} IS NOT NULL AND ("first_in" IS NULL OR {x} < "first_in") '
                f'THEN {x} ELSE "first_in" END',
                f'"last_in" = CASE WHEN {is_in} AND {fresh} THEN {x} ELSE "last_in" END']

    def answered(is_ans: str) -> str:
        return f'"handled" = CASE WHEN {is_ans} AND {x} > "handled" THEN {x} ELSE "handled" END'

    if table == "call":
        missed = f'({r}."direction" = \'inbound\' AND {r}."missed")'
        sets = [f'"missed" = "missed" + CASE WHEN {missed} THEN 1 ELSE 0 END',
                # the latest missed call's line: the new call's when it is the latest of the
                # caller's calls and replies (the usual case: calls arrive in time order); a call
                # stored late looks the latest missed call up (one caller's missed calls)
                f'"line" = CASE WHEN NOT {missed} THEN "line" '
                f'WHEN {x} IS NOT NULL AND ("first_in" IS NULL OR {x} >= "last_in") THEN COALESCE({r}."line", \'\') '
                f'ELSE COALESCE((SELECT "line" FROM "call" WHERE "caller" = {p} AND "direction" = \'inbound\' '
                f'AND "missed" ORDER BY "created_at" DESC, "id" DESC LIMIT 1), \'\') END',
                *came_in(missed),
                answered(f'({r}."direction" = \'inbound\' AND {r}."answered")')]
    elif table == "message":
        is_in = f'{r}."direction" = \'in\''
        sets = [f'"replies" = "replies" + CASE WHEN {is_in} THEN 1 ELSE 0 END', *came_in(is_in),
                answered(f'({r}."direction" = \'out\' AND {r}."kind" = \'agent\')')]
    else:
        sets = [f'"state" = COALESCE({r}."state", \'\')', f'"owner" = COALESCE({r}."owner", \'\')',
                f'"set_at" = COALESCE({r}."set_at", 0)', f'"until" = {r}."until"']
    out.append(f'UPDATE "inboxconv" SET {", ".join(sets)} WHERE "peer" = {p}')
    out.append(_derive(f'"peer" = {p}', greatest))
    return out


# a purge (store/purge.py) puts a row here inside its own transaction: the delete triggers of
# call and message then leave the summary to it (it remakes the rows it touched once, where
# each deleted row recounted its caller's history); no other transaction ever sees the row
HOLD = "inboxhold"
_HOLD_TABLE = f'CREATE TABLE IF NOT EXISTS "{HOLD}" ("at" REAL NOT NULL)'
_HELD = f'EXISTS (SELECT 1 FROM "{HOLD}")'
_HELD_TABLES = ("call", "message")

# what each source table's trigger watches: (table, key column, columns that matter, rows that matter)
_SOURCES = (
    # an inbound call neither missed nor answered changes nothing in its caller's row: it makes
    # none either (the rebuild makes none for it)
    ("call", "caller", ("caller", "direction", "missed", "answered", "created_at", "line"),
     "({r}.\"direction\" = 'inbound' AND ({r}.\"missed\" OR {r}.\"answered\"))"),
    ("message", "peer", ("peer", "direction", "kind", "created_at"),
     "({r}.\"direction\" = 'in' OR ({r}.\"direction\" = 'out' AND {r}.\"kind\" = 'agent'))"),
    ("conversationstate", "peer", ("peer", "state", "until", "owner", "set_at"), "TRUE"),
)


def _sqlite_triggers() -> list[str]:
    out = []
    for table, key, cols, cond in _SOURCES:
        for event, rows in (("INSERT", ("NEW",)), ("DELETE", ("OLD",)),
                            (f'UPDATE OF {", ".join(cols)}', ("OLD", "NEW"))):
            name = f"inbox_{table}_{event.split()[0].lower()}"
            when = " OR ".join(f'({cond.format(r=r)} AND {r}."{key}" <> \'\')'.replace("TRUE", "1") for r in rows)
            if event == "DELETE" and table in _HELD_TABLES:
                when += f" AND NOT {_HELD}"
            if event == "INSERT":      # one upsert: the row written once (store/inbox_upsert.py)
                from .inbox_upsert import upsert
                body = upsert(table, key) + "; "
            else:
                body = "".join(s + "; " for r in rows for s in _refresh(f'{r}."{key}"', pg=False))
            out.append(f'CREATE TRIGGER IF NOT EXISTS "{name}" AFTER {event} ON "{table}" '
                       f'WHEN {when} BEGIN {body}END')
    return out


def _pg_triggers() -> list[str]:
    body = "; ".join(_refresh("p", pg=True))
    out = [f"CREATE OR REPLACE FUNCTION inbox_refresh(p text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
           f"IF p IS NULL OR p = '' THEN RETURN; END IF; {body}; END $$"]
    for table, key, cols, cond in _SOURCES:
        held = f"IF TG_OP = 'DELETE' AND {_HELD} THEN RETURN NULL; END IF; " if table in _HELD_TABLES else ""
        out.append(
            f"CREATE OR REPLACE FUNCTION inbox_on_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {held}"
            f"IF TG_OP = 'INSERT' THEN IF {cond.format(r='NEW')} AND NEW.\"{key}\" <> '' THEN "
            f"{'; '.join(_add(table, 'NEW', pg=True))}; END IF; RETURN NULL; END IF; "
            f"IF TG_OP <> 'INSERT' AND {cond.format(r='OLD')} THEN PERFORM inbox_refresh(OLD.\"{key}\"); END IF; "
            f"IF TG_OP <> 'DELETE' AND {cond.format(r='NEW')} THEN PERFORM inbox_refresh(NEW.\"{key}\"); END IF; "
            f"RETURN NULL; END $$")
        out.append(f'DROP TRIGGER IF EXISTS inbox_{table} ON "{table}"')
        out.append(f'CREATE TRIGGER inbox_{table} AFTER INSERT OR DELETE OR UPDATE OF {", ".join(cols)} '
                   f'ON "{table}" FOR EACH ROW EXECUTE PROCEDURE inbox_on_{table}()')
    return out


def _bump(r: str, delta: str, pg: bool) -> list[str]:
    key = f'"status" = {r}."status" AND "owner" = {r}."owner" AND "waiting" = {r}."waiting"'
    if not pg:
        # one upsert: a new bucket starts at the change itself, a known one adds it (was an
        # INSERT of 0 and an UPDATE: two trigger steps per count moved, on every new caller)
        return [f'INSERT INTO "inboxcount" ("status", "owner", "waiting", "n") '
                f'VALUES ({r}."status", {r}."owner", {r}."waiting", 0 {delta}) '
                f'ON CONFLICT ("status", "owner", "waiting") DO UPDATE SET "n" = "n" {delta}']
    insert = (f'INSERT INTO "inboxcount" ("status", "owner", "waiting", "n") '
              f'VALUES ({r}."status", {r}."owner", {r}."waiting", 0)')
    # ON CONFLICT DO NOTHING on SQLite too: fired from an upsert (store/inbox_upsert.py), an
    # INSERT OR IGNORE takes the upsert's conflict policy (abort) instead of its own
    return [insert + ' ON CONFLICT ("status", "owner", "waiting") DO NOTHING',
            f'UPDATE "inboxcount" SET "n" = "n" {delta} WHERE {key}']


_COUNTED = ("status", "owner", "waiting")


def _count_triggers(pg: bool) -> list[str]:
    if pg:
        same = " AND ".join(f'OLD."{c}" IS NOT DISTINCT FROM NEW."{c}"' for c in _COUNTED)
        return [
            "CREATE OR REPLACE FUNCTION inbox_on_inboxconv() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP = 'UPDATE' AND {same} THEN RETURN NULL; END IF; "
            f"IF TG_OP <> 'INSERT' THEN {'; '.join(_bump('OLD', '- 1', True))}; END IF; "
            f"IF TG_OP <> 'DELETE' THEN {'; '.join(_bump('NEW', '+ 1', True))}; END IF; "
            "RETURN NULL; END $$",
            'DROP TRIGGER IF EXISTS inbox_inboxconv ON "inboxconv"',
            f'CREATE TRIGGER inbox_inboxconv AFTER INSERT OR DELETE OR UPDATE OF {", ".join(_COUNTED)} '
            'ON "inboxconv" FOR EACH ROW EXECUTE PROCEDURE inbox_on_inboxconv()']
    changed = " OR ".join(f'OLD."{c}" IS NOT NEW."{c}"' for c in _COUNTED)
    body = lambda *parts: "".join(x + "; " for p in parts for x in p)  # noqa: E731
    return [
        f'CREATE TRIGGER IF NOT EXISTS "inboxcount_insert" AFTER INSERT ON "inboxconv" BEGIN '
        f'{body(_bump("NEW", "+ 1", False))}END',
        f'CREATE TRIGGER IF NOT EXISTS "inboxcount_delete" AFTER DELETE ON "inboxconv" BEGIN '
        f'{body(_bump("OLD", "- 1", False))}END',
        f'CREATE TRIGGER IF NOT EXISTS "inboxcount_update" AFTER UPDATE OF {", ".join(_COUNTED)} ON "inboxconv" '
        f'WHEN {changed} BEGIN {body(_bump("OLD", "- 1", False), _bump("NEW", "+ 1", False))}END']


def _drop_count_triggers(db) -> None:
    if _is_pg(db):
        db.execute_sql('DROP TRIGGER IF EXISTS inbox_inboxconv ON "inboxconv"')
    else:
        for ev in ("insert", "delete", "update"):
            db.execute_sql(f'DROP TRIGGER IF EXISTS "inboxcount_{ev}"')


def remake_count_triggers(db) -> None:
    """Migration 31 (store/lean_writes.py): SQLite keeps a trigger of the same name as it was."""
    _drop_count_triggers(db)
    for sql in _count_triggers(_is_pg(db)):
        db.execute_sql(sql)


def _is_pg(db) -> bool:
    return not isinstance(db, pw.SqliteDatabase)


def create_triggers(db) -> None:
    pg = _is_pg(db)
    db.execute_sql(_HOLD_TABLE)         # the delete triggers read it
    for sql in (_pg_triggers() if pg else _sqlite_triggers()) + _count_triggers(pg):
        db.execute_sql(sql)


def drop_triggers(db) -> None:
    """For a bulk load (bench/inbox.py): load, rebuild(), create_triggers()."""
    _drop_count_triggers(db)
    for table, *_ in _SOURCES:
        if _is_pg(db):
            db.execute_sql(f'DROP TRIGGER IF EXISTS inbox_{table} ON "{table}"')
        else:
            for ev in ("insert", "delete", "update"):
                db.execute_sql(f'DROP TRIGGER IF EXISTS "inbox_{table}_{ev}"')


def rebuild(db) -> None:
    """Every row from scratch, set-wise: a store made before this table, or after a bulk load.
    The counts are made once at the end, not row by row."""
    greatest = "GREATEST" if _is_pg(db) else "MAX"
    _drop_count_triggers(db)
    stmts = [
        'DELETE FROM "inboxconv"',
        'INSERT INTO "inboxconv" ("peer", "line", "first_in", "last_in", "handled", "missed", "replies", "state", '
        '"owner", "set_at", "status", "waiting", "since") '
        'SELECT "peer", \'\', MIN(fin), COALESCE(MAX(fin), 0), MAX(h), SUM(m), SUM(r), \'\', \'\', 0, \'\', 0, 0 FROM ('
        'SELECT "caller" AS "peer", 1 AS m, 0 AS r, "created_at" AS fin, 0 AS h FROM "call" '
        'WHERE "direction" = \'inbound\' AND "missed" '
        'UNION ALL SELECT "caller", 0, 0, NULL, "created_at" FROM "call" WHERE "direction" = \'inbound\' AND "answered" '
        'UNION ALL SELECT "peer", 0, 1, "created_at", 0 FROM "message" WHERE "direction" = \'in\' '
        'UNION ALL SELECT "peer", 0, 0, NULL, "created_at" FROM "message" WHERE "direction" = \'out\' '
        'AND "kind" = \'agent\') AS t WHERE "peer" <> \'\' GROUP BY "peer"',
        'UPDATE "inboxconv" SET "line" = COALESCE((SELECT "line" FROM "call" WHERE "caller" = "inboxconv"."peer" '
        'AND "direction" = \'inbound\' AND "missed" ORDER BY "created_at" DESC, "id" DESC LIMIT 1), \'\') '
        'WHERE "missed" > 0',
        'INSERT INTO "inboxconv" ("peer", "line", "last_in", "handled", "missed", "replies", "state", "owner", '
        '"set_at", "status", "waiting", "since") SELECT "peer", \'\', 0, 0, 0, 0, \'\', \'\', 0, \'\', 0, 0 '
        'FROM "conversationstate" WHERE "peer" <> \'\' AND "peer" NOT IN (SELECT "peer" FROM "inboxconv")',
        'UPDATE "inboxconv" SET "state" = s."state", "owner" = s."owner", "set_at" = s."set_at", "until" = s."until" '
        'FROM "conversationstate" AS s WHERE s."peer" = "inboxconv"."peer"',
        _derive("TRUE" if _is_pg(db) else "1", greatest),
        'DELETE FROM "inboxcount"',
        'INSERT INTO "inboxcount" ("status", "owner", "waiting", "n") SELECT "status", "owner", "waiting", COUNT(*) '
        'FROM "inboxconv" GROUP BY "status", "owner", "waiting"',
    ]
    for sql in stmts:
        db.execute_sql(sql)
    for sql in _count_triggers(_is_pg(db)):
        db.execute_sql(sql)


def create_tables(db) -> None:
    """Migration v18 and a new store: the table, its triggers, its rows from what is there."""
    db.create_tables([InboxConv, InboxCount], safe=True)
    # a timeline finds a caller's calls by any of their numbers (Store.calls_for): each term of
    # that OR needs an index, or one timeline reads every call ("called": the reports'
    # call_called_created, store/lean_writes.py)
    from .lean_writes import CALLER_RAW      # only the calls whose raw number is not their E.164
    db.execute_sql(CALLER_RAW)
    # ... and each call's texts with their follow-ups and resends (message.ref): without it, one
    # call's texts read every message
    db.execute_sql('CREATE INDEX IF NOT EXISTS "message_ref" ON "message" ("ref") WHERE "ref" IS NOT NULL')
    create_triggers(db)
    rebuild(db)


# ---- the views --------------------------------------------------------------------------------------
def _open(now: float):
    """Open as the page shows it: open, or snoozed until a time that has come."""
    return (InboxConv.status == OPEN) | ((InboxConv.status == _SNOOZED_SQL) & (InboxConv.until <= now))


def _where(name: str, now: float, me: str):
    """The rows of one view (a list of alternatives, each one index range)."""
    if name == "needs-reply":
        base = (InboxConv.owner == "") & (InboxConv.waiting == 1)
    elif name == "mine":
        base = InboxConv.owner == me
    elif name == "snoozed":
        return [(InboxConv.status == _SNOOZED_SQL) & (InboxConv.until.is_null() | (InboxConv.until > now))]
    elif name == "done":
        return [InboxConv.status == DONE]
    else:
        base = None
    alts = [InboxConv.status == OPEN, (InboxConv.status == _SNOOZED_SQL) & (InboxConv.until <= now)]
    return [a & base if base is not None else a for a in alts]


def rows(name: str, now: float, search: str = "", me: str = "", limit: int = 100) -> list[dict]:
    """needs-reply: oldest waiting first; every other view newest first. Each alternative reads
    its index in order and stops after `limit` rows; the two are merged here."""
    if name == "mine" and not me:
        return []
    needs = name == "needs-reply"
    order = ((InboxConv.since, InboxConv.peer) if needs else (InboxConv.last_in.desc(), InboxConv.peer.desc()))
    digits = "".join(ch for ch in search if ch.isdigit())
    if search and not digits:
        return []
    found = []
    for cond in _where(name, now, me):
        if digits:
            cond &= InboxConv.peer.contains(digits)
        found += list(InboxConv.select().where(cond).order_by(*order).limit(limit).dicts())
    if needs:
        found.sort(key=lambda c: (c["since"], c["peer"]))
    else:
        found.sort(key=lambda c: (c["last_in"], c["peer"]), reverse=True)
    return [_shown(c, now) for c in found[:limit]]


def listing(name: str, now: float, owner: str | None = None, after: tuple[float, str] | None = None,
            limit: int = 100) -> list[dict]:
    """The API's pages: a view ('all': every conversation), newest first then by number,
    after a cursor (last_in, peer), optionally one owner's only. Up to `limit` rows."""
    # 'all' as one index range per status (status != '' read and sorted every row)
    conds = [InboxConv.status == s for s in (OPEN, SNOOZED, DONE)] if name == "all" else _where(name, now, owner or "")
    found = []
    for cond in conds:
        if owner is not None:
            cond &= InboxConv.owner == owner
        if after is not None:
            cond &= (InboxConv.last_in < after[0]) | ((InboxConv.last_in == after[0]) & (InboxConv.peer > after[1]))
        found += list(InboxConv.select().where(cond).order_by(InboxConv.last_in.desc(), InboxConv.peer)
                      .limit(limit).dicts())
    found.sort(key=lambda c: (-c["last_in"], c["peer"]))
    return [_shown(c, now) for c in found[:limit]]


def one(peer: str, now: float) -> dict | None:
    c = InboxConv.select().where((InboxConv.peer == peer) & (InboxConv.status != "")).dicts().first()
    return _shown(c, now) if c else None


def _shown(c: dict, now: float) -> dict:
    """A row as the pages use it: the state they show, until only while snoozed."""
    if c["status"] == SNOOZED and c["until"] is not None and c["until"] <= now:
        c["status"] = OPEN
    c["state"], c["waiting"] = c.pop("status"), bool(c["waiting"])
    if c["state"] != SNOOZED:
        c["until"] = None
    return c


def counts(views, now: float, me: str = "") -> dict[str, int]:
    """Each view's size from the few bucket rows, corrected by the snoozes whose time has come
    (an index range over snoozed rows with an end: a handful)."""
    n = {v: 0 for v in views}
    late = list(InboxConv.select(InboxConv.owner, InboxConv.waiting, pw.fn.COUNT(InboxConv.id))
                .where((InboxConv.status == _SNOOZED_SQL) & (InboxConv.until <= now))
                .group_by(InboxConv.owner, InboxConv.waiting).tuples())
    rows = list(InboxCount.select(InboxCount.status, InboxCount.owner, InboxCount.waiting, InboxCount.n)
                .where(InboxCount.n != 0).tuples())
    rows += [(OPEN, o, w, k) for o, w, k in late] + [(SNOOZED, o, w, -k) for o, w, k in late]
    for status, owner, waiting, k in rows:
        if status == OPEN:
            n["open"] = n.get("open", 0) + k
            if not owner and waiting:
                n["needs-reply"] = n.get("needs-reply", 0) + k
            if me and owner == me:
                n["mine"] = n.get("mine", 0) + k
        elif status in (SNOOZED, DONE):
            n[status] = n.get(status, 0) + k
    return {v: n.get(v, 0) for v in views}
