"""Desk phones' SQL: call backs asked for from the inbox (rows of the `callback` table that
*88 uses too, so a caller called back either way is not called again by *88), each one's
result for the timeline, and the replies to push to desk phones. Sync functions, never await.
"""
from __future__ import annotations

import json

import peewee as pw

from .callbacks import CONNECTED, FAILED, ORIGINATING, Callback
from .db import Call, Message, Store
from .replies_index import IN
from . import fast
from .web import ConversationState, WebUser


def add_columns(db: pw.Database) -> None:
    """Migration v15: who asked for a call back, and the id of the call the PBX made. A store
    that got the callback table after this model changed (v4 on a new model) has them."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as run
    have = {c.name for c in db.get_columns("callback")}
    m = SqliteMigrator(db) if isinstance(db, pw.SqliteDatabase) else PostgresqlMigrator(db)
    steps = [m.add_column("callback", name, pw.CharField(default=""))
             for name in ("agent", "channel_id") if name not in have]
    if steps:
        run(*steps)


def start(store: Store, *, peer: str, endpoint: str, agent: str, now: float) -> int:
    """A call back from the inbox, originating; tied to the caller's latest missed call."""
    with store.write():
        call = (Call.select().where((Call.caller == peer) & (Call.direction == "inbound"))
                .order_by(Call.created_at.desc(), Call.id.desc()).first())
        return Callback.create(call=call, peer=peer, endpoint=endpoint, feature="inbox", agent=agent,
                               state=ORIGINATING, created_at=now, updated_at=now, box=store.box).id


def finish(store: Store, callback_id: int, *, ok: bool, detail: str, channel_id: str, now: float) -> None:
    with store.write():
        Callback.update(state=CONNECTED if ok else FAILED, detail=detail[:500], channel_id=channel_id[:120],
                        updated_at=now).where(Callback.id == callback_id).execute()


def note_channel(store: Store, callback_id: int, channel_id: str) -> None:
    """*88: the id of the call it makes (its ChannelId, or FreeSWITCH's uuid)."""
    with store.write():
        Callback.update(channel_id=channel_id[:120]).where(Callback.id == callback_id).execute()


def for_peer(store: Store, peer: str) -> list[dict]:
    """Every call back of this number (inbox and *88), each with the PBX's record of the call
    it made when there is one."""
    rows = list(Callback.select().where(Callback.peer == peer).order_by(Callback.created_at, Callback.id))
    ids = [r.channel_id for r in rows if r.channel_id]
    calls = {}
    if ids:
        for c in Call.select().where(Call.call_id.in_(ids)):
            rec = json.loads(c.record or "{}")
            calls[c.call_id] = {"answered": c.answered, "reason": c.reason,
                                "hangup_cause": rec.get("hangup_cause", "")}
    return [{"id": r.id, "at": r.created_at, "state": r.state, "detail": r.detail, "agent": r.agent,
             "endpoint": r.endpoint, "feature": r.feature, "channel_id": r.channel_id, "box": r.box,
             "call": calls.get(r.channel_id)} for r in rows]


def extension(store: Store, name: str) -> str:
    u = WebUser.get_or_none(WebUser.name == name)
    return u.extension if u is not None and not u.disabled else ""


def push_targets(store: Store, peer: str) -> tuple[str, list[str]]:
    """(owner, extensions): the owner's desk phone, or every agent's while unassigned."""
    owner = (ConversationState.select(ConversationState.owner)
             .where(ConversationState.peer == peer).scalar()) or ""
    q = WebUser.select(WebUser.extension).where((WebUser.disabled == False) & (WebUser.extension != ""))  # noqa: E712
    if owner:
        q = q.where(WebUser.name == owner)
    return owner, sorted({e for (e,) in q.tuples()})


def last_reply_id(store: Store) -> int:
    # through the replies' own index (IN is the literal its WHERE says), not every text
    return Message.select(pw.fn.MAX(Message.id)).where(Message.direction == IN).scalar() or 0


_REPLIES_AFTER = ('SELECT id, peer, body, note FROM "message" WHERE id > ? AND direction = \'in\' AND box = ? '
                  'ORDER BY id LIMIT ?')


def replies_after(store: Store, after_id: int, limit: int = 200) -> list[tuple[int, str, str, str]]:
    """(id, peer, body, note) of this box's callers' replies written after `after_id`. Asked
    once a second by every service: one constant statement (the ORM's composing it cost more
    than the read), read through the replies' own index (store/replies_index.py): the texts
    sent since the last reply are not walked."""
    return [tuple(r) for r in fast.rows(store, _REPLIES_AFTER, (after_id, store.box, limit))]
