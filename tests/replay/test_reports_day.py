"""Reports over a replayed day (tests/report_day.py). Every expected number below is counted by
hand from the day's script; the comments say which callers make it up.

The day (offsets from Fri 10:00 Chicago): A no-answer on 110, B abandoned on 140, C busy on
110, D voicemail on 100, E queue-abandon on 120, F answered on 140, G answered on 100, B again
(no second text), H after-hours on 100, H redials and is answered (+5900 s), I no-answer on 110
at 21:00 (quiet hours: its text waits for the morning). Texts to A, B, D delivered, E failed,
C and H sent without receipt. Replies: A (+300), E (+400), C STOP (+1000), D (+2000, never
answered), B (+28200 = 17:50). Agent texts: maria to A (+720) and E (+11200), ben to B
(+30000 = 18:20, the line closed at 18:00). Call back: ben's phone (ext 101) reaches B at +1860.
"""
import json
import subprocess
import sys

from pbx_textback.reporting.report import report, to_csv
from tests.report_day import CFG, DAY_START, play_day

DAY = (DAY_START, DAY_START + 86400)


def test_the_day_in_total(store_target):
    h = play_day(store_target)
    t = report(h.store, *DAY, "line", h.cfg)["total"]
    # 1. calls: 8 missed (A, B, B, C, D, E, H, I) of 11 inbound (+ F, G, H's redial); 7 callers
    assert t["calls"]["inbound"] == 11 and t["calls"]["missed"] == 8 and t["calls"]["missed_callers"] == 7
    assert t["calls"]["by_reason"] == {"no-answer": 2, "abandoned": 2, "busy": 1, "voicemail": 1,
                                       "queue-abandon": 1, "after-hours": 1}
    # 2. texts: one per missed caller (7); out: A B C D H (5), delivered A B D, failed E,
    #    waiting and held I, B's second call not texted (dedupe)
    assert t["texts"] == {"automated": 7, "sent": 5, "delivered": 3, "failed": 1, "unknown": 0, "waiting": 1,
                          "held": 1, "not_sent": {"dedupe": 1}}
    # 3. texted A B C D H; replied A B D (C only said STOP; E's text failed)
    assert (t["replies"]["callers_texted"], t["replies"]["replied"], t["replies"]["rate"]) == (5, 3, 0.6)
    # 4. responses: A 420 s (reply +300 -> maria +720), B 1800 s (missed +60 -> call back +1860),
    #    E 10800 s (reply +400 -> maria +11200), H 5000 s (missed +900 -> answered redial +5900),
    #    B again 1800 s (reply 17:50 -> ben 18:20; 600 s of it inside business hours); D waits
    r = t["response"]
    assert (r["count"], r["waiting"]) == (5, 1)
    # sorted 420, 1800, 1800, 5000, 10800: nearest rank 3 and 5
    assert (r["median_s"], r["p90_s"]) == (1800, 10800)
    # business hours: 420, 600, 1800, 5000, 10800
    assert (r["business_median_s"], r["business_p90_s"]) == (1800, 10800)
    assert list(r["buckets"].values()) == [0, 1, 2, 2, 0]
    assert list(r["business_buckets"].values()) == [0, 2, 1, 2, 0]
    # 5. reached by phone: B within 1 h (call back 1800 s after), H within 24 h (5000 s)
    assert (t["callbacks"]["within_1h"], t["callbacks"]["within_24h"]) == (1, 2)
    assert (t["callbacks"]["rate_1h"], t["callbacks"]["rate_24h"]) == (round(1 / 7, 4), round(2 / 7, 4))
    # 6. recovered: A D E replied, B H reached; C (STOP only) and I not
    assert (t["recovered"]["recovered"], t["recovered"]["rate"]) == (5, round(5 / 7, 4))
    # 7. C of the 5 texted
    assert (t["opt_outs"]["opted_out"], t["opt_outs"]["rate"]) == (1, 0.2)


def test_per_line_campaign_agent_and_day(store_target):
    h = play_day(store_target)
    lines = {g["group"]: g for g in report(h.store, *DAY, "line", h.cfg)["groups"]}
    ads = lines["+15125550140"]
    assert ads["label"] == "Google Ads (+15125550140)"
    assert (ads["calls"]["inbound"], ads["calls"]["missed"], ads["calls"]["missed_callers"]) == (3, 2, 1)  # B B F
    assert ads["texts"]["not_sent"] == {"dedupe": 1}
    assert ads["response"]["count"] == 2
    # 1800 and 1800 by the clock; 1800 and 600 inside the line's hours (sorted 600, 1800)
    assert (ads["response"]["median_s"], ads["response"]["business_median_s"],
            ads["response"]["business_p90_s"]) == (1800, 600, 1800)
    assert lines["+15125550100"]["calls"]["inbound"] == 4                 # D, G, H, H's redial

    camp = {g["group"]: g for g in report(h.store, *DAY, "campaign", h.cfg)["groups"]}
    assert set(camp) == {"Google Ads", "Main line", "Sales"}
    g = camp["Google Ads"]                     # lines 140 and 110: A B B C F I
    assert (g["calls"]["inbound"], g["calls"]["missed"], g["calls"]["missed_callers"]) == (6, 5, 4)
    assert (g["opt_outs"]["opted_out"], g["replies"]["callers_texted"]) == (1, 3)   # C of A B C

    agents = {g["group"]: g for g in report(h.store, *DAY, "agent", h.cfg)["groups"]}
    # responses by whoever gave them: maria 420 and 10800, ben 1800 (call back from ext 101) and 1800
    assert (agents["maria"]["response"]["count"], agents["maria"]["response"]["median_s"]) == (2, 420)
    assert (agents["ben"]["response"]["count"], agents["ben"]["response"]["p90_s"]) == (2, 1800)
    assert agents["(phone)"]["response"]["count"] == 1                    # H's answered redial
    # calls by the conversation's owner: maria owns A's
    assert agents["maria"]["calls"]["missed"] == 1 and agents["(unassigned)"]["calls"]["missed"] == 7

    days = report(h.store, *DAY, "day", h.cfg)
    assert [g["group"] for g in days["groups"]] == ["2027-01-15"]
    assert days["groups"][0]["calls"] == days["total"]["calls"]
    weeks = report(h.store, *DAY, "week", h.cfg)
    assert [g["label"] for g in weeks["groups"]] == ["week of 2027-01-11"]


def test_a_day_before_or_after_is_empty_and_the_period_is_half_open(store_target):
    h = play_day(store_target)
    before = report(h.store, DAY[0] - 86400, DAY[0], "line", h.cfg)["total"]
    assert before["calls"]["inbound"] == 0 and before["response"]["count"] == 0
    # until 10:03 (exclusive): A (10:00) and B (10:01) only; C at exactly 10:02 is not in it
    part = report(h.store, DAY[0], DAY[0] + 10 * 3600 + 120, "line", h.cfg)["total"]
    assert (part["calls"]["missed"], part["calls"]["missed_callers"]) == (2, 2)


def test_a_long_period_reads_the_tables_another_way_and_finds_the_same(store_target):
    """Over 60 days the SQL scans the tables instead of the time index (store/reports._at)."""
    h = play_day(store_target)
    day = report(h.store, *DAY, "line", h.cfg)
    year = report(h.store, DAY[0] - 200 * 86400, DAY[1] + 165 * 86400, "line", h.cfg)
    assert year["total"] == day["total"] and year["groups"] == day["groups"]


def test_cli_json_and_csv_give_the_same_numbers(store_target, tmp_path):
    h = play_day(store_target)
    cfg = tmp_path / "config.toml"
    cfg.write_text(CFG + h.store_toml())
    h.store.close()
    run = lambda *a: subprocess.run([sys.executable, "-m", "pbx_textback.cli", "report", "-c", str(cfg),  # noqa: E731
                                     "--since", "2027-01-15", "--until", "2027-01-15", *a],
                                    capture_output=True, text=True, timeout=60)
    out = run("--json", "--by", "campaign")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["total"]["calls"]["missed"] == 8 and rep["total"]["replies"]["replied"] == 3
    csv_out = run("--csv", "--table", "rates")
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("Line,Callers texted,Replied,Reply rate")
    assert lines[-1].split(",")[:4] == ["Total", "5", "3", "0.6"]
    human = run()
    assert "Missed calls" in human.stdout and "Total" in human.stdout and "72.7 %" in human.stdout
    bad = run("--by", "month")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    wrong = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "report", "-c", str(cfg), "--since",
                            "yesterday"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "'yesterday' is not a date" in wrong.stderr
    h.start()                       # the fixture's store is closed by the harness's owner
    assert to_csv(report(h.store, *DAY, "line", h.cfg), "rates") == "\n".join(lines).replace("\n", "\r\n") + "\r\n"
