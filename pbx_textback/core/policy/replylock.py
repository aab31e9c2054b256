"""Collision control: one agent at a time answers a caller. Pure.

While an agent types in a conversation's reply box, that agent holds its lock and everyone else
sees "‹agent› is replying". The lock lapses after the holder has been idle for a while (30
minutes by default: someone who walked away must not block the desk), ends when the holder
sends or clears the box, and an admin can break it. Sending into a conversation someone else
holds is allowed after the sender confirms: the lock prevents two answers by accident, it
does not stop a person who decided.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LAPSE_MINUTES = 30.0


@dataclass(frozen=True)
class Lock:
    holder: str
    since: float          # when the holder took it
    seen_at: float        # the holder's last keystroke (or heartbeat)


def live(lock: Lock | None, now: float, lapse_s: float) -> Lock | None:
    """The lock if it still holds at `now`, else None."""
    if lock is None or now - lock.seen_at > lapse_s:
        return None
    return lock


def take(lock: Lock | None, who: str, now: float, lapse_s: float) -> tuple[Lock | None, bool]:
    """`who` types: (the lock afterwards, whether who holds it). Someone else's live lock
    stays theirs; a lapsed one, or none, becomes who's; who's own is refreshed."""
    current = live(lock, now, lapse_s)
    if current is not None and current.holder != who:
        return current, False
    since = current.since if current is not None else now
    return Lock(who, since, now), True


def held_by_other(lock: Lock | None, who: str, now: float, lapse_s: float) -> str:
    """The other agent holding the conversation at `now` ('' when free or who's own)."""
    current = live(lock, now, lapse_s)
    return current.holder if current is not None and current.holder != who else ""


def may_release(lock: Lock | None, who: str, is_admin: bool) -> bool:
    """The holder lets go of their own lock; only an admin breaks someone else's."""
    return lock is None or lock.holder == who or is_admin
