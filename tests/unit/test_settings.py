"""The admin page's values over the TOML file (settings.py): the merge, what the page may not
touch, and `settings export` read back into the config."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from pbx_textback.config import ConfigError, loads
from pbx_textback.admin.settings import (SettingRefused, check_value, dump_toml, file_value, merge,
                                   overrides_as_toml, parse_key)

EXAMPLE = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
LINE = "+15125550100"
PAGE_TPL = "{{ business.name }}: sorry we missed you! Call back or reply here. Reply STOP to opt out."
PAGE = {f"line[{LINE}].template": PAGE_TPL,
        f"line[{LINE}].hours.sat": ["09:00-12:00"],
        f"line[{LINE}].hours.holidays": ["2026-12-24"],
        f"line[{LINE}].templates.voicemail": "{{ business.name }} got your voicemail. Reply STOP to opt out.",
        "business.phone": "+15125550199"}


def test_page_values_override_the_file_and_leave_the_rest():
    data = tomllib.loads(EXAMPLE)
    merged, unmatched = merge(data, PAGE)
    assert unmatched == []
    line = merged["line"][0]
    assert line["template"] == PAGE_TPL and line["hours"]["sat"] == ["09:00-12:00"]
    assert line["hours"]["mon"] == data["line"][0]["hours"]["mon"]        # untouched
    assert merged["business"]["name"] == "Acme Dental" and merged["business"]["phone"] == "+15125550199"
    assert data["line"][0]["template"] != PAGE_TPL                         # the input stays as it was
    assert file_value(data, f"line[{LINE}].template") == data["line"][0]["template"]


def test_the_effective_config_is_the_file_plus_the_page():
    cfg = loads(EXAMPLE, "x.toml", secrets=False, page=PAGE)
    ln = cfg.line[0]
    assert ln.template == PAGE_TPL and ln.hours.sat == ("09:00-12:00",) and ln.hours.holidays == ("2026-12-24",)
    assert cfg.business.phone == "+15125550199"
    assert cfg.page == PAGE
    plain = loads(EXAMPLE, "x.toml", secrets=False)
    assert plain.line[0].template != PAGE_TPL and plain != cfg


def test_a_page_value_gets_the_checks_a_file_value_gets():
    with pytest.raises(ConfigError) as e:
        loads(EXAMPLE, "x.toml", secrets=False, page={f"line[{LINE}].hours.mon": ["17:00-08:00"]})
    assert "line[0].hours.mon" in str(e.value) and "ends before it starts" in str(e.value)
    with pytest.raises(ConfigError) as e:
        loads(EXAMPLE, "x.toml", secrets=False, page={f"line[{LINE}].template": "Call us back."})
    assert "opt out" in str(e.value)


def test_a_page_value_for_a_line_the_file_no_longer_has_is_ignored_and_said():
    cfg = loads(EXAMPLE, "x.toml", secrets=False, page={"line[+15125550999].template": PAGE_TPL})
    assert any("line[+15125550999].template" in w and "no such line" in w for w in cfg.warnings)


@pytest.mark.parametrize("key", ["pbx.ami.host", "transport.type", "store.dsn", "transport.smpp.password",
                                 "web.listen", "smtp.enabled"])
def test_infrastructure_stays_in_the_file(key):
    with pytest.raises(SettingRefused, match="stay in the TOML file"):
        parse_key(key)


@pytest.mark.parametrize("key", ["line[+1512].transport", "line[+1512].templates.nope", "business.timezone",
                                 "compliance.quiet_hours", "line[+1512].hours.holiday"])
def test_other_keys_are_refused_by_name(key):
    with pytest.raises(SettingRefused, match="not a setting the page can change"):
        parse_key(key)


def test_values_of_the_wrong_kind_are_refused():
    with pytest.raises(SettingRefused, match="list of texts"):
        check_value(f"line[{LINE}].hours.mon", "08:00-17:00")
    with pytest.raises(SettingRefused, match="expected bool"):
        check_value(f"line[{LINE}].enabled", "yes")
    assert check_value(f"line[{LINE}].delay_seconds", 30) == 30.0


def test_export_reads_back_as_the_same_settings_and_the_same_effective_config():
    fragment = overrides_as_toml(PAGE)
    doc = tomllib.loads(fragment)
    assert doc["business"] == {"phone": "+15125550199"}
    assert doc["line"] == [{"number": LINE, "template": PAGE_TPL,
                            "templates": {"voicemail": PAGE[f"line[{LINE}].templates.voicemail"]},
                            "hours": {"sat": ["09:00-12:00"], "holidays": ["2026-12-24"]}}]
    # the file with the page's values written into it loads as the running config
    merged, _ = merge(tomllib.loads(EXAMPLE), PAGE)
    full = dump_toml(merged)
    assert loads(full, "x.toml", secrets=False) == loads(EXAMPLE, "x.toml", secrets=False, page=PAGE)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_plain = st.one_of(_text, st.booleans(), st.integers(-10 ** 12, 10 ** 12),
                   st.floats(allow_nan=False, allow_infinity=False), st.lists(_text, max_size=4))
_table = st.dictionaries(_text.filter(bool), _plain, max_size=4)


@hsettings(max_examples=150, deadline=None)
@given(st.dictionaries(_text.filter(bool), st.one_of(_plain, _table, st.lists(_table, min_size=1, max_size=3)),
                       max_size=5))
def test_dump_toml_reads_back_as_the_same_data(data):
    assert tomllib.loads(dump_toml(data)) == data


def test_the_reloader_applies_page_changes_and_keeps_the_running_config_on_a_clash(tmp_path, caplog):
    """reload.py on a real store: a page change is applied; a pause (history only) is not a
    rebuild; a file that no longer loads is refused in one log line; infrastructure stays."""
    import logging
    from pbx_textback.admin.reload import Reloader
    caplog.set_level(logging.INFO, logger="pbx_textback")
    from pbx_textback.store import settings as ss
    from pbx_textback.store.db import open_store
    path = tmp_path / "config.toml"
    text = EXAMPLE.replace('path = "/var/lib/pbx-textback/textback.sqlite3"', f'path = "{tmp_path / "s.db"}"')
    path.write_text(text)
    cfg = loads(text, str(path), secrets=False)
    store = open_store(cfg.store.path)
    applied = []
    r = Reloader(cfg, store, applied.append, secrets=False)
    assert r.check_page() is False
    ss.record(store, [(f"line[{LINE}].template", None, PAGE_TPL)], "ada", 1.0)
    assert r.check_page() is True and applied[-1].line[0].template == PAGE_TPL
    ss.record(store, [("paused", False, True)], "ada", 2.0)
    assert r.check_page() is False and len(applied) == 1
    path.write_text(text.replace('port = 5038', 'port = 5039').replace("Acme Dental", "Acme Dentistry"))
    assert r.reload_file() is True
    assert applied[-1].business.name == "Acme Dentistry" and applied[-1].pbx.ami.port == 5038   # needs a restart
    assert applied[-1].line[0].template == PAGE_TPL                                          # the page stays on top
    assert any("[pbx] changed in the file" in m for m in caplog.messages)
    path.write_text(text + "\n[[line]\n")
    caplog.clear()
    assert r.reload_file() is False and len(applied) == 2
    refused = [m for m in caplog.messages if "reload refused" in m]
    assert len(refused) == 1 and "\n" not in refused[0] and "TOML syntax error" in refused[0]
    store.close()


def test_page_values_that_clash_with_a_changed_file_never_stop_the_service_from_starting(tmp_path, caplog):
    from pbx_textback.admin.reload import with_page
    from pbx_textback.store import settings as ss
    from pbx_textback.store.db import open_store
    text = EXAMPLE.replace('path = "/var/lib/pbx-textback/textback.sqlite3"', f'path = "{tmp_path / "s.db"}"')
    cfg = loads(text, str(tmp_path / "config.toml"), secrets=False)
    store = open_store(cfg.store.path)
    ss.record(store, [(f"line[{LINE}].template", None, "{{ business.name }} hi. Reply STOP to opt out.")], "ada", 1.0)
    assert with_page(cfg, store, secrets=False).line[0].template.endswith("hi. Reply STOP to opt out.")
    renamed = loads(text.replace('name = "Acme Dental"', 'name = "Acme Dentistry"'), cfg.source, secrets=False)
    ss.record(store, [(f"line[{LINE}].template", None, "Acme Dental: hi. Reply STOP to opt out.")], "ada", 2.0)
    assert with_page(renamed, store, secrets=False) is renamed          # the page's text no longer names the business
    assert any("clash with" in m and "not applied" in m for m in caplog.messages)
    store.close()
