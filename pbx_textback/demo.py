"""`pbx-textback demo`: the real service against a loopback PBX that plays recorded calls.

The PBX side is a loopback AMI (or ESL) server replaying traffic recorded from a real
Asterisk 22 (FreeSWITCH 1.10); the service side is exactly `run`: the real panoramisk
(greenswitch) client, tracker, decision, SQLite store and the log transport.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from .config import Ami, Esl, default_config

log = logging.getLogger("pbx_textback.demo")
HERE = Path(__file__).resolve().parent
SEARCH = [HERE.parent / "tests" / "fixtures", HERE / "demo_traces"]
SKIP = {"20-restart-part1.ami", "21-login-failed.ami", "messagesend.ami", "sms-sip-message.esl",
        "88-callback.ami"}          # a *88 callback the demo service did not originate


def demo_traces(pbx: str) -> list[Path]:
    sub, ext = ("asterisk", "*.ami") if pbx == "asterisk" else ("freeswitch", "*.esl")
    for base in SEARCH:
        folder = base / sub
        files = sorted(p for p in folder.glob(ext) if p.name not in SKIP
                       and not p.name.endswith(".json.esl"))
        if files:
            return files
    raise SystemExit(f"pbx-textback demo: no recorded {pbx} traces found (looked in "
                     f"{', '.join(str(b / sub) for b in SEARCH)}); run it from a source checkout")


def _print_verdict(v) -> None:
    c, o, d = v.call, v.outcome, v.decision
    who = v.extra.get("caller") or c.caller or "anonymous"
    to = v.extra.get("called") or c.called or "?"
    if not o.missed:
        print(f"call from {who} to {to}: {o.reason} ({o.why}) - no text", flush=True)
    elif d.action == "text":
        print(f"call from {who} to {to}: MISSED, {o.reason} ({o.why})\n"
              f"    -> text to {d.to}: {d.body}", flush=True)
    else:
        why = "; ".join(f"{ch.name}: {ch.detail}" for ch in d.failed)
        print(f"call from {who} to {to}: MISSED, {o.reason} - no text ({why})", flush=True)


async def run_demo(a) -> int:
    from .service import Service
    tmp = None
    if a.store:
        store_path = a.store
    else:
        tmp = tempfile.TemporaryDirectory(prefix="pbx-textback-demo-")
        store_path = str(Path(tmp.name) / "demo.sqlite3")
    cfg = default_config()
    # quiet hours off: the demo should show texts going out at any hour (the service's own
    # default holds texts outside 08:00-20:00 in the caller's time zone)
    cfg = replace(cfg, store=replace(cfg.store, path=store_path),
                  business=replace(cfg.business, name="Acme Dental", phone="+15125550100"),
                  compliance=replace(cfg.compliance, quiet_hours=""))
    traces = demo_traces(a.pbx)
    if a.pbx == "asterisk":
        from .ami.replay_server import AmiReplayServer
        server = AmiReplayServer(traces, username="demo", secret="demo-secret",
                                 pace=a.pace, loop=not a.once)
        port = await server.start()
        cfg = replace(cfg, pbx=replace(cfg.pbx, type="asterisk",
                                       ami=Ami(port=port, username="demo", secret="demo-secret")))
    else:
        from .esl.replay_server import EslReplayServer
        server = EslReplayServer(traces, password="demo-secret", pace=a.pace, loop=not a.once)
        port = await server.start()
        cfg = replace(cfg, pbx=replace(cfg.pbx, type="freeswitch",
                                       esl=Esl(port=port, password="demo-secret")))
    print(f"demo: a loopback {a.pbx} on 127.0.0.1:{port} plays {len(traces)} recorded "
          f"call traces; store {store_path}; texts go to the log. Ctrl-C stops.", flush=True)
    seen = []
    svc = Service(cfg, on_verdict=lambda v: (seen.append(v), _print_verdict(v)))
    extra = []
    if a.once:
        extra.append(_stop_when_done(svc, server))
    try:
        await svc.run(extra_tasks=extra)
    finally:
        await server.stop()
        if tmp:
            tmp.cleanup()
    texts = sum(1 for v in seen if v.decision.action == "text")
    print(f"demo: {len(seen)} calls, {sum(v.outcome.missed for v in seen)} missed, "
          f"{texts} texts", flush=True)
    return 0


async def _stop_when_done(svc, server) -> None:
    """--once: stop once every trace was played, every call decided and the outbox drained."""
    await server.wait_idle()
    for _ in range(100):
        await asyncio.sleep(0.1)
        if svc.tracker.open_calls() == 0 and svc.store.next_due() is None:
            break
    await asyncio.sleep(0.3)
    svc.stop()


if __name__ == "__main__":
    sys.exit(0)
