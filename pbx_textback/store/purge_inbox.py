"""The inbox summary rows (store/inbox.py) of the callers a purge's slice touched, made right
in the slice's transaction, set-wise, once per slice.

Before the deletes, the callers the slice touches go into a temporary table with their summary
row and how many of their missed calls, replies and answers (agent texts, answered calls) go.
After them, that table takes each caller's new times, each the first or last of the caller's
rows by an index (caller, created_at) / (peer, created_at), looked up only where rows of its
kind went and some are left: a few index steps however long the caller's history, where a
recount read all of it in each slice that touched the caller. Then each summary row is written
once: its new counts, times and what the views read from them, or dropped when nothing of the
caller is left to sum, as the triggers drop it. The count triggers (inboxcount) stay on.
"""
from __future__ import annotations

from .inbox import derived

GONE = "purge_gone"          # this connection's temporary table: the touched callers

_IN_RANGE = '"created_at" <= ? AND "created_at" < ?'
_MISSED = '"direction" = \'inbound\' AND "missed"'
_ANSWERED = '"direction" = \'inbound\' AND "answered"'


def temp_table(pg: bool) -> str:
    text, real = ("text", "double precision") if pg else ("TEXT", "REAL")
    return (f'CREATE TEMP TABLE IF NOT EXISTS "{GONE}" ("peer" {text} PRIMARY KEY, "missed" INTEGER NOT NULL, '
            f'"replies" INTEGER NOT NULL, "answers" INTEGER NOT NULL, "missed_left" INTEGER, "replies_left" INTEGER, '
            f'"fin" {real}, "lin" {real}, "hnd" {real}, "line" {text})')


# params: the slice's range twice (calls, texts), then the states never purged (PENDING, SENDING);
# with each caller's summary row as it was, and how many missed calls and replies are left
COLLECT = (
    f'INSERT INTO "{GONE}" ("peer", "missed", "replies", "answers", "missed_left", "replies_left", "fin", "lin", '
    f'"hnd", "line") SELECT d."peer", d.m, d.r, d.a, i."missed" - d.m, i."replies" - d.r, i."first_in", '
    f'i."last_in", i."handled", i."line" FROM (SELECT "peer", SUM(m) AS m, SUM(r) AS r, SUM(a) AS a FROM ('
    f'SELECT "caller" AS "peer", CASE WHEN "missed" THEN 1 ELSE 0 END AS m, 0 AS r, '
    f'CASE WHEN "answered" THEN 1 ELSE 0 END AS a FROM "call" '
    f'WHERE {_IN_RANGE} AND "direction" = \'inbound\' AND ("missed" OR "answered") '
    f'UNION ALL SELECT "peer", 0, CASE WHEN "direction" = \'in\' THEN 1 ELSE 0 END, '
    f'CASE WHEN "direction" = \'in\' THEN 0 ELSE 1 END FROM "message" '
    f'WHERE {_IN_RANGE} AND "state" NOT IN (?, ?) AND ("direction" = \'in\' OR ("direction" = \'out\' '
    f'AND "kind" = \'agent\'))) AS t WHERE "peer" <> \'\' GROUP BY "peer") AS d '
    f'JOIN "inboxconv" AS i ON i."peer" = d."peer"')


def _edge(table: str, key: str, where: str, desc: bool, col: str = "created_at") -> str:
    """The caller's first (last) row of `table` matching `where`, by the (key, created_at) index."""
    order = ' DESC, "id" DESC' if desc else ""
    return (f'(SELECT "{col}" FROM "{table}" WHERE "{key}" = "{GONE}"."peer" AND {where} '
            f'ORDER BY "created_at"{order} LIMIT 1)')


def _of(agg: str, a: str, b: str) -> str:
    return f'(SELECT {agg}(x) FROM (SELECT {a} AS x UNION ALL SELECT {b}) AS t)'


def _new(went: str, none_left: str, empty: str, lookup: str, col: str) -> str:
    """Where rows of its kind went, the value looked up again (or `empty` when none of them is
    left); else the row's value as it was."""
    return f'CASE WHEN NOT ({went}) THEN "{col}" WHEN {none_left} THEN {empty} ELSE COALESCE({lookup}, {empty}) END'


def remake(pg: bool) -> list[str]:
    """Statements that put the touched callers' rows right, after the slice's deletes."""
    call_in = lambda desc: _edge("call", "caller", _MISSED, desc)  # noqa: E731
    reply = lambda desc: _edge("message", "peer", '"direction" = \'in\'', desc)  # noqa: E731
    agent = _edge("message", "peer", '"direction" = \'out\' AND "kind" = \'agent\'', True)
    answered = _edge("call", "caller", _ANSWERED, True)
    went_in, no_in = '"missed" + "replies" > 0', '"missed_left" + "replies_left" = 0'
    fin = _new(went_in, no_in, "NULL", _of("MIN", call_in(False), reply(False)), "fin")
    lin = _new(went_in, no_in, "0", _of("MAX", call_in(True), reply(True)), "lin")
    hnd = _new('"answers" > 0', "1 = 0", "0", _of("MAX", agent, answered), "hnd")
    line = _new('"missed" > 0', '"missed_left" = 0', "''", _edge("call", "caller", _MISSED, True, "line"), "line")
    sums = {"first_in": 'g."fin"', "last_in": 'g."lin"', "handled": 'g."hnd"'}
    c = lambda n: sums.get(n, f'"inboxconv"."{n}"')  # noqa: E731
    g = f'"{GONE}"'
    # nothing left to sum and no state set: the row goes (the triggers' _EMPTY)
    goes = ('g."fin" IS NULL AND g."hnd" = 0 AND NOT EXISTS (SELECT 1 FROM "conversationstate" '
            'WHERE "peer" = g."peer")')
    return [
        f'UPDATE {g} SET "fin" = {fin}, "lin" = {lin}, "hnd" = {hnd}, "line" = {line}',
        f'UPDATE "inboxconv" SET "missed" = g."missed_left", "replies" = g."replies_left", "first_in" = g."fin", '
        f'"last_in" = g."lin", "handled" = g."hnd", "line" = g."line", {derived("GREATEST" if pg else "MAX", c)} '
        f'FROM {g} AS g WHERE "inboxconv"."peer" = g."peer" AND NOT ({goes})',
        f'DELETE FROM "inboxconv" WHERE "peer" IN (SELECT g."peer" FROM {g} AS g WHERE {goes})',
    ]
