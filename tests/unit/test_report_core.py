"""The pure report math (core/report/compute.py): business-hours clock, percentiles, buckets, response
clocks, the period parser. Values worked out by hand in the comments."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from pbx_textback.config import Hours
from pbx_textback.core.report.compute import buckets, episodes, open_seconds, parse_day, percentile

TZ = "America/Chicago"
WEEKDAYS = Hours(mon=("08:00-12:00", "13:00-17:00"), tue=("08:00-12:00", "13:00-17:00"),
                 wed=("08:00-12:00", "13:00-17:00"), thu=("08:00-12:00", "13:00-17:00"),
                 fri=("08:00-12:00", "13:00-17:00"), holidays=("2026-12-25",))


def at(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(TZ)).timestamp()


def test_the_clock_stops_over_lunch_the_night_the_weekend_and_a_holiday():
    # Fri 16:50 -> Mon 08:10: 10 min on Friday, 10 min on Monday
    assert open_seconds(at("2026-11-27T16:50"), at("2026-11-30T08:10"), WEEKDAYS, TZ) == 20 * 60
    # 11:55 -> 13:05 the same day: 5 + 5 min around lunch
    assert open_seconds(at("2026-11-30T11:55"), at("2026-11-30T13:05"), WEEKDAYS, TZ) == 10 * 60
    # Thu 24th 16:00 -> Sat 26th 09:00 with Friday the 25th a holiday: 1 h on Thursday
    assert open_seconds(at("2026-12-24T16:00"), at("2026-12-26T09:00"), WEEKDAYS, TZ) == 3600
    # written and answered while closed: no business time at all
    assert open_seconds(at("2026-11-28T10:00"), at("2026-11-28T11:00"), WEEKDAYS, TZ) == 0
    # no hours: always open, the calendar time
    assert open_seconds(100.0, 460.0, None, TZ) == 360


def test_across_the_dst_change_an_open_day_is_still_its_hours():
    # Sun 2026-11-01 is the fall-back day (closed); Fri 16:00 -> Mon 09:00 = 1 h + 1 h
    assert open_seconds(at("2026-10-30T16:00"), at("2026-11-02T09:00"), WEEKDAYS, TZ) == 7200


def test_nearest_rank_percentiles_and_bucket_edges():
    assert percentile([], 50) is None
    assert percentile([420, 600, 1800, 5000, 10800], 50) == 1800     # rank ceil(2.5) = 3
    assert percentile([420, 600, 1800, 5000, 10800], 90) == 10800    # rank ceil(4.5) = 5
    assert percentile([600, 1800], 50) == 600                         # rank 1
    # 299 < 5 min; 300 and 899 in 5–15; 900 in 15–60; 3600 in 1–4 h; 14400 > 4 h
    assert list(buckets([299, 300, 899, 900, 3600, 14399, 14400]).values()) == [1, 2, 1, 2, 1]


def test_response_clocks_start_at_the_reply_or_the_missed_call_and_reopen():
    ev = [("+1", 0, "missed", "L", ""), ("+1", 100, "reply", "L", ""), ("+1", 160, "reply", "L", ""),
          ("+1", 400, "text", "L", "by maria"),                 # 300 s from the first reply
          ("+1", 1000, "reply", "L", ""), ("+1", 1900, "callback", "", "PJSIP/101"),   # reopened: 900 s
          ("+2", 0, "missed", "M", ""), ("+2", 50, "text", "M", "by ben"),            # agent first: 50 s
          ("+2", 60, "text", "M", "by ben"),                   # a second text is no new response
          ("+3", 0, "missed", "M", ""), ("+3", 500, "reply", "M", ""),              # closed unanswered
          ("+4", 0, "missed", "M", ""),                          # no reply, nobody acted: no clock
          ("+5", 0, "reply", "M", "")]                           # still waiting
    got = sorted((e["peer"], e["start"], e["end"], e["who"]) for e in episodes(ev, [("+3", 700), ("+9", 5)]))
    assert got == [("+1", 100, 400, "by maria"), ("+1", 1000, 1900, "PJSIP/101"), ("+2", 0, 50, "by ben"),
                   ("+5", 0, None, "")]


def test_a_week_old_unanswered_missed_call_does_not_start_todays_clock():
    week = 7 * 86400
    ev = [("+1", 0, "missed", "L", ""), ("+1", week + 10, "missed", "L", ""), ("+1", week + 70, "text", "L", "by a")]
    (e,) = episodes(ev, [])
    assert (e["start"], e["end"]) == (week + 10, week + 70)


def test_period_days_and_errors():
    assert parse_day("2027-01-15", TZ) == at("2027-01-15T00:00")
    assert parse_day("2027-01-15", TZ, end=True) == at("2027-01-16T00:00")
    assert parse_day("2027-01-15T10:30", TZ) == at("2027-01-15T10:30")
    with pytest.raises(ValueError, match="not a date"):
        parse_day("last week", TZ)


@given(st.one_of(st.text(max_size=30), st.dates().map(str), st.datetimes().map(lambda d: d.isoformat())),
       st.booleans())
def test_parse_day_refuses_anything_else_with_a_clear_error(s, end):
    try:
        assert isinstance(parse_day(s, TZ, end=end), float)
    except ValueError as e:
        assert "is not a date" in str(e)
