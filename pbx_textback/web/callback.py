"""Call back from the inbox: the button on a conversation, and each call back (from the page
or *88) on the caller's timeline with its result. The call itself goes through the PBX that
owns the caller's line: this service's own connection (deskphone.DeskPhones, handed to the
inbox as `webapp.deskphones`), or, on a store several boxes share (and on the inbox-only box),
a queued row the owning box's service places (store/boxcalls.py, queued_callbacks.py)."""
from __future__ import annotations

import logging

from aiohttp import web

from ..core.pbx.originate import outcome_words
from ..store import boxcalls
from ..store import deskphones as sd
from ..store.boxes import box_of_line
from ..store.desk import owner_of
from ..store import web as sw
from . import timeline
from .keys import USER

log = logging.getLogger("pbx_textback.web")


def routes(webapp) -> list[web.RouteDef]:
    webapp.env.globals["callback_plan"] = lambda user, line: plan(webapp, user, line)

    async def call_back(request):
        from ..deskphone import Refused
        peer = webapp._peer(request)
        me = request[USER]
        why, box = plan(webapp, me, webapp._reply_line(peer))
        if not why and not box:
            try:
                cb = await webapp.deskphones.call_back(peer, me.name, me.extension)
            except Refused as e:
                why = str(e)
        elif not why:          # another box's PBX places it (queued_callbacks.py, on that box)
            cb = boxcalls.queue(webapp.store, peer=peer, extension=me.extension, agent=me.name, box=box,
                                now=webapp.clock())
        if why:
            return webapp._conversation_page(request, peer, status=400, error=why)
        found = owner_of(webapp.store, peer)
        if found is None or found[1] != me.name:      # the owner is who last texted or called the caller
            sw.set_owner(webapp.store, peer, me.name, me.name, webapp.clock())
        log.info("call back %d asked for by %s from the inbox%s", cb, me.name,
                 f", queued for box {box}" if box else "")
        raise web.HTTPSeeOther(f"/c/{peer}")

    return [web.post("/c/{peer}/callback", call_back)]


def plan(webapp, user, line: str) -> tuple[str, str]:
    """(why the button is disabled or '', the box to queue the call back for or '' = here).
    The call goes through the PBX that owns the caller's line (the box whose service took the
    line's latest call): this box's own connection when it is this box or no box is known yet,
    else a row that box's service places."""
    extension = getattr(user, "extension", "") or ""
    desk = getattr(webapp, "deskphones", None)
    local = desk is not None and desk.connected
    owner = box_of_line(webapp.store, line) if line else ""
    if local and owner in ("", webapp.store.box):
        return desk.why_not(extension), ""
    if owner:
        from ..deskphone import extension_why
        return extension_why(extension), owner
    return (f"Call back needs the running service's PBX connection; this inbox has none, and no PBX "
            f"box has taken a call on line {line or '?'} yet to place it."), ""


def items(store, peer: str, tz: str, cbs=None) -> list[dict]:
    """Timeline items: one per call back of this number."""
    out = []
    for cb in (sd.for_peer(store, peer) if cbs is None else cbs):
        who = f"{cb['agent']} from the inbox" if cb["agent"] else f"{cb['feature']} on the desk phone"
        if cb["state"] == boxcalls.QUEUED:
            words = f"waiting for box {cb['box']}'s PBX to ring extension {cb['endpoint']}"
        else:
            words = f"{outcome_words(cb['state'], cb['detail'], cb['call'])} ({cb['endpoint']})"
        out.append({"at": cb["at"], "kind": "callback", "title": f"Call back by {who}", "line": "",
                    "detail": words,
                    "body": "", "when": timeline.clock(cb["at"], tz), "result": cb["state"]})
    return out


def with_callbacks(found: list[dict], store, peer: str, tz: str) -> list[dict]:
    """The timeline with its call backs; the call a call back made is told by the call back's
    own item (its result), not again as an outbound call."""
    cbs = sd.for_peer(store, peer)
    made = {cb["channel_id"] for cb in cbs if cb["channel_id"]}
    kept = [i for i in found if not (i["kind"] == "call" and i.get("call_id") in made)]
    return sorted(kept + items(store, peer, tz, cbs), key=lambda i: i["at"])
