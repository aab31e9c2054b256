"""A caller's reply as a desk phone shows it (SIP MESSAGE through the PBX), and the limit of
one per conversation per minute. Pure: the time comes in as an argument."""
from __future__ import annotations

import unicodedata

MAX_CHARS = 100
WINDOW_S = 60.0


def to_ascii(text: str) -> str:
    """Plain printable ASCII: accents dropped (é -> e), anything else (emoji, controls, RTL
    overrides) removed, runs of blanks made one space. Desk phones show little else."""
    flat = unicodedata.normalize("NFKD", text or "")
    kept = "".join(ch if 32 <= ord(ch) < 127 else (" " if ch.isspace() else "") for ch in flat)
    return " ".join(kept.split())


def push_text(peer: str, body: str, more: int = 0, limit: int = MAX_CHARS) -> str:
    """`Reply +15125550188: can you call me...` in at most `limit` characters."""
    head = f"Reply {to_ascii(peer)}" + (f" (+{more} more)" if more else "") + ": "
    text = head + (to_ascii(body) or "(empty)")
    if len(text) > limit:
        text = text[:limit - 3].rstrip() + "..."
    return text


class Throttle:
    """At most one push per conversation per window; replies that come within it are kept and
    go as one push (the newest, with how many more) once the window has passed."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self.last: dict[str, float] = {}
        self.held: dict[str, tuple[str, int]] = {}     # peer -> (newest body, replies held)

    def offer(self, peer: str, body: str, now: float) -> list[tuple[str, str, int]]:
        """A new reply: [(peer, body, more)] to push now, or [] (held)."""
        if now - self.last.get(peer, -1e18) >= self.window_s:
            self.last[peer] = now
            return [(peer, body, 0)]
        _, n = self.held.get(peer, ("", 0))
        self.held[peer] = (body, n + 1)
        return []

    def due(self, now: float) -> list[tuple[str, str, int]]:
        """Held replies whose window has passed."""
        out = []
        for peer, (body, n) in list(self.held.items()):
            if now - self.last.get(peer, -1e18) >= self.window_s:
                del self.held[peer]
                self.last[peer] = now
                out.append((peer, body, n - 1))
        for peer in [p for p, t in self.last.items() if now - t > 10 * self.window_s and p not in self.held]:
            del self.last[peer]          # forget quiet conversations: memory stays small
        return out
