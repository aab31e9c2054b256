"""Ingest framing by instruction count: the same comparisons as bench/ingest.py (naive split +
partition, bare framing unfiltered and with the service's filter, full = filtered framing +
tracker + classifier), counted by valgrind's callgrind instead of timed.

Why: on a shared two-core box the CPU-time ratios of bench/ingest.py move by +-5% from run to
run, more than most single changes to the framing; instructions executed do not (hash seed
fixed). Each figure is (a run over R+2 rounds - a run over R rounds) / 2, so start-up, imports
and building the reads cancel out. Instructions are not time (cache misses, branches), so a
change is confirmed by the timed bench too. Needs `valgrind` (Debian: apt-get install valgrind).
Prints figures and ratios; asserts nothing.
    python bench/ingest_ir.py [--shape ingest|latency] [--modes naive,bare,filt,full]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the workload, run in a child under callgrind: python -c WORK ROOT SHAPE MODE ROUNDS
WORK = r"""
import sys
root, shape, mode, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path[:0] = [root, root + "/bench"]
from pbx_textback.core.pbx.amiframe import AmiFraming
from pbx_textback.core.pbx.asterisk import SERVICE_AMI_EVENTS, AsteriskTracker
from pbx_textback.core.policy.classify import classify
import ingest
if shape == "latency":           # bench/latency.py's call: 03-abandoned, two writes per call
    import latency
    reads = [b for pair in latency.build_calls(20) for b in pair]
else:                            # bench/ingest.py's round: every trace, 64 KiB reads
    reads = ingest.ami_round(ingest.ami_template(), 0)
events = 0
for _ in range(rounds):
    if mode == "naive":
        f = ingest.NaiveFraming()
    elif mode == "bare":
        f = AmiFraming()
    else:
        tr = AsteriskTracker()
        f = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=tr.read_vars)
    for c in reads:
        for ev in f.feed(c):
            events += 1
            if mode == "full":
                for rec in tr.feed(ev):
                    classify(rec)
print("EVENTS", events // max(rounds, 1))
"""


def count(shape: str, mode: str, rounds: int) -> tuple[int, int]:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", WORK, str(ROOT), shape, mode, str(rounds)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True)
    ir = int(re.search(r"Collected : (\d+)", out.stderr).group(1))
    events = int(re.search(r"EVENTS (\d+)", out.stdout).group(1))
    return ir, events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="ingest", choices=["ingest", "latency"])
    ap.add_argument("--modes", default="naive,bare,filt,full")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found (apt-get install valgrind)")
    per: dict[str, float] = {}
    for mode in a.modes.split(","):
        lo, n = count(a.shape, mode, a.rounds)
        hi, _ = count(a.shape, mode, a.rounds + 2)
        per[mode] = (hi - lo) / 2
        print(f"  {mode:6s} {per[mode] / 1e6:8.2f} M instructions per round "
              f"({per[mode] / max(n, 1):,.0f} per event handed on, {n:,} events)")
    if "naive" in per and "bare" in per:
        print(f"  bare framing / naive, unfiltered:     {per['naive'] / per['bare']:.2f} (goal >= 1.0)")
    if "naive" in per and "filt" in per:
        print(f"  bare framing / naive, service filter: {per['naive'] / per['filt']:.2f} (goal >= 1.0)")
    if "filt" in per and "full" in per:
        print(f"  full / bare, service filter:          {per['filt'] / per['full']:.2f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
