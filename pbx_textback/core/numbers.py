"""Phone-number facts for the texting decision: E.164, textable or why not, type, zone. Pure.

`why` words: anonymous, internal, invalid, foreign, premium-rate, toll-free, fixed-line,
not-sms-capable (shared cost, UAN, pager, voicemail access). Checked in that order.
Validity is libphonenumber's metadata (is_valid_number); NANP 555-01XX numbers are valid there.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

import phonenumbers
from phonenumbers import PhoneNumberType as T
from phonenumbers.timezone import time_zones_for_geographical_number, time_zones_for_number

# What PBXs and carriers put in the caller-ID field when there is no number to call back.
_ANONYMOUS = frozenset({
    "", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld", "blocked",
    "no caller id", "nocallerid", "unknown caller", "out of area", "outofarea", "not available",
    "anonymous.invalid", "o", "p",   # o/p: "out of area"/"private" codes of analog caller ID
})

_TYPE_NAME = {v: k.lower() for k, v in vars(T).items() if k.isupper() and isinstance(v, int)}

# Types we never text. FIXED_LINE_OR_MOBILE (all of NANP) is not here: the plan cannot tell.
_BLOCKED = {
    T.PREMIUM_RATE: "premium-rate",
    T.TOLL_FREE: "toll-free",
    T.FIXED_LINE: "fixed-line",
    T.SHARED_COST: "not-sms-capable",
    T.UAN: "not-sms-capable",
    T.PAGER: "not-sms-capable",
    T.VOICEMAIL: "not-sms-capable",
}


@dataclass(frozen=True)
class NumberInfo:
    raw: str
    e164: str | None
    textable: bool
    why: str | None
    type: str | None = None
    timezone: str | None = None
    region: str | None = None

    def to_dict(self) -> dict:
        return {"raw": self.raw, "e164": self.e164, "textable": self.textable, "why": self.why,
                "type": self.type, "timezone": self.timezone, "region": self.region}


def _clean(raw: str) -> str:
    """The number part of what a PBX sends: URI, display name, %-escapes (ESL) stripped."""
    s = raw.strip()
    if "%" in s:
        s = unquote(s)
    if "<" in s and ">" in s.rsplit("<", 1)[1]:
        s = s.rsplit("<", 1)[1].split(">", 1)[0]   # '"Jane" <sip:…>' and '<unknown>'
    s = s.strip().strip('"').strip()
    low = s.lower()
    for scheme in ("sip:", "sips:", "tel:"):
        if low.startswith(scheme):
            s = s[len(scheme):].split("@", 1)[0].split(";", 1)[0]
            break
    return s.strip()


def is_anonymous(raw: str) -> bool:
    """A caller-ID field with no number to call back (anonymous, <unknown>, restricted, ...)."""
    return _is_anonymous(_clean("" if raw is None else str(raw)))


def _is_anonymous(s: str) -> bool:
    low = " ".join(s.lower().split())
    return low in _ANONYMOUS or (low.isascii() and low.isdigit() and set(low) == {"0"})


# The regions of country code 1 (NANP): their parse of a 10-digit national number, or of one
# with the trunk's leading 1, is the number itself under +1.
_NANP = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])


def _plain_nanp(s: str, region: str) -> phonenumbers.PhoneNumber | None:
    """What phonenumbers.parse makes of the forms trunks send most, without its general
    machinery (~30 us a number, and each new caller is a new number): +1 and ten digits, and
    in a NANP region also ten digits or 1 and ten digits, the area code not starting with 0
    or 1. Anything else: None (the full parse decides). tests/unit/test_numbers_fast.py holds
    this to phonenumbers.parse over these forms (hypothesis)."""
    n = len(s)
    if n == 12 and s[0] == "+" and s[1] == "1":
        d = s[2:]
    elif region in _NANP and (n == 10 or (n == 11 and s[0] == "1")):
        d = s[n - 10:]
    else:
        return None
    if not (d.isascii() and d.isdigit()) or d[0] in "01":
        return None
    return phonenumbers.PhoneNumber(country_code=1, national_number=int(d))


def _parse(s: str, region: str) -> phonenumbers.PhoneNumber | None:
    """Parse with the region's rules; a possible number, or None."""
    n = _plain_nanp(s, region)
    if n is not None:
        return n if phonenumbers.is_possible_number(n) else None

    def attempt(text: str) -> phonenumbers.PhoneNumber | None:
        try:
            n = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            return None
        return n if phonenumbers.is_possible_number(n) else None

    n = attempt(s)
    if n is None:
        # Trunks send the European "00" prefix even where it is not the international prefix
        # (NANP uses 011); a national number never starts with 00 there, so this is unambiguous.
        digits = s.lstrip()
        if digits.startswith("00"):
            n = attempt("+" + digits[2:])
    return n


CACHE_SIZE = 1024     # distinct numbers remembered: a call parses its caller once, not ~8 times


def to_e164(raw: str, region: str = "US") -> str | None:
    """E.164 for any valid number (textable or not), else None."""
    if not raw:
        return None
    return _to_e164(str(raw), region)


@lru_cache(maxsize=CACHE_SIZE)
def _to_e164(raw: str, region: str) -> str | None:
    s = _clean(raw)
    if _is_anonymous(s):
        return None
    n = _parse(s, (region or "US").upper())
    if n is None or not phonenumbers.is_valid_number(n):
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


def number_info(raw: str, region: str = "US", *, allowed_countries: Iterable[str] | None = None,
                internal_max_digits: int = 6) -> NumberInfo:
    raw = "" if raw is None else str(raw)
    region = (region or "US").upper()
    allowed = frozenset(c.upper() for c in allowed_countries) if allowed_countries is not None \
        else frozenset({region})
    return _number_info(raw, region, allowed, internal_max_digits)


def _zones(n: phonenumbers.PhoneNumber, ntype: int) -> list:
    """time_zones_for_number(n), given n's type (valid n): that function's own steps."""
    if ntype != T.UNKNOWN and phonenumbers.is_number_type_geographical(ntype, n.country_code):
        return time_zones_for_geographical_number(n)
    return time_zones_for_number(n)


try:        # the library's own steps, to walk a shared country code's regions once, not three times
    from phonenumbers.phonemetadata import PhoneMetadata as _Meta
    from phonenumbers.phonenumberutil import _number_type_helper
    from phonenumbers.re_util import re_compile as _re
except ImportError:          # another phonenumbers: its public functions, three walks
    _number_type_helper = None


def _region_and_type(n: phonenumbers.PhoneNumber) -> tuple[str | None, int]:
    """(region_code_for_number(n), number_type(n)). For a country code several regions share
    (NANP: 25), region_code_for_number tries each region's whole type walk until one gives a
    type, and number_type does all that again and then the region's walk once more; the type
    the finding walk gave is number_type's answer (the same region's metadata), so it is kept.
    tests/unit/test_numbers_fast.py holds this to the two public functions (hypothesis)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(n.country_code)
    if _number_type_helper is None or regions is None or len(regions) == 1:
        return phonenumbers.region_code_for_number(n), phonenumbers.number_type(n)
    nsn = phonenumbers.national_significant_number(n)
    for region in regions:
        meta = _Meta.metadata_for_region(region.upper(), None)
        if meta is None:
            continue
        if meta.leading_digits is not None:
            if _re(meta.leading_digits).match(nsn):
                return region, _number_type_helper(nsn, meta)
        else:
            ntype = _number_type_helper(nsn, meta)
            if ntype != T.UNKNOWN:
                return region, ntype
    return None, phonenumbers.number_type(n)


@lru_cache(maxsize=CACHE_SIZE)
def _number_info(raw: str, region: str, allowed: frozenset, internal_max_digits: int) -> NumberInfo:
    """Pure and frozen, so one parse per distinct number serves every call (bounded)."""
    s = _clean(raw)
    if _is_anonymous(s):
        return NumberInfo(raw, None, False, "anonymous")
    if s.isascii() and s.isdigit() and len(s) <= internal_max_digits:
        return NumberInfo(raw, None, False, "internal")
    n = _parse(s, region)
    if n is None:
        return NumberInfo(raw, None, False, "invalid")
    # is_valid_number, number_type, time_zones_for_number and region_code_for_number each
    # find the number's region and type again (7 pattern walks per NANP number, now 3): the
    # type once, and validity from it as is_valid_number_for_region(n, its region) decides
    # it (the same metadata, the country code checked the same way), the zone from the type
    where, ntype = _region_and_type(n)
    if where is None or ntype == T.UNKNOWN or (
            where != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
            and phonenumbers.country_code_for_valid_region(where) != n.country_code):
        return NumberInfo(raw, None, False, "invalid")
    e164 = phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
    zones = _zones(n, ntype)
    info = dict(raw=raw, e164=e164, type=_TYPE_NAME.get(ntype, "unknown"),
                timezone=zones[0] if len(zones) == 1 and zones[0] != "Etc/Unknown" else None,
                region=where)
    if info["region"] not in allowed:
        return NumberInfo(textable=False, why="foreign", **info)
    why = _BLOCKED.get(ntype)
    return NumberInfo(textable=why is None, why=why, **info)
