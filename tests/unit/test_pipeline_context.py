"""The decision's shortcuts for what is the same call after call (pipeline.py): a first-time
caller's consent check is the check of an empty history, whatever the number and line."""
from hypothesis import given, strategies as st

from pbx_textback.core.policy import consent
from pbx_textback.pipeline import _NO_CONSENT_HISTORY

NUMBERS = st.text(st.sampled_from("+0123456789"), max_size=16)


@given(number=NUMBERS, line=NUMBERS)
def test_an_empty_consent_history_checks_alike_for_every_number_and_line(number, line):
    assert consent.consent_check([], number, line) == _NO_CONSENT_HISTORY
    assert _NO_CONSENT_HISTORY.ok and _NO_CONSENT_HISTORY.name == "consent"
