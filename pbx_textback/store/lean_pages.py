"""Migration 32: fewer pages per text for the commits to write, and the line's box found by an
index (issue 14).

- message (transport_id): every text's insert put an empty id in it (the gateway's id comes
  with the submit's answer), and its mark_sent moved that entry: two index pages for a lookup
  that only ever asks for a non-empty id (a receipt matched by the gateway's id). Partial
  (WHERE transport_id <> ''), the insert writes nothing to it; the lookups say
  `transport_id <> ''` too, so both databases know the partial index holds every row they want.
- call (line, created_at) WHERE line <> called: the box that owns a line (store/boxes.py) was
  asked as `line = ? OR called = ?`, and nothing indexed `line`: a pass over every call. A call
  whose line is its called number is found by call_called_created (called, created_at); only
  the others need an entry here, so a store whose PBX gives the line's number as the called
  number pays nothing per call for it.
- message (peer, state) -> message (peer) WHERE state = 'pending': every state change of a
  text (taken, sent, delivered) moved its entry, a page at each of those commits. The lookups
  by number and state are for a caller's pending text (the decision's collapse, a reached
  caller's cancel): the partial index holds just those rows, written when the text is queued
  and dropped when it is taken; the sent and receipt commits no longer touch it. Late evidence
  (unknown or sending texts of a number, rare) reads the number's texts by (peer, created_at).
- inboxconv (status, until) -> (until) WHERE status = 'snoozed': the inbox asks for a snooze's
  end only among snoozed conversations; every new caller's row (open) and every status change
  wrote an entry for nothing.
"""
from __future__ import annotations

PEER_PENDING = ('CREATE INDEX IF NOT EXISTS "message_peer_pending" ON "message" ("peer") '
                'WHERE "state" = \'pending\'')
TRANSPORT_ID = ('CREATE INDEX IF NOT EXISTS "message_transport_id" ON "message" ("transport_id") '
                'WHERE "transport_id" <> \'\'')
SNOOZED_UNTIL = ('CREATE INDEX IF NOT EXISTS "inboxconv_snoozed_until" ON "inboxconv" ("until") '
                 'WHERE "status" = \'snoozed\'')
LINE = ('CREATE INDEX IF NOT EXISTS "call_line_created" ON "call" ("line", "created_at") '
        'WHERE "line" <> "called"')


def create_indexes(db) -> None:
    """A new store (the models no longer declare message (transport_id) nor inboxconv (status,
    until); store/fast.py no longer makes message (peer, state))."""
    db.execute_sql(TRANSPORT_ID)
    db.execute_sql(LINE)
    db.execute_sql(PEER_PENDING)
    db.execute_sql(SNOOZED_UNTIL)


def migrate_v32(db) -> None:
    """Stores made before: the full transport_id index goes and the partial one takes its name;
    the two indexes the partial ones replace go once those exist."""
    db.execute_sql('DROP INDEX IF EXISTS "message_transport_id"')
    create_indexes(db)
    db.execute_sql('DROP INDEX IF EXISTS "message_peer_state"')
    db.execute_sql('DROP INDEX IF EXISTS "inboxconv_status_until"')
