"""The front-desk inbox: aiohttp + Jinja2, server-rendered, served by the service's own loop.

Security in one place: every route needs a signed-in session except those in PUBLIC; every
POST carries the session's CSRF token; the session id is new at each sign-in; failed sign-ins
are limited per address and per user name. No access log: URLs hold callers' numbers.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from pathlib import Path

import jinja2
from aiohttp import web

from ..core.numbers import to_e164
from ..core.text.sms import sms_info
from ..store import seen as seen_store
from ..store import web as sw
from . import admin, api, callback, desk, hooks, seen, timeline, voicemail
from .keys import CSRF, USER
from .reports import routes as reports_routes
from .passwords import DUMMY_HASH, verify

log = logging.getLogger("pbx_textback.web")
HERE = Path(__file__).parent
COOKIE = "pbxtb_session"
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/health"), ("GET", "/static/style.css")}
MAX_FAILS, FAIL_WINDOW_S = 5, 900.0
MAX_KEYS = 10000            # addresses and names with failed sign-ins remembered at most
LIVE_POLL_S = 0.25
MAX_BODY = 1600
PAGE_ROWS = 100          # a view's rows per page; "Show more" asks for the next hundred too


class LoginLimiter:
    """Failed sign-ins per key (an address, a user name) within a window."""

    def __init__(self, clock):
        self.clock, self.fails = clock, {}

    def blocked(self, *keys) -> bool:
        now = self.clock()
        return any(len([t for t in self.fails.get(k, []) if now - t < FAIL_WINDOW_S]) >= MAX_FAILS for k in keys)

    def failed(self, *keys) -> None:
        now = self.clock()
        for k in keys:
            # popped and put back: the dict stays in order of the last failure, oldest first
            # (the last MAX_FAILS decide a block: a key never holds more)
            self.fails[k] = ([t for t in self.fails.pop(k, []) if now - t < FAIL_WINDOW_S] + [now])[-MAX_FAILS:]
        while len(self.fails) > MAX_KEYS:   # a spray of made-up names: forget the longest quiet
            del self.fails[next(iter(self.fails))]

    def forget(self, *keys) -> None:
        for k in keys:
            self.fails.pop(k, None)


class Inbox:
    def __init__(self, cfg, store, *, clock=time.time, send=None):
        """send(peer, line, body, by) -> message id: the service's outbox (Service.queue_manual)."""
        self.cfg, self.store, self.clock, self.send = cfg, store, clock, send
        self.limiter = LoginLimiter(clock)
        self.stopping = asyncio.Event()
        self.listeners: set[asyncio.Event] = set()     # one per open live stream
        self.watcher: asyncio.Task | None = None
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters["visible"] = visible_controls
        self.runner: web.AppRunner | None = None
        self.feed: desk.ReplyFeed | None = None      # callers' replies for the pages' chime
        self.deskphones = None   # deskphone.DeskPhones: the service's PBX connection (call back), set by it

    # ---- the app ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._auth], client_max_size=64 * 1024)
        app.add_routes([
            web.get("/health", self.health),
            web.get("/login", self.login_page),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.get("/static/style.css", self.static),
            web.get("/static/app.js", self.static),
            web.get("/static/desk.js", self.static),
            web.get("/", self.inbox),
            web.get("/c/{peer}", self.conversation),
            web.post("/c/{peer}/reply", self.reply),
            web.post("/c/{peer}/state", self.set_state),
            web.post("/c/{peer}/owner", self.set_owner),
            web.get("/sms-info", self.segments),
            web.get("/events", self.events),
            *desk.routes(self),
        ])
        app.add_routes(voicemail.routes(self))
        app.add_routes(api.routes(self))          # /api/v1: token auth (web/api.py)
        app.add_routes(hooks.routes(self))        # /admin/hooks (web/hooks.py)
        app.add_routes(callback.routes(self))
        app.add_routes(reports_routes(self))
        app.add_routes(admin.routes(self))      # admin pages (admin role only)
        app.add_routes(seen.routes(self))       # Mark all seen (web/seen.py)
        return app

    async def start(self, host: str, port: int) -> int:
        from .tls import context
        ssl_context = context(self.cfg.web.tls_cert, self.cfg.web.tls_key)    # TlsError: an OSError
        self.scheme = "https" if ssl_context else "http"
        self.runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=ssl_context)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.stopping.set()          # live streams end, so the runner does not wait for them
        for ev in list(self.listeners):
            ev.set()
        if self.runner is not None:
            await self.runner.cleanup()

    # ---- middlewares --------------------------------------------------------------------------
    @web.middleware
    async def _headers(self, request, handler):
        resp = await handler(request)
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @web.middleware
    async def _auth(self, request, handler):
        if request.path.startswith("/api/"):          # tokens, never the session: no CSRF
            return await api.guard(self, request, handler)
        route = request.match_info.route.resource
        key = (request.method, route.canonical if route is not None else request.path)
        if key in PUBLIC:
            return await handler(request)
        found = sw.session(self.store, request.cookies.get(COOKIE, ""), self.clock())
        if found is None:
            if request.method == "GET" and key[1] not in ("/events", "/sms-info"):
                raise web.HTTPSeeOther("/login")
            raise web.HTTPUnauthorized(text="sign in first")
        request[USER], request[CSRF] = found
        if request.method != "GET":
            sent = request.headers.get("X-CSRF-Token") or (await request.post()).get("csrf", "")
            if not hmac.compare_digest(str(sent).encode(), found[1].encode()):   # bytes: any text compares
                raise web.HTTPForbidden(text="this form is out of date: reload the page and try again")
        return await handler(request)

    def _page(self, template: str, request=None, status: int = 200, **ctx) -> web.Response:
        ctx.setdefault("user", request.get(USER) if request is not None else None)
        ctx.setdefault("csrf", request.get(CSRF, "") if request is not None else "")
        ctx.setdefault("business", self.cfg.business.name or "pbx-textback")
        ctx.setdefault("heard", desk.last_heard(self) if ctx["user"] else 0)
        return web.Response(text=self.env.get_template(template).render(**ctx), status=status,
                            content_type="text/html", charset="utf-8")

    # ---- public -------------------------------------------------------------------------------
    async def health(self, request):
        return web.json_response({"ok": True})

    async def static(self, request):
        name = request.path.rsplit("/", 1)[1]
        ctype = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(body=(HERE / "static" / name).read_bytes(), content_type=ctype, charset="utf-8")

    async def login_page(self, request):
        return self._page("login.html", error="", name="")

    async def login(self, request):
        form = await request.post()
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        addr = f"addr:{request.remote}"
        who = f"user:{name.casefold()}"
        if self.limiter.blocked(addr, who):
            log.warning("web sign-in refused for %r from %s: too many failures", name, request.remote)
            return self._page("login.html", status=429, name=name,
                              error="Too many failed sign-ins: wait 15 minutes and try again.")
        u = sw.user(self.store, name) if name else None
        # an unknown name costs the same hashing time: the answer's speed names no user
        ok = verify(u.password_hash if u is not None else DUMMY_HASH, password) and u is not None and not u.disabled
        if not ok:
            self.limiter.failed(addr, who)
            log.info("web sign-in failed for %r from %s", name, request.remote)
            return self._page("login.html", status=401, name=name, error="Wrong name or password.")
        self.limiter.forget(who)
        old = request.cookies.get(COOKIE)
        if old:
            sw.end_session(self.store, old)       # never keep the id the browser came with
        token, _ = sw.new_session(self.store, u.id, self.clock())
        log.info("web sign-in: %s from %s", u.name, request.remote)
        resp = web.HTTPSeeOther("/")
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=_tls(request), path="/",
                        max_age=sw.SESSION_DAYS * 86400)
        raise resp

    # ---- signed in ----------------------------------------------------------------------------
    async def logout(self, request):
        everywhere = (await request.post()).get("everywhere") == "1"
        sw.end_session(self.store, request.cookies.get(COOKIE, ""), everywhere=everywhere)
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    async def inbox(self, request):
        name = request.query.get("view", "needs-reply")
        if name not in sw.VIEWS:
            name = "needs-reply"
        q = request.query.get("q", "").strip()[:40]
        try:
            shown = min(max(int(request.query.get("n", PAGE_ROWS)), PAGE_ROWS), 50 * PAGE_ROWS)
        except ValueError:
            shown = PAGE_ROWS
        me, now = request[USER].name, self.clock()
        rows = sw.view(self.store, name, now, q, me=me, limit=shown + 1)
        more = len(rows) > shown
        rows = rows[:shown]
        tz = self.cfg.business.timezone
        for c in rows:
            c["when"] = timeline.clock(c["last_in"], tz)
        desk.mark_rows(self, rows, me)
        seen_store.mark_new(self.store, rows, me, name)
        return self._page("inbox.html", request, view=name, rows=rows, counts=sw.counts(self.store, now, me), q=q,
                          views=VIEW_NAMES, more=shown + PAGE_ROWS if more else 0)

    def _peer(self, request) -> str:
        raw = request.match_info["peer"]
        peer = to_e164(raw, self.cfg.business.country) or ""
        if not peer or peer != raw:
            raise web.HTTPNotFound(text="not a caller's number")
        return peer

    def _thread(self, peer: str) -> dict:
        from ..core.policy import consent
        hist = self.store.consent_history(peer)
        calls = [c for c in self.store.calls_for(peer) if peer in (c["caller"], c["called"])]
        msgs = self.store.messages_to(peer)
        now = self.clock()
        items = timeline.build(peer, calls, msgs, hist, now=now, business_tz=self.cfg.business.timezone)
        items = callback.with_callbacks(items, self.store, peer, self.cfg.business.timezone)
        items = voicemail.merged(items, self.store, peer, self.cfg.business.timezone)
        line = self._reply_line(peer)
        s = consent.standing(hist, peer, line)
        closed = ""
        if s.status == consent.OPTED_OUT:
            closed = (f"This caller opted out ({timeline.clock(s.since, self.cfg.business.timezone)}, "
                      f"by {s.source!r}): no text can be sent until they text START or opt back in.")
        conv = sw.conversation(self.store, peer, now) or {"state": sw.OPEN, "owner": "", "until": None}
        conv["until_words"] = timeline.clock(conv["until"], self.cfg.business.timezone) if conv["until"] else ""
        return {"peer": peer, "items": items, "line": line, "closed": closed, "conv": conv,
                "agents": [u.name for u in sw.users(self.store) if not u.disabled],
                "late": self._late_for_caller(peer, line, now)}

    def _late_for_caller(self, peer: str, line: str, now: float) -> str:
        """A warning, not a block: a person answering a person may write outside quiet hours."""
        from ..core.policy import quiet
        from ..core.policy.decide import find_line
        from ..pipeline import Pipeline
        ln = find_line(self.cfg, line)
        qh = Pipeline(self.cfg, self.store).quiet_hours(ln)
        if qh is None:
            return ""
        zone, _ = quiet.recipient_zone(peer, ln.timezone if ln else self.cfg.business.timezone)
        if quiet.inside(now, zone, qh):
            return ""
        return (f"It is {timeline.clock(now, zone, '%H:%M %Z')} for the caller, outside {qh.start}-{qh.end}: "
                "your reply goes out at once when you send it.")

    def _reply_line(self, peer: str) -> str:
        from ..pipeline import Pipeline
        return Pipeline(self.cfg, self.store).sender_for(peer)

    async def conversation(self, request):
        peer = self._peer(request)
        seen_store.see_peer(self.store, request[USER].name, peer, self.clock())
        return self._conversation_page(request, peer)

    def _conversation_page(self, request, peer: str, status: int = 200, error: str = "", draft: str = "",
                           t: dict | None = None, **extra):
        t = t if t is not None else self._thread(peer)
        t.update(desk.thread_extras(self, peer, request[USER].name, t["items"]))
        return self._page("conversation.html", request, status=status, error=error, draft=draft, **t,
                          confirm_send=extra.get("confirm_send", ""))

    async def reply(self, request):
        from ..pipeline import person_text_refusals
        peer = self._peer(request)
        form = await request.post()
        body = str(form.get("body", "")).strip()
        t = self._thread(peer)
        error = ""
        me = request[USER].name
        other = desk.held_by_other(self, peer, me)
        if not body:
            error = "The reply is empty."
        elif len(body) > MAX_BODY:
            error = f"The reply is {len(body)} characters; at most {MAX_BODY}."
        elif t["closed"]:
            error = t["closed"]
        else:
            refused = person_text_refusals(self.cfg, self.store, peer, t["line"])
            if refused:
                error = "Not sent: " + "; ".join(ch.detail for ch in refused)
        if not error and other and form.get("confirm") != "1":     # someone else holds it: ask first
            return self._conversation_page(request, peer, status=409, draft=body, t=t, confirm_send=other,
                                           error=f"{other} is replying to this caller right now.")
        if error or self.send is None:
            error = error or "Texting is not running in this process."
            return self._conversation_page(request, peer, status=400, error=error, draft=body, t=t)
        mid = self.send(peer, t["line"], body, me)
        desk.sent(self, peer, me)             # the owner is who last answered the caller
        log.info("message %s queued by %s from the inbox", mid, me)
        raise web.HTTPSeeOther(f"/c/{peer}")

    async def set_state(self, request):
        """open, done, or snoozed until the caller writes or calls (`for` = reply), or for a while."""
        peer = self._peer(request)
        form = await request.post()
        state, until = str(form.get("state", "")), None
        if state not in (sw.OPEN, sw.DONE, sw.SNOOZED):
            raise web.HTTPBadRequest(text="state must be open, snoozed or done")
        if state == sw.SNOOZED:
            span = SNOOZES.get(str(form.get("for", "reply")))
            if span is None:
                raise web.HTTPBadRequest(text=f"snooze for one of: {', '.join(SNOOZES)}")
            until = self.clock() + span if span else None
        sw.set_state(self.store, peer, state, request[USER].name, self.clock(), until=until)
        raise web.HTTPSeeOther(f"/c/{peer}")

    async def set_owner(self, request):
        """Claim (me), assign to a signed-up agent, or unassign ('')."""
        peer = self._peer(request)
        me = request[USER].name
        owner = str((await request.post()).get("owner", ""))
        owner = me if owner == "me" else owner
        if owner and (sw.user(self.store, owner) is None or sw.user(self.store, owner).disabled):
            raise web.HTTPBadRequest(text=f"no active user {owner!r}")
        sw.set_owner(self.store, peer, owner, me, self.clock())
        raise web.HTTPSeeOther(f"/c/{peer}")

    async def segments(self, request):
        return web.json_response(sms_info(request.query.get("text", "")[:MAX_BODY * 2]).to_dict())

    async def events(self, request):
        """Server-sent events: 'change' whenever a call, text or state changes. The browser's
        EventSource reconnects by itself (after a restart too) and the page then reloads its lists."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})      # nginx: do not buffer
        # listening (and the watcher's first mark read) before the page hears the stream is open:
        # a change stored after that is told to it; one stored before, its refresh on open
        # (asked after the open) finds
        if self.feed is None:
            self.feed = desk.ReplyFeed(self.store)
        changed = asyncio.Event()
        self.listeners.add(changed)
        if self.watcher is None:
            self.watcher = asyncio.create_task(self._watch(self._mark()))
        try:
            await resp.prepare(request)
            await resp.write(b"retry: 1000\n\n")
            self.feed.poll()
            # replies after the last the page knew of (when it was made, or the last it was told
            # of before a reconnect) are news to it
            heard = self.feed.start(request.headers.get("Last-Event-ID") or request.query.get("after", ""))
            heard = await self.feed.send(resp, request[USER].name, heard)
            while not self.stopping.is_set():
                try:
                    await asyncio.wait_for(changed.wait(), 15)
                except asyncio.TimeoutError:
                    await resp.write(b": still here\n\n")
                    continue
                changed.clear()
                if not self.stopping.is_set():
                    await resp.write(b"event: change\ndata: 1\n\n")
                    heard = await self.feed.send(resp, request[USER].name, heard)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.listeners.discard(changed)
        return resp

    def _mark(self) -> str:
        return sw.change_mark(self.store) + ":" + desk.change_mark(self.store)

    async def _watch(self, mark: str) -> None:
        """One reader of the store's change mark for every open page, while any is open."""
        try:
            while self.listeners and not self.stopping.is_set():
                await asyncio.sleep(LIVE_POLL_S)
                now = self._mark()
                if now != mark:
                    mark = now
                    self.feed.poll()
                    for ev in list(self.listeners):
                        ev.set()
        finally:
            self.watcher = None


# bidi overrides and isolates: in a caller's text they would reorder what the desk reads
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def visible_controls(text: str) -> str:
    """A caller's text with its direction controls shown as [U+202E] (then escaped as usual)."""
    return "".join(f"[U+{ord(ch):04X}]" if ch in _BIDI else ch for ch in str(text))


VIEW_NAMES = {"needs-reply": "Needs reply", "mine": "Mine", "open": "All open", "snoozed": "Snoozed", "done": "Done"}
SNOOZES = {"reply": 0, "1h": 3600, "1d": 86400}      # 0: until the caller writes or calls again


def _tls(request) -> bool:
    """Served over TLS: by us, or by the proxy in front on this box (X-Forwarded-Proto)."""
    if request.secure:
        return True
    local = request.remote in ("127.0.0.1", "::1")
    return local and request.headers.get("X-Forwarded-Proto", "") == "https"
