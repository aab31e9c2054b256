"""The send path's store steps, fewer statements for the usual text (issue 14).

A text that nothing stands in the way of (nobody reached the caller since, not paused, the
number never opted out, no reply since for a follow-up) is the usual case. Its last look read
those facts in one statement and then took the row in another; here one UPDATE takes it on the
condition that they all hold (`take_if_clear`), and only when it changes nothing are the facts
read, the gate run on them and the row taken as before (outbox.py). Same facts, same rows,
same transaction per step: the statement that reads them is saved when they are clear.

A decision that queues a text due now, when its facts said no other text was due (call_facts's
`other_due`), hands the worker the row it has just written (`queued_row`): the worker starts it
without reading the due rows back (outbox.py `offer`).
"""
from __future__ import annotations

from .fast import _MSG_COLS, _REACHED, NEW_TEXT_COLS, OutRow, new_text_values, run

# the conditions under which the last look's facts are what GateFacts() assumes (store/fast.py
# _LAST_LOOK reads each of them): no call reached the number since the text was queued, no
# pause, no opt-out event ever (core/policy/consent.py: opted out only after one), and for a
# follow-up no reply since (? = 0 for other texts: the EXISTS is skipped)
_TAKE_IF_CLEAR = (
    'UPDATE "message" SET state = \'sending\', written_at = ?, attempts = attempts + 1, updated_at = ? '
    'WHERE id = ? AND state = \'pending\' AND box = ? '
    f'AND NOT EXISTS ({_REACHED}) '
    'AND NOT EXISTS (SELECT 1 FROM "setting" WHERE "key" = \'paused\' AND value = \'1\') '
    'AND NOT EXISTS (SELECT 1 FROM "consent" WHERE number = ? AND kind = \'opt-out\') '
    'AND NOT EXISTS (SELECT 1 FROM "message" m WHERE ? = 1 AND m.peer = ? AND m.direction = \'in\' '
    'AND m.created_at > ?)')


def take_if_clear(store, row, now: float) -> bool:
    """pending -> sending with written_at, as fast.take_written, if and only if the last look's
    store facts are all clear for `row` (since its created_at). One UPDATE, one transaction.
    False: not taken (no longer pending, or a fact stands in the way: read them to know which)."""
    since, peer = row.created_at, row.peer
    return run(store, _TAKE_IF_CLEAR, (now, now, row.id, store.box, since, True, peer, peer,
                                       peer, int(row.kind == "follow-up"), peer, since)) == 1


def queued_row(store, msg_id: int, call_id: int, decision, shown: dict, now: float) -> OutRow:
    """The outbox row fast._write_verdict has just inserted for `decision`, as due_rows would
    read it back: the inserted values themselves (fast.new_text_values), with the columns the
    insert leaves to the store (tests/unit/test_sendpath.py holds the two to each other)."""
    values = dict(zip(NEW_TEXT_COLS, new_text_values(store.box, call_id, decision, shown, now)),
                  id=msg_id, ref=None, written_at=None)
    return OutRow([values[c] for c in _MSG_COLS])
