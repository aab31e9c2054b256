"""Every command tells the truth (issue 11 findings 3-11 and the smaller items): run as the
admin runs them, as subprocesses, against a store the real demo service filled."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
TZ = ZoneInfo("America/Chicago")


def cli(*args, env=None, stdin=None, timeout=120):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=e, input=stdin, cwd=ROOT)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """The real service against the loopback AMI server (the demo), its store kept."""
    state = tmp_path_factory.mktemp("state")
    p = cli("demo", "--once", "--pace", "0", env={"XDG_STATE_HOME": str(state)})
    assert p.returncode == 0, p.stderr[-2000:]
    return state / "pbx-textback-demo", p


def lines_config(tmp_path, store, extra="") -> Path:
    f = tmp_path / "config.toml"
    f.write_text(f"""
[business]
name = "Acme Dental"
phone = "+15125550100"
timezone = "America/Chicago"

[pbx.ami]
secret = "x"

[store]
path = "{store}"

[[line]]
number = "+15125550110"
name = "Front desk"
[line.hours]
mon = ["08:00-12:00", "13:00-17:00"]
tue = ["08:00-17:00"]
wed = ["08:00-17:00"]
thu = ["08:00-17:00"]
fri = ["08:00-17:00"]
sat = []
sun = []
holidays = ["2026-12-25"]
{extra}
""")
    return f


def example_config(tmp_path, **subst) -> Path:
    secret = tmp_path / "ami-secret"
    secret.write_text("s3cret\n")
    text = (ROOT / "config.example.toml").read_text()
    text = re.sub(r'secret_file = "[^"]*"', f'secret_file = "{secret}"', text)
    text = text.replace('path = "/var/lib/pbx-textback/textback.sqlite3"', f'path = "{tmp_path / "s.sqlite3"}"')
    for a, b in subst.items():
        text = text.replace(a, b)
    f = tmp_path / "config.toml"
    f.write_text(text)
    return f


# ---- finding 6 / 7: check-config shows warnings, refuses with key, line and fix ------------------
def test_check_config_prints_lint_warnings(tmp_path):
    cfg = example_config(tmp_path, **{
        'template = "Hi, this is {{ business.name }}. Sorry we missed your call. Reply STOP to opt out."':
        'template = "Hi, this is {{ business.name }}. Sorry we missed your call: 20% off your next visit! '
        'Reply STOP to opt out."'})
    p = cli("check-config", "-c", str(cfg))
    assert p.returncode == 0, p.stderr
    assert re.search(r"warning: 'line\[0\]\.template' \(line \d+\): .*promotional", p.stdout, re.I), p.stdout
    assert 'warning: \'transport.type\'' in p.stdout and "nobody receives them" in p.stdout


def test_check_config_refuses_what_cannot_work(tmp_path):
    cfg = example_config(tmp_path, **{'name = "Acme Dental"': 'name = ""',
                                      'number = "+15125550100"': 'number = "front desk"',
                                      '"2026-12-25"': '"2026-13-25"',
                                      'mon = ["08:00-12:00", "13:00-17:00"]': 'mon = ["17:00-08:00"]'})
    p = cli("check-config", "-c", str(cfg))
    assert p.returncode == 2
    for want in ("'business.name' (line 4): missing or empty", "'line[0].number'", "is not a phone number",
                 "'2026-13-25' is not YYYY-MM-DD", "'17:00-08:00' ends before it starts"):
        assert want in p.stderr, (want, p.stderr)


def start_lines(cfg) -> list[str]:
    """`run -c cfg`: its log lines up to "running" (or its exit), then stopped."""
    proc = subprocess.Popen([sys.executable, "-m", "pbx_textback.cli", "run", "-c", str(cfg)], cwd=ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen.append(line)
            if "running" in line or not line:
                break
    finally:
        proc.terminate()
        proc.wait(10)
    return seen


def test_the_service_logs_config_warnings_at_start(tmp_path):
    cfg = example_config(tmp_path, **{'port = 5038': 'port = 1'})
    seen = start_lines(cfg)
    assert any("config: 'transport.type'" in s and "WARNING" in s for s in seen), "".join(seen)


def test_the_service_runs_without_a_business_name_but_says_so_loudly(tmp_path):
    """check-config refuses it; `run` must not take down a service that ran yesterday."""
    cfg = example_config(tmp_path, **{'name = "Acme Dental"': 'name = ""', 'port = 5038': 'port = 1'})
    seen = start_lines(cfg)
    assert any("ERROR" in s and "check-config refuses this: 'business.name'" in s for s in seen), "".join(seen)
    assert any("running" in s for s in seen)


# ---- finding 3 and 11: hours show / hours set ----------------------------------------------------
def test_hours_show_prints_the_week_holidays_override_and_pause(tmp_path):
    cfg = lines_config(tmp_path, tmp_path / "h.sqlite3")
    p = cli("hours", "show", "-c", str(cfg))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "automated texting: running" in out
    assert "+15125550110 Front desk:" in out and "override: none" in out
    assert "Mon  08:00-12:00, 13:00-17:00" in out and "Sat  closed" in out and "Sun  closed" in out
    assert "holidays: 2026-12-25" in out
    assert cli("pause", "-c", str(cfg)).returncode == 0
    assert "automated texting is PAUSED" in cli("hours", "show", "-c", str(cfg)).stdout


def test_hours_set_by_name_lasts_until_the_next_change_and_says_so(tmp_path):
    cfg = lines_config(tmp_path, tmp_path / "h.sqlite3")
    p = cli("hours", "set", "front desk", "closed", "-c", str(cfg))
    assert p.returncode == 0, p.stderr
    m = re.search(r"line \+15125550110 \(Front desk\): hours closed until (\S+)", p.stdout)
    assert m, p.stdout
    until = datetime.fromisoformat(m.group(1))
    now = datetime.now(TZ)
    assert now < until < now.replace(hour=0, minute=0) .__add__(__import__("datetime").timedelta(days=4))
    # the end is an opening or closing of the line's week (a span boundary or midnight)
    assert until.astimezone(TZ).strftime("%H:%M") in ("00:00", "08:00", "12:00", "13:00", "17:00")
    show = cli("hours", "show", "-c", str(cfg)).stdout
    assert f"override: closed until {m.group(1)}" in show and "manual override: closed until" in show


def test_an_override_ends_by_itself(tmp_path):
    cfg = lines_config(tmp_path, tmp_path / "h.sqlite3")
    soon = datetime.fromtimestamp(time.time() + 6, TZ).isoformat(timespec="seconds")
    assert cli("hours", "set", "+15125550110", "open", "--until", soon, "-c", str(cfg)).returncode == 0
    assert "override: open until" in cli("hours", "show", "-c", str(cfg)).stdout
    time.sleep(max(0.0, datetime.fromisoformat(soon).timestamp() - time.time()) + 0.5)
    assert "override: none" in cli("hours", "show", "-c", str(cfg)).stdout


def test_hours_set_an_unknown_line_lists_the_lines(tmp_path):
    cfg = lines_config(tmp_path, tmp_path / "h.sqlite3")
    p = cli("hours", "set", "back office", "closed", "-c", str(cfg))
    assert p.returncode == 2 and "lines: +15125550110 (Front desk)" in p.stderr


def test_explain_says_when_an_override_ends(demo_store, tmp_path):
    folder, _ = demo_store
    cfg = lines_config(tmp_path, folder / "demo.sqlite3")
    assert cli("hours", "set", "Front desk", "closed", "--until", "2099-01-01T00:00:00-06:00",
               "-c", str(cfg)).returncode == 0
    try:
        out = cli("explain", "+17375550188", "-c", str(cfg)).stdout
        assert "hours override now: closed until 2099-01-01T00:00:00-06:00" in out, out
    finally:
        cli("hours", "set", "Front desk", "auto", "-c", str(cfg))


# ---- finding 8: purge ----------------------------------------------------------------------------
def _old_store(tmp_path) -> tuple[Path, Path]:
    """A store holding one call of 40 days ago."""
    from pbx_textback.store.db import Call, open_store
    store_path = tmp_path / "p.sqlite3"
    s = open_store(str(store_path))
    with s.write():
        Call.create(call_id="c1", pbx="asterisk", caller="+15125550123", caller_raw="5125550123",
                    called="+15125550110", direction="inbound", missed=True, reason="no-answer",
                    record="{}", created_at=time.time() - 40 * 86400)
    s.close()
    return lines_config(tmp_path, store_path), store_path


def _calls(store_path) -> int:
    db = sqlite3.connect(store_path)
    try:
        return db.execute("SELECT COUNT(*) FROM call").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize("days", ["0", "-5"])
def test_purge_refuses_nonsense_ages(tmp_path, days):
    cfg, store_path = _old_store(tmp_path)
    p = cli("purge", "--older-than", days, "--yes", "-c", str(cfg))
    assert p.returncode == 2 and "1 or more" in p.stderr
    assert _calls(store_path) == 1


def test_purge_dry_run_asks_and_yes(tmp_path):
    cfg, store_path = _old_store(tmp_path)
    p = cli("purge", "--older-than", "30", "--dry-run", "-c", str(cfg))
    assert p.returncode == 0 and "would purge 1 calls" in p.stdout and _calls(store_path) == 1
    p = cli("purge", "--older-than", "30", "-c", str(cfg), stdin="")      # no terminal to ask on
    assert p.returncode == 2 and "add --yes" in p.stderr and _calls(store_path) == 1
    p = cli("purge", "--older-than", "30", "--yes", "-c", str(cfg))
    assert p.returncode == 0 and "purged 1 calls" in p.stdout and _calls(store_path) == 0


# ---- finding 9: replay with the wrong --pbx -------------------------------------------------------
@pytest.mark.parametrize("trace,wrong,right", [("freeswitch/02-no-answer.esl", "asterisk", "freeswitch"),
                                               ("asterisk/02-no-answer.ami", "freeswitch", "asterisk")])
def test_replay_with_the_wrong_pbx_says_which_and_fails(trace, wrong, right):
    p = cli("replay", str(FIX / trace), "--pbx", wrong)
    assert p.returncode == 2
    assert f"try --pbx {right}" in p.stderr and p.stdout == ""
    assert len(p.stderr.splitlines()) <= 2
    ok = cli("replay", str(FIX / trace), "--pbx", right, "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout.splitlines()[0])["missed"] is True


def test_replay_of_something_that_is_no_event_stream(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    p = cli("replay", str(f))
    assert p.returncode == 2 and "not a recorded AMI or ESL event stream" in p.stderr


# ---- finding 10: a time for every call without timestampevents ------------------------------------
def test_explain_gives_the_time_the_service_saw_the_call(demo_store):
    folder, _ = demo_store
    assert "Timestamp:" not in (FIX / "asterisk" / "02-no-answer.ami").read_text()
    out = cli("explain", "+17375550188", "-c", str(folder / "config.toml")).stdout
    m = re.search(r"call \S+ \(asterisk, (\S+)\)", out)
    assert m and "time unknown" not in out, out
    seen = datetime.fromisoformat(m.group(1))
    assert abs(seen.timestamp() - time.time()) < 600 and seen.utcoffset() is not None


def test_the_ami_snippet_recommends_timestampevents():
    ami = (ROOT / "ami" / "README.md").read_text()
    assert re.search(r"\[general\]\n(?:\s+\w+ = .*\n)*\s+timestampevents = yes\n", ami)    # in the snippet
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### The AMI user"):readme.index("### The event socket")]
    assert "timestampevents = yes" in section


# ---- the smaller items ----------------------------------------------------------------------------
def test_number_prints_words_not_python_values():
    p = cli("number", "+15125550123")
    assert p.returncode == 0
    assert not re.search(r"\b(None|True|False)\b", p.stdout), p.stdout
    assert "textable: yes" in p.stdout


def test_explain_json_is_one_document_with_iso_times(demo_store):
    folder, _ = demo_store
    p = cli("explain", "+17375550188", "-c", str(folder / "config.toml"), "--json")
    doc = json.loads(p.stdout)
    call = doc["calls"][0]
    assert call["reason"] == "no-answer" and call["decision"] == "text"
    assert datetime.fromisoformat(call["started_at"]).utcoffset() is not None


def test_export_uses_iso_times_like_consent(demo_store):
    folder, _ = demo_store
    p = cli("export", "+17375550188", "-c", str(folder / "config.toml"))
    doc = json.loads(p.stdout)
    times = [doc["calls"][0]["started_at"], doc["messages"][0]["created_at"], doc["consent"][0]["at"]]
    for t in times:
        assert isinstance(t, str) and datetime.fromisoformat(t).utcoffset() is not None, t
    assert not re.search(r'": \d{9,}\.\d', p.stdout)


def test_explain_line_enabled_says_something(demo_store):
    folder, _ = demo_store
    out = cli("explain", "+17375550188", "-c", str(folder / "config.toml")).stdout
    assert re.search(r"\[ok\] line-enabled: line \+15125550110 is enabled", out), out


def test_esl_without_a_password_exits_2():
    env = {k: v for k, v in os.environ.items() if k != "PBX_TEXTBACK_ESL_PASSWORD"}
    p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "esl", "--port", "1"], capture_output=True,
                       text=True, timeout=30, env=env, cwd=ROOT)
    assert p.returncode == 2 and "no event-socket password" in p.stderr


def test_quiet_hours_all_day_is_accepted_by_check_config(tmp_path):
    cfg = example_config(tmp_path, **{'quiet_hours = "08:00-20:00"': 'quiet_hours = "00:00-24:00"'})
    p = cli("check-config", "-c", str(cfg))
    assert p.returncode == 0, p.stderr
