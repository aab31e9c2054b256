"""`pbx-textback demo`: the real service against a loopback PBX that plays recorded calls.

The PBX side is a loopback AMI (or ESL) server replaying traffic recorded from a real
Asterisk 22 (FreeSWITCH 1.10); the service side is exactly `run`: the real panoramisk
(greenswitch) client, tracker, decision, SQLite store and the log transport.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .config import Ami, Esl, loads

log = logging.getLogger("pbx_textback.demo")
HERE = Path(__file__).resolve().parent
# a source checkout's fixtures, else the copies packaged with an installed pbx-textback
SEARCH = [HERE.parent / "tests" / "fixtures", HERE / "demo_traces"]
SKIP = {"20-restart-part1.ami", "21-login-failed.ami", "messagesend.ami", "sms-sip-message.esl",
        "88-callback.ami"}          # a *88 callback the demo service did not originate

# The demo's own config, written next to its store so `explain` can be tried on the demo's
# calls afterwards. Quiet hours are off: the demo shows texts going out at any hour (the
# service's default holds texts outside 08:00-20:00 in the caller's time zone).
DEMO_CONFIG = """\
# written by `pbx-textback demo`: the demo's business, its store, texts to the log
[business]
name = "Acme Dental"
phone = "+15125550100"

[store]
path = {store}

[compliance]
quiet_hours = ""

[web]
listen = "{listen}"
"""


class DemoError(Exception):
    """The demo cannot run (the CLI prints it and exits 2)."""


def demo_dir() -> Path:
    """Where the demo keeps its store and config: $XDG_STATE_HOME/pbx-textback-demo."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pbx-textback-demo"


def demo_traces(pbx: str) -> list[Path]:
    sub, ext = ("asterisk", "*.ami") if pbx == "asterisk" else ("freeswitch", "*.esl")
    for base in SEARCH:
        folder = base / sub
        files = sorted(p for p in folder.glob(ext) if p.name not in SKIP
                       and not p.name.endswith(".json.esl"))
        if files:
            return files
    raise DemoError(f"demo: no recorded {pbx} traces found (looked in "
                   f"{', '.join(str(b / sub) for b in SEARCH)}); reinstall pbx-textback")


_USEC = re.compile(rb"(?<![0-9])1[0-9]{15}(?![0-9])")     # FreeSWITCH event times, microseconds


def fresh_esl(data: bytes, now: float) -> bytes:
    """A recorded ESL trace moved to the present, ending at `now`: every microsecond timestamp
    shifted by the same amount (same digit count, so Content-Length stays right). The recording's own times
    are days old, and the outbox rightly expires a text that late (max_age_minutes)."""
    stamps = [int(m.group()) for m in _USEC.finditer(data)]
    if not stamps:
        return data
    shift = int(now * 1_000_000) - max(stamps)      # the trace ends now: its texts are due
    return _USEC.sub(lambda m: str(int(m.group()) + shift).encode(), data)


def _print_verdict(v) -> None:
    """One line per call: the verdict. The text itself is the outbox's TEXT line."""
    c, o, d = v.call, v.outcome, v.decision
    who = v.extra.get("caller") or c.caller or "anonymous"
    to = v.extra.get("called") or c.called or "?"
    if not o.missed:
        print(f"call from {who} to {to}: {o.reason} ({o.why}) - no text", flush=True)
    elif d.action == "text":
        print(f"call from {who} to {to}: MISSED, {o.reason} ({o.why}) - text to {d.to} queued", flush=True)
    else:
        why = "; ".join(f"{ch.name}: {ch.detail}" for ch in d.failed)
        print(f"call from {who} to {to}: MISSED, {o.reason} - no text ({why})", flush=True)


def _outbox_counts(store_path: str) -> dict[str, int]:
    db = sqlite3.connect(store_path)
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM message WHERE direction = 'out' GROUP BY state"))
    finally:
        db.close()


async def run_demo(a) -> int:
    from .service import Service
    folder = demo_dir()
    if a.store:
        store_path = str(Path(a.store).resolve())
        folder = Path(store_path).parent
    else:
        store_path = str(folder / "demo.sqlite3")
    folder.mkdir(parents=True, exist_ok=True)
    if not a.store:              # each demo starts from an empty store
        for suffix in ("", "-wal", "-shm"):
            Path(store_path + suffix).unlink(missing_ok=True)
    config_path = folder / "config.toml"
    from . import demo_inbox
    config_path.write_text(DEMO_CONFIG.format(store=json.dumps(store_path), listen=demo_inbox.listen_address()),
                           encoding="utf-8")
    cfg = loads(config_path.read_text(encoding="utf-8"), str(config_path))
    traces = demo_traces(a.pbx)
    tmp = tempfile.TemporaryDirectory(prefix="pbx-textback-demo-")
    if a.pbx == "asterisk":
        from .ami.replay_server import AmiReplayServer
        server = AmiReplayServer(traces, username="demo", secret="demo-secret",
                                 pace=a.pace, loop=not a.once)
        port = await server.start()
        cfg = replace(cfg, pbx=replace(cfg.pbx, type="asterisk",
                                       ami=Ami(port=port, username="demo", secret="demo-secret")))
    else:
        from .esl.replay_server import EslReplayServer
        now = time.time()
        fresh = []
        for t in traces:
            out = Path(tmp.name) / t.name
            out.write_bytes(fresh_esl(t.read_bytes(), now))
            fresh.append(out)
        server = EslReplayServer(fresh, password="demo-secret", pace=a.pace, loop=not a.once)
        port = await server.start()
        cfg = replace(cfg, pbx=replace(cfg.pbx, type="freeswitch",
                                       esl=Esl(port=port, password="demo-secret")))
    # the printed verdict is the call's line; the service's own per-call line would repeat it
    logging.getLogger("pbx_textback.calls").setLevel(logging.WARNING)
    print(f"demo: a loopback {a.pbx} on 127.0.0.1:{port} plays {len(traces)} recorded "
          f"call traces; texts go to the log. Ctrl-C stops.", flush=True)
    seen = []
    # the inbox only for a demo that keeps running: --once stops before anyone could sign in
    password = None if a.once else demo_inbox.add_demo_user(store_path)      # the demo's own store only
    svc = Service(cfg, on_verdict=lambda v: (seen.append(v), _print_verdict(v)))
    extra = []
    if a.once:
        extra.append(_stop_when_done(svc, server, seen))
    else:           # the demo's callers answer now and then
        extra.append(demo_inbox.announce(svc, password))
        extra.append(demo_inbox.callers_reply(svc, a.pace))
    try:
        await svc.run(extra_tasks=extra)
    finally:
        await server.stop()
        tmp.cleanup()
    counts = _outbox_counts(store_path)
    sent = counts.pop("sent", 0) + counts.pop("delivered", 0)
    others = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    print(f"demo: {len(seen)} calls, {sum(v.outcome.missed for v in seen)} missed, "
          f"{sent} texts sent (to the log)" + (f", {others}" if others else ""), flush=True)
    first = next((v.decision.to for v in seen if v.decision.action == "text"), None)
    print(f"demo: the store and its config are kept in {folder}; ask why a caller was (not) texted:\n"
          f"    pbx-textback explain {first or 'NUMBER'} -c {config_path}", flush=True)
    return 0


async def _stop_when_done(svc, server, seen: list) -> None:
    """--once: stop once every trace was played, every call decided and the outbox drained.
    Calls the tracker still holds (a queue call waiting for mod_callcenter's last event, a
    channel the recording leaves up) are decided on what was seen: no later event will come."""
    await server.wait_idle()
    # the last frames may still be on their way (FreeSWITCH's go through the ESL child):
    # wait until a second passes with no new verdict and no change in the calls up
    last, still = None, 0
    while still < 10:
        await asyncio.sleep(0.1)
        now = (len(seen), svc.tracker.open_calls())
        still = still + 1 if now == last else 0
        last = now
    svc.flush_calls()
    for _ in range(100):
        if svc.store.next_due() is None:
            break
        await asyncio.sleep(0.1)
    svc.stop()


if __name__ == "__main__":
    sys.exit(0)
