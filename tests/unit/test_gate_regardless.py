"""gate.regardless is the gate's own first rule: a text it answers for (a reply the rules
require) gets that answer whatever the facts say, and every other kind is left to the facts.
The outbox takes such a row without reading any fact on that promise (outbox.py)."""
from hypothesis import given, strategies as st

from pbx_textback.core.policy.gate import REQUIRED, SEND, GateFacts, gate, regardless

NOW = 1_800_000_000.0
KINDS = st.sampled_from(("missed-call", "follow-up", "agent", "manual", "confirmation", "help", "other"))
FACTS = st.builds(GateFacts, reached_by=st.sampled_from(("", "inbound call c1")), replied=st.booleans(),
                  opted_out=st.booleans(), paused=st.booleans(),
                  allowed_at=st.one_of(st.none(), st.floats(NOW - 7200, NOW + 86400)),
                  over_hourly_cap=st.sampled_from(("", "hourly cap reached")))


@given(kind=KINDS, facts=FACTS, late=st.floats(0, 3 * 86400))
def test_what_regardless_answers_no_fact_changes(kind, facts, late):
    first = regardless(kind)
    got = gate(kind, NOW - late, NOW, facts, max_age_s=7200, created_at=NOW - late, max_hold_s=3600)
    if first is not None:
        assert got == first
    else:
        assert kind not in REQUIRED


def test_the_replies_the_rules_require_are_sent_and_nothing_else_is_decided_without_facts():
    assert {k: regardless(k).action for k in REQUIRED} == {"confirmation": SEND, "help": SEND}
    assert regardless("missed-call") is None and regardless("agent") is None
    # an opted-out, paused, reached number in quiet hours: the confirmation of its STOP still goes
    held = GateFacts(reached_by="inbound call c1", opted_out=True, paused=True, allowed_at=NOW + 3600)
    assert gate("confirmation", NOW, NOW, held, max_age_s=7200).action == SEND
    assert gate("missed-call", NOW, NOW, held, max_age_s=7200).action != SEND
