"""`pbx-textback token add NAME --scope read|write | list | revoke NAME`: the REST API's
tokens. A token is printed once, when made; the store keeps only its hash."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone


def run(a, cfg, store, fail) -> int:
    from ..store import api as sa
    if a.action == "list":
        for t in sa.tokens(store):
            used = datetime.fromtimestamp(t.last_used_at, timezone.utc).strftime("%Y-%m-%d %H:%M") \
                if t.last_used_at else "never used"
            print(f"{t.name}\t{t.scope}\t{'revoked' if t.revoked_at else 'active'}\t{used}")
        return 0
    if not a.name:
        fail(f"token {a.action} needs NAME")
    if a.action == "revoke":
        try:
            sa.revoke(store, a.name, time.time())
        except ValueError as e:
            fail(str(e))
        print(f"token {a.name} revoked: requests with it are refused from now on")
        return 0
    if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", a.name):
        fail(f"token name {a.name!r}: letters, digits and . _ @ - only (at most 64)")
    try:
        token = sa.add_token(store, a.name, a.scope, time.time())
    except ValueError as e:
        fail(str(e))
    print(token)
    import sys
    print(f"token {a.name} ({a.scope}) made: this is the only time it is shown. Use it as\n"
          f"  curl -H 'Authorization: Bearer {token[:10]}…' http://{cfg.web.listen}/api/v1/conversations\n"
          "(the service serves the API once restarted, if it did not serve the inbox yet)", file=sys.stderr)
    return 0


def add_parser(cmd) -> None:
    s = cmd("token", "REST API tokens: add NAME --scope read|write (shown once), list, revoke NAME")
    s.add_argument("action", choices=["add", "list", "revoke"])
    s.add_argument("name", nargs="?", metavar="NAME")
    s.add_argument("--scope", choices=["read", "write"], default="read")
    s.add_argument("-c", "--config")
