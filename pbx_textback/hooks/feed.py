"""The feed: every tick, read what changed in the store since the last look (calls, texts,
consent, conversation states, call backs), turn it into events (hooks/events.py) and queue
them. It reads the tables the pipeline and the inbox already write, so the hot path knows
nothing of webhooks.

Each source keeps a cursor (the newest time seen), stored with the events it produced. A scan
looks back OVERLAP_S before the cursor, for a row whose time was taken before another row's
but committed after it; the events' derived ids make the second sight a no-op.
"""
from __future__ import annotations

import json
import logging

from ..store import hooks as sh
from . import events as ev

log = logging.getLogger("pbx_textback.hooks")

OVERLAP_S = 30.0
BATCH = 500
# After the feed was off (webhooks unset, the service down) it catches up at most this far
# back: a receiver configured again after months is not flooded with the past.
CATCH_UP_S = 3 * 86400.0


def _iso(ts: float) -> str:
    return ev.iso(ts)


def _call(c) -> dict:
    try:
        rec = json.loads(c.record or "{}")
    except ValueError:
        rec = {}
    return {"id": c.id, "call_id": c.call_id, "box": c.box, "caller": c.caller, "called": c.called,
            "line": c.line, "direction": c.direction, "missed": c.missed, "reason": c.reason,
            "answered": c.answered, "voicemail_left": c.voicemail_left, "started_at": c.started_at,
            "ended_at": c.ended_at, "created_at": c.created_at,
            "talk_seconds": rec.get("talk_seconds"), "ring_seconds": rec.get("ring_seconds")}


def _message(m) -> dict:
    return {"id": m.id, "direction": m.direction, "kind": m.kind, "line": m.line, "peer": m.peer,
            "body": m.body, "state": m.state, "error": m.error, "note": m.note, "call": m.call_id,
            "created_at": m.created_at, "updated_at": m.updated_at, "written_at": m.written_at}


# source -> (fetch(since, limit), the row's time, rows -> events)
def _calls(rows, owners):
    return [e for r in rows for e in ev.call_events(_call(r), owners.get(
        r.called if r.direction == "outbound" else r.caller, ""))]


def _messages(rows, owners):
    return [e for r in rows for e in ev.message_events(_message(r), owners.get(r.peer, ""))]


def _consents(rows, owners):
    return [e for r in rows for e in ev.consent_events(
        {"id": r.id, "number": r.number, "kind": r.kind, "at": r.at, "scope": r.scope, "line": r.line,
         "source": r.source})]


def _callbacks(rows, owners):
    return [e for r in rows for e in ev.callback_events(
        {"id": r.id, "peer": r.peer, "endpoint": r.endpoint, "state": r.state, "detail": r.detail,
         "call": r.call_id, "created_at": r.created_at, "updated_at": r.updated_at})]


SOURCES = {
    "calls": (sh.calls_since, lambda r: r.created_at, _calls),
    "messages": (sh.messages_since, lambda r: r.updated_at, _messages),
    "consent": (sh.consents_since, lambda r: r.at, _consents),
    "callbacks": (sh.callbacks_since, lambda r: r.updated_at, _callbacks),
}


class Feed:
    def __init__(self, store, endpoints: dict[str, tuple[str, ...]], clock):
        """endpoints: name -> the event types it wants."""
        self.store, self.endpoints, self.clock = store, endpoints, clock
        self._last = None              # the windows' fingerprint at the last full look

    def scan(self) -> int:
        """One look at the store; returns the number of new deliveries queued."""
        now = self.clock()
        cur = sh.cursors(self.store)
        stale = [k for k, v in cur.items() if v < now - CATCH_UP_S]
        if stale:
            log.warning("webhooks: events from before %s are not sent (the feed was off longer than "
                        "%d days)", _iso(now - CATCH_UP_S), CATCH_UP_S // 86400)
            cur = {k: max(v, now - CATCH_UP_S) for k, v in cur.items()}
        fp = sh.fingerprint(self.store, {k: v - OVERLAP_S for k, v in cur.items()}) if cur else None
        if fp is not None and fp == self._last and len(cur) == len(SOURCES) + 1:
            return 0                   # nothing changed in any window since the last look
        self._last = fp
        fresh = dict(cur)
        found: list[dict] = []
        peers: list[str] = []
        fetched = {}
        for name, (fetch, when, _) in list(SOURCES.items()) + [("conversations", (None, None, None))]:
            since = cur.get(name)
            if since is None:           # the first run starts now: no flood of the past
                fresh[name] = now
                continue
            if name == "conversations":
                rows = sh.conversations_since(since - OVERLAP_S, BATCH)
                if len(rows) == BATCH:
                    rows += sh.conversations_since(since, BATCH)
                fresh[name] = max([since] + [r.changed_at for r, _ in rows])
                fetched[name] = rows
                continue
            rows = fetch(since - OVERLAP_S, BATCH)
            if len(rows) == BATCH:      # a burst: also move on past the cursor
                rows += fetch(since, BATCH)
            fresh[name] = max([since] + [when(r) for r in rows])
            fetched[name] = rows
            for r in rows:
                peers.append(getattr(r, "peer", None) or getattr(r, "caller", None) or "")
                if name == "calls" and r.direction == "outbound":
                    peers.append(r.called)
        owners = sh.owners([p for p in peers if p])
        for name, rows in fetched.items():
            if name != "conversations":
                found += SOURCES[name][2](rows, owners)
        seen = []
        for row, last in fetched.get("conversations", []):
            before = {"owner": last.owner, "state": last.state, "set_at": last.set_at} if last else None
            now_ = {"peer": row.peer, "owner": row.owner, "state": row.state, "set_by": row.set_by,
                    "set_at": row.set_at, "changed_at": row.changed_at}
            found += ev.conversation_events(now_, before)
            if last is None or (last.owner, last.state, last.set_at) != (row.owner, row.state, row.set_at):
                seen.append((row.peer, row.owner, row.state, row.set_at))
        made = sh.enqueue(self.store, found, self.endpoints, now, cursors=fresh if fresh != cur else None,
                          seen=seen)
        if made:
            log.debug("webhooks: %d new deliveries queued", made)
        return made
