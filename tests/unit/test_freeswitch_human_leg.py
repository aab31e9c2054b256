"""Who answered a FreeSWITCH call must not depend on Python's hash seed: the bridge walk went
over sets of uids, so two legs answered at the same moment were chosen between by the seed
(one run of the service said "answered by a person", the next "answered there")."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# the caller's leg bridged to two phones answered at the same moment, and a third later
WORK = """
from pbx_textback.core.pbx.freeswitch_call import FsCall, FsLeg
from pbx_textback.core.pbx.freeswitch_record import human_leg
legs = {u: FsLeg(uid=u, seq=i, answered=100.0 + (i == 4)) for i, u in
        enumerate(["caller-7f3a", "desk-1001-b2", "desk-1002-c9", "desk-1003-d4", "late-1004"], 1)}
call = FsCall(root="caller-7f3a", legs=legs,
              edges={("caller-7f3a", u) for u in legs if u != "caller-7f3a"} | {("desk-1002-c9", "desk-1003-d4")},
              bridged_at={u: 100.0 for u in legs if u != "late-1004"} | {"late-1004": 101.0})
kinds = {u: ("extension", u) for u in legs}
leg, at = human_leg(call, legs["caller-7f3a"], kinds)
print(leg.uid, at)
"""


def test_the_leg_that_answered_is_the_same_under_any_hash_seed():
    got = set()
    for seed in range(12):
        out = subprocess.run([sys.executable, "-c", WORK], cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(ROOT)})
        got.add(out.stdout.strip())
    # the earliest answer; of the tied, the first seen one bridged straight to the caller
    assert got == {"desk-1001-b2 100.0"}
