"""One caller's timeline in words: calls, texts (with their state and why), replies and
consent changes, oldest first. Built from the store's dicts; no I/O of its own."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from ..core.policy import quiet

KIND_WORDS = {"missed-call": "Automated text", "follow-up": "Follow-up text", "confirmation": "Confirmation text",
              "help": "HELP answer", "manual": "Text asked for from the desk phone", "resend": "Resent text",
              "test": "Test text", "agent": "Reply from the front desk"}
CONSENT_WORDS = {"inbound-call": "called (conversational consent)", "opt-out": "opted out",
                 "opt-in": "opted back in", "confirmation": "confirmation sent"}


def clock(ts: float | None, zone: str, fmt: str = "%a %d %b %H:%M") -> str:
    if not ts:
        return "time unknown"
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(ZoneInfo(zone)).strftime(fmt)


def text_state(m: dict, now: float, business_tz: str) -> str:
    """A text's state with why, as the desk reads it."""
    state, note = m["state"], m.get("note") or ""
    if state == "pending":
        if m["due_at"] > now + 1:
            zone, _ = quiet.recipient_zone(m["peer"], business_tz)
            until = clock(m["due_at"], zone, "%H:%M %Z")
            if note.startswith("quiet hours"):
                return f"held until {until} in the caller's time zone (quiet hours)"
            return f"queued, goes out at {until} (caller's time)" + (f": {note}" if note else "")
        return "queued" + (f": {note}" if note else "")
    if state == "sending":
        return "sending"
    if state == "cancelled":
        return "cancelled: " + (note or "no reason recorded")
    if state in ("failed", "expired", "unknown", "no-receipt"):
        why = m.get("error") or note
        return state + (f": {why}" if why else "")
    return state     # sent | delivered


def build(peer: str, calls: list[dict], messages: list[dict], consent_events: list, *, now: float,
          business_tz: str) -> list[dict]:
    items = []
    for c in calls:
        inbound = c["direction"] == "inbound"
        if c["missed"]:
            title = f"Missed call ({c['reason']})"
        elif c["answered"]:
            title = "Answered call" if inbound else "Call back (answered)"
        else:
            title = f"Call ({c['reason']})"
        if not inbound:
            title += " - outbound"
        detail = c["why"] or ""
        if c["decision"] == "text":
            detail += "; texted back"
        elif c["decision"]:
            refused = [ch["detail"] for ch in c["checks"] if not ch["ok"]]
            if refused:
                detail += "; no text: " + "; ".join(refused)
        if c.get("answered_by"):
            detail += f"; answered by {c['answered_by']}"
        items.append({"at": c["started_at"] or 0.0, "kind": "call", "title": title, "call_id": c["call_id"],
                      "line": c["called"] if inbound else c["caller"], "detail": detail.strip("; "), "body": ""})
    for m in messages:
        if m["direction"] == "in":
            items.append({"at": m["created_at"], "kind": "reply", "title": "Caller wrote", "line": m["line"],
                          "detail": _intent_words(m.get("note") or ""), "body": m["body"],
                          "id": m.get("id"), "review": (m.get("note") or "").startswith("review")})
        else:
            items.append({"at": m["created_at"], "kind": "text", "title": KIND_WORDS.get(m["kind"], m["kind"]),
                          "line": m["line"], "detail": text_state(m, now, business_tz), "body": m["body"],
                          "state": m["state"]})
    for e in consent_events:
        items.append({"at": e.at, "kind": "consent", "title": "Consent: " + CONSENT_WORDS.get(e.kind, e.kind),
                      "line": e.line, "detail": e.source if e.kind in ("opt-out", "opt-in") else "", "body": ""})
    items.sort(key=lambda i: i["at"])
    for i in items:
        i["when"] = clock(i["at"], business_tz)
    return items


def _intent_words(note: str) -> str:
    if note.startswith("message"):       # "message (not an opt-out, checked by maria)" says who
        return note[len("message"):].strip(" ()")
    if note.startswith("review"):
        return "may mean 'stop texting me': check before texting"
    return note
