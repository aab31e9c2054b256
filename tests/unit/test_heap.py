"""heap.give_back: the free pages in the middle of glibc's heap go back to the system (what a
long run's RSS shows), measured on this process's own RSS."""
import sys

import pytest

from pbx_textback import heap


def rss_anon_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not heap.available(),
                    reason="glibc's malloc_trim only")
def test_free_pages_in_the_middle_of_the_heap_go_back():
    heap.give_back()
    # 40 MB in 2 kB blocks (malloc's, not Python's small-object arenas), then every block
    # freed but one in 64: the heap cannot shrink from its top, the pages between the
    # survivors are free
    blocks = [bytearray(2048) for _ in range(20_000)]
    keep = blocks[::64]
    del blocks
    before = rss_anon_kb()
    assert heap.give_back() is True
    after = rss_anon_kb()
    assert before - after > 20_000, (before, after)
    assert all(len(b) == 2048 for b in keep)      # what is still used stays


def test_a_quiet_spell_after_calls_is_trimmed_once_and_a_busy_one_never():
    t = heap.QuietTrim()
    assert [t.round(n) for n in (0, 0)] == [False, False]          # no calls yet: nothing to do
    assert [t.round(n) for n in (5, 40, 90)] == [False] * 3        # calls in every round
    assert [t.round(n) for n in (90, 90, 90)] == [True, False, False]   # quiet: once
    assert [t.round(n) for n in (91, 91)] == [False, True]         # one more call, then quiet
    assert t.round(91, force=True) is True                         # after a purge
