"""What each agent has seen: a caller's conversation opened, or a whole view marked seen.

A row of a view is new for an agent while the caller's latest call or reply is later than
both: one row per conversation the agent opened and one per view, never one per caller per
agent, so "Mark all seen" on 100k conversations is one write.
"""
from __future__ import annotations

import peewee as pw

from .db import Base, Store


class SeenPeer(Base):
    user = pw.CharField()
    peer = pw.CharField()
    at = pw.DoubleField()

    class Meta:
        indexes = ((("user", "peer"), True),)


class SeenView(Base):
    user = pw.CharField()
    view = pw.CharField()
    at = pw.DoubleField()

    class Meta:
        indexes = ((("user", "view"), True),)


def create_tables(db: pw.Database) -> None:
    db.create_tables([SeenPeer, SeenView], safe=True)


def _upsert(model, key: dict, at: float) -> None:
    if model.update(at=at).where(*[getattr(model, k) == v for k, v in key.items()]).execute() == 0:
        model.create(at=at, **key)


def see_peer(store: Store, user: str, peer: str, now: float) -> None:
    with store.write():
        _upsert(SeenPeer, {"user": user, "peer": peer}, now)


def see_view(store: Store, user: str, view: str, now: float) -> None:
    with store.write():
        _upsert(SeenView, {"user": user, "view": view}, now)


def mark_new(store: Store, rows: list[dict], user: str, view: str) -> None:
    """Sets row["new"] on a page's rows (at most a few hundred: one query for them all)."""
    mark = SeenView.select(SeenView.at).where((SeenView.user == user) & (SeenView.view == view)).scalar() or 0.0
    peers = [r["peer"] for r in rows]
    opened = {p: at for p, at in SeenPeer.select(SeenPeer.peer, SeenPeer.at).where(
        (SeenPeer.user == user) & SeenPeer.peer.in_(peers)).tuples()} if peers else {}
    for r in rows:
        r["new"] = (r.get("last_in") or 0.0) > max(mark, opened.get(r["peer"], 0.0))
