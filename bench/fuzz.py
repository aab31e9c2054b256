"""The long fuzz run: >= 1M inputs per parser of what comes off a socket or out of a file.

    python bench/fuzz.py                      # every parser, 1M inputs or 150 s each (<= 30 min)
    python bench/fuzz.py --count 200000 --seconds 60 --only sip,vmail

Inputs are random bytes and mutations (bit flips, cuts, repeats, splices, hostile tokens) of
the recorded fixtures in tests/fixtures/ (tests/fuzz/targets.py holds the parsers and their
seeds; the short CI run in tests/fuzz/ uses the same table). A crash is any exception a target
lets out (see targets.py: each parser's own documented error is not one; an exception a
parser's safety net swallowed is). A hang is an input that takes longer than --hang seconds;
memory is capped (--mem-gb) so a runaway allocation is a MemoryError, not the OOM killer.

Prints, per parser: inputs, inputs/s, distinct crashes and hangs, the slowest input; then the
first input of each distinct crash (repr, cut), and writes them to --out. Exits 0 when nothing
crashed, 1 otherwise; always by itself within about (parsers x --seconds).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz.targets import TARGETS, mutate  # noqa: E402

class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def signature(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in tb if "pbx_textback" in f.filename] or tb
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    msg = str(exc).splitlines()[0][:90] if str(exc) else ""
    return f"{type(exc).__name__} at {where}" + (f" ({msg})" if type(exc).__name__ == "Swallowed" else "")


def run_target(t, count: int, seconds: float, hang: float, rng: random.Random) -> dict:
    seeds = t.seeds()
    crashes: dict[str, bytes] = {}
    hangs: list[tuple[float, bytes]] = []
    slowest = (0.0, b"")
    n = 0
    start = time.monotonic()
    deadline = start + seconds
    queue = list(seeds)                      # the seeds themselves first
    while n < count and time.monotonic() < deadline:
        data = queue.pop() if queue else mutate(rng, seeds)
        n += 1
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, hang)
        try:
            t.run(data)
        except Hang:
            hangs.append((time.perf_counter() - t0, data))
        except MemoryError as e:
            crashes.setdefault(signature(e), data)
        except Exception as e:              # noqa: BLE001 - that is what we are looking for
            crashes.setdefault(signature(e), data)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        took = time.perf_counter() - t0
        if took > slowest[0]:
            slowest = (took, data)
    elapsed = time.monotonic() - start
    return {"name": t.name, "what": t.what, "owner": t.owner, "inputs": n, "seconds": elapsed,
            "rate": n / elapsed if elapsed else 0.0, "crashes": crashes, "hangs": hangs,
            "slowest": slowest}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="inputs per parser")
    ap.add_argument("--seconds", type=float, default=150.0, help="time bound per parser")
    ap.add_argument("--hang", type=float, default=2.0, help="one input longer than this is a hang")
    ap.add_argument("--mem-gb", type=float, default=3.0, help="address space cap")
    ap.add_argument("--only", default="", help="comma-separated parser names")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "pbx-textback-fuzz"),
                    help="directory for the crashing inputs")
    a = ap.parse_args(argv)

    names = [n for n in a.only.split(",") if n] or list(TARGETS)
    unknown = set(names) - set(TARGETS)
    if unknown:
        ap.error(f"unknown parser(s): {', '.join(sorted(unknown))}; have {', '.join(TARGETS)}")
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    lim = int(a.mem_gb * 1024 ** 3)
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    signal.signal(signal.SIGALRM, _alarm)
    logging.disable(logging.NOTSET)
    logging.getLogger().setLevel(logging.CRITICAL + 1)      # parsers log every bad input

    print(f"fuzz: seed {seed}, up to {a.count:,} inputs or {a.seconds:g} s per parser, "
          f"hang > {a.hang:g} s, memory cap {a.mem_gb:g} GB", flush=True)
    print(f"{'parser':20s} {'inputs':>10s} {'inputs/s':>9s} {'crashes':>7s} {'hangs':>5s} "
          f"{'slowest':>8s}  module", flush=True)
    results = []
    for name in names:
        r = run_target(TARGETS[name], a.count, a.seconds, a.hang, rng)
        results.append(r)
        print(f"{name:20s} {r['inputs']:>10,d} {r['rate']:>9,.0f} {len(r['crashes']):>7d} "
              f"{len(r['hangs']):>5d} {r['slowest'][0]:>7.3f}s  {r['what']}", flush=True)

    bad = [r for r in results if r["crashes"] or r["hangs"]]
    if bad:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        print("\ncrashes (first input of each, repr cut at 300):")
        for r in bad:
            owner = f"  [{r['owner']}]" if r["owner"] else ""
            for i, (sig, data) in enumerate(sorted(r["crashes"].items())):
                (out / f"{r['name']}-{i}.bin").write_bytes(data)
                print(f"- {r['name']}{owner}: {sig}\n    {data[:300]!r}")
            for i, (took, data) in enumerate(r["hangs"][:3]):
                (out / f"{r['name']}-hang-{i}.bin").write_bytes(data)
                print(f"- {r['name']}{owner}: hang (> {took:.1f} s), {len(data)} bytes\n    {data[:300]!r}")
        print(f"\ninputs written to {out}/")
    short = [r["name"] for r in results if r["inputs"] < a.count]
    if short:
        print(f"\nnote: stopped by the time bound before {a.count:,} inputs: {', '.join(short)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
