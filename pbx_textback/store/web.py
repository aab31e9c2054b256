"""The front-desk inbox's SQL: accounts, sessions, and conversations (one per caller number),
derived from what the store already has (calls, messages, consent) plus one small table of
states. Sync functions that never await; the web app runs them in a thread.

A conversation's state is kept only when a person sets it: no row means open. A done or
snoozed conversation is open again as soon as the caller calls or writes after it was set,
so a new missed call or reply never needs a write here.
"""
from __future__ import annotations

import hashlib
import secrets

import peewee as pw

from .db import Base, Call, Message, Store

ROLES = ("admin", "agent")
OPEN, SNOOZED, DONE = "open", "snoozed", "done"
VIEWS = ("needs-reply", "mine", "open", "snoozed", "done")
SESSION_DAYS = 14


class WebUser(Base):
    name = pw.CharField(unique=True)
    role = pw.CharField()
    extension = pw.CharField(default="")
    password_hash = pw.TextField()
    disabled = pw.BooleanField(default=False)
    created_at = pw.DoubleField()


class WebSession(Base):
    """A signed-in browser. Only the token's SHA-256 is kept: a copy of the store lets no
    one sign in as anybody."""
    token_hash = pw.CharField(unique=True)
    user = pw.ForeignKeyField(WebUser, backref="sessions", on_delete="CASCADE")
    csrf = pw.CharField()
    created_at = pw.DoubleField()
    seen_at = pw.DoubleField()


class ConversationState(Base):
    peer = pw.CharField(unique=True)
    state = pw.CharField()                     # open | snoozed | done
    until = pw.DoubleField(null=True)          # snoozed until (None: until the caller writes or calls)
    owner = pw.CharField(default="")           # a WebUser name, '' = unassigned
    set_by = pw.CharField(default="")
    set_at = pw.DoubleField()                  # when the state was set (a later call or text reopens)
    changed_at = pw.DoubleField(default=0.0)   # any change, the owner's too: what live pages watch


WEB_MODELS = [WebUser, WebSession, ConversationState]


def create_tables(db: pw.Database) -> None:
    """Migration v13 and a new store; safe on a store that already has them. The index serves
    change_mark, which every open page's live stream reads a few times a second."""
    db.create_tables(WEB_MODELS, safe=True)
    db.execute_sql("CREATE INDEX IF NOT EXISTS message_updated_at ON message (updated_at)")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---- accounts ------------------------------------------------------------------------------------
def add_user(store: Store, name: str, role: str, password_hash: str, extension: str, now: float) -> int:
    with store.write():
        if WebUser.select().where(WebUser.name == name).exists():
            raise ValueError(f"user {name} already exists (`user passwd {name}` changes the password)")
        return WebUser.create(name=name, role=role, extension=extension, password_hash=password_hash,
                              created_at=now).id


def user(store: Store, name: str) -> WebUser | None:
    return WebUser.get_or_none(WebUser.name == name)


def users(store: Store) -> list[WebUser]:
    return list(WebUser.select().order_by(WebUser.name))


def has_users(store: Store) -> bool:
    return WebUser.select(WebUser.id).where(WebUser.disabled == False).exists()  # noqa: E712


def set_password(store: Store, name: str, password_hash: str) -> None:
    """A new password signs the user out everywhere."""
    with store.write():
        u = _existing(name)
        WebUser.update(password_hash=password_hash).where(WebUser.id == u.id).execute()
        WebSession.delete().where(WebSession.user == u.id).execute()


def disable_user(store: Store, name: str) -> None:
    with store.write():
        u = _existing(name)
        WebUser.update(disabled=True).where(WebUser.id == u.id).execute()
        WebSession.delete().where(WebSession.user == u.id).execute()


def _existing(name: str) -> WebUser:
    u = WebUser.get_or_none(WebUser.name == name)
    if u is None:
        raise ValueError(f"no user {name} (`user list` shows them)")
    return u


# ---- sessions ------------------------------------------------------------------------------------
def new_session(store: Store, user_id: int, now: float) -> tuple[str, str]:
    """A fresh session id (never the one the browser had before signing in) and its CSRF token."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with store.write():
        WebSession.create(token_hash=_hash_token(token), user=user_id, csrf=csrf, created_at=now, seen_at=now)
    return token, csrf


def session(store: Store, token: str, now: float):
    """(user, csrf) of a live session, else None."""
    if not token:
        return None
    s = (WebSession.select(WebSession, WebUser).join(WebUser)
         .where(WebSession.token_hash == _hash_token(token)).first())
    if s is None or s.user.disabled or now - s.created_at > SESSION_DAYS * 86400:
        return None
    return s.user, s.csrf


def end_session(store: Store, token: str, everywhere: bool = False) -> None:
    """This browser's session, or (everywhere) every session of its user."""
    with store.write():
        s = WebSession.get_or_none(WebSession.token_hash == _hash_token(token))
        if s is not None:
            WebSession.delete().where((WebSession.user == s.user_id) if everywhere
                                      else (WebSession.id == s.id)).execute()


# ---- conversations -------------------------------------------------------------------------------
# Every caller number with a missed call or a reply: when they last called or wrote, when someone
# last answered (an agent's text or a call that reached them), and the state. The sums live in one
# row per caller that the database keeps current on every write (store/inbox.py says why).
def view(store: Store, name: str, now: float, search: str = "", me: str = "", limit: int = 100) -> list[dict]:
    """needs-reply: open, unassigned and waiting, oldest waiting first; mine: open and mine;
    open, snoozed, done: newest first. At most `limit` rows; search by the number's digits."""
    from . import inbox
    return inbox.rows(name, now, search, me=me, limit=limit)


def conversation(store: Store, peer: str, now: float) -> dict | None:
    from . import inbox
    return inbox.one(peer, now)


def listing(store: Store, name: str, now: float, owner: str | None = None,
            after: tuple[float, str] | None = None, limit: int = 100) -> list[dict]:
    """A view ('all' too) newest first, after a (last_in, peer) cursor: the REST API's pages."""
    from . import inbox
    return inbox.listing(name, now, owner=owner, after=after, limit=limit)


def counts(store: Store, now: float, me: str = "") -> dict[str, int]:
    from . import inbox
    return inbox.counts(VIEWS, now, me)


def set_state(store: Store, peer: str, state: str, by: str, now: float, until: float | None = None) -> None:
    with store.write():
        row = ConversationState.get_or_none(ConversationState.peer == peer)
        if row is None:
            ConversationState.create(peer=peer, state=state, until=until, set_by=by, set_at=now, changed_at=now)
        else:
            ConversationState.update(state=state, until=until, set_by=by, set_at=now, changed_at=now).where(
                ConversationState.id == row.id).execute()


def set_owner(store: Store, peer: str, owner: str, by: str, now: float) -> None:
    """Claim, assign or unassign ('' ). The state and when it was set stay as they are."""
    with store.write():
        row = ConversationState.get_or_none(ConversationState.peer == peer)
        if row is None:
            ConversationState.create(peer=peer, state=OPEN, owner=owner, set_by=by, set_at=now, changed_at=now)
        else:
            ConversationState.update(owner=owner, set_by=by, changed_at=now).where(ConversationState.id == row.id).execute()


def change_mark(store: Store) -> str:
    """Changes when any call, message or state does: what the live pages watch. One maximum
    per query, so that SQLite reads each from its index instead of scanning the table."""
    from .callbacks import Callback          # a call back's result (desk phone answered or not)
    from .voicemail import VoicemailAudio     # a recording comes after its call: the player appears
    marks = (Call.select(pw.fn.MAX(Call.id)), Message.select(pw.fn.MAX(Message.id)),
             Message.select(pw.fn.MAX(Message.updated_at)),
             ConversationState.select(pw.fn.MAX(ConversationState.changed_at)),
             Callback.select(pw.fn.MAX(Callback.updated_at)),
             VoicemailAudio.select(pw.fn.MAX(VoicemailAudio.id)))
    return ":".join(str(q.scalar()) for q in marks)
