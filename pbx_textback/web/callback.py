"""Call back from the inbox: the button on a conversation, and each call back (from the page
or *88) on the caller's timeline with its result. The call itself goes through the service's
PBX connection (deskphone.DeskPhones, handed to the inbox as `webapp.deskphones`)."""
from __future__ import annotations

import logging

from aiohttp import web

from ..core.pbx.originate import outcome_words
from ..store import deskphones as sd
from ..store.desk import owner_of
from ..store import web as sw
from . import timeline
from .keys import USER

log = logging.getLogger("pbx_textback.web")


def routes(webapp) -> list[web.RouteDef]:
    webapp.env.globals["callback_why"] = lambda user: why_not(webapp, user)

    async def call_back(request):
        from ..deskphone import Refused
        peer = webapp._peer(request)
        me = request[USER]
        why = why_not(webapp, me)
        if not why:
            try:
                cb = await webapp.deskphones.call_back(peer, me.name, me.extension)
            except Refused as e:
                why = str(e)
        if why:
            return webapp._conversation_page(request, peer, status=400, error=why)
        found = owner_of(webapp.store, peer)
        if found is None or found[1] != me.name:      # the owner is who last texted or called the caller
            sw.set_owner(webapp.store, peer, me.name, me.name, webapp.clock())
        log.info("call back %d asked for by %s from the inbox", cb, me.name)
        raise web.HTTPSeeOther(f"/c/{peer}")

    return [web.post("/c/{peer}/callback", call_back)]


def why_not(webapp, user) -> str:
    """'' when this agent can call back from the page, else why the button is disabled."""
    desk = getattr(webapp, "deskphones", None)
    if desk is None:
        return "Call back needs the running service's PBX connection; this inbox has none."
    return desk.why_not(getattr(user, "extension", "") or "")


def items(store, peer: str, tz: str, cbs=None) -> list[dict]:
    """Timeline items: one per call back of this number."""
    out = []
    for cb in (sd.for_peer(store, peer) if cbs is None else cbs):
        who = f"{cb['agent']} from the inbox" if cb["agent"] else f"{cb['feature']} on the desk phone"
        out.append({"at": cb["at"], "kind": "callback", "title": f"Call back by {who}", "line": "",
                    "detail": f"{outcome_words(cb['state'], cb['detail'], cb['call'])} ({cb['endpoint']})",
                    "body": "", "when": timeline.clock(cb["at"], tz), "result": cb["state"]})
    return out


def with_callbacks(found: list[dict], store, peer: str, tz: str) -> list[dict]:
    """The timeline with its call backs; the call a call back made is told by the call back's
    own item (its result), not again as an outbound call."""
    cbs = sd.for_peer(store, peer)
    made = {cb["channel_id"] for cb in cbs if cb["channel_id"]}
    kept = [i for i in found if not (i["kind"] == "call" and i.get("call_id") in made)]
    return sorted(kept + items(store, peer, tz, cbs), key=lambda i: i["at"])
