"""core/numbers.py's plain-NANP parse gives what phonenumbers.parse gives, and number_info /
to_e164 answer the same with it as without it (hypothesis, against the library itself)."""
from __future__ import annotations

from unittest import mock

import phonenumbers
from hypothesis import example, given, strategies as st

from pbx_textback.core import numbers
from pbx_textback.core.numbers import _NANP, _plain_nanp

REGIONS = sorted(_NANP) + ["GB", "DE", "FR", "AU", "IN", "MX", "BR", "JP", "ZA", "NL"]
digits = st.text(alphabet="0123456789", min_size=0, max_size=13)
ten = st.text(alphabet="0123456789", min_size=10, max_size=10)
# the forms the fast path takes, and their near misses (other lengths, a leading 0 or 1)
forms = st.one_of(ten.map(lambda d: "+1" + d), ten, ten.map(lambda d: "1" + d),
                  digits, digits.map(lambda d: "+" + d), digits.map(lambda d: "+1" + d))


def _slow_parse(s: str, region: str):
    try:
        return phonenumbers.parse(s, region)
    except phonenumbers.NumberParseException:
        return None


@given(forms, st.sampled_from(REGIONS))
@example("+15125551234", "GB")
@example("5125551234", "US")
@example("15125551234", "CA")
@example("8765551234", "JM")
@example("+11125551234", "US")
def test_the_plain_parse_is_phonenumbers_parse(s, region):
    fast = _plain_nanp(s, region)
    if fast is not None:
        assert fast == _slow_parse(s, region)


def without_fast_path(fn, *args):
    with mock.patch.object(numbers, "_plain_nanp", lambda s, region: None):
        return fn(*args)


@given(forms, st.sampled_from(REGIONS), st.sampled_from([None, ("US",), ("US", "CA"), ("CA", "JM", "GB")]))
@example("+15125551234", "US", None)
@example("+18005551234", "US", None)         # toll-free
@example("+19005551234", "US", None)         # premium
@example("+14165551234", "US", ("US",))      # Canada: foreign
@example("+18765551234", "JM", None)
def test_number_info_and_e164_answer_the_same_with_and_without_it(s, region, allowed):
    allowed = frozenset(allowed or (region,))
    got = numbers._number_info.__wrapped__(s, region, allowed, 6)
    want = without_fast_path(numbers._number_info.__wrapped__, s, region, allowed, 6)
    assert got == want
    assert numbers._to_e164.__wrapped__(s, region) == without_fast_path(numbers._to_e164.__wrapped__, s, region)


def test_the_fast_path_is_taken_for_the_usual_forms():
    """So that the property above is about the path the service runs."""
    assert _plain_nanp("+15125551234", "US") is not None
    assert _plain_nanp("5125551234", "US") is not None
    assert _plain_nanp("15125551234", "CA") is not None
    assert _plain_nanp("5125551234", "GB") is None
    assert _plain_nanp("+445125551234", "US") is None


# numbers from many plans: every country code's example numbers, and digits after a + at random
_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@given(st.sampled_from(_CODES), st.text(alphabet="0123456789", min_size=4, max_size=12))
@example(1, "5125551234")          # US
@example(1, "4165551234")          # CA
@example(1, "8765551234")          # JM
@example(1, "2425551234")          # BS
@example(7, "7012345678")          # KZ (shares 7 with RU, by leading digits)
@example(44, "1481555123")         # GG (shares 44 with GB)
def test_region_and_type_are_the_libraries_two_answers(code, national):
    n = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    assert numbers._region_and_type(n) == (phonenumbers.region_code_for_number(n), phonenumbers.number_type(n))


@given(st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
def test_region_and_type_of_every_regions_example_numbers(region):
    for t in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10):
        ex = phonenumbers.example_number_for_type(region, t)
        if ex is not None:
            assert numbers._region_and_type(ex) == (phonenumbers.region_code_for_number(ex),
                                                    phonenumbers.number_type(ex))
