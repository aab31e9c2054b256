"""The SQL behind /metrics: totals from the store (so counters survive a restart and agree
with the reports), grouped by line, reason, kind and result only. Sync; never awaits."""
from __future__ import annotations

from .db import PURGE_MARK, Store
from .reports import _rows
from .text_tally import totals

WEBHOOK_TABLE = "hook_delivery"     # the webhooks' delivery queue (pbx_textback/store/hooks.py)


def _ids(after: int, upto: int | None, col: str = "id") -> tuple[str, tuple]:
    """The id range (after, upto] of an incremental count (reporting/tally.py)."""
    if upto is None:
        return f" AND {col} > ?", (after,)
    return f" AND {col} > ? AND {col} <= ?", (after, upto)


def call_totals(store: Store, after: int = 0, upto: int | None = None) -> list[tuple]:
    """(line, reason, missed, n) of inbound calls with after < id <= upto; an answered call's
    line is its DID."""
    cond, params = _ids(after, upto)
    return _rows(store, f"""
        SELECT CASE WHEN line <> '' THEN line ELSE called END, reason, missed, COUNT(*) FROM "call"
        WHERE direction = 'inbound'{cond} GROUP BY 1, 2, 3""", params)


def text_totals(store: Store) -> list[tuple]:
    """(kind, state, n) of outgoing texts: kept by triggers as texts change (store/text_tally.py),
    so a scrape reads a few dozen rows, not every text."""
    return totals(store.db)


def reply_totals(store: Store, after: int = 0, upto: int | None = None) -> list[tuple]:
    cond, params = _ids(after, upto)
    return _rows(store, f"SELECT line, COUNT(*) FROM message WHERE direction = 'in'{cond} GROUP BY 1", params)


def opt_out_totals(store: Store, after: int = 0, upto: int | None = None) -> list[tuple]:
    cond, params = _ids(after, upto)
    return _rows(store, f"SELECT line, COUNT(*) FROM consent WHERE kind = 'opt-out'{cond} GROUP BY 1", params)


def purge_mark(store: Store) -> str:
    """Changes with every purge: totals kept from before it are wrong."""
    return store.setting(PURGE_MARK)


def newest_ids(store: Store) -> tuple[int, int, int]:
    """The newest call, message and consent ids (0: none), from the primary keys alone."""
    row = _rows(store, 'SELECT (SELECT MAX(id) FROM "call"), (SELECT MAX(id) FROM message), '
                       '(SELECT MAX(id) FROM consent)', ())[0]
    return tuple(int(x or 0) for x in row)


def callback_totals(store: Store) -> list[tuple]:
    return _rows(store, "SELECT state, COUNT(*) FROM callback GROUP BY 1", ())


def webhook_delivery_totals(store: Store) -> list[tuple] | None:
    """HOOK POINT for the webhooks' queue: (result, n) per delivery state, or None while the
    store has no such table (a build without webhooks: the metric is then left out)."""
    if not store.db.table_exists(WEBHOOK_TABLE):
        return None
    return _rows(store, f"SELECT state, COUNT(*) FROM {WEBHOOK_TABLE} GROUP BY 1", ())


def outbox(store: Store, now: float) -> tuple[int, float | None]:
    """This box's texts waiting to go (pending or being sent), and the age of the oldest due
    one (None: none is due)."""
    n, oldest = _rows(store, """
        SELECT COUNT(*), MIN(CASE WHEN state = 'pending' AND due_at <= ? THEN due_at END) FROM message
        WHERE direction = 'out' AND box = ? AND state IN ('pending', 'sending')""", (now, store.box))[0]
    return int(n or 0), (None if oldest is None else max(0.0, now - oldest))


# what stops a response clock (store/reports.CLOCK_ROWS: the kinds of rows that do)
_STOPS = """
  SELECT m.peer AS peer FROM message m WHERE m.created_at >= ? AND m.created_at < ? AND m.direction = 'out'
    AND m.kind = 'agent' AND m.state <> 'cancelled'
  UNION SELECT x.peer FROM callback x WHERE x.state = 'connected' AND x.created_at >= ? AND x.created_at < ?
  UNION SELECT a.caller FROM "call" a WHERE a.created_at >= ? AND a.created_at < ? AND a.direction = 'inbound'
    AND a.answered
  UNION SELECT b.called FROM "call" b WHERE b.created_at >= ? AND b.created_at < ? AND b.direction = 'outbound'
    AND b.answered"""


def response_events_of_stopped(store: Store, lo: float, hi: float) -> tuple[list, list]:
    """(events, closes) as store/reports.response_events gives them, but only of the callers
    whose clock something stopped in [lo, hi), read a week back from lo: the first-response
    histogram adds the clocks that ended in each new window, so it reads what is new rather
    than the whole history at every refresh."""
    from .reports import LOOKBACK_S, clock_rows_sql
    since = lo - LOOKBACK_S
    ev = _rows(store, f"""
        WITH stopped AS MATERIALIZED ({_STOPS})
        {clock_rows_sql(lambda kind: "stopped", lambda a: f"{a}.created_at")}""",
                (lo, hi) * 4 + (since, hi) * 6)
    closes = _rows(store, f"""
        WITH stopped AS MATERIALIZED ({_STOPS})
        SELECT s.peer, s.set_at FROM stopped JOIN conversationstate s ON s.peer = stopped.peer
        WHERE s.state = 'done' AND s.set_at < ?""", (lo, hi) * 4 + (hi,))
    return ev, closes
