"""`pbx-textback hooks list|deliveries|show|resend|enable|secret`: what the admin sees of the
webhooks and can do about them."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone


def _when(ts):
    return datetime.fromtimestamp(ts, timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def run(a, cfg, store, fail) -> int:
    from ..store import hooks as sh
    from .sign import new_secret
    if a.action == "secret":
        print(new_secret())
        return 0
    if a.action == "list":
        off = sh.disabled_endpoints()
        counts = sh.delivery_counts()
        for ep in cfg.hooks.endpoint:
            n = {s: c for (e, s), c in counts.items() if e == ep.name}
            state = f"DISABLED {_when(off[ep.name].disabled_at)}: {off[ep.name].reason}" if ep.name in off else "on"
            print(f"{ep.name}\t{ep.url}\t{state}\t" + " ".join(f"{s}={c}" for s, c in sorted(n.items())))
            print(f"\tevents: {', '.join(ep.events)}")
        if not cfg.hooks.endpoint:
            print("no webhook endpoints: add [[hooks.endpoint]] to the config (README \"Webhooks\")")
        return 0
    if a.action == "deliveries":
        rows = sh.deliveries(a.endpoint, a.limit, a.state)
        if a.json:
            print(json.dumps(rows, indent=1))
            return 0
        for d in rows:
            why = f" {d['last_status'] or ''} {d['last_error']}".rstrip()
            nxt = f" next {_when(d['due_at'])}" if d["state"] == "pending" and d["attempts"] else ""
            print(f"#{d['id']}\t{_when(d['created_at'])}\t{d['endpoint']}\t{d['type']}\t{d['event_id']}\t"
                  f"{d['state']} after {d['attempts']} attempt(s){why}{nxt}")
        return 0
    if not a.target:
        fail(f"hooks {a.action} needs {'NAME' if a.action == 'enable' else 'ID'}")
    if a.action == "enable":
        if a.target not in {e.name for e in cfg.hooks.endpoint} and not sh.disabled_endpoints().get(a.target):
            fail(f"no webhook endpoint {a.target} (`hooks list` shows them)")
        was = sh.enable_endpoint(store, a.target)
        print(f"endpoint {a.target} " + ("enabled: its waiting events go out within a second"
                                          if was else "was not disabled"))
        return 0
    if not a.target.isdigit():
        fail(f"{a.target}: give the delivery's number (`hooks deliveries` shows them)")
    if a.action == "show":
        rows = sh.deliveries(delivery_id=int(a.target))
        if not rows:
            fail(f"no webhook delivery #{a.target}")
        d = rows[0]
        print(f"#{d['id']} {d['type']} {d['event_id']} to {d['endpoint']}: {d['state']}")
        for t in sh.attempts_of(d["id"]):
            print(f"  {_when(t['at'])}  {t['status'] or '-'}  {t['ms']} ms  {t['error']}")
        return 0
    try:
        d = sh.resend(store, int(a.target), time.time())
    except ValueError as e:
        fail(str(e))
    print(f"delivery #{d.id} queued again with the same webhook-id; the running service sends it within a second")
    return 0


def add_parser(cmd) -> None:
    s = cmd("hooks", "webhooks: endpoints (list), recent deliveries, one's attempts (show ID), "
                     "resend ID, enable NAME after a 410, make a new secret")
    s.add_argument("action", choices=["list", "deliveries", "show", "resend", "enable", "secret"])
    s.add_argument("target", nargs="?", metavar="ID|NAME")
    s.add_argument("--endpoint")
    s.add_argument("--state", choices=["pending", "sending", "delivered", "failed"])
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s.add_argument("-c", "--config")
