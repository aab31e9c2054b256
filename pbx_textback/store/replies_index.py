"""Migration 33: callers' replies found by an index of their own, so a poll for new replies
costs the same on a store of a million texts as on an empty one (issue 14, the soak).

Two pollers ask "the callers' replies after id N": the desk phones' reply push (every
service, once a second: store/deskphones.py replies_after) and the web desk's notices
(store/desk.py inbound_since). Nothing indexed direction, so SQLite walked the message table
by id from N and tested each row: N is the last reply seen, and on a line whose callers
seldom reply (or never: the soak) that walk took in every text sent since -- all of them on a
store without replies, once a second, without end. The soak's CPU per call rose ~25 % from
the first 300k calls to the 900k-1M ones, most of it this walk (bench/soak.py --statements:
~10,000 page reads per poll at 120k calls). The start-up's "last reply" (MAX(id) of the
replies) walked the whole table from the end the same way.

Replies are few (one per caller who writes back), so a partial index of the replies alone
costs the per-call path nothing: a missed call's text is never written to it. The queries
say `direction = 'in'`, the index's own condition, so SQLite and PostgreSQL both use it.
"""
from __future__ import annotations

import peewee as pw

# 'in' as a literal, not a bound parameter: SQLite matches a partial index only to a condition
# it can read in the query's text (peewee binds a value it is given)
IN = pw.SQL("'in'")
REPLIES = 'CREATE INDEX IF NOT EXISTS "message_reply_id" ON "message" ("id") WHERE "direction" = \'in\''


def create_indexes(db) -> None:
    """A new store, and migration 33 for a store made before (the index is all it adds)."""
    db.execute_sql(REPLIES)
