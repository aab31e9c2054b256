"""A restart after a busy spell costs no memory per call of that spell. The service, as it
starts, queues the opt-out/opt-in confirmations a crash may have left owed
(pipeline.queue_confirmations); that check read every consent event of the last three hours,
one per missed call, and built a Python object for each: restarted on a store that had taken
115k calls in those hours (bench/soak.py --from) the service held ~10 MB more for good than
on an empty store (+34 MB at the peak), and a million calls would have passed 100 MB. It now
reads the opt-outs, opt-ins and confirmations only (store/consent_owed.py).

Memory is measured with tracemalloc (the Python objects the check builds), never a time; on
SQLite and on a real PostgreSQL."""
import time
import tracemalloc

import peewee as pw

from pbx_textback.config import loads
from pbx_textback.core.policy.consent import ConsentEvent
from pbx_textback.pipeline import Pipeline
from pbx_textback.store import db as st

CALLS = 20_000
CFG = loads('[business]\nname = "Acme"\nphone = "+15125550100"\ntimezone = "America/Chicago"\n'
            '[[line]]\nnumber = "+15125550140"\n')
LINE = "+15125550140"
STOPPED = "+15125550177"          # wrote STOP a minute ago; the service stopped before confirming


def busy_spell(store, now: float) -> None:
    """CALLS missed calls' consent events spread over the last two hours (as each decision
    stores them), a STOP answered long ago, and a STOP a minute ago whose confirmation is owed."""
    rows = [dict(number=f"+1512556{i % 10000:04d}", kind="inbound-call", at=now - 7200 + i * 7200 / CALLS,
                 scope="business", line=LINE, source=f"call-{i}", confirms="", lang="en") for i in range(CALLS)]
    with store.write():
        for batch in pw.chunked(rows, 500):
            st.Consent.insert_many(batch).execute()
        store.add_consent(ConsentEvent("opt-out", "+15125550166", now - 5400, line=LINE, source="STOP"))
        store.add_consent(ConsentEvent("confirmation", "+15125550166", now - 5399, confirms="opt-out"))
        store.add_consent(ConsentEvent("opt-out", STOPPED, now - 60, line=LINE, source="stop"))


def test_the_start_up_check_reads_no_row_per_call_and_still_confirms_the_stop(store_factory):
    store = store_factory()
    now = time.time()
    busy_spell(store, now)
    pipe = Pipeline(CFG, store)
    tracemalloc.start()
    try:
        with store.write():
            owed = pipe.queue_confirmations(now)         # what Service.run does as it starts
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert owed == 1
    # an object per call of those hours was ~1.3 kB a call: 20,000 calls held 25 MB
    assert peak < 1_000_000, f"the start-up check held {peak / 1e6:.1f} MB for {CALLS:,} calls"
    conf = st.Message.get(st.Message.kind == "confirmation")
    assert (conf.peer, conf.state) == (STOPPED, "pending")
    with store.write():
        assert pipe.queue_confirmations(now + 1) == 0    # never twice
    store.close()
