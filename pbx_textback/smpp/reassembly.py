"""Long replies (MO) arriving in parts: hold the parts until all are in, bounded.

A part names (ref, total, seq) from its UDH or its SAR TLVs; both are checked the same way
(1 <= seq <= total <= 255), so a hostile or broken gateway can neither raise out of the
session nor make us allocate by what a header claims. Pure: time comes in as an argument.
"""
from __future__ import annotations

MAX_PARTS = 255               # the UDH's one-octet count; SAR's 16 bits are capped to the same
MAX_PENDING = 10_000          # texts waiting for parts at once; the oldest goes out first


def valid_concat(ref, total, seq) -> bool:
    """A usable (ref, total, seq): ints, 1 <= seq <= total <= MAX_PARTS."""
    return (all(isinstance(v, int) and not isinstance(v, bool) for v in (ref, total, seq))
            and 1 <= seq <= total <= MAX_PARTS)


class MoParts:
    """Parts by (source, dest, ref, total). `add` returns the whole text when the last part
    arrives; `expired` gives the texts still incomplete after a timeout, gaps marked."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self.max_pending = max_pending
        self._held: dict[tuple, dict] = {}

    def __len__(self) -> int:
        return len(self._held)

    def add(self, key: tuple, total: int, seq: int, text: str, now: float, extra=None) -> str | None:
        entry = self._held.get(key)
        if entry is None:
            entry = self._held[key] = {"parts": {}, "first": now, "total": total, "extra": extra}
        entry["parts"][seq] = text
        if len(entry["parts"]) < total:
            return None
        return "".join(entry["parts"][i] for i in range(1, total + 1))

    def done(self, key: tuple) -> None:
        """The whole text was taken: forget its parts."""
        self._held.pop(key, None)

    def overflow(self) -> list[tuple]:
        """Keys beyond max_pending, oldest first: hand them over incomplete."""
        n = len(self._held) - self.max_pending
        if n <= 0:
            return []
        return sorted(self._held, key=lambda k: self._held[k]["first"])[:n]

    def expired(self, before: float) -> list[tuple[tuple, str, int, object]]:
        """(key, text with gaps marked, total, extra) of every text first seen before `before`."""
        out = []
        for key, entry in self._held.items():
            if entry["first"] <= before:
                out.append((key, self.partial(key), entry["total"], entry["extra"]))
        return out

    def partial(self, key: tuple) -> str:
        entry = self._held[key]
        return "".join(entry["parts"].get(i, "[…]") for i in range(1, entry["total"] + 1))
