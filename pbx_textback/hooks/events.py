"""Pure: stored rows (as plain dicts) -> webhook events, and the retry schedule.

An event's id is derived from what it describes (`msg_12_delivered`), never drawn at random:
the feed may see a row twice (its scans overlap; a restart scans again) and the second sight
must name the same event, which the store then already has.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

# Standard Webhooks' schedule: the first try at once, then these delays after each failure
SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)


def next_due(attempts_done: int, now: float, schedule=SCHEDULE) -> float | None:
    """When to try again after `attempts_done` failed tries; None: the schedule is spent."""
    if attempts_done >= len(schedule):
        return None
    return now + schedule[attempts_done]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(ts: float) -> int:
    return int(round(ts * 1000))


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit()) or "unknown"


def event(event_id: str, type_: str, at: float, data: dict) -> dict:
    """The stored event: its id, type and the exact body every attempt sends."""
    body = json.dumps({"type": type_, "timestamp": iso(at), "data": data}, separators=(",", ":"),
                      ensure_ascii=False)
    return {"event_id": event_id, "type": type_, "body": body}


def call_events(c: dict, owner: str = "") -> list[dict]:
    """c: a stored call (id, call_id, box, caller, called, line, direction, missed, reason,
    answered, voicemail_left, started_at, ended_at, created_at, talk_seconds, ring_seconds)."""
    number = c["called"] if c["direction"] == "outbound" else c["caller"]
    start, end = c.get("started_at"), c.get("ended_at")
    data = {"id": f"call_{c['id']}", "call_id": c["call_id"], "box": c.get("box", ""), "number": number,
            "direction": c["direction"], "line": c["line"], "missed": bool(c["missed"]),
            "reason": c["reason"] if c["missed"] else "", "answered": bool(c["answered"]),
            "voicemail_left": c.get("voicemail_left"), "started_at": iso(start), "ended_at": iso(end),
            "duration_s": round(end - start, 1) if start is not None and end is not None else None,
            "talk_s": c.get("talk_seconds"), "ring_s": c.get("ring_seconds"), "owner": owner}
    at = end if end is not None else c["created_at"]
    out = []
    if c["missed"] and c["direction"] == "inbound":
        out.append(event(f"call_{c['id']}_missed", "call.missed", at, data))
    if c["answered"]:
        out.append(event(f"call_{c['id']}_answered", "call.answered", at, data))
    return out


def message_events(m: dict, owner: str = "") -> list[dict]:
    """m: a stored message (id, direction, kind, line, peer, body, state, error, note, call,
    created_at, updated_at, written_at). A text first seen delivered was sent too."""
    if m["kind"] == "test":          # send-test's own texts are the admin's, not the business's
        return []
    agent = m["note"][3:] if m["kind"] == "agent" and m["note"].startswith("by ") else ""
    data = {"id": f"msg_{m['id']}", "number": m["peer"],
            "direction": "inbound" if m["direction"] == "in" else "outbound",
            "line": m["line"], "kind": m["kind"], "body": m["body"], "state": m["state"],
            "error": m["error"], "agent": agent, "owner": owner,
            "call": f"call_{m['call']}" if m.get("call") else None,
            "created_at": iso(m["created_at"]), "updated_at": iso(m["updated_at"])}
    if m["direction"] == "in":
        return [event(f"msg_{m['id']}_received", "message.received", m["created_at"], data)]
    out = []
    if m["state"] in ("sent", "delivered", "no-receipt"):
        at = m.get("written_at") or m["updated_at"]
        out.append(event(f"msg_{m['id']}_sent", "message.sent", at, dict(data, state="sent")))
    if m["state"] == "delivered":
        out.append(event(f"msg_{m['id']}_delivered", "message.delivered", m["updated_at"], data))
    if m["state"] == "failed":
        out.append(event(f"msg_{m['id']}_failed", "message.failed", m["updated_at"], data))
    return out


def consent_events(c: dict) -> list[dict]:
    """c: a consent record (id, number, kind opt-out|opt-in, at, scope, line, source)."""
    type_ = {"opt-out": "contact.opted_out", "opt-in": "contact.opted_in"}.get(c["kind"])
    if type_ is None:
        return []
    data = {"id": f"consent_{c['id']}", "number": c["number"], "scope": c["scope"], "line": c["line"],
            "source": c["source"], "at": iso(c["at"])}
    return [event(f"consent_{c['id']}", type_, c["at"], data)]


def conversation_events(now_: dict, seen: dict | None) -> list[dict]:
    """now_: the conversation's state row (peer, owner, state, set_by, set_at, changed_at);
    seen: what the feed saw of it last time (owner, state, set_at) or None."""
    before = seen or {"owner": "", "state": "", "set_at": 0.0}
    peer, out = now_["peer"], []
    base = {"number": peer, "owner": now_["owner"], "by": now_["set_by"], "state": now_["state"]}
    if now_["owner"] and now_["owner"] != before["owner"]:
        at = now_["changed_at"]
        out.append(event(f"conv_{_digits(peer)}_assigned_{_ms(at)}", "conversation.assigned", at,
                         dict(base, id=f"conv_{_digits(peer)}", previous_owner=before["owner"], at=iso(at))))
    if now_["state"] == "done" and (before["state"] != "done" or before["set_at"] != now_["set_at"]):
        at = now_["set_at"]
        out.append(event(f"conv_{_digits(peer)}_closed_{_ms(at)}", "conversation.closed", at,
                         dict(base, id=f"conv_{_digits(peer)}", at=iso(at))))
    return out


def callback_events(cb: dict) -> list[dict]:
    """cb: a desk-phone call back (id, peer, endpoint, state, detail, call, created_at, updated_at);
    completed once it connected or failed."""
    if cb["state"] not in ("connected", "failed"):
        return []
    data = {"id": f"cb_{cb['id']}", "number": cb["peer"], "desk_phone": cb["endpoint"],
            "result": cb["state"], "detail": cb["detail"],
            "call": f"call_{cb['call']}" if cb.get("call") else None,
            "started_at": iso(cb["created_at"]), "ended_at": iso(cb["updated_at"])}
    return [event(f"cb_{cb['id']}_completed", "callback.completed", cb["updated_at"], data)]
