"""Caps and destination rules as `Check`s for the decision (Facts.extra_checks). Pure.

Every function returns Checks that say what they saw, passed or not, so `explain` shows the
work: counts against limits, which rule blocked, and what the numbering plan can not tell.
"""
from __future__ import annotations

from collections.abc import Iterable

from pbx_textback.core.model import Check

DAY = 86400.0

# Number types (phonenumbers' PhoneNumberType, lower-cased as NumberInfo.type) never texted.
BLOCKED_TYPES = {
    "premium_rate": "premium-rate: texting it can cost money (and is how SMS pumping pays out)",
    "fixed_line": "fixed-line: the numbering plan says this is a landline, which cannot receive SMS",
    "toll_free": "toll-free: not a personal phone",
    "shared_cost": "shared-cost: not SMS-capable",
    "uan": "universal access number: not SMS-capable",
    "pager": "pager: not SMS-capable",
    "voicemail": "voicemail access number: not SMS-capable",
}
# Plans where every geographic number is FIXED_LINE_OR_MOBILE (NANP, +1), and some others.
PLAN_CANNOT_TELL = ("fixed-line or mobile: the numbering plan cannot tell (in North America every "
                    "number is); sent — a landline simply will not receive it")


def cross_line_cap(sent_times_24h: Iterable[float], now: float, limit: int = 3) -> Check:
    """At most `limit` automated texts to this caller per rolling 24 h, across ALL lines.

    sent_times_24h: when automated texts to the caller were sent or queued (include pending
    outbox rows, or two concurrent missed calls both pass). Times outside (now-24h, now] ignored.
    """
    times = sorted(t for t in sent_times_24h if now - DAY < t <= now)
    n = len(times)
    if limit is None or limit <= 0:
        return Check("cross-line-cap", True, "no cap on automated texts per caller")
    if n < limit:
        return Check("cross-line-cap", True, f"{n} of {limit} automated texts to this caller in 24 h (all lines)")
    frees = times[n - limit] + DAY - now
    return Check("cross-line-cap", False,
                 f"{n} automated texts to this caller in the last 24 h across all lines (limit {limit}); "
                 f"next possible in {_dur(frees)}")


def global_hourly_cap(count_last_hour: int, limit: int | None) -> Check:
    """SMS-pumping guard: at most `limit` automated texts per hour for the whole service."""
    if limit is None or limit <= 0:
        return Check("global-hourly-cap", True, f"{count_last_hour} texts in the last hour; no global cap set")
    if count_last_hour < limit:
        return Check("global-hourly-cap", True, f"{count_last_hour} of {limit} texts in the last hour")
    return Check("global-hourly-cap", False,
                 f"{count_last_hour} texts in the last hour reached the global cap of {limit} "
                 "(SMS-pumping guard): automated texting waits; raise policy limit if this is real traffic")


def _listed(e164: str | None, entries: Iterable[str]) -> str | None:
    """The entry that matches: exact E.164, or a prefix written with a trailing '*'."""
    if not e164:
        return None
    for entry in entries or ():
        e = str(entry).strip().replace(" ", "")
        if not e:
            continue
        if e.endswith("*"):
            if e164.startswith(e[:-1]):
                return entry
        elif e == e164:
            return entry
    return None


def destination_rules(number_info, allowed_countries: Iterable[str], denylist: Iterable[str] = (),
                      allowlist: Iterable[str] = ()) -> list[Check]:
    """Checks for where a text would go. number_info: core.numbers.NumberInfo (e164, type, region).

    Allowlist overrides everything else (each overridden rule is shown as passed, saying what
    it would have blocked); the denylist blocks; a country outside allowed_countries blocks;
    premium-rate, fixed-line (where the plan can tell) and non-SMS types block.
    Entries: E.164 ("+15125550123") or a prefix with '*' ("+1900*"); normalize config with to_e164.
    """
    e164 = getattr(number_info, "e164", None)
    ntype = getattr(number_info, "type", None) or ""
    region = getattr(number_info, "region", None)
    allowed = sorted({c.upper() for c in (allowed_countries or ())})
    allow_hit = _listed(e164, allowlist)
    deny_hit = _listed(e164, denylist)

    rules: list[tuple[str, bool, str]] = []
    if e164 is None:
        rules.append(("destination-valid", False, "not a valid phone number"))
    if deny_hit is not None:
        rules.append(("denylist", False, f"{e164} is on the denylist ({deny_hit})"))
    else:
        rules.append(("denylist", True, "not on the denylist"))
    if e164 is not None:
        if region in allowed:
            rules.append(("destination-country", True, f"{region} is an allowed country"))
        else:
            rules.append(("destination-country", False,
                          f"{region or 'unknown country'} is not an allowed country ({', '.join(allowed) or 'none'})"))
        if ntype in BLOCKED_TYPES:
            rules.append(("destination-type", False, BLOCKED_TYPES[ntype]))
        elif ntype == "fixed_line_or_mobile":
            rules.append(("destination-type", True, PLAN_CANNOT_TELL))
        elif ntype == "mobile":
            rules.append(("destination-type", True, "mobile"))
        else:
            rules.append(("destination-type", True, f"{ntype or 'unknown type'}: not a blocked type"))

    if allow_hit is not None:
        out = [Check("allowlist", True, f"{e164} is on the allowlist ({allow_hit}): overrides the rules below")]
        for name, ok, detail in rules:
            out.append(Check(name, True, detail if ok else f"would block ({detail}); overridden by the allowlist"))
        return out
    return [Check(name, ok, detail) for name, ok, detail in rules]


def paused(is_paused: bool, since: str = "") -> Check:
    """The global pause switch (pbx-textback pause / resume)."""
    if is_paused:
        return Check("paused", False, "automated texting is paused" + (f" since {since}" if since else "")
                     + ": the text waits and goes out after `pbx-textback resume`")
    return Check("paused", True, "not paused")


def _dur(seconds: float) -> str:
    s = max(0, int(seconds + 0.999))
    h, m = divmod(s // 60, 60)
    return f"{h} h {m:02d} min" if h else f"{max(m, 1)} min"
