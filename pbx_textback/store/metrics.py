"""The SQL behind /metrics: totals from the store (so counters survive a restart and agree
with the reports), grouped by line, reason, kind and result only. Sync; never awaits."""
from __future__ import annotations

from .db import Store
from .reports import _rows

WEBHOOK_TABLE = "hook_delivery"     # the webhooks' delivery queue (pbx_textback/store/hooks.py)


def call_totals(store: Store) -> list[tuple]:
    """(line, reason, missed, n) of inbound calls; an answered call's line is its DID."""
    return _rows(store, """
        SELECT CASE WHEN line <> '' THEN line ELSE called END, reason, missed, COUNT(*) FROM "call"
        WHERE direction = 'inbound' GROUP BY 1, 2, 3""", ())


def text_totals(store: Store) -> list[tuple]:
    """(kind, state, n) of outgoing texts."""
    return _rows(store, "SELECT kind, state, COUNT(*) FROM message WHERE direction = 'out' GROUP BY 1, 2", ())


def reply_totals(store: Store) -> list[tuple]:
    return _rows(store, "SELECT line, COUNT(*) FROM message WHERE direction = 'in' GROUP BY 1", ())


def opt_out_totals(store: Store) -> list[tuple]:
    return _rows(store, "SELECT line, COUNT(*) FROM consent WHERE kind = 'opt-out' GROUP BY 1", ())


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
