"""Which PBX box sends for a line, on a store several boxes share: the box whose service took
the line's latest call (else sent its latest text). A web-only box queues a reply with that box
on the row, and that box's outbox sends it through its own gateway (the others never claim it)."""
from __future__ import annotations

from .db import Store
from .fast import one


_NEWEST = ' AND "box" <> \'\' ORDER BY "created_at" DESC, "id" DESC LIMIT 1'
_BY_CALLED = 'SELECT "box", "created_at", "id" FROM "call" WHERE "called" = ?' + _NEWEST
_BY_LINE = 'SELECT "box", "created_at", "id" FROM "call" WHERE "line" = ? AND "line" <> "called"' + _NEWEST


def box_of_line(store: Store, line: str) -> str:
    """'' when no box has taken a call on or sent from this line yet."""
    # `line = ? OR called = ?` as two index reads (store/lean_pages.py): a call whose line is its
    # called number is found by call_called_created, the others by the partial call_line_created
    newest = None
    for sql in (_BY_CALLED, _BY_LINE):
        row = one(store, sql, (line,))
        if row is not None and (newest is None or row[1:] > newest[1:]):
            newest = row
    if newest is not None:
        return newest[0]
    # no call: the newest text sent from the line, through message_line_out (the literals say
    # what the partial index's WHERE says, so the planner may use it)
    row = one(store, _BY_TEXT, (line,))
    return row[0] if row is not None else ""


# Migration 36: the line's newest text was a pass over every text (newest first) whenever no
# call matched, and over all of them for a line that had never sent one (an agent's first text
# on a line that only ever received texts). Only outgoing texts with a box are indexed.
LINE_OUT = ('CREATE INDEX IF NOT EXISTS "message_line_out" ON "message" ("line", "id") '
            'WHERE "direction" = \'out\' AND "box" <> \'\'')
_BY_TEXT = ('SELECT "box" FROM "message" WHERE "line" = ? AND "direction" = \'out\' AND "box" <> \'\' '
            'ORDER BY "id" DESC LIMIT 1')


def create_index(db) -> None:
    db.execute_sql(LINE_OUT)


def queue_for_line_box(store: Store, *, peer: str, line: str, body: str, kind: str, note: str,
                       now: float) -> tuple[int, str]:
    """An agent's text, queued for the box that owns the line -> (message id, box). ValueError
    when no box is known for the line."""
    box = box_of_line(store, line)
    if not box:
        raise ValueError(f"no PBX box has taken a call on line {line} yet, so none can send from it")
    with store.write():
        mid = store.add_message(box=box, direction="out", kind=kind, line=line, peer=peer, body=body,
                                state="pending", due_at=now, created_at=now, note=note)
    return mid, box
