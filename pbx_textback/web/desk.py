"""The front desk's working tools on the inbox: "‹agent› is replying" locks, private notes,
saved replies, the one-click answer to a reply flagged for review, each agent's notification
choice, and the live feed of callers' replies that makes the browser chime and notify.

routes(inbox) adds the routes; the Inbox (app.py) calls thread_extras() and mark_rows() when it
renders, and ReplyFeed from its live stream.
"""
from __future__ import annotations

import json
import logging

from aiohttp import web

from ..core.policy import consent, replylock
from ..core.text.templates import TemplateError
from ..store import desk
from ..store import web as sw
from . import saved
from .keys import USER
from .sound import chime

log = logging.getLogger("pbx_textback.web")
MAX_NOTE = 2000
PREVIEW = 100          # characters of a reply in the browser's notification


def lapse_s(inbox) -> float:
    return inbox.cfg.web.reply_lock_minutes * 60


def routes(inbox) -> list[web.RouteDef]:
    d = Desk(inbox)
    return [
        web.post("/c/{peer}/typing", d.typing),
        web.post("/c/{peer}/lock/break", d.break_lock),
        web.post("/c/{peer}/note", d.note),
        web.post("/c/{peer}/review", d.review),
        web.get("/c/{peer}/saved/{id}", d.fill_saved),
        web.get("/saved", d.saved_page),
        web.post("/saved", d.save),
        web.post("/saved/{id}/delete", d.delete_saved),
        web.get("/me", d.me_page),
        web.post("/me", d.set_me),
        web.get("/sound/reply.wav", d.sound),
    ]


# ---- what the conversation and inbox pages show ------------------------------------------------
def thread_extras(inbox, peer: str, me: str, items: list[dict]) -> dict:
    """Notes merged into the timeline (in time order), who else is replying, the saved replies."""
    tz = inbox.cfg.business.timezone
    from .timeline import clock
    for n in desk.notes(inbox.store, peer):
        items.append({"at": n.created_at, "kind": "note", "title": f"Note by {n.author}", "line": "",
                      "detail": "private: the caller does not see it", "body": n.body,
                      "when": clock(n.created_at, tz)})
    items.sort(key=lambda i: i["at"])
    now = inbox.clock()
    lock = replylock.live(desk.lock_of(inbox.store, peer), now, lapse_s(inbox))
    return {"replying": lock.holder if lock is not None and lock.holder != me else "",
            "saved": desk.saved_replies(inbox.store)}


def mark_rows(inbox, rows: list[dict], me: str) -> None:
    """Each inbox row says who else is replying to that caller right now."""
    now, lapse = inbox.clock(), lapse_s(inbox)
    held = desk.locks(inbox.store)
    for c in rows:
        c["replying"] = replylock.held_by_other(held.get(c["peer"]), me, now, lapse)


def last_heard(inbox) -> int:
    """The newest caller's reply a page knows of when it is made (its live stream starts there)."""
    return inbox.feed.last if inbox.feed is not None else desk.last_inbound_id(inbox.store)


def held_by_other(inbox, peer: str, me: str) -> str:
    return replylock.held_by_other(desk.lock_of(inbox.store, peer), me, inbox.clock(), lapse_s(inbox))


def sent(inbox, peer: str, me: str) -> None:
    """The agent sent: their lock ends, and they own the conversation (the last who answered)."""
    lock = desk.lock_of(inbox.store, peer)
    if lock is not None and lock.holder == me:
        desk.drop_lock(inbox.store, peer)
    found = desk.owner_of(inbox.store, peer)
    if found is None or found[1] != me:
        sw.set_owner(inbox.store, peer, me, me, inbox.clock())


# ---- the live feed of replies --------------------------------------------------------------------
class ReplyFeed:
    """Callers' replies as the live stream's watcher finds them: (id, caller, owner, preview).
    Each open page sends those after the last it sent, filtered by its agent's choice."""

    KEEP = 500
    CATCH_UP = 10          # at most this many missed replies told to a page that comes back

    def __init__(self, store):
        self.store = store
        self.items: list[tuple[int, str, str, str]] = []
        self.choices: dict[str, str] = {}
        # the last few replies before this process started: a page that reconnects after a
        # restart hears of those it missed
        recent = desk.recent_inbound(store, self.CATCH_UP)
        self.last = recent[0][0] - 1 if recent else 0       # poll() reads from here
        self.poll()

    def start(self, after: str) -> int:
        """Where a page's stream starts: after the reply id it names (when it was made, or the
        last it was told of), else now; never more than CATCH_UP replies back."""
        try:
            heard = int(after)
        except ValueError:
            return self.last
        kept = [i[0] for i in self.items]
        floor = kept[-self.CATCH_UP] - 1 if len(kept) >= self.CATCH_UP else (kept[0] - 1 if kept else self.last)
        return min(max(heard, floor), self.last)

    def poll(self) -> None:
        from ..store.db import Message
        self.choices = {}          # each agent's notification choice, read again after a change
        for mid, peer in desk.inbound_since(self.store, self.last):
            found = desk.owner_of(self.store, peer)
            m = Message.get_or_none(Message.id == mid)
            if m is not None and (m.note or "").startswith(("stop", "help")):
                self.last = mid            # handled before anyone sees it (issue: STOP/HELP)
                continue
            body = (m.body if m is not None else "")[:PREVIEW]
            self.items.append((mid, peer, found[1] if found else "", body))
            self.last = mid
        del self.items[:-self.KEEP]

    async def send(self, resp, me: str, after: int) -> int:
        """Write the replies after `after` this agent wants to hear of; the new `after`."""
        # one look-up per agent per change, not one per open page (50 tabs of 10 agents)
        choice = self.choices.get(me)
        if choice is None:
            choice = self.choices[me] = desk.notify_choice(self.store, me)
        for mid, peer, owner, body in self.items:
            if mid <= after:
                continue
            after = mid
            if choice == "mine" and owner not in ("", me):
                continue
            data = json.dumps({"id": mid, "peer": peer, "owner": owner, "body": body, "url": f"/c/{peer}"})
            await resp.write(f"id: {mid}\nevent: reply\ndata: {data}\n\n".encode())
        return after


# ---- routes --------------------------------------------------------------------------------------
class Desk:
    def __init__(self, inbox):
        self.inbox = inbox

    @property
    def store(self):
        return self.inbox.store

    async def typing(self, request):
        """The reply box's owner types (active=1) or cleared it / left (active=0)."""
        peer = self.inbox._peer(request)
        me = request[USER].name
        active = (await request.post()).get("active") == "1"
        now, lapse = self.inbox.clock(), lapse_s(self.inbox)
        current = desk.lock_of(self.store, peer)
        if not active:
            if current is not None and current.holder == me:
                desk.drop_lock(self.store, peer)
            return web.json_response({"holder": replylock.held_by_other(current, me, now, lapse)})
        lock, mine = replylock.take(current, me, now, lapse)
        if mine:
            desk.put_lock(self.store, peer, lock)
        return web.json_response({"holder": "" if mine else lock.holder})

    async def break_lock(self, request):
        peer = self.inbox._peer(request)
        u = request[USER]
        lock = desk.lock_of(self.store, peer)
        if not replylock.may_release(lock, u.name, u.role == "admin"):
            raise web.HTTPForbidden(text=f"only an admin can break {lock.holder}'s lock")
        if desk.drop_lock(self.store, peer) and lock.holder != u.name:
            log.info("reply lock of %s broken by %s", lock.holder, u.name)
        raise web.HTTPSeeOther(f"/c/{peer}")

    async def note(self, request):
        peer = self.inbox._peer(request)
        body = str((await request.post()).get("note", "")).strip()
        if not body or len(body) > MAX_NOTE:
            error = "The note is empty." if not body else f"The note is {len(body)} characters; at most {MAX_NOTE}."
            return self.inbox._conversation_page(request, peer, status=400, error=error)
        desk.add_note(self.store, peer, request[USER].name, body, self.inbox.clock())
        raise web.HTTPSeeOther(f"/c/{peer}")

    async def review(self, request):
        """A reply flagged 'may mean stop': one click says which it is."""
        from ..pipeline import Pipeline
        from ..store.db import Message
        peer = self.inbox._peer(request)
        form = await request.post()
        me, now = request[USER].name, self.inbox.clock()
        try:
            mid = int(str(form.get("id", "")))
        except ValueError:
            raise web.HTTPBadRequest(text="which reply?") from None
        m = Message.get_or_none((Message.id == mid) & (Message.peer == peer) & (Message.direction == "in"))
        if m is None or not (m.note or "").startswith("review"):
            raise web.HTTPBadRequest(text="that reply is not waiting for a review (someone answered it already?)")
        verdict = str(form.get("verdict", ""))
        cfg = self.inbox.cfg
        with self.store.write():
            if verdict == "optout":
                self.store.add_consent(consent.ConsentEvent(
                    consent.OPT_OUT, peer, now, scope=cfg.compliance.opt_out_scope, line=m.line,
                    source=f"reply confirmed as an opt-out by {me}: {m.body}"))
                self.store.cancel_pending(peer, f"caller opted out (confirmed by {me})", now)
                Pipeline(cfg, self.store).queue_confirmations(now, number=peer)
                note = f"stop (confirmed by {me})"
            elif verdict == "not":
                note = f"message (not an opt-out, checked by {me})"
            else:
                raise web.HTTPBadRequest(text="verdict must be optout or not")
            Message.update(note=note, updated_at=now).where(Message.id == mid).execute()
        log.info("reply %d reviewed by %s: %s", mid, me, "opt-out" if verdict == "optout" else "not an opt-out")
        raise web.HTTPSeeOther(f"/c/{peer}")

    async def fill_saved(self, request):
        peer = self.inbox._peer(request)
        try:
            r = desk.saved_reply(self.store, int(request.match_info["id"]))
        except ValueError:
            r = None
        if r is None:
            return web.json_response({"error": "no such saved reply"}, status=404)
        line = self.inbox._reply_line(peer)
        calls = [c for c in self.store.calls_for(peer) if c["caller"] == peer and c["missed"]]
        reason = calls[-1]["reason"] if calls else "no-answer"
        try:
            text = saved.fill(self.inbox.cfg, r.body, peer, line, request[USER].name, reason, self.inbox.clock())
        except TemplateError as e:
            return web.json_response({"error": f"{r.name}: {e}"}, status=400)
        return web.json_response({"text": text})

    async def saved_page(self, request, error: str = "", status: int = 200, form=None):
        return self.inbox._page("saved.html", request, status=status, replies=desk.saved_replies(self.store),
                                error=error, form=form or {"id": "", "name": "", "body": ""})

    async def save(self, request):
        form = await request.post()
        name, body = str(form.get("name", "")).strip(), str(form.get("body", "")).strip()
        rid = str(form.get("id", "")).strip()
        error = saved.check(name, body)
        if not error:
            try:
                desk.save_reply(self.store, name, body, request[USER].name, self.inbox.clock(),
                                int(rid) if rid.isdigit() else None)
            except ValueError as e:
                error = str(e)
        if error:
            return await self.saved_page(request, error=error, status=400,
                                         form={"id": rid, "name": name, "body": body})
        raise web.HTTPSeeOther("/saved")

    async def delete_saved(self, request):
        try:
            desk.delete_reply(self.store, int(request.match_info["id"]))
        except ValueError:
            raise web.HTTPNotFound(text="no such saved reply") from None
        raise web.HTTPSeeOther("/saved")

    async def me_page(self, request, error: str = ""):
        return self.inbox._page("me.html", request, notify=desk.notify_choice(self.store, request[USER].name),
                                error=error, choices=NOTIFY_WORDS)

    async def set_me(self, request):
        choice = str((await request.post()).get("notify", ""))
        if choice not in desk.NOTIFY:
            return self.inbox._page("me.html", request, status=400, notify=desk.notify_choice(
                self.store, request[USER].name), choices=NOTIFY_WORDS,
                error="Choose all replies, or mine and unassigned ones.")
        desk.set_notify_choice(self.store, request[USER].name, choice)
        if self.inbox.feed is not None:
            self.inbox.feed.choices.pop(request[USER].name, None)    # the live streams read it again
        raise web.HTTPSeeOther("/me")

    async def sound(self, request):
        return web.Response(body=chime(), content_type="audio/wav",
                            headers={"Cache-Control": "private, max-age=86400"})


NOTIFY_WORDS = {"all": "Every reply, whoever owns the conversation",
                "mine": "Replies in my conversations and unassigned ones"}


def change_mark(store) -> str:
    """The desk's part of what the live pages watch (locks, notes, rules)."""
    return desk.change_mark(store)
