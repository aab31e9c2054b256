"""A front-desk reply (kind agent) is a person answering a person: quiet hours, a pause and
the hourly cap do not hold it, a call that reached the caller does not cancel it, an opt-out
always does. Automated texts keep every rule."""
from pbx_textback.core.policy.gate import CANCEL, EXPIRE, HOLD, SEND, GateFacts, gate

NOW = 1_800_000_000.0
HELD = GateFacts(paused=True, allowed_at=NOW + 3600, over_hourly_cap="cap", reached_by="inbound call c1")


def test_an_agents_reply_goes_now_where_an_automated_text_waits():
    assert gate("agent", NOW, NOW, HELD, max_age_s=7200).action == SEND
    assert gate("missed-call", NOW, NOW, HELD, max_age_s=7200).action == CANCEL
    assert gate("missed-call", NOW, NOW, GateFacts(paused=True), max_age_s=7200).action == HOLD
    assert gate("missed-call", NOW, NOW, GateFacts(allowed_at=NOW + 60), max_age_s=7200).action == HOLD


def test_an_opt_out_cancels_an_agents_reply_and_a_stale_one_expires():
    g = gate("agent", NOW, NOW, GateFacts(opted_out=True), max_age_s=7200)
    assert (g.action, g.why) == (CANCEL, "caller opted out")
    assert gate("agent", NOW - 7300, NOW, GateFacts(), max_age_s=7200).action == EXPIRE
