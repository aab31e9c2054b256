"""The consent events the start-up's "confirmations still owed" check needs (pipeline.py
queue_confirmations, run once as the service starts: it heals a crash between an opt-out and
its confirmation).

The check read every consent event of the last three hours, and every missed call stores one
("inbound-call"): a service restarted after a busy spell built a Python object per call of
those hours (the soak, bench/soak.py --from: 115k calls in the window, +34 MB of objects at
the peak, ~8 MB of it kept by the allocator for good; a million calls would have passed
100 MB). What is owed depends only on the opt-outs, opt-ins and confirmations
(core/policy/consent.py replay: an inbound call never sets or clears a pending confirmation,
and the states it sets, none or conversational, are treated alike by everything after), so
those are all it reads: as many rows as callers asked to stop or start in those hours.
"""
from __future__ import annotations

from .fast import _CONSENT_COLS, REQUEST_KINDS, consent_events, rows
from .lean_consent import NOT_CALLS

# the consent(at) index gives the rows in (at, id) order: no sort. It holds no inbound-call
# event (migration 37), and SQLite uses it only for a query that states its condition as written
_REQUESTS = (f'SELECT {_CONSENT_COLS} FROM "consent" WHERE at >= ? AND {NOT_CALLS} '
             f'AND kind IN {REQUEST_KINDS} ORDER BY at, id')


def requests_since(store, since: float) -> list:
    """The opt-outs, opt-ins and confirmations stored at or after `since`, oldest first."""
    return consent_events(rows(store, _REQUESTS, (since,)))
