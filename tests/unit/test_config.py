"""Config: TOML -> frozen dataclasses; every error names the key and its line."""
import dataclasses

import pytest

from pbx_textback.config import ConfigError, default_config, load, loads

GOOD = """
[business]
name = "Acme Dental"
phone = "+15125550100"
timezone = "America/Chicago"

[pbx.ami]
host = "127.0.0.1"
username = "textback"
secret_env = "TEST_AMI_SECRET"

[[line]]
number = "+15125550100"
name = "Main"
reasons = ["no-answer", "voicemail", "after-hours"]
[line.templates]
after-hours = "{{ business.name }} is closed. We will text you back. Reply STOP to opt out."
[line.hours]
mon = ["08:00-12:00", "13:00-17:00"]
holidays = ["2026-12-25"]

[[line]]
number = "+15125550120"
enabled = false
"""


def test_good_config_loads_into_frozen_dataclasses(monkeypatch):
    monkeypatch.setenv("TEST_AMI_SECRET", "s3cret")
    cfg = loads(GOOD)
    assert cfg.business.name == "Acme Dental"
    assert cfg.pbx.ami.secret == "s3cret" and cfg.pbx.ami.port == 5038
    assert cfg.line[0].hours.mon == ("08:00-12:00", "13:00-17:00")
    assert cfg.line[1].enabled is False and cfg.line[1].hours is None
    assert not cfg.every_inbound_number
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.business.name = "x"


def problems(text):
    with pytest.raises(ConfigError) as e:
        loads(text)
    return str(e.value)


def test_unknown_key_names_key_line_and_suggestion():
    msg = problems('[pbx.ami]\nhots = "x"\n')
    assert "unknown key 'pbx.ami.hots' (line 2)" in msg and "did you mean 'host'" in msg


def test_wrong_type_names_key_and_line():
    msg = problems('\n\n[pbx.ami]\nport = "5038"\n')
    assert "'pbx.ami.port' (line 4): expected an integer, got a string" in msg


def test_missing_value_in_an_array_table():
    msg = problems('[[line]]\nnumber = "+15125550100"\n\n[[line]]\nname = "no number"\n')
    assert "'line[1].number' is missing (line 4)" in msg


def test_bad_choices_zone_hours_and_reasons():
    msg = problems("""
[pbx]
type = "3cx"
[business]
timezone = "Mars/Olympus"
[[line]]
number = "+15125550100"
reasons = ["voicemail", "sometimes"]
[line.hours]
tue = ["9-5"]
holidays = ["25/12/2026"]
""")
    assert "'pbx.type' (line 3): '3cx' is not one of asterisk, freeswitch" in msg
    assert "unknown time zone 'Mars/Olympus'" in msg
    assert "'sometimes' is not one of" in msg
    assert "'line[0].hours.tue' (line 10): '9-5' is not HH:MM-HH:MM" in msg
    assert "'25/12/2026' is not YYYY-MM-DD" in msg


def test_broken_template_is_an_error_at_load_not_a_half_text():
    msg = problems('[[line]]\nnumber = "+15125550100"\ntemplate = "Hi {{ caller.nmae }}"\n')
    assert "'line[0].template' (line 3)" in msg and "cannot render" in msg
    msg = problems('[[line]]\nnumber = "+15125550100"\ntemplate = "Hi {% if %}"\n')
    assert "template syntax" in msg


def test_sandbox_refuses_unsafe_templates():
    msg = problems('[[line]]\nnumber = "+1512555010"\ntemplate = "{{ business.__class__.__mro__ }}"\n')
    assert "line[0].template" in msg


def test_secret_from_a_file(tmp_path):
    f = tmp_path / "secret"
    f.write_text("from-file\n")
    cfg = loads(f'[pbx.ami]\nsecret_file = "{f}"\n')
    assert cfg.pbx.ami.secret == "from-file"
    msg = problems('[pbx.ami]\nsecret_file = "/nonexistent/secret"\n')
    assert "'pbx.ami.secret_file' (line 2): cannot read /nonexistent/secret" in msg


def test_toml_syntax_error_says_where():
    assert "line 2" in problems('[business]\nname = "unterminated\n')


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "nope.toml")


def test_defaults_make_every_inbound_number_a_line():
    cfg = default_config()
    assert cfg.every_inbound_number and cfg.business.country == "US"
    assert cfg.allowed_countries == frozenset({"US"})


def test_the_example_config_in_the_repo_is_valid(tmp_path):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
    secret = tmp_path / "s"
    secret.write_text("x")
    cfg = loads(text.replace("/etc/pbx-textback/ami-secret", str(secret)))
    assert cfg.line[0].number == "+15125550100" and cfg.pbx.ami.secret == "x"
