"""The start-up's "confirmations still owed" check reads the opt-outs, opt-ins and
confirmations only, not the inbound calls (store/consent_owed.py): this holds only if an
inbound call never changes what is owed. Checked here over any history."""
from hypothesis import given, settings, strategies as s

from pbx_textback.core.policy.consent import CONFIRMATION, INBOUND_CALL, KINDS, OPT_IN, OPT_OUT, ConsentEvent, owed

NUMBERS = ("+15125550123", "+15125550199")
LINES = ("", "+15125550100", "+15125550101")


@s.composite
def events(draw):
    kind = draw(s.sampled_from(KINDS))
    return ConsentEvent(kind, draw(s.sampled_from(NUMBERS)), float(draw(s.integers(0, 5000))),
                        scope=draw(s.sampled_from(("business", "line"))), line=draw(s.sampled_from(LINES)),
                        confirms=draw(s.sampled_from((OPT_OUT, OPT_IN))) if kind == CONFIRMATION else "",
                        lang=draw(s.sampled_from(("en", "es"))))


@settings(max_examples=400)
@given(s.lists(events(), max_size=14), s.integers(0, 9000))
def test_inbound_calls_never_change_what_is_owed(history, now):
    without_calls = [e for e in history if e.kind != INBOUND_CALL]
    assert owed(history, float(now)) == owed(without_calls, float(now))


def test_an_owed_opt_out_among_many_calls_is_still_owed():
    """The property above is not empty: a history of calls around an unconfirmed STOP owes it."""
    n = NUMBERS[0]
    history = ([ConsentEvent(INBOUND_CALL, n, float(t), line=LINES[1]) for t in range(0, 100, 10)]
               + [ConsentEvent(OPT_OUT, n, 105.0, line=LINES[1], source="STOP")]
               + [ConsentEvent(INBOUND_CALL, n, float(t), line=LINES[1]) for t in range(110, 200, 10)])
    (conf,) = owed(history, 200.0)
    assert (conf.kind, conf.number, conf.requested_at) == (OPT_OUT, n, 105.0)
    assert owed(history + [ConsentEvent(CONFIRMATION, n, 201.0, confirms=OPT_OUT)], 210.0) == []
