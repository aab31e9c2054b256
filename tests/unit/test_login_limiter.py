"""Failed sign-ins are remembered per address and per name for the block window. A spray of
made-up names (each failing once) must not grow the service's memory without end, and must
not let the one address doing it try again."""
import tracemalloc

from pbx_textback.web.app import FAIL_WINDOW_S, MAX_FAILS, LoginLimiter


class Clock:
    t = 1_800_000_000.0

    def __call__(self):
        return self.t


def spray(lim, clock, start: int, n: int, addr: str = "") -> None:
    for i in range(start, start + n):
        clock.t += 0.05
        lim.failed(addr or f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", f"user{i}")


def test_a_spray_of_made_up_names_keeps_memory_bounded():
    clock = Clock()
    lim = LoginLimiter(clock)
    tracemalloc.start()
    try:
        spray(lim, clock, 0, 15000)
        after_15k = tracemalloc.get_traced_memory()[0]
        spray(lim, clock, 15000, 45000)
        after_60k = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_60k < after_15k * 1.1 + 100_000, (after_15k, after_60k)


def test_the_address_spraying_stays_blocked_and_recent_names_too():
    clock = Clock()
    lim = LoginLimiter(clock)
    for _ in range(MAX_FAILS):
        lim.failed("10.9.9.9", "maria")
    assert lim.blocked("10.9.9.9") and lim.blocked("maria")
    spray(lim, clock, 0, 3000)                       # others' noise, fewer than the limit remembers
    assert lim.blocked("maria")
    spray(lim, clock, 0, 12000, addr="10.6.6.6")     # one address, many names: it stays blocked
    assert lim.blocked("10.6.6.6") and lim.blocked("10.6.6.6", "nobody")
    clock.t += FAIL_WINDOW_S + 1
    assert not lim.blocked("10.6.6.6")               # the window has passed: it may try again
