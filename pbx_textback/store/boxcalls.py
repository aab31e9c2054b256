"""Call backs asked for on one box and placed by another, on a store several PBX boxes share:
a `callback` row in state `queued` names the box that owns the caller's line (boxes.box_of_line);
that box's service takes it (queued -> originating) and rings the agent's desk phone through its
own PBX. Sync functions, never await."""
from __future__ import annotations

import peewee as pw

from .callbacks import FAILED, ORIGINATING, QUEUED, Callback
from .db import Call, Store
from . import fast


def add_box_column(db: pw.Database) -> None:
    """Migration v24: the box that places each call back. A store made new from today's model
    (or whose v4 created the table from it) has it already."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as run
    if "box" in {c.name for c in db.get_columns("callback")}:
        return
    m = SqliteMigrator(db) if isinstance(db, pw.SqliteDatabase) else PostgresqlMigrator(db)
    run(m.add_column("callback", "box", pw.CharField(default="")),
        m.add_index("callback", ("box", "state"), False))


def queue(store: Store, *, peer: str, extension: str, agent: str, box: str, now: float) -> int:
    """A call back for `box` to place; until it does, `endpoint` holds the agent's extension
    (the channel is named by that box's own [deskphones] settings)."""
    with store.write():
        call = (Call.select().where((Call.caller == peer) & (Call.direction == "inbound"))
                .order_by(Call.created_at.desc(), Call.id.desc()).first())
        return Callback.create(call=call, peer=peer, endpoint=extension, feature="inbox", agent=agent,
                               state=QUEUED, created_at=now, updated_at=now, box=box).id


_ANY_QUEUED = 'SELECT 1 FROM "callback" WHERE box = ? AND state = ? LIMIT 1'


def any_queued(store: Store, box: str) -> bool:
    """Whether this box has a call back waiting: asked twice a second by every service, nearly
    always no, so one constant statement before the ORM's query that reads the rows."""
    return fast.one(store, _ANY_QUEUED, (box, QUEUED)) is not None


def queued_for(store: Store, box: str, limit: int = 20) -> list[dict]:
    """This box's call backs waiting to be placed, oldest first."""
    return [{"id": r.id, "peer": r.peer, "extension": r.endpoint, "agent": r.agent, "at": r.created_at}
            for r in Callback.select().where((Callback.box == box) & (Callback.state == QUEUED))
            .order_by(Callback.id).limit(limit)]


def take(store: Store, callback_id: int, *, endpoint: str, now: float) -> bool:
    """queued -> originating, with the channel rung; False if it is no longer queued."""
    with store.write():
        return Callback.update(state=ORIGINATING, endpoint=endpoint[:255], updated_at=now).where(
            (Callback.id == callback_id) & (Callback.state == QUEUED)).execute() == 1


def refuse(store: Store, callback_id: int, *, detail: str, now: float) -> bool:
    """queued -> failed, with why (the box cannot place it)."""
    with store.write():
        return Callback.update(state=FAILED, detail=detail[:500], updated_at=now).where(
            (Callback.id == callback_id) & (Callback.state == QUEUED)).execute() == 1
