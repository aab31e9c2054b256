"""The SQL of e-mail to staff: callers' replies nobody has answered. Sync; never awaits."""
from __future__ import annotations

from .db import Store
from .reports import _not_keyword, _rows


def unanswered_replies(store: Store, after_id: int, written_before: float, now: float) -> list[tuple]:
    """(id, peer, line, created_at) of callers' replies (not bare keywords) with id > after_id,
    written before `written_before`, that no person answered since: no agent text, no
    connected call back, no call in which a person spoke with the caller, and the
    conversation not closed after it (each until now)."""
    return _rows(store, f"""
        SELECT r.id, r.peer, r.line, r.created_at FROM message r
        WHERE r.direction = 'in' AND r.id > ? AND r.created_at < ? AND {_not_keyword('r')}
          AND NOT EXISTS (SELECT 1 FROM message m WHERE m.peer = r.peer AND m.direction = 'out'
                          AND m.kind = 'agent' AND m.created_at >= r.created_at AND m.created_at <= ?)
          AND NOT EXISTS (SELECT 1 FROM callback x WHERE x.peer = r.peer AND x.state = 'connected'
                          AND x.created_at >= r.created_at AND x.created_at <= ?)
          AND NOT EXISTS (SELECT 1 FROM "call" a WHERE a.answered AND a.created_at >= r.created_at AND a.created_at <= ?
                          AND ((a.direction = 'inbound' AND a.caller = r.peer)
                               OR (a.direction = 'outbound' AND a.called = r.peer)))
          AND NOT EXISTS (SELECT 1 FROM conversationstate s WHERE s.peer = r.peer AND s.state = 'done'
                          AND s.set_at >= r.created_at AND s.set_at <= ?)
        ORDER BY r.id""", (after_id, written_before, now, now, now, now))


def last_reply_id(store: Store, written_before: float) -> int:
    return _rows(store, "SELECT COALESCE(MAX(id), 0) FROM message WHERE direction = 'in' AND created_at < ?",
                 (written_before,))[0][0]
