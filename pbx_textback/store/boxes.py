"""Which PBX box sends for a line, on a store several boxes share: the box whose service took
the line's latest call (else sent its latest text). A web-only box queues a reply with that box
on the row, and that box's outbox sends it through its own gateway (the others never claim it)."""
from __future__ import annotations

from .db import Call, Message, Store


def box_of_line(store: Store, line: str) -> str:
    """'' when no box has taken a call on or sent from this line yet."""
    row = (Call.select(Call.box).where(((Call.line == line) | (Call.called == line)) & (Call.box != ""))
           .order_by(Call.created_at.desc(), Call.id.desc()).first())
    if row is not None:
        return row.box
    row = (Message.select(Message.box).where((Message.line == line) & (Message.direction == "out")
                                             & (Message.box != ""))
           .order_by(Message.id.desc()).first())
    return row.box if row is not None else ""


def queue_for_line_box(store: Store, *, peer: str, line: str, body: str, kind: str, note: str,
                       now: float) -> tuple[int, str]:
    """An agent's text, queued for the box that owns the line -> (message id, box). ValueError
    when no box is known for the line."""
    box = box_of_line(store, line)
    if not box:
        raise ValueError(f"no PBX box has taken a call on line {line} yet, so none can send from it")
    with store.write():
        mid = store.add_message(box=box, direction="out", kind=kind, line=line, peer=peer, body=body,
                                state="pending", due_at=now, created_at=now, note=note)
    return mid, box
