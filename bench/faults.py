"""Fault harness (issue 10): the real service, the loopback PBX and the real SMSC through the
faults that lose or double texts. Prints per-caller counts at the SMSC for each scenario:
lost (texted 0 times and the row is not a legitimate cancel/expire), duplicated (> 1),
unknown-for-a-person (`unknown` rows: the text never reached the SMSC, or did; apart: written
just as the gateway process died, the one rightful case), unseen (the service never decided the
call: its bytes were in the socket or in memory when SIGKILL landed; only CDR recovery could
bring it back). Goal: 0 lost, 0 duplicated.

    .venv/bin/python bench/faults.py [--calls 1000] [--kills 100] [--rate 8] [--seed 1]

Scenarios (tests/faultrig.py): SIGKILL at random moments over the call stream; SIGTERM during a
gateway outage and during a throttled burst; SIGKILL during an outage; AMI and ESL drops
mid-call where the rest never arrives; gateway outage, hang, throttling, quota and receipts before the submit
answer while calls stream; a second bind (send-test) on the account while callers text STOP.
Bounded: each scenario waits at most --settle s for the outbox to drain. 127.0.0.1 only.
Runs the config.example.toml as shipped except: PBX/SMSC/store addresses, quiet hours off and
the hourly pumping cap off (tests/integration/test_shipped_defaults.py keeps those on).
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import faultrig as f  # noqa: E402


def plan(a) -> list[tuple]:
    s = a.settle
    return [
        (f.kills, dict(calls=a.calls, n_kills=a.kills, rate=a.rate, settle=s)),
        (f.term_during_outage, dict(calls=5, settle=s)),
        (f.term_during_throttled_burst, dict(calls=20, settle=s)),
        (f.term_during_outage, dict(calls=40, settle=s, sig=signal.SIGKILL)),
        (f.ami_cuts, dict(cuts=20, settle=s)),
        (f.esl_cut, dict(cut_after=30, settle=max(s, 60))),      # the voicemail text waits 30 s
        (f.gateway_fault, dict(calls=60, rate=a.rate, settle=s, fault="outage")),
        (f.gateway_fault, dict(calls=60, rate=a.rate, settle=s, fault="hang")),
        (f.gateway_fault, dict(calls=60, rate=a.rate, settle=s, fault="throttle")),
        (f.gateway_fault, dict(calls=60, rate=a.rate, settle=s, fault="quota")),
        (f.gateway_fault, dict(calls=60, rate=a.rate, settle=s, fault="dlr-first")),
        (f.two_binds, dict(calls=20, stops=10, settle=s)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000, help="missed calls (distinct callers) in the kill run")
    ap.add_argument("--kills", type=int, default=100, help="SIGKILLs in the kill run")
    ap.add_argument("--rate", type=float, default=8.0, help="missed calls per second")
    ap.add_argument("--settle", type=float, default=120.0, help="seconds to wait for the outbox to drain")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smsc-dir", type=Path, help="where the test SMSC's node_modules are installed "
                    "(default: smsc_peer.install's; smsc.js always runs from this checkout)")
    ap.add_argument("--only", help="run only scenarios whose function name contains this")
    a = ap.parse_args()
    p = [x for x in plan(a) if not a.only or a.only in x[0].__name__]
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # stop the children on the way out
    t0 = time.monotonic()
    results = asyncio.run(f.run_plan(p, seed=a.seed, smsc_dir=a.smsc_dir, log=lambda s: print(s, flush=True)))
    print(f"\n== fault harness, seed {a.seed}, {time.monotonic() - t0:.0f} s")
    print(f.report(results))


if __name__ == "__main__":
    main()
