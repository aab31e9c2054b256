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


# A block of 300 kB freed, then one of 200 kB asked for: where does the second come from? With
# glibc's dynamic threshold the first free raised it to 300 kB, so the second is carved from the
# heap (and, were anything small allocated above it, would pin its pages there); held at 128 kB
# it is mapped on its own and goes back to the system when freed.
_WHERE = r"""
import ctypes, sys
sys.path.insert(0, {root!r})
{setup}
def in_heap(b):
    at = ctypes.addressof((ctypes.c_char * len(b)).from_buffer(b))
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= at < hi:
                return True
    return False
first = bytearray(300_000)
del first
second = bytearray(200_000)
print("heap" if in_heap(second) else "mapped")
"""

_SERVICE = """
import tempfile
from pbx_textback.config import loads
from pbx_textback.service import Service
from tests.service_toml import smpp_service_toml
Service(loads(smpp_service_toml(tempfile.mkdtemp() + "/s.sqlite3", 1)))
"""


def _where(setup: str, env_extra: dict | None = None) -> str:
    import os
    import subprocess
    from pathlib import Path
    env = {k: v for k, v in os.environ.items() if k not in heap._ADMIN_SET}
    env.update(env_extra or {})
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", _WHERE.format(root=root, setup=setup)], env=env,
                         capture_output=True, text=True, timeout=60, cwd=root)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


linux_glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or not heap.available(),
                                 reason="glibc's malloc only")


@linux_glibc
def test_without_the_held_threshold_a_freed_big_block_moves_the_next_ones_into_the_heap():
    assert _where("") == "heap"


@linux_glibc
def test_the_service_holds_the_threshold_so_big_blocks_stay_out_of_the_heap():
    assert _where("from pbx_textback import heap; assert heap.hold_mmap_threshold()") == "mapped"
    assert _where(_SERVICE) == "mapped"             # what ships: constructing the Service does it


@linux_glibc
def test_an_admins_own_malloc_setting_is_left_alone():
    assert heap.hold_mmap_threshold({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
    assert heap.hold_mmap_threshold({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) is False
    # glibc applied the admin's 1 MB threshold at start: the 200 kB block is the heap's, as set
    assert _where("from pbx_textback import heap; assert not heap.hold_mmap_threshold()",
                  {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}) == "heap"
