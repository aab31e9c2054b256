"""`pbx-textback whatif`: the calls a real service stored (the demo: the real service against the
loopback AMI server; and the real service fed a recorded redial at its own pace), decided again
under another config. Nothing is sent and the store stays byte for byte the same."""
import asyncio
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.tracejoin import ami_call, ami_trace

LINE = "+15125550140"
A = "+15125550177"       # calls twice in the demo (03-abandoned, 20-restart-part2), both abandoned


def cli(*args, env=None):
    import os
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **(env or {})))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    p = cli("demo", "--once", "--pace", "0", env={"XDG_STATE_HOME": str(state)})
    assert p.returncode == 0, p.stderr[-2000:]
    return state / "pbx-textback-demo"


def snapshot(path) -> tuple:
    """The store file's bytes and every row of every table."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
        # a WITHOUT ROWID table (consentlastcall, migration 31) has no rowid: it reads in key order
        rows = {t: db.execute(f'SELECT * FROM "{t}"' + ("" if "WITHOUT ROWID" in sql.upper() else " ORDER BY rowid"))
                .fetchall() for t, sql in tables}
    finally:
        db.close()
    return hashlib.sha256(open(path, "rb").read()).hexdigest(), rows


def dids(path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT DISTINCT called FROM call WHERE direction = 'inbound'")]
    finally:
        db.close()


def sent_in(path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM message WHERE kind = 'missed-call' AND state = 'sent'").fetchone()[0]
    finally:
        db.close()


def whatif(config, *extra):
    p = cli("whatif", "-c", str(config), *extra)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_the_demo_config_itself_changes_nothing(demo):
    store = demo / "demo.sqlite3"
    before = snapshot(store)
    doc = json.loads(whatif(demo / "config.toml", "--json"))
    assert doc["calls"] == 13 and doc["changes"] == []
    assert doc["before"]["missed-call"] == doc["after"]["missed-call"] == sent_in(store) > 0
    assert "no difference" in whatif(demo / "config.toml")
    assert snapshot(store) == before


def test_a_two_minute_delay_on_one_line_of_the_demo(demo, tmp_path):
    store = demo / "demo.sqlite3"
    before = snapshot(store)
    new = tmp_path / "new.toml"
    lines = "".join(f'\n[[line]]\nnumber = "{d}"\n' + ("delay_seconds = 120\n" if d == LINE else "")
                    for d in dids(store))
    new.write_text((demo / "config.toml").read_text() + lines)
    doc = json.loads(whatif(new, "--json"))
    assert {g["line"] for g in doc["changes"]} == {LINE}          # the other lines: as they were
    by = {g["change"]: g for g in doc["changes"]}
    later = by["later"]
    assert later["cause"] == "delay" and later["calls"] == 1 and later["reasons"] == {"abandoned": 1}
    assert 119 <= later["shift_s"]["min"] <= later["shift_s"]["max"] <= 121
    assert later["examples"][0]["caller"] == A
    # A's second abandoned call, a dedupe when texted at once, now joins the waiting text
    joined = by["joins an earlier text"]
    assert joined["examples"][0]["before"] == "blocked: dedupe"
    assert "(2 missed calls)" in joined["examples"][0]["after"]
    assert doc["before"]["missed-call"] == doc["after"]["missed-call"]
    out = whatif(new)
    assert f"line {LINE}:" in out and "later by " in out and "joins an earlier text" in out
    assert snapshot(store) == before


def test_a_delay_longer_than_a_redial_gap_would_have_spared_the_text(tmp_path):
    """The real service (delay 0) texted a caller who redialled 4 s later and got through;
    under a 30 s delay the redial cancels it."""
    from tests.integration.test_replay_matches_service import CFG, run_service
    trace = tmp_path / "redial.ami"
    t0 = time.time() + 0.5
    trace.write_bytes(ami_trace(ami_call("03-abandoned.ami", start=t0, span=2),
                                ami_call("01-answered.ami", start=t0 + 6, span=2, swap={"+15125550123": A})))
    rows = asyncio.run(run_service(tmp_path, trace, CFG.format(delay=0), calls=2))
    assert [(r[0], r[2]) for r in rows] == [(A, "sent")]
    store = tmp_path / "svc.sqlite3"
    before = snapshot(store)
    new = tmp_path / "new.toml"
    new.write_text(CFG.format(delay=30) + f'[store]\npath = "{store}"\n')
    doc = json.loads(whatif(new, "--json", "--since", "1h"))
    (g,) = doc["changes"]
    assert (g["line"], g["change"], g["cause"]) == (LINE, "no longer texted",
                                                    "cancelled: the caller was reached before it was due")
    assert doc["before"]["missed-call"] == 1 and doc["after"]["missed-call"] == 0
    same = tmp_path / "same.toml"
    same.write_text(CFG.format(delay=0) + f'[store]\npath = "{store}"\n')
    assert json.loads(whatif(same, "--json", "--since", "1h"))["changes"] == []
    assert snapshot(store) == before


def test_an_older_store_is_refused_not_migrated(demo, tmp_path):
    old = tmp_path / "old.sqlite3"
    shutil.copy(demo / "demo.sqlite3", old)
    db = sqlite3.connect(old)
    db.execute("UPDATE schemaversion SET version = 6")
    db.commit()
    db.close()
    before = snapshot(old)
    p = cli("whatif", "-c", str(demo / "config.toml"), "--store", str(old))
    assert p.returncode == 2 and "the store is at schema 6" in p.stderr and "never changes the store" in p.stderr
    assert snapshot(old) == before


def test_a_bad_since_is_a_clear_error(demo):
    p = cli("whatif", "-c", str(demo / "config.toml"), "--since", "last week")
    assert p.returncode == 2 and "--since 'last week'" in p.stderr


def _rows(store) -> dict:
    """Every row of the store's own tables, through the store's connection (SQLite or PostgreSQL)."""
    from pbx_textback.store import db as st
    out = {}
    for model in st.MODELS:
        out[model._meta.table_name] = sorted(map(repr, model.select().tuples()))
    return out


def test_whatif_reads_sqlite_and_postgresql_alike_and_changes_neither(store_target, capsys):
    """A store filled by the real pipeline and outbox (tests/replay/test_timing.py's harness: a
    60 s delay, the caller redials 30 s later and gets through, the text is cancelled); under
    no delay the text would have gone out."""
    from pbx_textback.replay import whatif as wi
    from pbx_textback.config import loads
    from pbx_textback.store import db as st
    from tests.replay.test_timing import CALLER, CFG, Harness, trace
    h = Harness(store_target)
    (first,) = h.play(trace("03-abandoned.ami"))
    h.clock.t += 30
    (redial,) = h.play(trace("01-answered.ami", caller=CALLER))
    h.clock.t += 60
    h.drain()
    assert h.tx.sent == []
    before = _rows(h.store)
    h.store.close()
    cfg = loads(CFG.replace("delay_seconds = 60", "delay_seconds = 0"))
    assert wi.run(cfg, store_path=store_target["path"], dsn=store_target["dsn"], since=0,
                  as_json=True, now=h.clock.t) == 0
    doc = json.loads(capsys.readouterr().out)
    (g,) = doc["changes"]
    assert (g["line"], g["change"]) == (LINE, "newly texted")
    assert g["cause"] == (f"before: was cancelled (caller reached by inbound call {redial.call.call_id} "
                          "(answered by 100))")
    assert g["examples"][0]["call_id"] == first.call.call_id
    assert doc["before"]["missed-call"] == 0 and doc["after"]["missed-call"] == 1
    s = st.open_store(store_target["path"], store_target["dsn"])
    try:
        assert _rows(s) == before
    finally:
        s.close()


def test_an_hours_override_in_force_then_applies_again(tmp_path, capsys):
    """`hours set LINE closed` when the call came: the service texted the after-hours wording.
    The store keeps only today's override, but the call's hours check names the one it saw,
    so whatif under the same config finds no difference (and under another template, the
    after-hours one)."""
    from pbx_textback.replay import whatif as wi
    from pbx_textback.config import loads
    from tests.replay.test_timing import CFG, Harness, trace
    cfg_text = CFG.replace("delay_seconds = 60", "delay_seconds = 0").replace(
        'template = "Acme: sorry we missed {% if calls_missed > 1 %}your {{ calls_missed }} calls{% else %}your call{% endif %}. Reply STOP to opt out."',
        "template = \"Acme: {% if reason == 'after-hours' %}we are closed{% else %}sorry we missed you{% endif %}. Reply STOP to opt out.\"")
    assert cfg_text != CFG
    target = {"path": str(tmp_path / "t.sqlite3"), "dsn": ""}
    h = Harness(target, cfg_text)
    h.store.set_hours_override(LINE, "closed", h.clock.t)
    (v,) = h.play(trace("03-abandoned.ami"))
    h.drain()                                                  # sent at once, as the worker does
    h.clock.t += 5
    h.store.set_hours_override(LINE, "auto", h.clock.t)        # the office opened again
    assert v.outcome.reason == "after-hours" and h.tx.sent[0][2] == "Acme: we are closed. Reply STOP to opt out."
    h.store.close()
    assert wi.run(loads(cfg_text), store_path=target["path"], dsn="", since=0, as_json=True, now=h.clock.t) == 0
    assert json.loads(capsys.readouterr().out)["changes"] == []
    other = cfg_text.replace("we are closed{%", "closed now, back at 8{%")
    assert wi.run(loads(other), store_path=target["path"], dsn="", since=0, as_json=True, now=h.clock.t) == 0
    (g,) = json.loads(capsys.readouterr().out)["changes"]
    assert (g["change"], g["cause"]) == ("different text", "other wording (template)")
    assert g["examples"][0]["after"] == "Acme: closed now, back at 8. Reply STOP to opt out."
