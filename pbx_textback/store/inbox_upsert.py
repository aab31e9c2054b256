"""The inbox summary's insert triggers on SQLite as ONE statement each (store/inbox.py).

store/inbox.py adds an inserted call, text or state to the caller's row in three statements:
INSERT OR IGNORE a blank row, UPDATE the sums, UPDATE the columns derived from them (an UPDATE's
SET sees the row as it was). Each of them moved the row between inbox-count buckets and in
its indexes again: some twelve trigger steps per missed call. Here the same values go in by one
INSERT ... ON CONFLICT DO UPDATE whose expressions are the sums and the derivations written out
(old values for a caller seen before; a blank row's values otherwise), so the row is written
once, with its final values, and moves buckets once. Same results (tests/integration/
test_inbox_summary.py holds the rows to a rebuild after every kind of insert).
"""
from __future__ import annotations

COLS = ("line", "first_in", "last_in", "handled", "missed", "replies", "state", "owner", "set_at",
        "until", "status", "waiting", "since")
BLANK = {"line": "''", "first_in": "NULL", "last_in": "0", "handled": "0", "missed": "0", "replies": "0",
         "state": "''", "owner": "''", "set_at": "0", "until": "NULL"}


def _sums(table: str, r: str, key: str, o: dict) -> dict:
    """The new sums from the old row `o` (column -> SQL expression) and the inserted row `r`."""
    x = f'{r}."created_at"'
    p = f'{r}."{key}"'

    def came_in(is_in: str) -> dict:
        return {"first_in": f'(CASE WHEN {is_in} AND {x} IS NOT NULL AND ({o["first_in"]} IS NULL OR '
                            f'{x} < {o["first_in"]}) THEN {x} ELSE {o["first_in"]} END)',
                "last_in": f'(CASE WHEN {is_in} AND ({x} IS NOT NULL AND ({o["first_in"]} IS NULL OR '
                           f'{x} > {o["last_in"]})) THEN {x} ELSE {o["last_in"]} END)'}

    def answered(is_ans: str) -> str:
        return f'(CASE WHEN {is_ans} AND {x} > {o["handled"]} THEN {x} ELSE {o["handled"]} END)'

    n = dict(o)
    if table == "call":
        missed = f'({r}."direction" = \'inbound\' AND {r}."missed")'
        n["missed"] = f'({o["missed"]} + CASE WHEN {missed} THEN 1 ELSE 0 END)'
        n["line"] = (f'(CASE WHEN NOT {missed} THEN {o["line"]} '
                     f'WHEN {x} IS NOT NULL AND ({o["first_in"]} IS NULL OR {x} >= {o["last_in"]}) '
                     f'THEN COALESCE({r}."line", \'\') '
                     f'ELSE COALESCE((SELECT "line" FROM "call" WHERE "caller" = {p} AND "direction" = \'inbound\' '
                     f'AND "missed" ORDER BY "created_at" DESC, "id" DESC LIMIT 1), \'\') END)')
        n.update(came_in(missed))
        n["handled"] = answered(f'({r}."direction" = \'inbound\' AND {r}."answered")')
    elif table == "message":
        is_in = f'({r}."direction" = \'in\')'
        n["replies"] = f'({o["replies"]} + CASE WHEN {is_in} THEN 1 ELSE 0 END)'
        n.update(came_in(is_in))
        n["handled"] = answered(f'({r}."direction" = \'out\' AND {r}."kind" = \'agent\')')
    else:
        n.update(state=f'COALESCE({r}."state", \'\')', owner=f'COALESCE({r}."owner", \'\')',
                 set_at=f'COALESCE({r}."set_at", 0)', until=f'{r}."until"')
    return n


def _derived(n: dict) -> dict:
    """store/inbox.py's _derive, from the new sums (SQLite's two-argument MAX)."""
    return {
        "waiting": f'(CASE WHEN {n["last_in"]} > {n["handled"]} THEN 1 ELSE 0 END)',
        "since": (f'(CASE WHEN {n["first_in"]} IS NULL THEN 0 WHEN MAX({n["handled"]}, {n["set_at"]}) < {n["first_in"]} '
                  f'THEN {n["first_in"]} ELSE {n["last_in"]} END)'),
        "status": (f'(CASE WHEN {n["first_in"]} IS NULL THEN \'\' '
                   f'WHEN {n["state"]} = \'done\' AND {n["last_in"]} <= {n["set_at"]} THEN \'done\' '
                   f'WHEN {n["state"]} = \'snoozed\' AND {n["last_in"]} <= {n["set_at"]} THEN \'snoozed\' '
                   f'ELSE \'open\' END)')}


def _values(table: str, r: str, key: str, o: dict) -> dict:
    n = _sums(table, r, key, o)
    n.update(_derived(n))
    return n


def upsert(table: str, key: str) -> str:
    """The one statement of `table`'s insert trigger (NEW: the inserted row)."""
    fresh = _values(table, "NEW", key, BLANK)
    old = _values(table, "NEW", key, {c: f'"inboxconv"."{c}"' for c in BLANK})
    return (f'INSERT INTO "inboxconv" ("peer", {", ".join(f"{chr(34)}{c}{chr(34)}" for c in COLS)}) '
            f'VALUES (NEW."{key}", {", ".join(fresh[c] for c in COLS)}) '
            f'ON CONFLICT ("peer") DO UPDATE SET {", ".join(f"{chr(34)}{c}{chr(34)} = {old[c]}" for c in COLS)}')
