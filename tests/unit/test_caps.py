"""Caps and destination rules as Checks."""
from pbx_textback.core.policy.caps import (cross_line_cap, destination_rules, global_hourly_cap, paused)
from pbx_textback.core.model import Check
from pbx_textback.core.numbers import NumberInfo, number_info

NOW = 1_800_000_000.0
H = 3600.0


def by_name(checks):
    return {c.name: c for c in checks}


def test_cross_line_cap_counts_a_rolling_24h_across_lines():
    c = cross_line_cap([NOW - 23 * H, NOW - 2 * H], NOW, limit=3)
    assert c.ok and "2 of 3" in c.detail
    c = cross_line_cap([NOW - 23 * H, NOW - 2 * H, NOW - 60], NOW, limit=3)
    assert not c.ok and "limit 3" in c.detail and "1 h" in c.detail      # oldest frees in ~1 h
    assert cross_line_cap([NOW - 25 * H] * 5, NOW).ok                      # outside the window
    assert cross_line_cap([NOW + 60] * 5, NOW).ok                          # future stamps ignored


def test_concurrent_missed_calls_count_queued_texts():
    # three missed calls a second apart on three lines: the store passes sent AND queued texts;
    # the fourth decision in the same transaction sees three and is refused
    queued = []
    results = []
    for i in range(4):
        chk = cross_line_cap(queued, NOW + i)
        results.append(chk.ok)
        if chk.ok:
            queued.append(NOW + i)
    assert results == [True, True, True, False]


def test_global_hourly_cap():
    assert global_hourly_cap(10, 100).ok
    c = global_hourly_cap(100, 100)
    assert not c.ok and "pumping" in c.detail
    assert global_hourly_cap(10_000, None).ok


def test_paused():
    assert paused(False) == Check("paused", True, "not paused")
    c = paused(True, since="2026-06-10 09:00")
    assert not c.ok and "resume" in c.detail and "since 2026-06-10 09:00" in c.detail


def test_north_america_cannot_tell_fixed_from_mobile_and_says_so():
    checks = by_name(destination_rules(number_info("+15125550123"), ["US"]))
    t = checks["destination-type"]
    assert t.ok and "cannot tell" in t.detail and "North America" in t.detail


def test_fixed_line_blocked_where_the_plan_can_tell():
    info = number_info("+442079460000", "GB")                  # London geographic: fixed line
    assert info.type == "fixed_line"
    t = by_name(destination_rules(info, ["GB"]))["destination-type"]
    assert not t.ok and "landline" in t.detail
    mob = number_info("+447400123456", "GB")
    assert by_name(destination_rules(mob, ["GB"]))["destination-type"].detail == "mobile"


def test_premium_rate_blocked():
    info = number_info("+19005550123")
    assert info.type == "premium_rate"
    t = by_name(destination_rules(info, ["US"]))["destination-type"]
    assert not t.ok and "premium-rate" in t.detail


def test_country_and_denylist():
    gb = number_info("+447400123456", "US", allowed_countries=["US", "GB"])
    c = by_name(destination_rules(gb, ["US"]))["destination-country"]
    assert not c.ok and "GB" in c.detail and "US" in c.detail
    d = by_name(destination_rules(number_info("+15125550123"), ["US"], denylist=["+15125550123"]))["denylist"]
    assert not d.ok
    d = by_name(destination_rules(number_info("+15125550123"), ["US"], denylist=["+1512*"]))["denylist"]
    assert not d.ok and "+1512*" in d.detail


def test_allowlist_overrides_and_shows_what_it_overrode():
    info = number_info("+19005550123")
    checks = destination_rules(info, ["GB"], denylist=["+1900*"], allowlist=["+19005550123"])
    assert all(c.ok for c in checks)
    named = by_name(checks)
    assert "overrides" in named["allowlist"].detail
    assert "would block" in named["denylist"].detail and "would block" in named["destination-type"].detail
    assert "would block" in named["destination-country"].detail


def test_invalid_destination():
    checks = by_name(destination_rules(NumberInfo("12", None, False, "invalid"), ["US"]))
    assert not checks["destination-valid"].ok
