"""decide.e164_of (the pipeline's E.164, sharing the caller check's parse) gives what
to_e164 gives, for any caller-ID text, region, allowed countries and internal length."""
from types import SimpleNamespace

from hypothesis import given, settings, strategies as st

from pbx_textback.core.numbers import to_e164
from pbx_textback.core.policy.decide import e164_of

RAW = st.one_of(
    st.from_regex(r"\A(\+|00|011)?[0-9 ()\-.]{0,18}\Z"),
    st.sampled_from(["", "anonymous", "<unknown>", "100", "2001", "+15125550177", "5125550177",
                     "sip:+15125550177@pbx", '"Jane" <sip:5125550177@x>', "+298123456", "123456",
                     "+447700900123", "07700900123", "%2B15125550177", "0000"]),
    st.text(max_size=20))


@settings(max_examples=500)
@given(RAW, st.sampled_from(["US", "GB", "DE", "FO", "us"]),
       st.sampled_from([None, ("US",), ("US", "CA", "GB"), ()]), st.integers(0, 8))
def test_e164_of_is_to_e164(raw, region, allowed, internal):
    cfg = SimpleNamespace(business=SimpleNamespace(country=region), allowed_countries=allowed,
                          policy=SimpleNamespace(internal_max_digits=internal))
    assert e164_of(raw, cfg) == (to_e164(raw, region) or raw)
