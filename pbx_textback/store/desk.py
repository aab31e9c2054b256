"""The front desk's own tables: reply locks, private notes, saved replies, each agent's
notification choice, and the ownership rules the admin page keeps. Sync functions; the web app
runs them in its loop like store/web.py's.

Every write here bumps one counter row (DeskTick), which the inbox's live stream adds to the
store's change mark: a lock taken or a note written reaches every open page.
"""
from __future__ import annotations

import peewee as pw

from ..core.policy.ownership import OwnerRule
from ..core.policy.replylock import Lock
from . import fast
from .db import Base, Message, Store
from .replies_index import IN
from .web import ConversationState, WebSession, WebUser, SESSION_DAYS

NOTIFY = ("all", "mine")      # every reply, or mine and unassigned ones


class ReplyLock(Base):
    peer = pw.CharField(unique=True)
    holder = pw.CharField()
    since = pw.DoubleField()
    seen_at = pw.DoubleField()


class DeskNote(Base):
    """A private note on a caller's timeline: never sent to the caller."""
    peer = pw.CharField(index=True)
    author = pw.CharField()
    body = pw.TextField()
    created_at = pw.DoubleField()


class SavedReply(Base):
    name = pw.CharField(unique=True)
    body = pw.TextField()                # a sandboxed template (core/text/templates.py)
    updated_by = pw.CharField(default="")
    updated_at = pw.DoubleField()


class DeskPrefs(Base):
    user_name = pw.CharField(unique=True)
    notify = pw.CharField(default="all")


class DeskOwnerRule(Base):
    """The admin page's ownership rules, in order. Rows here replace the TOML's list."""
    position = pw.IntegerField()
    by = pw.CharField()
    match = pw.CharField(default="")
    agent = pw.CharField(default="")
    set_by = pw.CharField(default="")
    set_at = pw.DoubleField()


class DeskTick(Base):
    n = pw.IntegerField(default=0)


DESK_MODELS = [ReplyLock, DeskNote, SavedReply, DeskPrefs, DeskOwnerRule, DeskTick]


def create_tables(db: pw.Database) -> None:
    """Migration v16 and a new store; safe on a store that already has them."""
    db.create_tables(DESK_MODELS, safe=True)


def _bump() -> None:
    if DeskTick.update(n=DeskTick.n + 1).execute() == 0:
        DeskTick.create(n=1)


def change_mark(store: Store) -> str:
    return str(DeskTick.select(pw.fn.MAX(DeskTick.n)).scalar() or 0)


# ---- who is signed in ----------------------------------------------------------------------------
def signed_in(store: Store, now: float) -> set[str]:
    """Agents with a live session (signing out, a new password or disabling ends theirs)."""
    q = (WebUser.select(WebUser.name).join(WebSession)
         .where((WebUser.disabled == False) & (WebSession.created_at > now - SESSION_DAYS * 86400))  # noqa: E712
         .distinct())
    return {u.name for u in q}


_OWNER_OF = 'SELECT state, owner FROM "conversationstate" WHERE peer = ? LIMIT 1'


def owner_of(store: Store, peer: str) -> tuple[str, str] | None:
    """(state, owner) as a person last set them, or None when nobody ever did. Constant SQL:
    every missed call asks it while the inbox is served, and the ORM's composing the query
    cost more than running it."""
    row = fast.one(store, _OWNER_OF, (peer,))
    return (row[0], row[1]) if row is not None else None


def last_agent_for(store: Store, peer: str) -> str:
    """The agent who last texted this caller from the inbox ('' when none)."""
    m = (Message.select(Message.note).where((Message.peer == peer) & (Message.direction == "out")
                                            & (Message.kind == "agent")).order_by(Message.id.desc()).first())
    return m.note[3:] if m is not None and (m.note or "").startswith("by ") else ""


# ---- reply locks ---------------------------------------------------------------------------------
def lock_of(store: Store, peer: str) -> Lock | None:
    row = ReplyLock.get_or_none(ReplyLock.peer == peer)
    return Lock(row.holder, row.since, row.seen_at) if row is not None else None


def locks(store: Store) -> dict[str, Lock]:
    return {r.peer: Lock(r.holder, r.since, r.seen_at) for r in ReplyLock.select()}


def put_lock(store: Store, peer: str, lock: Lock) -> None:
    """Store the lock; the page's live stream hears of it only when the holder changes (a
    keystroke's refresh is no news)."""
    with store.write():
        row = ReplyLock.get_or_none(ReplyLock.peer == peer)
        if row is None:
            ReplyLock.create(peer=peer, holder=lock.holder, since=lock.since, seen_at=lock.seen_at)
            _bump()
        else:
            ReplyLock.update(holder=lock.holder, since=lock.since, seen_at=lock.seen_at).where(
                ReplyLock.id == row.id).execute()
            if row.holder != lock.holder:
                _bump()


def drop_lock(store: Store, peer: str) -> bool:
    with store.write():
        n = ReplyLock.delete().where(ReplyLock.peer == peer).execute()
        if n:
            _bump()
    return bool(n)


# ---- notes ---------------------------------------------------------------------------------------
def add_note(store: Store, peer: str, author: str, body: str, now: float) -> int:
    with store.write():
        nid = DeskNote.create(peer=peer, author=author, body=body, created_at=now).id
        _bump()
    return nid


def notes(store: Store, peer: str) -> list[DeskNote]:
    return list(DeskNote.select().where(DeskNote.peer == peer).order_by(DeskNote.id))


# ---- saved replies -------------------------------------------------------------------------------
def saved_replies(store: Store) -> list[SavedReply]:
    return list(SavedReply.select().order_by(SavedReply.name))


def saved_reply(store: Store, rid: int) -> SavedReply | None:
    return SavedReply.get_or_none(SavedReply.id == rid)


def save_reply(store: Store, name: str, body: str, by: str, now: float, rid: int | None = None) -> int:
    """Add (rid None) or change one. A name is unique: a clash is a ValueError in words."""
    with store.write():
        clash = SavedReply.get_or_none(SavedReply.name == name)
        if clash is not None and clash.id != rid:
            raise ValueError(f"there is already a saved reply named {name!r}")
        if rid is None:
            return SavedReply.create(name=name, body=body, updated_by=by, updated_at=now).id
        if SavedReply.update(name=name, body=body, updated_by=by, updated_at=now).where(
                SavedReply.id == rid).execute() == 0:
            raise ValueError("that saved reply was deleted meanwhile")
        return rid


def delete_reply(store: Store, rid: int) -> None:
    with store.write():
        SavedReply.delete().where(SavedReply.id == rid).execute()


# ---- notification choice -------------------------------------------------------------------------
def notify_choice(store: Store, name: str) -> str:
    row = DeskPrefs.get_or_none(DeskPrefs.user_name == name)
    return row.notify if row is not None else "all"


def set_notify_choice(store: Store, name: str, choice: str) -> None:
    if choice not in NOTIFY:
        raise ValueError(f"notify must be one of {', '.join(NOTIFY)}")
    with store.write():
        if DeskPrefs.update(notify=choice).where(DeskPrefs.user_name == name).execute() == 0:
            DeskPrefs.create(user_name=name, notify=choice)


def inbound_since(store: Store, after_id: int, limit: int = 200) -> list[tuple[int, str]]:
    """(message id, caller) of callers' replies stored after `after_id`, oldest first (through
    the replies' own index, store/replies_index.py: not every text sent since)."""
    return list(Message.select(Message.id, Message.peer)
                .where((Message.direction == IN) & (Message.id > after_id))
                .order_by(Message.id).limit(limit).tuples())


def recent_inbound(store: Store, n: int) -> list[tuple[int, str]]:
    """The last n callers' replies, oldest first."""
    rows = list(Message.select(Message.id, Message.peer).where(Message.direction == IN)
                .order_by(Message.id.desc()).limit(n).tuples())
    return rows[::-1]


def last_inbound_id(store: Store) -> int:
    return Message.select(pw.fn.MAX(Message.id)).where(Message.direction == "in").scalar() or 0


# ---- the admin page's ownership rules ------------------------------------------------------------
_OWNER_RULES = 'SELECT "by", "match", agent FROM "deskownerrule" ORDER BY position'


def owner_rules(store: Store) -> list[OwnerRule] | None:
    """The page's rules in order; None when the page never set any (the TOML's then apply)."""
    rows = fast.rows(store, _OWNER_RULES)         # every missed call asks (as owner_of)
    if not rows:
        return None
    return [OwnerRule(by=by, match=match, agent=agent) for by, match, agent in rows if by != "-"]


def replace_owner_rules(store: Store, rules: list[OwnerRule], by: str, now: float) -> None:
    """The page's whole list at once, in order. An empty list is kept as a marker row ('-'),
    so that 'no rules' set on the page overrides the TOML's rules too."""
    with store.write():
        DeskOwnerRule.delete().execute()
        for i, r in enumerate(rules):
            DeskOwnerRule.create(position=i, by=r.by, match=r.match, agent=r.agent, set_by=by, set_at=now)
        if not rules:
            DeskOwnerRule.create(position=0, by="-", set_by=by, set_at=now)
        _bump()


def forget_owner_rules(store: Store) -> None:
    """Back to the TOML's rules."""
    with store.write():
        DeskOwnerRule.delete().execute()
        _bump()
