"""Voicemail recordings carried by the PBX's notification e-mail, for the inbox's player.

Kept in the database (a BLOB), not in files next to the store: with several PBX boxes on one
PostgreSQL any box may serve the inbox, and a file on the box that got the mail would not be
there; a backup of the store has them; `purge` removes one with its call (a foreign key that
cascades). Each is bounded
(core/pbx/vmail_audio.MAX_BYTES) and read back only one at a time, by the player's request.
"""
from __future__ import annotations

import peewee as pw

from .db import Base, Call, Store


class VoicemailAudio(Base):
    peer = pw.CharField(index=True)           # the caller's E.164 ('' when anonymous)
    call = pw.ForeignKeyField(Call, null=True, on_delete="CASCADE")   # the call it was left on, when one matched
    mailbox = pw.CharField(default="")
    duration_s = pw.DoubleField(null=True)
    content_type = pw.CharField()
    filename = pw.CharField(default="")
    size = pw.IntegerField()
    audio = pw.BlobField()
    created_at = pw.DoubleField()


def create_tables(db) -> None:
    db.create_tables([VoicemailAudio], safe=True)


def add(store: Store, *, peer: str, call: int | None, mailbox: str, rec, now: float) -> int:
    with store.write():
        return VoicemailAudio.create(peer=peer, call=call, mailbox=mailbox, duration_s=rec.duration_s,
                                     content_type=rec.content_type, filename=rec.filename[:200],
                                     size=len(rec.audio), audio=rec.audio, created_at=now).id


def for_peer(store: Store, peer: str) -> list[dict]:
    """A caller's recordings without their bytes (the timeline)."""
    q = (VoicemailAudio.select(VoicemailAudio.id, VoicemailAudio.mailbox, VoicemailAudio.duration_s,
                               VoicemailAudio.size, VoicemailAudio.created_at)
         .where(VoicemailAudio.peer == peer).order_by(VoicemailAudio.id))
    return list(q.dicts())


def audio(store: Store, rec_id: int) -> tuple[str, bytes] | None:
    row = (VoicemailAudio.select(VoicemailAudio.content_type, VoicemailAudio.audio)
           .where(VoicemailAudio.id == rec_id).first())
    return (row.content_type, bytes(row.audio)) if row else None
