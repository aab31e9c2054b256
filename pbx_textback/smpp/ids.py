"""The SMSC's message ids this process got from submit_sm_resp, so a receipt names its text."""
from __future__ import annotations

from collections import OrderedDict

from .dlr import message_id_keys, normalize_message_id

# Bounded (a soak showed ~250 bytes per text kept until 200,000 texts): a receipt usually
# comes within seconds, and one for an older text is matched in the store by its gateway id
# (mark_sent stored it).
REMEMBER_IDS = 4096


class SentIds:
    def __init__(self):
        self._ids: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def remember(self, message_id: str, msg_ref: str) -> None:
        key = normalize_message_id(message_id)        # = message_id_keys(...)[0]
        if key:
            self._ids[key] = (message_id, msg_ref)
            if len(self._ids) > REMEMBER_IDS:
                self._ids.popitem(last=False)

    def match(self, message_id) -> tuple[str, str] | None:
        """(submit_id, msg_ref) for an id this process got from submit_sm_resp: exact
        (normalized) first, then the same number in the other base."""
        hit = self._ids.get(normalize_message_id(message_id))
        if hit is not None:                 # the common case: no other base to work out
            return hit
        for k in message_id_keys(message_id)[1:]:
            hit = self._ids.get(k)
            if hit is not None:
                return hit
        return None
