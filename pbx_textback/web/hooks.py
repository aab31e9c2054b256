"""The admin's webhooks page: each endpoint (on, or disabled by a 410 and why), its recent
deliveries with their attempts, resend one (same webhook-id), enable an endpoint again.
Admins only; the SQL is in store/hooks.py."""
from __future__ import annotations

from aiohttp import web

from ..store import hooks as sh
from . import timeline
from .keys import USER


def routes(inbox) -> list[web.RouteDef]:
    def admin(request):
        if request[USER].role != "admin":
            raise web.HTTPForbidden(text="webhooks are for admins")

    async def page(request):
        admin(request)
        tz = inbox.cfg.business.timezone
        off = sh.disabled_endpoints()
        counts = sh.delivery_counts()
        endpoints = []
        for ep in inbox.cfg.hooks.endpoint:
            rows = sh.deliveries(ep.name, limit=30)
            for d in rows:
                d["when"] = timeline.clock(d["created_at"], tz)
                d["next"] = timeline.clock(d["due_at"], tz) if d["state"] == "pending" and d["attempts"] else ""
                d["tries"] = [dict(a, when=timeline.clock(a["at"], tz)) for a in sh.attempts_of(d["id"])]
            gone = off.get(ep.name)
            endpoints.append({"name": ep.name, "url": ep.url, "events": ep.events, "rows": rows,
                              "disabled": f"{timeline.clock(gone.disabled_at, tz)}: {gone.reason}" if gone else "",
                              "counts": {s: n for (e, s), n in sorted(counts.items()) if e == ep.name}})
        return inbox._page("hooks.html", request, endpoints=endpoints)

    async def resend(request):
        admin(request)
        raw = request.match_info["id"]
        try:
            sh.resend(inbox.store, int(raw), inbox.clock())
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e))
        raise web.HTTPSeeOther("/admin/hooks")

    async def enable(request):
        admin(request)
        sh.enable_endpoint(inbox.store, request.match_info["name"])
        raise web.HTTPSeeOther("/admin/hooks")

    return [web.get("/admin/hooks", page),
            web.post(r"/admin/hooks/deliveries/{id:\d+}/resend", resend),
            web.post("/admin/hooks/endpoints/{name}/enable", enable)]
