"""The REST API under /api/v1 (README "REST API"), served by the inbox's app.

Token auth only (`Authorization: Bearer pbxtb_…`, `pbx-textback token add`): no session cookie,
so no CSRF either (a browser never sends the header by itself). A read token may only GET;
each token has its own rate limit. Every error is JSON: {"error": {"status", "message"}}, the
message written for the person reading the integration's log. Lists are newest first, with an
opaque `next_cursor` to pass back as `cursor`.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import deque

from aiohttp import web

from ..core.numbers import to_e164
from ..store import api as sa
from ..store import web as sw
from ..store.db import _message_dict
from .keys import API_TOKEN

log = logging.getLogger("pbx_textback.api")
BASE = "/api/v1"
MAX_LIMIT, DEFAULT_LIMIT = 200, 50
MAX_BODY = 1600
SNOOZE_MAX_MIN = 60 * 24 * 30


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def error(status: int, message: str, **headers) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status,
                             headers=headers or None)


class RateLimit:
    """At most `per_minute` requests per token in any 60 s (a sliding window, in memory)."""

    def __init__(self, per_minute: int, clock):
        self.per_minute, self.clock, self.seen = per_minute, clock, {}

    def wait(self, key: str) -> float:
        """0 when this request may go on; else seconds until it would."""
        now = self.clock()
        q = self.seen.setdefault(key, deque())
        while q and now - q[0] >= 60:
            q.popleft()
        if len(q) >= self.per_minute:
            return 60 - (now - q[0])
        q.append(now)
        return 0.0


async def guard(inbox, request, handler):
    """The auth middleware's part for /api/: a live token, its scope, its rate."""
    try:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise ApiError(401, "no token: send the header 'Authorization: Bearer <token>' "
                                "(an admin makes one with `pbx-textback token add NAME --scope read|write`)")
        tok = sa.check(inbox.store, auth[7:].strip(), inbox.clock())
        if tok is None:
            raise ApiError(401, "this token is unknown or was revoked (`pbx-textback token list`)")
        if request.method not in ("GET", "HEAD") and tok.scope != sa.WRITE:
            raise ApiError(403, f"token {tok.name} may only read; this needs a token made with --scope write")
        limiter = inbox.__dict__.setdefault("api_limiter", RateLimit(inbox.cfg.api.rate_per_minute, inbox.clock))
        wait = limiter.wait(tok.name)
        if wait:
            return error(429, f"too many requests with token {tok.name}: at most "
                              f"{limiter.per_minute} a minute; try again in {wait:.0f} s",
                         **{"Retry-After": str(max(1, round(wait)))})
        request[API_TOKEN] = tok
        return await handler(request)
    except ApiError as e:
        return error(e.status, e.message)
    except web.HTTPNotFound:
        return error(404, f"no such API route: {request.method} {request.path} (the list: {BASE}/openapi.json)")
    except web.HTTPMethodNotAllowed as e:
        return error(405, f"{request.method} is not allowed on {request.path}; use {', '.join(sorted(e.allowed_methods))}")


# ---- helpers -----------------------------------------------------------------------------------
def _limit(request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}")
    return int(raw)


def _cursor(request):
    raw = request.query.get("cursor")
    if not raw:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise ApiError(400, "cursor is not one this API gave out: pass next_cursor from the previous page "
                            "unchanged") from None


def _next(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _page(items: list, more: bool, last) -> dict:
    return {"data": items, "next_cursor": _next(last) if more and items else None}


def _number(inbox, raw: str, what: str = "number") -> str:
    n = to_e164(raw.strip(), inbox.cfg.business.country) if raw and raw.strip() else None
    if not n:
        raise ApiError(400 if what != "path" else 404,
                       f"{raw!r} is not a phone number; give it in E.164, e.g. +15125550188")
    return n


async def _json(request) -> dict:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not JSON; send Content-Type: application/json and a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object, e.g. {\"to\": \"+15125550188\", \"body\": \"Hi\"}")
    return data


def _iso(ts):
    from ..hooks.events import iso
    return iso(ts)


def _call(c) -> dict:
    return {"id": c.id, "call_id": c.call_id, "box": c.box,
            "number": c.called if c.direction == "outbound" else c.caller,
            "direction": c.direction, "line": c.line, "missed": c.missed, "reason": c.reason if c.missed else "",
            "why": c.why, "answered": c.answered, "voicemail_left": c.voicemail_left, "recovered": c.recovered,
            "started_at": _iso(c.started_at), "ended_at": _iso(c.ended_at),
            "duration_s": round(c.ended_at - c.started_at, 1) if c.started_at and c.ended_at else None}


def _message(m) -> dict:
    d = _message_dict(m)
    return {"id": d["id"], "number": d["peer"], "direction": "inbound" if d["direction"] == "in" else "outbound",
            "kind": d["kind"], "line": d["line"], "body": d["body"], "state": d["state"], "error": d["error"],
            "note": d["note"], "call": d["call"], "created_at": _iso(d["created_at"]),
            "updated_at": _iso(d["updated_at"])}


def _conv(c: dict) -> dict:
    return {"number": c["peer"], "state": c["state"], "owner": c["owner"], "line": c["line"],
            "waiting": c["waiting"], "missed_calls": c["missed"], "replies": c["replies"],
            "last_contact_at": _iso(c["last_in"]), "waiting_since": _iso(c["since"]) if c["waiting"] else None,
            "snoozed_until": _iso(c["until"])}


# ---- handlers ------------------------------------------------------------------------------------
def routes(inbox) -> list[web.RouteDef]:
    store, cfg, clock = inbox.store, inbox.cfg, inbox.clock

    async def openapi(request):
        from .openapi import document
        return web.json_response(document())

    async def calls(request):
        limit, cur = _limit(request), _cursor(request)
        missed = request.query.get("missed")
        if missed not in (None, "true", "false"):
            raise ApiError(400, "missed is true or false")
        number = _number(inbox, request.query["number"]) if request.query.get("number") else ""
        rows = sa.calls_page(cur, limit + 1, missed=None if missed is None else missed == "true", number=number)
        items = [_call(c) for c in rows[:limit]]
        return web.json_response(_page(items, len(rows) > limit, items[-1]["id"] if items else None))

    async def call(request):
        raw = request.match_info["id"]
        c = sa.call_by_id(int(raw)) if raw.isdigit() else None
        if c is None:
            raise ApiError(404, f"no call {raw} (ids come from GET {BASE}/calls)")
        return web.json_response({"data": _call(c)})

    async def conversations(request):
        limit, cur = _limit(request), _cursor(request)
        view = request.query.get("view", "open")
        views = ("all",) + tuple(v for v in sw.VIEWS if v != "mine")
        if view not in views:
            raise ApiError(400, f"view is one of {', '.join(views)}")
        # one page (and one row more, to know there is a next) read in order from the summary rows
        if cur is not None and not (isinstance(cur, list) and len(cur) == 2 and isinstance(cur[0], (int, float))
                                    and isinstance(cur[1], str)):
            raise ApiError(400, "cursor is not one this API gave out: pass next_cursor from the previous page "
                                "unchanged")
        rows = sw.listing(store, view, clock(), owner=request.query.get("owner"),
                          after=(cur[0], cur[1]) if cur is not None else None, limit=limit + 1)
        page = rows[:limit]
        return web.json_response(_page([_conv(c) for c in page], len(rows) > limit,
                                       [page[-1]["last_in"], page[-1]["peer"]] if page else None))

    def _conversation_of(request) -> dict:
        peer = _number(inbox, request.match_info["number"], "path")
        c = sw.conversation(store, peer, clock())
        if c is None:
            raise ApiError(404, f"no conversation with {peer}: nobody with that number called or wrote")
        return c

    async def conversation(request):
        c = _conversation_of(request)
        msgs = sa.messages_page(None, 20, number=c["peer"])
        calls_ = sa.calls_page(None, 20, number=c["peer"])
        return web.json_response({"data": dict(_conv(c), recent_messages=[_message(m) for m in msgs],
                                               recent_calls=[_call(x) for x in calls_])})

    async def assign(request):
        c = _conversation_of(request)
        data = await _json(request)
        owner = data.get("owner", None)
        if not isinstance(owner, str):
            raise ApiError(400, "give \"owner\": a user name of the inbox, or \"\" to unassign")
        if owner and (sw.user(store, owner) is None or sw.user(store, owner).disabled):
            raise ApiError(400, f"no active inbox user {owner!r} (`pbx-textback user list`)")
        sw.set_owner(store, c["peer"], owner, f"api:{request[API_TOKEN].name}", clock())
        log.info("conversation assigned to %s through the API (token %s)", owner or "nobody", request[API_TOKEN].name)
        return web.json_response({"data": _conv(sw.conversation(store, c["peer"], clock()))})

    async def state(request):
        c = _conversation_of(request)
        data = await _json(request)
        new, until = data.get("state"), None
        if new not in (sw.OPEN, sw.SNOOZED, sw.DONE):
            raise ApiError(400, "state is open, snoozed or done")
        if new == sw.SNOOZED and data.get("snooze_minutes") is not None:
            m = data["snooze_minutes"]
            if not isinstance(m, (int, float)) or isinstance(m, bool) or not 1 <= m <= SNOOZE_MAX_MIN:
                raise ApiError(400, f"snooze_minutes is a number from 1 to {SNOOZE_MAX_MIN} (or leave it out: "
                                    "snoozed until the caller writes or calls)")
            until = clock() + m * 60
        sw.set_state(store, c["peer"], new, f"api:{request[API_TOKEN].name}", clock(), until=until)
        return web.json_response({"data": _conv(sw.conversation(store, c["peer"], clock()))})

    async def messages(request):
        limit, cur = _limit(request), _cursor(request)
        number = _number(inbox, request.query["number"]) if request.query.get("number") else ""
        direction = {"inbound": "in", "outbound": "out", None: ""}.get(request.query.get("direction"))
        if direction is None:
            raise ApiError(400, "direction is inbound or outbound")
        rows = sa.messages_page(cur, limit + 1, number=number, direction=direction)
        items = [_message(m) for m in rows[:limit]]
        return web.json_response(_page(items, len(rows) > limit, items[-1]["id"] if items else None))

    async def message(request):
        raw = request.match_info["id"]
        m = sa.message_by_id(int(raw)) if raw.isdigit() else None
        if m is None:
            raise ApiError(404, f"no message {raw}")
        return web.json_response({"data": _message(m)})

    async def send(request):
        """A text as an agent writes it in the inbox: the same consent and destination checks."""
        from ..pipeline import person_text_refusals
        data = await _json(request)
        peer = _number(inbox, str(data.get("to", "")))
        body = data.get("body")
        if not isinstance(body, str) or not body.strip():
            raise ApiError(400, "give \"body\": the text to send")
        body = body.strip()
        if len(body) > MAX_BODY:
            raise ApiError(400, f"the text is {len(body)} characters; at most {MAX_BODY}")
        agent = data.get("agent") or ""
        if agent and (not isinstance(agent, str) or sw.user(store, agent) is None or sw.user(store, agent).disabled):
            raise ApiError(400, f"no active inbox user {agent!r} to send as (`pbx-textback user list`)")
        line = inbox._reply_line(peer)
        refused = person_text_refusals(cfg, store, peer, line)
        if refused:
            raise ApiError(409, "not sent: " + "; ".join(ch.detail for ch in refused))
        from . import desk
        other = desk.held_by_other(inbox, peer, agent)
        if other and data.get("confirm") is not True:       # the inbox asks first too
            raise ApiError(409, f"not sent: {other} is replying to this caller right now; "
                                "send again with \"confirm\": true to send anyway")
        if inbox.send is None:
            raise ApiError(503, "texting is not running in this process; the service sends texts")
        by = agent or f"api:{request[API_TOKEN].name}"
        mid = inbox.send(peer, line, body, by)
        if agent:                       # as the inbox does: their lock ends, they own the caller
            desk.sent(inbox, peer, agent)
        log.info("message %s queued by %s through the API", mid, by)
        return web.json_response({"data": _message(sa.message_by_id(mid))}, status=202)

    def _contact(peer: str) -> dict:
        from ..core.policy import consent
        hist = store.consent_history(peer)
        s = consent.standing(hist, peer, inbox._reply_line(peer))
        return {"number": peer, "consent": s.status, "since": _iso(s.since), "source": s.source,
                "can_text": s.status != consent.OPTED_OUT,
                "history": [{"kind": e.kind, "at": _iso(e.at), "scope": e.scope, "line": e.line,
                             "source": e.source} for e in hist]}

    async def contact(request):
        return web.json_response({"data": _contact(_number(inbox, request.match_info["number"], "path"))})

    def _consent_change(kind):
        async def change(request):
            from ..core.policy import consent
            from ..pipeline import Pipeline
            peer = _number(inbox, request.match_info["number"], "path")
            data = await _json(request)
            reason = data.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                raise ApiError(400, "give \"reason\": why (it is kept in the consent record)")
            confirm = data.get("confirm", True)
            if not isinstance(confirm, bool):
                raise ApiError(400, "confirm is true or false")
            now, who = clock(), request[API_TOKEN].name
            with store.write():
                store.add_consent(consent.ConsentEvent(kind, peer, now, scope=cfg.compliance.opt_out_scope,
                                                       source=f"api {who}: {reason.strip()}"[:500]))
                if kind == consent.OPT_OUT:
                    store.cancel_pending(peer, f"opted out through the API: {reason.strip()}", now)
                n = Pipeline(cfg, store).queue_confirmations(now, number=peer) if confirm else 0
            log.info("%s recorded through the API (token %s)%s", kind, who, "; confirmation queued" if n else "")
            return web.json_response({"data": dict(_contact(peer), confirmation_queued=bool(n))})
        return change

    async def reports(request):
        try:
            from pbx_textback.reporting import report as rp          # helper "reports" (issue 13) provides it
            fn = getattr(rp, "api_report")
        except (ImportError, AttributeError):
            raise ApiError(501, "reports are not available through the API in this version; "
                                "use `pbx-textback report --json` on the PBX box") from None
        return web.json_response(await fn(inbox, request) if _is_coro(fn) else fn(inbox, request))

    from ..core.policy.consent import OPT_IN, OPT_OUT
    return [
        web.get(f"{BASE}/openapi.json", openapi),
        web.get(f"{BASE}/calls", calls),
        web.get(f"{BASE}/calls/{{id}}", call),
        web.get(f"{BASE}/conversations", conversations),
        web.get(f"{BASE}/conversations/{{number}}", conversation),
        web.post(f"{BASE}/conversations/{{number}}/assign", assign),
        web.post(f"{BASE}/conversations/{{number}}/state", state),
        web.get(f"{BASE}/messages", messages),
        web.post(f"{BASE}/messages", send),
        web.get(f"{BASE}/messages/{{id}}", message),
        web.get(f"{BASE}/contacts/{{number}}", contact),
        web.post(f"{BASE}/contacts/{{number}}/opt-out", _consent_change(OPT_OUT)),
        web.post(f"{BASE}/contacts/{{number}}/opt-in", _consent_change(OPT_IN)),
        web.get(f"{BASE}/reports", reports),
    ]


def _is_coro(fn) -> bool:
    import inspect
    return inspect.iscoroutinefunction(fn)
