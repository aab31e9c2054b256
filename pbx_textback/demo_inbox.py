"""The demo's inbox: a sign-in that exists only in the demo's own store, the printed URL, and
demo callers who answer some of the texts, so a newcomer sees calls, texts and replies arrive.

The replies go in where a real one does: Pipeline.on_inbound, the path every transport's
inbound text takes (stored first, then STOP/HELP acted on), marked as coming from `log`.
"""
from __future__ import annotations

import asyncio
import secrets
import socket

DEMO_USER = "demo"
LISTEN = ("127.0.0.1", 8080)
REPLIES = ("Thanks! Can you call me back after 3?", "Is there an opening this Saturday?",
           "I'll be there at 4, is that ok?", "What are your hours tomorrow?",
           "My crown came loose, can someone see me today?")


def listen_address() -> str:
    """127.0.0.1:8080 when it is free, else any free port (the URL printed says which)."""
    with socket.socket() as s:
        try:
            s.bind(LISTEN)
        except OSError:
            return f"{LISTEN[0]}:0"
    return f"{LISTEN[0]}:{LISTEN[1]}"


def add_demo_user(store_path: str) -> str:
    """The demo's sign-in, in the demo's own (throw-away) store; returns its password. Only
    `pbx-textback demo` calls this: a real install gets its users from `user add`."""
    import time

    from .store import db as st
    from .store import web as sw
    from .web.passwords import hash_password
    password = secrets.token_urlsafe(8)
    store = st.open_store(store_path)
    try:
        if sw.user(store, DEMO_USER) is None:
            sw.add_user(store, DEMO_USER, "admin", hash_password(password), "100", time.time())
        else:
            sw.set_password(store, DEMO_USER, hash_password(password))
    finally:
        store.close()
    return password


async def announce(svc, password: str) -> None:
    """Print the inbox's URL and the sign-in once the service serves it."""
    for _ in range(300):
        if svc.web_port is not None:
            print(f"demo: the inbox is at http://{LISTEN[0]}:{svc.web_port}/  sign in as "
                  f"{DEMO_USER} / {password}", flush=True)
            return
        await asyncio.sleep(0.1)
    print("demo: the inbox did not start (see the log above)", flush=True)


async def callers_reply(svc, pace: float, every: int = 2) -> None:
    """Every `every`-th caller who got a text answers it a few seconds later."""
    from .store import db as st
    handled, n = set(), 0
    delay = max(1.0, 4 * pace)
    while True:
        await asyncio.sleep(max(0.2, pace))
        rows = list(st.Message.select(st.Message.id, st.Message.peer, st.Message.line).where(
            (st.Message.direction == "out") & (st.Message.kind == "missed-call")
            & st.Message.state.in_([st.SENT, st.DELIVERED])).order_by(st.Message.id))
        for m in rows:
            if m.id in handled:
                continue
            handled.add(m.id)
            n += 1
            if n % every == 0:
                asyncio.get_running_loop().call_later(
                    delay, lambda m=m, k=n: svc.pipeline.on_inbound(m.peer, m.line, REPLIES[k // every % len(REPLIES)],
                                                                    transport="log"))
