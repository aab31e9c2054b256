"""The fault harness, short (bench/faults.py is the long run): the real service as a subprocess
with the example config (addresses changed; quiet hours and the pumping cap off: the faults are
what is under test), the loopback AMI server and the real SMSC, through SIGKILL at random moments
while calls stream in, SIGTERM during a gateway outage and during a throttled burst, and an AMI
drop mid-call. A user's view: each caller whose call was decided "text" gets exactly one text at
the SMSC; no text is left `unknown` that the SMSC never got, and after a SIGTERM none at all.
Fails on main before the outbox/SMPP fixes of issue 10 (findings 2-4): rows claimed but never
written are marked `unknown` at start-up and never sent.
"""
from __future__ import annotations

import asyncio
import os
import signal

from tests import faultrig as f

SEED = int(os.environ.get("FAULTS_SEED", "7"))      # print it: a failure replays with the same seed


def _run(plan, smsc_dir):
    results = asyncio.run(f.run_plan(plan, seed=SEED, smsc_dir=smsc_dir, log=lambda s: None))
    text = f.report(results)
    print(text)
    return results, text


def test_no_text_lost_or_doubled_through_kills_stops_outages_and_drops(smsc_workdir):
    results, text = _run([
        (f.kills, dict(calls=40, n_kills=6, rate=6, settle=30)),
        (f.term_during_outage, dict(calls=5, settle=30)),
        (f.term_during_throttled_burst, dict(calls=10, settle=30)),
        (f.term_during_outage, dict(calls=5, settle=30, sig=signal.SIGKILL)),
        (f.ami_cuts, dict(cuts=2, settle=30)),
    ], smsc_workdir)
    for r in results:
        assert r.tally.callers > 0, text
        assert not r.tally.lost, f"seed {SEED}: {r.name}: lost {r.tally.lost}\n{text}"
        assert not r.tally.duplicated, f"seed {SEED}: {r.name}: duplicated {r.tally.duplicated}\n{text}"
        # `unknown` only for a text really written: the SMSC has it (a kill between the write
        # and the answer; this SMSC sends a receipt only on the session that submitted)
        assert not r.tally.wrong_unknown, f"seed {SEED}: {r.name}: unknown, never at the SMSC: " \
                                          f"{r.tally.wrong_unknown}\n{text}"
    # where the service is stopped only after every call was decided, every caller is texted
    # once; after a SIGTERM (answers were not pending) nothing is unknown at all
    for r in results[1:4]:
        assert not r.tally.unseen and r.tally.texted_once == r.tally.callers, text
    for r in results[1:3]:
        assert not r.tally.unknown_at_smsc, text
