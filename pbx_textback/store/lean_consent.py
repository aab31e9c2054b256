"""Migration 37 (was branch lean33's 33): one page fewer for every missed call's commit to write (issue 14).

Every missed call stores its caller's inbound-call consent event (store/fast.py), and the
consent (at) index took an entry for it: a page of its own at each decision's commit. No one
reads those events by time: the readers of consent by time want the caller's requests
(opt-out, opt-in) and the confirmations sent for them -- the webhooks' feed and its idle
fingerprint (store/hooks.py), the replay's history (store/history.py), the confirmations
still owed at start-up (Pipeline.queue_confirmations: an inbound-call event never makes a
confirmation owed, core/policy/consent.py replay). A caller's events are read by number
through consent (number, kind). So the index keeps only the other kinds, and those queries
say `kind <> 'inbound-call'`, the index's own condition, so that SQLite (which matches a
partial index only to a query that states its WHERE) and PostgreSQL use it.
"""
from __future__ import annotations

import peewee as pw

# the kind as a literal, not a bound parameter: SQLite matches a partial index only to a
# condition it can read in the query's text
INBOUND_CALL = pw.SQL("'inbound-call'")
NOT_CALLS = "kind <> 'inbound-call'"     # the condition, as the queries state it
AT = f'CREATE INDEX IF NOT EXISTS "consent_at" ON "consent" ("at") WHERE {NOT_CALLS}'


def requests_by_time(since: float):
    """The opt-outs and opt-ins stored at or after `since`, oldest first (the webhooks' feed,
    whatif's history), through the partial index: the query states its condition."""
    from .db import Consent
    return (Consent.select()
            .where((Consent.at >= since) & Consent.kind.in_(["opt-out", "opt-in"]) & (Consent.kind != INBOUND_CALL))
            .order_by(Consent.at, Consent.id))


def migrate_v37(db) -> None:
    """Stores made before: the full index goes, the partial one takes its name (a new store,
    whose model declares no consent (at), just gets the partial one)."""
    db.execute_sql('DROP INDEX IF EXISTS "consent_at"')
    db.execute_sql(AT)
