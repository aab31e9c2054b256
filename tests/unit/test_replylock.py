"""Collision control: who holds a conversation's reply box, when the lock lapses, who may break it."""
from pbx_textback.core.policy.replylock import Lock, held_by_other, live, may_release, take

LAPSE = 30 * 60


def test_the_first_typist_holds_it_and_the_other_sees_them():
    lock, mine = take(None, "maria", 1000.0, LAPSE)
    assert mine and lock == Lock("maria", 1000.0, 1000.0)
    lock2, theirs = take(lock, "joe", 1010.0, LAPSE)
    assert not theirs and lock2 == lock
    assert held_by_other(lock, "joe", 1010.0, LAPSE) == "maria"
    assert held_by_other(lock, "maria", 1010.0, LAPSE) == ""


def test_typing_keeps_it_alive_and_idle_lets_it_lapse_after_30_minutes():
    lock, _ = take(None, "maria", 0.0, LAPSE)
    lock, _ = take(lock, "maria", 1700.0, LAPSE)          # still typing: refreshed, same since
    assert lock == Lock("maria", 0.0, 1700.0)
    assert live(lock, 1700.0 + LAPSE, LAPSE) == lock       # exactly 30 min idle: still held
    assert live(lock, 1700.0 + LAPSE + 1, LAPSE) is None
    lock, joe = take(lock, "joe", 1700.0 + LAPSE + 1, LAPSE)
    assert joe and lock.holder == "joe" and lock.since == 1700.0 + LAPSE + 1


def test_the_lapse_is_configurable():
    lock, _ = take(None, "maria", 0.0, 60.0)
    assert held_by_other(lock, "joe", 61.0, 60.0) == ""
    assert held_by_other(lock, "joe", 61.0, LAPSE) == "maria"


def test_only_the_holder_or_an_admin_releases():
    lock = Lock("maria", 0.0, 0.0)
    assert may_release(lock, "maria", False)
    assert not may_release(lock, "joe", False)
    assert may_release(lock, "joe", True)
    assert may_release(None, "joe", False)
