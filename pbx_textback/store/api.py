"""The REST API's SQL: tokens (only their hash is kept) and the pages of calls and messages
it lists. Sync functions that never await."""
from __future__ import annotations

import hashlib
import secrets

import peewee as pw

from .db import Base, Call, Message, Store

READ, WRITE = "read", "write"
PREFIX = "pbxtb_"


class ApiToken(Base):
    name = pw.CharField(unique=True)
    scope = pw.CharField()                    # read | write (write may also read)
    token_hash = pw.CharField(unique=True)    # sha256 of the token: the token itself is shown once
    created_at = pw.DoubleField()
    last_used_at = pw.DoubleField(null=True)
    revoked_at = pw.DoubleField(null=True)

    class Meta:
        table_name = "api_token"


def create_tables(db: pw.Database) -> None:
    """Migration v21 and a new store."""
    db.create_tables([ApiToken], safe=True)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(store: Store, name: str, scope: str, now: float) -> str:
    """A new token; returns it (the only time it is seen)."""
    if scope not in (READ, WRITE):
        raise ValueError("scope is read or write")
    token = PREFIX + secrets.token_urlsafe(32)
    with store.write():
        if ApiToken.select().where(ApiToken.name == name).exists():
            raise ValueError(f"token {name} already exists (`token revoke {name}`, then add it again)")
        ApiToken.create(name=name, scope=scope, token_hash=_hash(token), created_at=now)
    return token


def tokens(store: Store) -> list[ApiToken]:
    return list(ApiToken.select().order_by(ApiToken.name))


def has_tokens(store: Store) -> bool:
    return ApiToken.select(ApiToken.id).where(ApiToken.revoked_at.is_null()).exists()


def revoke(store: Store, name: str, now: float) -> None:
    with store.write():
        n = ApiToken.update(revoked_at=now).where((ApiToken.name == name) & ApiToken.revoked_at.is_null()).execute()
    if not n:
        raise ValueError(f"no active token {name} (`token list` shows them)")


def check(store: Store, token: str, now: float) -> ApiToken | None:
    """The live token this is, else None. Its last use is noted at most once a minute."""
    if not token.startswith(PREFIX):
        return None
    t = ApiToken.get_or_none((ApiToken.token_hash == _hash(token)) & ApiToken.revoked_at.is_null())
    if t is not None and (t.last_used_at is None or now - t.last_used_at > 60):
        with store.write():
            ApiToken.update(last_used_at=now).where(ApiToken.id == t.id).execute()
    return t


# ---- pages -------------------------------------------------------------------------------------------
def calls_page(before_id: int | None, limit: int, *, missed: bool | None = None,
               number: str = "", since: float | None = None) -> list[Call]:
    """Newest first; `before_id` is the cursor (the last id of the previous page)."""
    q = Call.select()
    if before_id is not None:
        q = q.where(Call.id < before_id)
    if missed is not None:
        q = q.where(Call.missed == missed)
    if number:
        q = q.where((Call.caller == number) | (Call.called == number))
    if since is not None:
        q = q.where(Call.created_at >= since)
    return list(q.order_by(Call.id.desc()).limit(limit))


def call_by_id(call_id: int) -> Call | None:
    return Call.get_or_none(Call.id == call_id)


def messages_page(before_id: int | None, limit: int, *, number: str = "",
                  direction: str = "") -> list[Message]:
    q = Message.select()
    if before_id is not None:
        q = q.where(Message.id < before_id)
    if number:
        q = q.where(Message.peer == number)
    if direction:
        q = q.where(Message.direction == direction)
    return list(q.order_by(Message.id.desc()).limit(limit))


def message_by_id(msg_id: int) -> Message | None:
    return Message.get_or_none(Message.id == msg_id)
