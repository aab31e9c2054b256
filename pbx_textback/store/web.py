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
def conversations(store: Store, now: float) -> list[dict]:
    """Every caller number with a missed call or a reply: when they last called or wrote,
    when someone last answered (an agent's text or a call that reached them), and the state."""
    conv: dict[str, dict] = {}

    def get(peer):
        return conv.setdefault(peer, {"peer": peer, "first_in": None, "last_in": 0.0, "handled": 0.0, "missed": 0,
                                      "replies": 0, "line": "", "state": OPEN, "owner": "", "until": None})
    for peer, first, at, n, line in (Call.select(Call.caller, pw.fn.MIN(Call.created_at), pw.fn.MAX(Call.created_at),
                                                 pw.fn.COUNT(Call.id), pw.fn.MAX(Call.line))
                              .where((Call.direction == "inbound") & (Call.missed == True)  # noqa: E712
                                     & (Call.caller != "")).group_by(Call.caller).tuples()):
        c = get(peer)
        c["first_in"] = first if c["first_in"] is None else min(c["first_in"], first)
        c["last_in"], c["missed"], c["line"] = max(c["last_in"], at), n, line or ""
    for peer, first, at, n in (Message.select(Message.peer, pw.fn.MIN(Message.created_at), pw.fn.MAX(Message.created_at),
                                              pw.fn.COUNT(Message.id))
                        .where(Message.direction == "in").group_by(Message.peer).tuples()):
        c = get(peer)
        c["first_in"] = first if c["first_in"] is None else min(c["first_in"], first)
        c["last_in"], c["replies"] = max(c["last_in"], at), n
    for peer, at in (Message.select(Message.peer, pw.fn.MAX(Message.created_at))
                     .where((Message.direction == "out") & (Message.kind == "agent"))
                     .group_by(Message.peer).tuples()):
        if peer in conv:
            conv[peer]["handled"] = max(conv[peer]["handled"], at)
    for peer, at in (Call.select(Call.caller, pw.fn.MAX(Call.created_at))
                     .where((Call.direction == "inbound") & (Call.answered == True))  # noqa: E712
                     .group_by(Call.caller).tuples()):
        if peer in conv:
            conv[peer]["handled"] = max(conv[peer]["handled"], at)
    for s in ConversationState.select():
        c = conv.get(s.peer)
        if c is None:
            continue
        c["owner"], c["set_at"] = s.owner, s.set_at
        wrote_since = c["last_in"] > s.set_at
        if s.state == DONE and not wrote_since:
            c["state"] = DONE
        elif s.state == SNOOZED and not wrote_since and (s.until is None or s.until > now):
            c["state"], c["until"] = SNOOZED, s.until
    for c in conv.values():
        c["waiting"] = c["last_in"] > c["handled"]
        # waiting since the first call or text nobody answered yet; when someone answered or
        # closed it in between, since the latest (the first after that is not kept apart)
        seen = max(c["handled"], c.pop("set_at", 0.0))
        c["since"] = c["first_in"] if seen < c["first_in"] else c["last_in"]
    return list(conv.values())


def view(convs: list[dict], name: str, search: str = "", me: str = "") -> list[dict]:
    """needs-reply: open, unassigned and waiting, oldest waiting first; mine: open and mine;
    open, snoozed, done: newest first."""
    if name == "needs-reply":
        rows = [c for c in convs if c["state"] == OPEN and not c["owner"] and c["waiting"]]
        rows.sort(key=lambda c: c["since"])
    else:
        if name == "mine":
            rows = [c for c in convs if c["state"] == OPEN and me and c["owner"] == me]
        else:
            rows = [c for c in convs if c["state"] == {"done": DONE, "snoozed": SNOOZED}.get(name, OPEN)]
        rows.sort(key=lambda c: -c["last_in"])
    if search:
        digits = "".join(ch for ch in search if ch.isdigit())
        rows = [c for c in rows if digits and digits in c["peer"]]
    return rows


def counts(convs: list[dict], me: str = "") -> dict[str, int]:
    return {v: len(view(convs, v, me=me)) for v in VIEWS}


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
    marks = (Call.select(pw.fn.MAX(Call.id)), Message.select(pw.fn.MAX(Message.id)),
             Message.select(pw.fn.MAX(Message.updated_at)),
             ConversationState.select(pw.fn.MAX(ConversationState.changed_at)),
             Callback.select(pw.fn.MAX(Callback.updated_at)))
    return ":".join(str(q.scalar()) for q in marks)
