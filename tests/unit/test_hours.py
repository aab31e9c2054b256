"""Business hours: intervals per day in the line's zone, holidays, overrides, DST."""
from datetime import datetime
from zoneinfo import ZoneInfo

from pbx_textback.config import Hours
from pbx_textback.core.policy.hours import describe, state_at

H = Hours(mon=("08:00-12:00", "13:00-17:00"), tue=("08:00-17:00",), sat=("22:00-24:00",),
          holidays=("2026-12-25",))
TZ = "America/Chicago"


def at(s: str, tz: str = TZ) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)).timestamp()


def test_intervals_lunch_break_and_edges():
    assert state_at(H, TZ, at("2026-11-23 08:00"))[0] == "open"        # a Monday
    assert state_at(H, TZ, at("2026-11-23 07:59"))[0] == "closed"
    assert state_at(H, TZ, at("2026-11-23 12:30"))[0] == "closed"      # lunch
    assert state_at(H, TZ, at("2026-11-23 16:59"))[0] == "open"
    assert state_at(H, TZ, at("2026-11-23 17:00"))[0] == "closed"      # end is exclusive
    assert state_at(H, TZ, at("2026-11-28 23:59"))[0] == "open"        # Saturday until 24:00
    assert state_at(H, TZ, at("2026-11-29 10:00"))[0] == "closed"      # no Sunday hours


def test_the_lines_zone_not_the_servers():
    # 15:00 UTC is 09:00 in Chicago (open) and 07:00 in Los Angeles (closed) on that Monday
    utc = at("2026-11-23 15:00", "UTC")
    assert state_at(H, "America/Chicago", utc)[0] == "open"
    assert state_at(H, "America/Los_Angeles", utc)[0] == "closed"


def test_dst_change_days_use_local_wall_time():
    # 2026-03-09 is the Monday after US DST starts; 2026-11-02 the Monday after it ends
    assert state_at(H, TZ, at("2026-03-09 08:30"))[0] == "open"
    assert state_at(H, TZ, at("2026-11-02 07:30"))[0] == "closed"
    assert state_at(H, TZ, at("2026-11-02 08:30"))[0] == "open"


def test_holiday_override_and_unknown_clock():
    state, why = state_at(H, TZ, at("2026-12-25 10:00"))
    assert state == "closed" and "holiday" in why
    assert state_at(H, TZ, at("2026-11-23 10:00"), "closed")[0] == "closed"
    assert state_at(H, TZ, at("2026-11-23 03:00"), "open")[0] == "open"
    assert state_at(H, TZ, None)[0] == "unknown"
    assert state_at(None, TZ, None)[0] == "open"          # no hours: always open


def test_describe():
    assert describe(H) == "Mon 08:00-12:00, 13:00-17:00; Tue 08:00-17:00; Sat 22:00-24:00"
    assert describe(None) == "open"


def test_an_override_ends_at_the_next_opening_or_closing_or_at_midnight():
    """issue 11 finding 11: `hours set LINE closed` is for a day, not for ever."""
    from datetime import datetime
    from zoneinfo import ZoneInfo
    from pbx_textback.config import Hours
    from pbx_textback.core.policy.hours import override_end
    tz = "America/Chicago"
    z = ZoneInfo(tz)
    h = Hours(mon=("08:00-12:00", "13:00-17:00"), tue=("08:00-17:00",))
    at = datetime(2026, 11, 23, 10, 30, tzinfo=z).timestamp()          # Monday, open
    assert datetime.fromtimestamp(override_end(h, tz, at), z) == datetime(2026, 11, 23, 12, 0, tzinfo=z)
    at = datetime(2026, 11, 23, 18, 0, tzinfo=z).timestamp()           # Monday evening, closed
    assert datetime.fromtimestamp(override_end(h, tz, at), z) == datetime(2026, 11, 24, 8, 0, tzinfo=z)
    at = datetime(2026, 11, 24, 18, 0, tzinfo=z).timestamp()           # Tuesday evening: next is Monday
    assert datetime.fromtimestamp(override_end(h, tz, at), z) == datetime(2026, 11, 30, 8, 0, tzinfo=z)
    at = datetime(2026, 11, 25, 9, 0, tzinfo=z).timestamp()            # always open: ends at midnight
    assert datetime.fromtimestamp(override_end(None, tz, at), z) == datetime(2026, 11, 26, 0, 0, tzinfo=z)
    hol = Hours(mon=("08:00-17:00",), holidays=("2026-11-30",))
    at = datetime(2026, 11, 23, 18, 0, tzinfo=z).timestamp()           # next Monday is a holiday
    assert datetime.fromtimestamp(override_end(hol, tz, at), z) == datetime(2026, 12, 7, 8, 0, tzinfo=z)
