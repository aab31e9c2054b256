"""Quiet hours in the recipient's local time: zones from the number, DST days, held texts."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from pbx_textback.core.policy.quiet import (DEFAULT, FTSA, QuietHours, hold_decision, inside, next_allowed,
                                     plan_send, recipient_zone)

NY, CHI, LON = "America/New_York", "America/Chicago", "Europe/London"


def at(s: str, tz: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)).timestamp()


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")


def local(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


# --- zones ------------------------------------------------------------------------------------

def test_nyc_number_from_a_chicago_business_uses_new_york():
    zone, why = recipient_zone("+12125550123", CHI)
    assert zone == NY and NY in why
    # 07:30 in New York is 06:30 in Chicago: the NYC caller waits until 08:00 New York time
    t = at("2026-06-10 07:30", NY)
    assert utc(next_allowed(t, zone, DEFAULT)) == "2026-06-10 12:00:00"
    # 19:30 in Chicago is 20:30 in New York: too late for the NYC caller, fine for a local one
    t = at("2026-06-10 19:30", CHI)
    assert not inside(t, NY, DEFAULT) and inside(t, CHI, DEFAULT)
    assert local(next_allowed(t, NY, DEFAULT), NY) == "2026-06-11 08:00:00 EDT"


def test_number_spanning_zones_uses_the_business_zone_and_says_so():
    zone, why = recipient_zone("+12085550123", CHI)          # Idaho 208: Boise and Los Angeles
    assert zone == CHI and "business" in why and "America/Boise" in why
    zone, why = recipient_zone("+61412345678", "Australia/Sydney")   # AU mobile: whole country
    assert zone == "Australia/Sydney" and "spans" in why


def test_zones_that_keep_one_clock_are_not_several():
    zone, why = recipient_zone("+447400123456", NY)          # UK mobile: London + crown dependencies
    assert zone == LON
    assert ZoneInfo(zone).utcoffset(datetime(2026, 7, 1)) == ZoneInfo(LON).utcoffset(datetime(2026, 7, 1))
    assert "same clock" in why


def test_unknown_number_falls_back_to_business_zone():
    assert recipient_zone("not a number", CHI)[0] == CHI


# --- the window and DST ----------------------------------------------------------------------

def test_inside_the_window_is_now():
    t = at("2026-06-10 12:00", NY)
    assert next_allowed(t, NY, DEFAULT) == t
    assert next_allowed(at("2026-06-10 08:00", NY), NY) == at("2026-06-10 08:00", NY)   # start inclusive
    assert next_allowed(at("2026-06-10 20:00", NY), NY) == at("2026-06-11 08:00", NY)   # end exclusive


@pytest.mark.parametrize("tz,before,opening_local,opening_utc", [
    # US spring forward 2026-03-08 02:00 EST -> 03:00 EDT: 08:00 EDT = 12:00 UTC (not 13:00)
    (NY, "2026-03-07 21:00", "2026-03-08 08:00:00 EDT", "2026-03-08 12:00:00"),
    (NY, "2026-03-08 03:30", "2026-03-08 08:00:00 EDT", "2026-03-08 12:00:00"),
    # US fall back 2026-11-01 02:00 EDT -> 01:00 EST: 08:00 EST = 13:00 UTC (not 12:00)
    (NY, "2026-10-31 22:00", "2026-11-01 08:00:00 EST", "2026-11-01 13:00:00"),
    (NY, "2026-11-01 01:30", "2026-11-01 08:00:00 EST", "2026-11-01 13:00:00"),
    # UK spring forward 2026-03-29 01:00 GMT -> 02:00 BST: 08:00 BST = 07:00 UTC
    (LON, "2026-03-28 23:00", "2026-03-29 08:00:00 BST", "2026-03-29 07:00:00"),
    # UK fall back 2026-10-25 02:00 BST -> 01:00 GMT: 08:00 GMT = 08:00 UTC
    (LON, "2026-10-24 21:00", "2026-10-25 08:00:00 GMT", "2026-10-25 08:00:00"),
])
def test_opening_on_dst_change_days(tz, before, opening_local, opening_utc):
    got = next_allowed(at(before, tz), tz, DEFAULT)
    assert local(got, tz) == opening_local and utc(got) == opening_utc


def test_evening_before_a_change_is_the_full_night():
    # 20:00 EST Saturday -> 08:00 EDT Sunday is 11 real hours, not 12
    t = at("2026-03-07 20:00", NY)
    assert next_allowed(t, NY) - t == 11 * 3600
    t = at("2026-10-31 20:00", NY)                        # and 13 hours in the autumn
    assert next_allowed(t, NY) - t == 13 * 3600


def test_spring_forward_gap_opens_at_the_transition():
    qh = QuietHours("02:30", "05:00")                     # 02:30 does not exist on 2026-03-08 in NY
    got = next_allowed(at("2026-03-08 01:00", NY), NY, qh)
    assert local(got, NY) == "2026-03-08 03:00:00 EDT" and utc(got) == "2026-03-08 07:00:00"
    qh = QuietHours("01:30", "02:30")                     # London: 01:00-02:00 skipped on 2026-03-29
    got = next_allowed(at("2026-03-29 00:30", LON), LON, qh)
    assert local(got, LON) == "2026-03-29 02:00:00 BST" and utc(got) == "2026-03-29 01:00:00"
    qh = QuietHours("01:15", "01:45")                     # the whole window is skipped that day
    got = next_allowed(at("2026-03-29 00:30", LON), LON, qh)
    assert local(got, LON) == "2026-03-30 01:15:00 BST"


def test_fall_back_overlap_opens_at_the_first_occurrence():
    qh = QuietHours("01:30", "05:00")                     # 01:30 happens twice on 2026-11-01 in NY
    got = next_allowed(at("2026-11-01 00:30", NY), NY, qh)
    assert local(got, NY) == "2026-11-01 01:30:00 EDT" and utc(got) == "2026-11-01 05:30:00"
    # a window wholly inside the repeated hour re-opens on the second pass of the wall clock
    qh = QuietHours("01:00", "01:30")
    first_pass_late = datetime(2026, 11, 1, 1, 45, tzinfo=ZoneInfo(NY), fold=0).timestamp()
    got = next_allowed(first_pass_late, NY, qh)
    assert local(got, NY) == "2026-11-01 01:00:00 EST" and utc(got) == "2026-11-01 06:00:00"


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=at("2025-01-01 00:00", "UTC"), max_value=at("2028-12-31 00:00", "UTC")),
       st.sampled_from([NY, CHI, LON, "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns"]),
       st.sampled_from([DEFAULT, QuietHours("09:00", "17:30"), QuietHours("01:30", "02:30"),
                        QuietHours("00:00", "23:59")]))
def test_next_allowed_is_the_first_instant_inside(t, tz, qh):
    got = next_allowed(t, tz, qh)
    assert got >= t and inside(got, tz, qh)
    assert got - t < 2 * 86400
    if got > t:                                           # nothing earlier (checked at 60 s steps and 1 s before)
        assert not inside(got - 1, tz, qh)
        assert not any(inside(x, tz, qh) for x in range(int(t), int(got), 60))


def test_presets_and_validation():
    assert (FTSA.start, FTSA.end, FTSA.cap_24h) == ("08:00", "20:00", 3)
    assert (DEFAULT.start, DEFAULT.end) == ("08:00", "20:00")
    with pytest.raises(ValueError):
        QuietHours("20:00", "08:00")
    with pytest.raises(ValueError):
        QuietHours("8am", "20:00")


# --- held texts -------------------------------------------------------------------------------

H = 3600


def test_hold_until_due_then_send():
    assert hold_decision(due=100 * H, now=90 * H, caller_reached=False, max_hold_hours=12)[0] == "hold"
    assert hold_decision(due=100 * H, now=100 * H, caller_reached=False, max_hold_hours=12)[0] == "send"


def test_held_text_dropped_when_the_caller_was_called_back():
    action, why = hold_decision(due=100 * H, now=95 * H, caller_reached=True, max_hold_hours=12)
    assert action == "drop" and "reached" in why
    assert hold_decision(due=100 * H, now=101 * H, caller_reached=True, max_hold_hours=12)[0] == "drop"


def test_held_too_long_is_dropped():
    # due at the window opening 13 h after the call: more than 12 h -> dropped at once
    action, why = hold_decision(due=113 * H, now=100 * H, caller_reached=False, max_hold_hours=12,
                                held_since=100 * H)
    assert action == "drop" and "max_hold_hours" in why
    # within the limit -> held, then sent
    assert hold_decision(113 * H, 100 * H, False, 14, held_since=100 * H)[0] == "hold"
    assert hold_decision(113 * H, 113 * H, False, 14, held_since=100 * H)[0] == "send"
    # the service was down: by now it waited longer than allowed
    assert hold_decision(101 * H, 115 * H, False, 14, held_since=100 * H)[0] == "drop"


def test_plan_send_rechecks_the_window_for_a_late_worker():
    call_end = at("2026-06-10 19:50", NY)
    late = at("2026-06-10 20:10", NY)                     # worker back after the window closed
    action, why, due = plan_send(late, NY, DEFAULT, held_since=call_end, max_hold_hours=14)
    assert action == "hold" and local(due, NY) == "2026-06-11 08:00:00 EDT"
    action, _, _ = plan_send(late, NY, DEFAULT, held_since=call_end, max_hold_hours=8)
    assert action == "drop"
    action, _, due = plan_send(at("2026-06-11 08:00", NY), NY, DEFAULT, held_since=call_end, max_hold_hours=14)
    assert action == "send"
    assert plan_send(at("2026-06-11 08:00", NY), NY, DEFAULT, held_since=call_end,
                     caller_reached=True, max_hold_hours=14)[0] == "drop"
