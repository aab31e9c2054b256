"""Read-only views for `replay` and `whatif`: the texts of a (simulated) store, and a snapshot
of a real store's calls, replies and consent changes since a time. Nothing here writes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import peewee as pw

from . import db as st
from .lean_consent import requests_by_time


def texts(store: st.Store, after_id: int = 0) -> list[dict]:
    """Outgoing texts with id > after_id, oldest first, with the call id (the PBX's) they answer."""
    q = (st.Message.select(st.Message, st.Call.call_id.alias("call_key"))
         .join(st.Call, pw.JOIN.LEFT_OUTER, on=(st.Message.call == st.Call.id))
         .where((st.Message.direction == "out") & (st.Message.id > after_id))
         .order_by(st.Message.id))
    out = []
    for m in q.objects():
        out.append({"id": m.id, "kind": m.kind, "peer": m.peer, "line": m.line, "body": m.body,
                    "state": m.state, "due_at": m.due_at, "created_at": m.created_at,
                    "updated_at": m.updated_at, "written_at": m.written_at,
                    "calls_missed": m.calls_missed, "note": m.note, "ref": m.ref,
                    "call_id": m.call_key or ""})
    return out


@dataclass
class History:
    """What a real store holds since a time, as plain data (the store is closed after reading)."""
    since: float
    calls: list[dict] = field(default_factory=list)      # oldest decided first
    texts: list[dict] = field(default_factory=list)      # outgoing, any kind
    replies: list[dict] = field(default_factory=list)    # callers' texts in
    consent: list[dict] = field(default_factory=list)    # opt-out / opt-in events
    schema: int = 0


def latest_schema() -> int:
    return max(v for v, _ in st.MIGRATIONS)


def read_history(path: str, dsn: str, since: float) -> History:
    """Open the store read-only (SQLite: mode=ro; PostgreSQL: a READ ONLY transaction), copy
    out what `whatif` replays, close it. Never migrates: an older store is refused with why."""
    if dsn:
        db = st._postgres(dsn)
    else:
        from pathlib import Path
        if not Path(path).exists():
            raise st.StoreError(f"no store at {path}")
        db = pw.SqliteDatabase(f"file:{path}?mode=ro", uri=True, pragmas={"busy_timeout": 5000})
    st.proxy.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        with db.atomic():
            if dsn:
                db.execute_sql("SET TRANSACTION READ ONLY")
            if not db.table_exists("schemaversion"):
                raise st.StoreError(f"{path or 'the store'} is not a pbx-textback store")
            version = st.SchemaVersion.select(pw.fn.MAX(st.SchemaVersion.version)).scalar() or 0
            if version < latest_schema():
                raise st.StoreError(
                    f"the store is at schema {version}, this pbx-textback at {latest_schema()}: start "
                    "the service (or any command that opens the store) once to update it; whatif "
                    "itself never changes the store")
            h = History(since=since, schema=version)
            calls = (st.Call.select(st.Call, st.DecisionRow.action, st.DecisionRow.checks)
                     .join(st.DecisionRow, pw.JOIN.LEFT_OUTER, on=(st.DecisionRow.call == st.Call.id))
                     .where(st.Call.created_at >= since).order_by(st.Call.created_at, st.Call.id))
            seen = set()
            for c in calls.objects():
                if c.id in seen:        # one decision per call; a second row would repeat it
                    continue
                seen.add(c.id)
                h.calls.append({"key": c.id, "call_id": c.call_id, "box": c.box, "pbx": c.pbx,
                                "caller": c.caller, "called": c.called, "line": c.line,
                                "direction": c.direction, "missed": c.missed, "reason": c.reason,
                                "created_at": c.created_at, "record": json.loads(c.record or "{}"),
                                "action": c.action or "", "checks": json.loads(c.checks or "[]")})
            msgs = (st.Message.select(st.Message, st.Call.call_id.alias("call_key"))
                    .join(st.Call, pw.JOIN.LEFT_OUTER, on=(st.Message.call == st.Call.id))
                    .where(st.Message.created_at >= since).order_by(st.Message.created_at, st.Message.id))
            for m in msgs.objects():
                row = {"id": m.id, "kind": m.kind, "peer": m.peer, "line": m.line, "body": m.body,
                       "state": m.state, "due_at": m.due_at, "created_at": m.created_at,
                       "updated_at": m.updated_at, "written_at": m.written_at,
                       "calls_missed": m.calls_missed, "note": m.note, "ref": m.ref,
                       "call_id": m.call_key or "", "transport": m.transport, "box": m.box}
                (h.texts if m.direction == "out" else h.replies).append(row)
            for ev in requests_by_time(since):
                h.consent.append({"number": ev.number, "kind": ev.kind, "at": ev.at, "scope": ev.scope,
                                  "line": ev.line, "source": ev.source, "lang": ev.lang})
        return h
    except pw.OperationalError as e:
        raise st.StoreError(f"cannot read the store {path or '(PostgreSQL)'}: {e}") from None
    finally:
        db.close()
