"""Empty store vs grown store (issue 14: "the rate must not fall as the store grows"), in
minutes instead of a 50-minute soak: bench/soak.py runs --calls N on an empty store, then N on
a copy of a grown store (kept by an earlier `soak.py --keep` run), alternating, --pairs times,
so both see the same minutes of a machine whose speed drifts. With --code DIR (repeatable) each
pair runs every checkout's service code in turn: an A/B of two versions on both stores.

    .venv/bin/python bench/soak.py --calls 300000 --seconds 0 --keep --no-purge --dir /tmp/grow
    .venv/bin/python bench/soak_ab.py --from /tmp/grow/pbx-soak-X/before-purge.sqlite3
    .venv/bin/python bench/soak_ab.py --from STORE --code /tmp/before --code .   # old vs new code

Prints every run (CPU per call, page-cache misses and read syscalls per call, RSS) and, per
pair, grown / empty for each code and new / old for each store. Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: Path, store: str | None, calls: int, tmp: Path, tag: str) -> dict:
    out = tmp / f"{tag}.json"
    argv = [sys.executable, str(ROOT / "bench" / "soak.py"), "--calls", str(calls), "--seconds", "0",
            "--warmup", "0", "--warmup-calls", "0", "--no-purge", "--json", str(out), "--dir", str(tmp)]
    if store:
        argv += ["--from", store]
    env = dict(os.environ, PBX_SOAK_CODE=str(code), PYTHONPATH=str(code))
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        raise SystemExit(f"soak.py failed ({tag})")
    return json.loads(out.read_text())


def line(tag: str, f: dict) -> str:
    return (f"  {tag:<28} CPU {f['cpu_ms']:5.2f} ms/call (loop {f['loop_ms']:4.2f}, ckpt "
            f"{f['wal-checkpoint_ms']:4.2f})  {f['calls_per_s']:6.1f} calls/s  misses {f.get('miss', 0):6.1f}  "
            f"hits {f.get('hit', 0):6.1f}  read syscalls {f.get('syscr', 0):6.1f}  "
            f"RSS {f['rss_first']:5.1f} -> {f['rss_last']:5.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="grown", required=True, help="the grown store (soak.py --keep)")
    ap.add_argument("--calls", type=int, default=15000, help="calls per run")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--code", action="append", default=None,
                    help="a checkout whose service code runs (repeat for an A/B; default: this one)")
    ap.add_argument("--dir", default=None, help="where the runs' stores go (a grown copy per run)")
    args = ap.parse_args()
    codes = [Path(c).resolve() for c in (args.code or [str(ROOT)])]
    names = [c.name for c in codes] if len({c.name for c in codes}) == len(codes) else [str(c) for c in codes]
    res: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="soak-ab-", dir=args.dir) as d:
        tmp = Path(d)
        for p in range(args.pairs):
            # the order flips every pair: neither store nor code always runs first
            order = [(ci, st) for ci in range(len(codes)) for st in ("empty", "grown")]
            if p % 2:
                order.reverse()
            got: dict = {}
            for ci, st in order:
                tag = f"{p}-{names[ci]}-{st}"
                f = got[(ci, st)] = run(codes[ci], args.grown if st == "grown" else None, args.calls, tmp, tag)
                print(line(f"pair {p + 1} {names[ci]} {st}", f), flush=True)
            for ci in range(len(codes)):
                e, g = got[(ci, "empty")], got[(ci, "grown")]
                print(f"    pair {p + 1} {names[ci]}: grown / empty CPU per call {g['cpu_ms'] / e['cpu_ms']:.3f}, "
                      f"misses {g.get('miss', 0):.1f} vs {e.get('miss', 0):.1f}, read syscalls "
                      f"{g.get('syscr', 0):.1f} vs {e.get('syscr', 0):.1f}", flush=True)
            for ci in range(1, len(codes)):
                for st in ("empty", "grown"):
                    print(f"    pair {p + 1} {st}: {names[ci]} / {names[0]} CPU per call "
                          f"{got[(ci, st)]['cpu_ms'] / got[(0, st)]['cpu_ms']:.3f}", flush=True)
            res.append({f"{names[ci]}-{st}": v for (ci, st), v in got.items()})
    print("\nsummary (CPU ms per call, every pair):")
    for key in res[0]:
        print(f"  {key:<24} " + "  ".join(f"{r[key]['cpu_ms']:.2f}" for r in res))


if __name__ == "__main__":
    main()
