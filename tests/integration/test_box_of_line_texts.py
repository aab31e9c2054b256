"""Which box sends for a line no call has come in on (store/boxes.py): the box of the line's
newest outgoing text, now read through message_line_out, on SQLite and on PostgreSQL. An
agent's text queued from the web goes to that box, or is refused with why."""
import pytest

from pbx_textback.store import boxes

LINE = "+15125550140"


def text(store, *, line=LINE, box="b1", direction="out", at=100.0):
    with store.write():
        return store.add_message(box=box, direction=direction, kind="agent" if direction == "out" else "reply",
                                 line=line, peer="+15125550177", body="hi", state="sent", due_at=at, created_at=at)


def test_a_line_with_texts_and_no_calls_belongs_to_the_box_of_its_newest_text(store_factory):
    store = store_factory()
    assert boxes.box_of_line(store, LINE) == ""
    with pytest.raises(ValueError, match="no PBX box has taken a call on line"):
        boxes.queue_for_line_box(store, peer="+15125550177", line=LINE, body="hello", kind="agent", note="", now=1.0)
    text(store, direction="in", box="b9")                     # a caller's text: not a sender
    text(store, line="+15125550110", box="b8")                # another line's text
    assert boxes.box_of_line(store, LINE) == ""
    text(store, box="b1", at=100.0)
    assert boxes.box_of_line(store, LINE) == "b1"
    text(store, box="b2", at=50.0)                            # newer row (a later id), an older clock
    assert boxes.box_of_line(store, LINE) == "b2"
    text(store, box="", at=300.0)                             # queued before stores named boxes
    assert boxes.box_of_line(store, LINE) == "b2"
    mid, box = boxes.queue_for_line_box(store, peer="+15125550177", line=LINE, body="hello", kind="agent",
                                        note="by ann", now=400.0)
    assert box == "b2" and store.message(mid).box == "b2" and store.message(mid).state == "pending"
