"""The short fuzz run (CI): every parser of what comes off a socket or out of a file, a few
seconds each. FUZZ_EXAMPLES scales it (default 120 inputs per property); bench/fuzz.py is the
long run over the same targets (tests/fuzz/targets.py)."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")), deadline=None,
    derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.large_base_example])
FUZZ = settings.get_profile("fuzz")
