"""Desk-phone feature codes' SQL: who is still waiting for a call back, who to text again, and
the record of each call back (table `callback`). Sync functions that never await.

A missed caller is *waiting* while: the call was inbound and missed, within the window, the
caller's number was not withheld, no later call reached a person with that number (an
answered inbound call from it or an answered outbound call to it), and no call back (by the
feature code or from the inbox) is recorded for that number within the window (a failed one,
or one whose call the PBX recorded as unanswered - the caller busy - does not count).
"""
from __future__ import annotations

import json
import re

import peewee as pw

from .db import CANCELLED, Base, Call, Message, Store

# callback states
ORIGINATING, CONNECTED, FAILED = "originating", "connected", "failed"

_DIALABLE = re.compile(r"^\+?\d{3,20}$")


class Callback(Base):
    """One call back started by a feature code (*88, or the FreeSWITCH event)."""
    call = pw.ForeignKeyField(Call, null=True, backref="callbacks", on_delete="SET NULL")
    peer = pw.CharField(index=True)          # the number called back (Call.caller)
    endpoint = pw.CharField()                # the desk phone rung first, e.g. PJSIP/100
    feature = pw.CharField(default="*88")
    state = pw.CharField()                   # originating | connected | failed
    detail = pw.TextField(default="")        # the PBX's answer when it failed
    agent = pw.CharField(default="")         # the inbox user who asked for it ("" = a feature code)
    channel_id = pw.CharField(default="")    # the originated call's id (Linkedid / uuid) once known
    created_at = pw.DoubleField(index=True)
    updated_at = pw.DoubleField()

    class Meta:
        table_name = "callback"


def create_tables(store: Store) -> None:
    """The lead's migration step (v3) runs this; safe on a store that already has the table."""
    store.db.create_tables([Callback], safe=True)


def _withheld(call: Call) -> bool:
    try:
        return bool(json.loads(call.record or "{}").get("withheld"))
    except ValueError:
        return False


def _candidates(since: float, *, exclude_called_back: bool):
    later = Call.alias()
    reached = later.select(later.id).where(
        (later.created_at > Call.created_at) & (later.answered == True)  # noqa: E712
        & (((later.direction == "inbound") & (later.caller == Call.caller))
           | ((later.direction == "outbound") & (later.called == Call.caller))))
    q = Call.select().where((Call.direction == "inbound") & (Call.missed == True)  # noqa: E712
                            & (Call.created_at >= since) & (Call.caller != "")
                            & ~pw.fn.EXISTS(reached))
    if exclude_called_back:
        # a call back counts while it may still reach them; one whose call the PBX recorded
        # as not answered (caller busy, no answer) leaves them waiting, as a failed one does
        missed_back = Call.alias()
        not_reached = missed_back.select(missed_back.id).where(
            (missed_back.call_id == Callback.channel_id) & (Callback.channel_id != "")
            & (missed_back.answered == False))  # noqa: E712
        done = Callback.select(Callback.id).where(
            (Callback.peer == Call.caller) & (Callback.created_at >= since)
            & (Callback.state != FAILED) & ~pw.fn.EXISTS(not_reached))
        q = q.where(~pw.fn.EXISTS(done))
    return q


def _usable(call: Call) -> bool:
    return bool(_DIALABLE.match(call.caller)) and not _withheld(call)


def _owners(endpoint: str) -> tuple[str, dict[str, str]]:
    """The inbox user whose desk phone this is ('' if none), and every conversation's owner."""
    from .web import ConversationState, WebUser
    ext = re.sub(r"^[A-Za-z]+/", "", endpoint).split("@")[0]        # PJSIP/100, user/100@dom
    me = (WebUser.select(WebUser.name).where((WebUser.extension == ext) & (WebUser.extension != "")
                                              & (WebUser.disabled == False)).scalar())  # noqa: E712
    owners = dict(ConversationState.select(ConversationState.peer, ConversationState.owner)
                  .where(ConversationState.owner != "").tuples())
    return me or "", owners


def claim_oldest_waiting(store: Store, *, endpoint: str, now: float, window_s: float,
                         feature: str = "*88") -> tuple[Call, Callback] | None:
    """The oldest missed caller still waiting, and a `callback` row (originating) claiming it,
    in one write transaction: two phones pressing *88 at once get two different callers.
    A phone that is an inbox user's gets that agent's own callers first, then unassigned ones,
    never another agent's; any other phone gets the oldest of all."""
    since = now - window_s
    with store.write():
        me, owners = _owners(endpoint)
        calls = list(_candidates(since, exclude_called_back=True).order_by(Call.created_at, Call.id))
        if me:
            calls = [c for c in calls if owners.get(c.caller, "") in (me, "")]
            calls.sort(key=lambda c: owners.get(c.caller, "") != me)       # stable: oldest first within
        for call in calls:
            if not _usable(call):
                continue
            cb = Callback.create(call=call, peer=call.caller, endpoint=endpoint, feature=feature,
                                 state=ORIGINATING, created_at=now, updated_at=now)
            return call, cb
    return None


def finish_callback(store: Store, callback_id: int, state: str, *, now: float,
                    detail: str = "") -> None:
    with store.write():
        Callback.update(state=state, detail=detail[:500], updated_at=now).where(
            Callback.id == callback_id).execute()


def last_missed(store: Store, *, now: float, window_s: float) -> Call | None:
    """The most recent missed caller not reached since (called back or not)."""
    for call in _candidates(now - window_s, exclude_called_back=False).order_by(
            Call.created_at.desc(), Call.id.desc()).limit(50):
        if _usable(call):
            return call
    return None


def last_text_body(call: Call) -> str:
    """The body of the last text that went (or was to go) out to this caller about this call."""
    row = (Message.select(Message.body).where(
        (Message.direction == "out") & (Message.peer == call.caller) & (Message.state != CANCELLED)
        & ((Message.call == call) | (Message.kind == "manual")))
        .order_by(Message.created_at.desc(), Message.id.desc()).first())
    return row.body if row else ""


def manual_text_since(peer: str, since: float) -> bool:
    return Message.select().where((Message.peer == peer) & (Message.direction == "out")
                                  & (Message.kind == "manual")
                                  & (Message.created_at >= since)).exists()
