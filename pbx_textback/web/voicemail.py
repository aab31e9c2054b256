"""Voicemail on the timeline: the recording's length and a player whose source is an
authenticated route (the app's sign-in check covers it like every other non-public route)."""
from __future__ import annotations

from aiohttp import web

from ..store import voicemail
from . import timeline


def routes(webapp) -> list[web.RouteDef]:
    async def play(request):
        raw = request.match_info["rec"]
        found = voicemail.audio(webapp.store, int(raw)) if raw.isdigit() else None
        if found is None:
            raise web.HTTPNotFound(text="no such recording")
        ctype, data = found
        # private: a browser may keep it for this page's replays, no shared cache may
        return web.Response(body=data, content_type=ctype, headers={"Cache-Control": "private, max-age=300"})
    return [web.get("/vm/{rec}", play)]


def items(store, peer: str, business_tz: str) -> list[dict]:
    out = []
    for r in voicemail.for_peer(store, peer):
        length = f"{int(r['duration_s']) // 60}:{int(r['duration_s']) % 60:02d} long" if r["duration_s"] else "length unknown"
        out.append({"at": r["created_at"], "kind": "voicemail", "title": "Voicemail", "line": "",
                    "detail": f"{length}, box {r['mailbox'] or '?'}", "body": "", "audio": f"/vm/{r['id']}",
                    "when": timeline.clock(r["created_at"], business_tz)})
    return out


def merged(timeline_items: list[dict], store, peer: str, business_tz: str) -> list[dict]:
    return sorted(timeline_items + items(store, peer, business_tz), key=lambda i: i["at"])
