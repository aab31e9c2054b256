"""Recorded traffic from a real Asterisk 22 through framing, tracker, classifier and decision:
every call's verdict against the manifest (tests/fixtures/asterisk/scenarios.toml)."""
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pbx_textback.config import default_config
from pbx_textback.core.pbx.asterisk import records_from_stream
from pbx_textback.core.policy.decide import decide

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
MANIFEST = tomllib.loads((FIX / "scenarios.toml").read_text())["scenario"]
CALL_TRACES = [sc for sc in MANIFEST if sc.get("calls") or sc.get("reason")]
MISSED = {"no-answer", "abandoned", "busy", "voicemail", "queue-abandon", "after-hours", "unavailable"}


def expected(sc):
    return sc.get("calls") or [sc]


def verdicts(data: bytes, cuts=None):
    cfg = default_config()
    out = []
    for rec in records_from_stream(data, chunks=cuts):
        v = decide(rec, cfg)
        out.append(v.to_json())
    return out


def check(sc, got):
    want = expected(sc)
    inbound = [g for g in got if g["direction"] == "inbound"]
    assert len(inbound) == len(want), f"{sc['file']}: {len(inbound)} inbound calls, want {len(want)}"
    for w in want:
        g = next(g for g in inbound if g["caller"] == w["caller"])
        assert g["called"] == w["did"], sc["file"]
        assert g["missed"] is w["missed"], (sc["file"], g)
        if w["reason"] in MISSED:
            assert g["reason"] == w["reason"], (sc["file"], g["reason"], g["why"])
            assert g["decision"] == "text", (sc["file"], g["checks"])
            assert g["body"].startswith("Hi, this is")
        else:
            assert g["reason"] == "answered" and g["decision"] == "skip"


@pytest.mark.parametrize("sc", CALL_TRACES, ids=lambda sc: sc["file"])
def test_every_trace_gives_the_manifest_verdict(sc):
    check(sc, verdicts((FIX / sc["file"]).read_bytes()))


@pytest.mark.parametrize("sc", CALL_TRACES, ids=lambda sc: sc["file"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_byte_splits_give_identical_verdicts(sc, data):
    raw = (FIX / sc["file"]).read_bytes()
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), min_size=1, max_size=300))
    assert verdicts(raw, cuts) == verdicts(raw)


def test_voicemail_left_is_reported():
    got = verdicts((FIX / "05-ringgroup-voicemail.ami").read_bytes())
    assert got[0]["voicemail_left"] is True
    got = verdicts((FIX / "09-after-hours.ami").read_bytes())
    assert got[0]["voicemail_left"] is False      # hung up ~1 s into the recording


def test_session_only_traces_give_no_calls():
    for name in ("20-restart-part1.ami", "21-login-failed.ami", "messagesend.ami"):
        assert verdicts((FIX / name).read_bytes()) == []


def test_the_traces_joined_in_one_stream_give_every_verdict():
    """One long AMI session: every trace's events back to back (banners stripped)."""
    stream = b""
    for sc in CALL_TRACES:
        raw = (FIX / sc["file"]).read_bytes()
        stream += raw.split(b"\r\n", 1)[1] if raw.startswith(b"Asterisk") else raw
    got = verdicts(stream)
    assert len([g for g in got if g["direction"] == "inbound"]) == sum(len(expected(sc)) for sc in CALL_TRACES)


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args], capture_output=True,
                          text=True, timeout=60, **kw)


def test_cli_replay_json_contract():
    p = run_cli("replay", str(FIX / "12-concurrent.ami"), "--pbx", "asterisk", "--json")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    lines = [x for x in rows if "call_id" in x]          # the calls; after them, one line per text
    assert {x["caller"] for x in lines} == {"+15125550123", "+17375550111", "+12105550199"}
    assert [x["peer"] for x in rows[len(lines):]] == ["+12105550199", "+17375550111"]
    for x in lines:
        assert set(x) >= {"call_id", "caller", "called", "direction", "missed", "reason",
                          "voicemail_left", "decision", "checks", "body"}
        assert all(set(c) == {"name", "ok", "detail"} for c in x["checks"])


def test_cli_replay_with_business_hours_and_at(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[business]
name = "Acme"
timezone = "America/Chicago"
[[line]]
number = "+15125550140"
[line.hours]
mon = ["08:00-17:00"]
tue = ["08:00-17:00"]
wed = ["08:00-17:00"]
thu = ["08:00-17:00"]
fri = ["08:00-17:00"]
""")
    trace = str(FIX / "03-abandoned.ami")
    closed = run_cli("replay", trace, "-c", str(cfg), "--json", "--at", "2026-11-26T21:00:00-06:00")
    opened = run_cli("replay", trace, "-c", str(cfg), "--json", "--at", "2026-11-26T10:00:00-06:00")
    unknown = run_cli("replay", trace, "-c", str(cfg), "--json")
    c, o, u = (json.loads(p.stdout.splitlines()[0]) for p in (closed, opened, unknown))
    assert c["reason"] == "after-hours" and o["reason"] == "abandoned"
    assert u["reason"] == "abandoned"
    hours = next(ch for ch in u["checks"] if ch["name"] == "hours")
    assert hours["detail"].startswith("unknown")


def test_cli_replay_unknown_line_is_skipped(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[line]]\nnumber = "+15125550199"\n')
    p = run_cli("replay", str(FIX / "03-abandoned.ami"), "-c", str(cfg), "--json")
    (line,) = p.stdout.splitlines()                     # no text: no text line
    got = json.loads(line)
    assert got["missed"] is True and got["decision"] == "skip"
    assert any(c["name"] == "line" and not c["ok"] for c in got["checks"])


def test_cli_replay_missing_file_is_a_clear_error():
    p = run_cli("replay", "/nonexistent.ami")
    assert p.returncode == 2 and "cannot read /nonexistent.ami" in p.stderr
