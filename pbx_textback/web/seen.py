"""Mark all seen (a view, for the signed-in agent) and the new-row flags of the inbox."""
from __future__ import annotations

from aiohttp import web

from ..store import seen as ss
from ..store import web as sw
from .keys import USER


def routes(webapp) -> list[web.RouteDef]:
    async def mark_all_seen(request):
        form = await request.post()
        view = str(form.get("view", ""))
        if view not in sw.VIEWS:
            raise web.HTTPBadRequest(text=f"no view called {view[:40]!r}")
        ss.see_view(webapp.store, request[USER].name, view, webapp.clock())
        raise web.HTTPSeeOther(f"/?view={view}")
    return [web.post("/seen", mark_all_seen)]
