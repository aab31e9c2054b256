"""Reading the PBX's CDR files right: cdr.conf's [csv] options, Master.csv's layout (which
depends on them) and the zone its times are in."""
from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st

from pbx_textback.core.pbx.cdr import (
    CSV_BASE, LOCAL, CsvConf, _ts, cdr_time_text, cdr_zone, csv_row, parse_cdr_conf)

# Asterisk's own sample cdr.conf [csv] section (configs/samples/cdr.conf.sample)
SAMPLE = """
[general]
enable=yes
[csv]
usegmtime=yes    ; log date/time in GMT.  Default is "no"
loguniqueid=yes  ; log uniqueid.  Default is "no"
loguserfield=yes ; log user field.  Default is "no"
accountlogs=yes  ; create separate log file for each account code. Default is "yes"
;newcdrcolumns=yes ; Enable logging of post-1.8 CDR columns (peeraccount, linkedid, sequence).
[radius]
usegmtime=no
"""
BASE = ["", "+17375550188", "100", "direct-line", '"" <+17375550188>', "PJSIP/itsp-00000002",
        "PJSIP/100-00000003", "Dial", "PJSIP/100,15,tT", "2026-11-26 23:11:26", "",
        "2026-11-26 23:11:50", "24", "0", "NO ANSWER", "DOCUMENTATION"]


def test_the_sample_cdr_conf():
    c = parse_cdr_conf(SAMPLE)
    assert c == CsvConf(found=True, usegmtime=True, loguniqueid=True, loguserfield=True, newcdrcolumns=False)
    assert parse_cdr_conf("[general]\nenable=yes\n") == CsvConf()
    assert parse_cdr_conf("[csv]\nloguniqueid => on\nusegmtime = No\n").loguniqueid


def test_the_zone_of_the_cdr_times():
    gmt = parse_cdr_conf(SAMPLE)
    assert cdr_zone("", "csv", gmt) == "UTC"                     # usegmtime=yes: UTC, not the business zone
    assert cdr_zone("", "csv", CsvConf(found=True)) == LOCAL     # Asterisk writes its own local time
    assert cdr_zone("", "csv", None) == LOCAL
    assert cdr_zone("Europe/Paris", "csv", gmt) == "Europe/Paris"   # the config says so: it wins
    assert cdr_zone("", "mysql", gmt) == LOCAL


def test_times_round_trip_in_each_zone():
    t = datetime(2026, 11, 26, 23, 11, 50, tzinfo=timezone.utc).timestamp()
    assert cdr_time_text(t, "UTC") == "2026-11-26 23:11:50"
    assert cdr_time_text(t, "America/Chicago") == "2026-11-26 17:11:50"
    for tz in ("UTC", "America/Chicago", LOCAL):
        assert _ts(cdr_time_text(t, tz), tz) == t


def test_master_csv_layouts():
    full = csv_row(BASE + ["1795734686.2", "did:+15125550110"])
    assert (full["uniqueid"], full["userfield"]) == ("1795734686.2", "did:+15125550110")
    # loguniqueid off: no uniqueid column, the userfield is not taken for one
    assert "uniqueid" not in csv_row(BASE + ["did:+15125550110"])
    assert csv_row(BASE + ["1795734686.2"])["uniqueid"] == "1795734686.2"
    assert "uniqueid" not in csv_row(BASE)
    conf = CsvConf(found=True, loguniqueid=False, loguserfield=True)
    assert csv_row(BASE + ["1795734686.2"], conf)["userfield"] == "1795734686.2"
    new = csv_row(BASE + ["1795734686.2", "", "", "1795734686.2", "7"])
    assert (new["linkedid"], new["sequence"]) == ("1795734686.2", "7")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_cdr_conf_text_parses(text):
    assert isinstance(parse_cdr_conf(text), CsvConf)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=30),
       st.none() | st.builds(CsvConf, st.booleans(), st.booleans(), st.booleans(), st.booleans(),
                             st.booleans()))
def test_any_csv_line_gives_a_row_of_its_values(values, conf):
    row = csv_row(values, conf)
    assert list(row.values()) == values[:len(row)]
    assert len(row) == min(len(values), len(row)) and set(CSV_BASE[:len(values)]) <= set(row)
