"""Phone-number facts. Examples are real-format numbers chosen from the numbering plans
(NANPA, Ofcom, CNMC, ACMA, BAKOM), each in the range the plan gives that use."""
import pytest
from hypothesis import given, settings, strategies as st

from pbx_textback.core.numbers import NumberInfo, number_info, to_e164

# Callers in the recorded AMI/ESL fixtures (../shared/fixtures). 555-01XX is reserved as
# fictional by NANPA, yet libphonenumber's metadata counts it valid: they must stay textable.
FIXTURE_CALLERS = [
    "+15125550123", "+15125550124", "+15125550199", "+15125550100", "+13105550121",
    "+17375550111", "+17375550188", "+12145550142", "+12105550199", "%2B15125550130",
]


@pytest.mark.parametrize("raw", FIXTURE_CALLERS)
def test_fixture_callers_are_textable(raw):
    info = number_info(raw)
    assert info.textable and info.why is None
    assert info.e164 == "+" + raw.replace("%2B", "").lstrip("+")
    assert info.type == "fixed_line_or_mobile" and info.region == "US"


# raw, region, allowed_countries, why, expected e164 (None where there is none to give)
CASES = [
    # textable, in the shapes PBXs send
    ("+15125550123", "US", None, None, "+15125550123"),
    ("15125550123", "US", None, None, "+15125550123"),
    ("5125550123", "US", None, None, "+15125550123"),
    ("(512) 555-0123", "US", None, None, "+15125550123"),
    ("512.555.0123", "US", None, None, "+15125550123"),
    (" +1 512 555 0123 ", "US", None, None, "+15125550123"),
    ("011 1 512 555 0123", "US", None, None, "+15125550123"),     # NANP international prefix
    ("0015125550123", "US", None, None, "+15125550123"),          # European prefix on a US trunk
    ("0015125550123", "GB", frozenset({"US"}), None, "+15125550123"),
    ("sip:+15125550123@pbx.example.com", "US", None, None, "+15125550123"),
    ("<sip:+15125550123@10.0.0.1;user=phone>", "US", None, None, "+15125550123"),
    ('"Jane Doe" <sip:+15125550123@10.0.0.1>', "US", None, None, "+15125550123"),
    ("tel:+1-512-555-0123", "US", None, None, "+15125550123"),
    ("%2B15125550124", "US", None, None, "+15125550124"),          # FreeSWITCH ESL escaping
    ("07400 123456", "GB", None, None, "+447400123456"),           # UK mobile 07400
    ("+447400123456", "US", frozenset({"US", "GB"}), None, "+447400123456"),
    ("+4915123456789", "DE", None, None, "+4915123456789"),         # DE mobile 0151
    # anonymous
    ("", "US", None, "anonymous", None),
    ("   ", "US", None, "anonymous", None),
    ("anonymous", "US", None, "anonymous", None),
    ("Anonymous", "US", None, "anonymous", None),
    ("ANONYMOUS", "US", None, "anonymous", None),
    ("<unknown>", "US", None, "anonymous", None),
    ("unknown", "US", None, "anonymous", None),
    ("Restricted", "US", None, "anonymous", None),
    ("private", "US", None, "anonymous", None),
    ("Unavailable", "US", None, "anonymous", None),
    ("WITHHELD", "US", None, "anonymous", None),
    ("0", "US", None, "anonymous", None),
    ("sip:anonymous@anonymous.invalid", "US", None, "anonymous", None),  # RFC 3323
    ('"Anonymous" <sip:anonymous@anonymous.invalid>', "US", None, "anonymous", None),
    # internal extensions
    ("100", "US", None, "internal", None),
    ("1000", "US", None, "internal", None),
    ("sip:101@pbx.local", "US", None, "internal", None),
    ("999999", "US", None, "internal", None),
    # invalid
    ("abc", "US", None, "invalid", None),
    ("+1 512 555", "US", None, "invalid", None),
    ("1234567", "US", None, "invalid", None),              # 7 digits: past internal, too short
    ("+15555550123", "US", None, "invalid", None),         # area code 555 is not assigned
    ("+999 1234 5678", "US", None, "invalid", None),       # no such country code
    ("*88", "US", None, "invalid", None),
    # premium rate
    ("+19002345678", "US", None, "premium-rate", "+19002345678"),
    ("09012345678", "GB", None, "premium-rate", "+449012345678"),
    # toll free
    ("+18002345678", "US", None, "toll-free", "+18002345678"),
    ("18885550123", "US", None, "toll-free", "+18885550123"),
    ("0800 123 4567", "GB", None, "toll-free", "+448001234567"),
    # fixed line (only where the plan can tell; NANP cannot)
    ("020 7183 8750", "GB", None, "fixed-line", "+442071838750"),
    ("+493012345678", "DE", None, "fixed-line", "+493012345678"),
    # not SMS-capable
    ("901 123 456", "ES", None, "not-sms-capable", "+34901123456"),        # ES shared cost
    ("1300 123 456", "AU", None, "not-sms-capable", "+611300123456"),      # AU local-rate
    ("055 1234 5678", "GB", None, "not-sms-capable", "+445512345678"),     # UK corporate (UAN)
    ("07640 123456", "GB", None, "not-sms-capable", "+447640123456"),      # UK pager
    ("+41860123456789", "CH", None, "not-sms-capable", "+41860123456789"),  # CH voicemail access
    # foreign
    ("+447400123456", "US", None, "foreign", "+447400123456"),
    ("+14165550123", "US", None, "foreign", "+14165550123"),        # Toronto: NANP, region CA
    ("+14165550123", "US", frozenset({"US", "CA"}), None, "+14165550123"),
    ("+15125550123", "GB", None, "foreign", "+15125550123"),
]


@pytest.mark.parametrize("raw, region, allowed, why, e164", CASES)
def test_why(raw, region, allowed, why, e164):
    info = number_info(raw, region, allowed_countries=allowed)
    assert info.why == why
    assert info.textable == (why is None)
    assert info.e164 == e164
    assert info.raw == raw


@pytest.mark.parametrize("raw, region, type_", [
    ("+15125550123", "US", "fixed_line_or_mobile"),
    ("+447400123456", "GB", "mobile"),
    ("+442071838750", "GB", "fixed_line"),
    ("+18002345678", "US", "toll_free"),
    ("+19002345678", "US", "premium_rate"),
    ("+34901123456", "ES", "shared_cost"),
    ("+445512345678", "GB", "uan"),
    ("+447640123456", "GB", "pager"),
    ("+41860123456789", "CH", "voicemail"),
])
def test_type_names(raw, region, type_):
    assert number_info(raw, region).type == type_


def test_internal_max_digits():
    assert number_info("1000", internal_max_digits=3).why == "invalid"
    assert number_info("12345678", internal_max_digits=8).why == "internal"


def test_timezone():
    assert number_info("+15125550123").timezone == "America/Chicago"      # Austin
    assert number_info("+12125550123").timezone == "America/New_York"
    assert number_info("+18002345678").timezone is None                 # toll free: all zones
    assert number_info("+442071838750", "GB").timezone == "Europe/London"


def test_region():
    assert number_info("+15125550123").region == "US"
    assert number_info("+447400123456").region == "GB"
    assert number_info("anonymous").region is None


def test_allowed_countries_default_is_the_region_and_case_insensitive():
    assert number_info("+447400123456", "gb").textable
    assert number_info("+447400123456", allowed_countries=["gb", "us"]).textable
    assert number_info("+15125550123", allowed_countries=frozenset({"GB"})).why == "foreign"


def test_to_dict():
    d = number_info("+15125550123").to_dict()
    assert set(d) == {"raw", "e164", "textable", "why", "type", "timezone", "region"}
    assert NumberInfo(**d) == number_info("+15125550123")


def test_to_e164():
    assert to_e164("(512) 555-0123") == "+15125550123"
    assert to_e164("sip:+15125550123@h") == "+15125550123"
    assert to_e164("+18002345678") == "+18002345678"     # a DID may be toll free
    assert to_e164("020 7183 8750", "GB") == "+442071838750"
    assert to_e164("100") is None
    assert to_e164("anonymous") is None
    assert to_e164("") is None
    assert to_e164("+15555550123") is None


_DIALISH = st.text(alphabet="0123456789+-() .sip:tel@<>;%2B\"anonymousx*#", max_size=40)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), _DIALISH),
       st.sampled_from(["US", "GB", "DE", "ZZ", "", "us"]),
       st.one_of(st.none(), st.frozensets(st.sampled_from(["US", "GB", "CA"]))))
def test_number_info_never_raises_and_is_consistent(raw, region, allowed):
    info = number_info(raw, region, allowed_countries=allowed)
    assert info.textable == (info.why is None)
    if info.textable:
        assert info.e164 and info.e164.startswith("+") and info.e164[1:].isdigit()
        assert info.region in (allowed if allowed is not None else {(region or "US").upper()})
    if info.e164 is not None:
        assert to_e164(raw, region) == info.e164


# Valid numbers of many plans and types: a country code, then digits (most such strings are
# valid somewhere: mobiles, toll-free, non-geographic, NANP's shared +1 regions).
_E164ISH = st.builds(lambda cc, rest: f"+{cc}{rest}",
                     st.sampled_from([1, 7, 33, 34, 41, 44, 49, 61, 81, 86, 91, 353, 358, 800, 808, 870, 882, 979]),
                     st.text(alphabet="0123456789", min_size=4, max_size=12))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(_E164ISH, _DIALISH), st.sampled_from(["US", "GB", "DE", "CA", "AU"]))
def test_number_info_answers_as_the_library_asked_each_question_once(raw, region):
    """number_info finds the region and type once (not once per library call): its answer is
    the one is_valid_number, number_type, time_zones_for_number and region_code_for_number
    give when each is asked on its own."""
    import phonenumbers
    from phonenumbers.timezone import time_zones_for_number
    from pbx_textback.core.numbers import _TYPE_NAME, _clean, _is_anonymous, _parse
    info = number_info(raw, region, allowed_countries={"US", "GB", "DE", "CA", "AU", "FR", "CH", "JP"})
    s = _clean(raw)
    n = None if _is_anonymous(s) or (s.isascii() and s.isdigit() and len(s) <= 6) else _parse(s, region)
    if n is None or not phonenumbers.is_valid_number(n):
        assert info.e164 is None
        return
    zones = time_zones_for_number(n)
    assert info.e164 == phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
    assert info.type == _TYPE_NAME.get(phonenumbers.number_type(n), "unknown")
    assert info.region == phonenumbers.region_code_for_number(n)
    assert info.timezone == (zones[0] if len(zones) == 1 and zones[0] != "Etc/Unknown" else None)


@pytest.mark.parametrize("raw", ["+447911123456", "+61412345678", "+33612345678", "+8613800138000", "+18002345678",
                                 "+442071838750", "+41446681800", "+80012345678", "+16135550123"])
def test_number_info_zone_and_type_of_other_plans(raw):
    """Mobiles outside NANP (not geographical: the zone by country), toll-free, non-geographic
    +800, Guernsey under +44: each as the library says when asked one question at a time."""
    import phonenumbers
    from phonenumbers.timezone import time_zones_for_number
    n = phonenumbers.parse(raw)
    info = number_info(raw, "US", allowed_countries={"GG", "AU", "FR", "CN", "US", "CH", "CA", "001"})
    zones = time_zones_for_number(n)
    assert info.region == phonenumbers.region_code_for_number(n)
    assert info.timezone == (zones[0] if len(zones) == 1 and zones[0] != "Etc/Unknown" else None)
    assert info.e164 == raw
