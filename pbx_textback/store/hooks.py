"""Webhooks' SQL: the events the feed found, one delivery per (event, endpoint) with its
attempts, endpoints the admin's receivers disabled (410), and the feed's cursors.

Durability comes from two unique keys: an event's id is derived from the row it describes
(`msg_12_delivered`), so scanning the same rows twice (an overlap, a restart) adds nothing;
and a delivery is unique per (event, endpoint). Sync functions that never await.
"""
from __future__ import annotations

import json

import peewee as pw

from .callbacks import Callback
from .db import Base, Call, Consent, Message, Store
from .lean_consent import NOT_CALLS, requests_by_time
from .web import ConversationState

# delivery states
PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"


class HookEvent(Base):
    event_id = pw.CharField(unique=True)      # the webhook-id: stable across retries and restarts
    type = pw.CharField()
    body = pw.TextField()                     # the exact JSON sent (signed as is, every attempt)
    created_at = pw.DoubleField(index=True)

    class Meta:
        table_name = "hook_event"


class HookDelivery(Base):
    event = pw.ForeignKeyField(HookEvent, backref="deliveries", on_delete="CASCADE")
    endpoint = pw.CharField()
    state = pw.CharField()                    # pending | sending | delivered | failed
    attempts = pw.IntegerField(default=0)
    due_at = pw.DoubleField()
    last_status = pw.IntegerField(null=True)  # the receiver's HTTP status (None: no answer)
    last_error = pw.TextField(default="")
    created_at = pw.DoubleField()
    updated_at = pw.DoubleField()

    class Meta:
        table_name = "hook_delivery"
        indexes = ((("event", "endpoint"), True), (("state", "due_at"), False))


class HookAttempt(Base):
    delivery = pw.ForeignKeyField(HookDelivery, backref="tries", on_delete="CASCADE")
    at = pw.DoubleField()
    status = pw.IntegerField(null=True)
    error = pw.TextField(default="")
    ms = pw.IntegerField(default=0)

    class Meta:
        table_name = "hook_attempt"


class HookEndpointState(Base):
    """An endpoint is on unless a row here says it was disabled (a 410 Gone, or the admin)."""
    name = pw.CharField(unique=True)
    disabled_at = pw.DoubleField()
    reason = pw.TextField(default="")

    class Meta:
        table_name = "hook_endpoint_state"


class HookSeenConversation(Base):
    """What the feed last saw of a conversation: ConversationState keeps only the latest
    owner and state, so an assignment is a difference from this."""
    peer = pw.CharField(unique=True)
    owner = pw.CharField(default="")
    state = pw.CharField(default="")
    set_at = pw.DoubleField(default=0.0)

    class Meta:
        table_name = "hook_seen_conversation"


HOOK_MODELS = [HookEvent, HookDelivery, HookAttempt, HookEndpointState, HookSeenConversation]


def create_tables(db: pw.Database) -> None:
    """Migration v20 and a new store; safe on a store that already has them."""
    db.create_tables(HOOK_MODELS, safe=True)


# ---- what the feed reads ---------------------------------------------------------------------------
def calls_since(since: float, limit: int) -> list[Call]:
    return list(Call.select().where(Call.created_at >= since)
                .order_by(Call.created_at, Call.id).limit(limit))


def messages_since(since: float, limit: int) -> list[Message]:
    return list(Message.select().where(Message.updated_at >= since)
                .order_by(Message.updated_at, Message.id).limit(limit))


def consents_since(since: float, limit: int) -> list[Consent]:
    return list(requests_by_time(since).limit(limit))


def callbacks_since(since: float, limit: int) -> list[Callback]:
    return list(Callback.select().where(Callback.updated_at >= since)
                .order_by(Callback.updated_at, Callback.id).limit(limit))


def conversations_since(since: float, limit: int) -> list[tuple[ConversationState, HookSeenConversation | None]]:
    rows = list(ConversationState.select().where(ConversationState.changed_at >= since)
                .order_by(ConversationState.changed_at, ConversationState.id).limit(limit))
    seen = {s.peer: s for s in HookSeenConversation.select().where(
        HookSeenConversation.peer.in_([r.peer for r in rows]))} if rows else {}
    return [(r, seen.get(r.peer)) for r in rows]


def owners(peers: list[str]) -> dict[str, str]:
    """The inbox owner of each number (who on the desk has the conversation)."""
    if not peers:
        return {}
    return {r.peer: r.owner for r in ConversationState.select(ConversationState.peer, ConversationState.owner)
            .where(ConversationState.peer.in_(sorted(set(peers))))}


_WATCHED = {"calls": ('"call"', "created_at"), "messages": ("message", "updated_at"),
            "consent": ("consent", "at"), "callbacks": ("callback", "updated_at"),
            "conversations": ("conversationstate", "changed_at")}
# the feed sends no inbound-call consent events, and consent (at) does not index them
# (store/lean_consent.py): the consent source's rows are the others
_ONLY = {"consent": f" AND {NOT_CALLS}"}


def fingerprint(store: Store, since: dict[str, float]) -> tuple:
    """(count, newest, sum of times) of each source's rows from its `since` on, in one round
    trip of plain SQL: an idle tick costs this instead of five row fetches. Any row added,
    updated or late-committed in a window changes it."""
    p, parts, args = store.db.param, [], []
    for name, (table, col) in _WATCHED.items():
        for fn in ("COUNT(*)", f"MAX({col})", f"SUM({col})"):
            parts.append(f"(SELECT {fn} FROM {table} WHERE {col} >= {p}{_ONLY.get(name, '')})")
            args.append(since.get(name, 0.0))
    return tuple(store.db.execute_sql("SELECT " + ", ".join(parts), args).fetchone())


def cursors(store: Store) -> dict[str, float]:
    raw = store.setting("hooks.feed.cursors")
    return json.loads(raw) if raw else {}


# ---- writing events ----------------------------------------------------------------------------------
def enqueue(store: Store, events: list[dict], endpoints: dict[str, tuple[str, ...]], now: float, *,
            cursors: dict[str, float] | None = None, seen: list[tuple[str, str, str, float]] = ()) -> int:
    """Each event (event_id, type, body) once; a delivery for every endpoint that wants its
    type. The feed's cursors and conversation snapshot move in the same transaction, so a
    crash either keeps both or neither. Returns the number of new deliveries."""
    def known_ids():
        ids = sorted({e["event_id"] for e in events})
        return {r.event_id for r in HookEvent.select(HookEvent.event_id).where(HookEvent.event_id.in_(ids))} \
            if ids else set()
    # a scan mostly sees again what it saw (the overlap): no write transaction for that
    if cursors is None and not seen and not ({e["event_id"] for e in events} - known_ids()):
        return 0
    made = 0
    with store.write():
        known = known_ids()
        for e in events:
            if e["event_id"] in known:
                continue
            known.add(e["event_id"])
            ev = HookEvent.create(event_id=e["event_id"], type=e["type"], body=e["body"], created_at=now)
            for name, wanted in endpoints.items():
                if e["type"] in wanted:
                    HookDelivery.create(event=ev, endpoint=name, state=PENDING, due_at=now,
                                        created_at=now, updated_at=now)
                    made += 1
        for peer, owner, state, set_at in seen:
            HookSeenConversation.insert(peer=peer, owner=owner, state=state, set_at=set_at).on_conflict(
                conflict_target=[HookSeenConversation.peer],
                update={HookSeenConversation.owner: owner, HookSeenConversation.state: state,
                        HookSeenConversation.set_at: set_at}).execute()
        if cursors is not None:
            store.set_setting("hooks.feed.cursors", json.dumps(cursors, sort_keys=True), now)
    return made


# ---- delivering ------------------------------------------------------------------------------------
def disabled_endpoints() -> dict[str, HookEndpointState]:
    return {r.name: r for r in HookEndpointState.select()}


def claim_due(store: Store, now: float, endpoints: list[str], limit: int) -> list[tuple[HookDelivery, HookEvent]]:
    """Due deliveries of enabled endpoints -> sending, oldest due first."""
    off = list(disabled_endpoints())
    names = [n for n in endpoints if n not in off]
    if not names or limit <= 0:
        return []
    with store.write():
        q = (HookDelivery.select()
             .where((HookDelivery.state == PENDING) & (HookDelivery.due_at <= now)
                    & HookDelivery.endpoint.in_(names))
             .order_by(HookDelivery.due_at, HookDelivery.id).limit(limit))
        if not store.is_sqlite:     # two services on one store never send the same delivery at once
            q = q.for_update("FOR UPDATE SKIP LOCKED")
        rows = list(q)
        if not rows:
            return []
        HookDelivery.update(state=SENDING, updated_at=now).where(
            HookDelivery.id.in_([r.id for r in rows]) & (HookDelivery.state == PENDING)).execute()
        events = {e.id: e for e in HookEvent.select().where(HookEvent.id.in_([r.event_id for r in rows]))}
    return [(r, events[r.event_id]) for r in rows]


def record_attempt(store: Store, delivery_id: int, *, now: float, status: int | None, error: str, ms: int,
                   state: str, due_at: float | None = None) -> None:
    with store.write():
        HookAttempt.create(delivery=delivery_id, at=now, status=status, error=error[:500], ms=ms)
        fields = {HookDelivery.state: state, HookDelivery.attempts: HookDelivery.attempts + 1,
                  HookDelivery.last_status: status, HookDelivery.last_error: error[:500],
                  HookDelivery.updated_at: now}
        if due_at is not None:
            fields[HookDelivery.due_at] = due_at
        HookDelivery.update(fields).where(HookDelivery.id == delivery_id).execute()


def recover_interrupted(store: Store, now: float) -> int:
    """Deliveries left `sending` by a stop or a crash go out again, under the same webhook-id
    (the receiver may have got it: it drops the duplicate by that id)."""
    with store.write():
        return HookDelivery.update(state=PENDING, due_at=now, updated_at=now).where(
            HookDelivery.state == SENDING).execute()


def disable_endpoint(store: Store, name: str, reason: str, now: float) -> None:
    with store.write():
        HookEndpointState.insert(name=name, disabled_at=now, reason=reason).on_conflict(
            conflict_target=[HookEndpointState.name],
            update={HookEndpointState.disabled_at: now, HookEndpointState.reason: reason}).execute()


def enable_endpoint(store: Store, name: str) -> bool:
    with store.write():
        return HookEndpointState.delete().where(HookEndpointState.name == name).execute() > 0


def resend(store: Store, delivery_id: int, now: float) -> HookDelivery:
    """The admin's resend: the same event again (same webhook-id), from the top of the schedule."""
    with store.write():
        d = HookDelivery.get_or_none(HookDelivery.id == delivery_id)
        if d is None:
            raise ValueError(f"no webhook delivery #{delivery_id} (`pbx-textback hooks deliveries` lists them)")
        if d.state == SENDING:
            raise ValueError(f"delivery #{delivery_id} is being sent right now")
        HookDelivery.update(state=PENDING, attempts=0, due_at=now, updated_at=now).where(
            HookDelivery.id == delivery_id).execute()
    return HookDelivery.get_by_id(delivery_id)


def prune(store: Store, before: float) -> int:
    """Events older than `before` whose every delivery is over (delivered or failed), with
    their deliveries and attempts: the queue keeps callers' numbers and texts, so it does not
    keep them for ever. Returns the number of events removed."""
    open_ = HookDelivery.select(HookDelivery.event).where(HookDelivery.state.in_([PENDING, SENDING]))
    with store.write():
        ids = [e.id for e in HookEvent.select(HookEvent.id).where(
            (HookEvent.created_at < before) & HookEvent.id.not_in(open_)).limit(5000)]
        if not ids:
            return 0
        dels = HookDelivery.select(HookDelivery.id).where(HookDelivery.event.in_(ids))
        HookAttempt.delete().where(HookAttempt.delivery.in_(dels)).execute()
        HookDelivery.delete().where(HookDelivery.event.in_(ids)).execute()
        return HookEvent.delete().where(HookEvent.id.in_(ids)).execute()


# ---- what the admin sees ---------------------------------------------------------------------------
def deliveries(endpoint: str | None = None, limit: int = 50, state: str | None = None,
               delivery_id: int | None = None) -> list[dict]:
    q = HookDelivery.select(HookDelivery, HookEvent).join(HookEvent)
    if delivery_id is not None:
        q = q.where(HookDelivery.id == delivery_id)
    if endpoint:
        q = q.where(HookDelivery.endpoint == endpoint)
    if state:
        q = q.where(HookDelivery.state == state)
    return [{"id": d.id, "endpoint": d.endpoint, "event_id": d.event.event_id, "type": d.event.type,
             "state": d.state, "attempts": d.attempts, "due_at": d.due_at, "last_status": d.last_status,
             "last_error": d.last_error, "created_at": d.created_at, "updated_at": d.updated_at}
            for d in q.order_by(HookDelivery.id.desc()).limit(limit)]


def attempts_of(delivery_id: int) -> list[dict]:
    return [{"at": a.at, "status": a.status, "error": a.error, "ms": a.ms}
            for a in HookAttempt.select().where(HookAttempt.delivery == delivery_id).order_by(HookAttempt.id)]


def delivery_counts() -> dict[tuple[str, str], int]:
    """(endpoint, state) -> deliveries: for `hooks list` and the metrics page
    (pbx_textback_webhook_deliveries)."""
    return {(e, s): n for e, s, n in HookDelivery.select(
        HookDelivery.endpoint, HookDelivery.state, pw.fn.COUNT(HookDelivery.id))
        .group_by(HookDelivery.endpoint, HookDelivery.state).tuples()}
