"""Config refuses what cannot work, with the key, the line and the fix (issue 11 finding 7,
issue 10 finding 25), and says what deserves a word (findings 3, 6, the one-segment texts)."""
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pbx_textback.config import ConfigError, loads
from pbx_textback.core.text.sms import sms_info
from pbx_textback.core.text.templates import (DEFAULT_TEMPLATE, FOLLOW_UP_TEMPLATE, TemplateError,
                                         check_template, render, sample_vars)

ROOT = Path(__file__).resolve().parents[2]

BASE = """
[business]
name = "Acme Dental"
phone = "+15125550100"

[pbx.ami]
secret = "s3cret"

[[line]]
number = "+15125550100"
name = "Main"
{line}
"""


def problems(text, **kw) -> str:
    with pytest.raises(ConfigError) as e:
        loads(text, **kw)
    return str(e.value)


def example(tmp_path) -> str:
    secret = tmp_path / "ami-secret"
    secret.write_text("x\n")
    text = (ROOT / "config.example.toml").read_text()
    return re.sub(r'secret_file = "[^"]*"', f'secret_file = "{secret}"', text)


# ---- issue 10 finding 25: numbers, nesting, huge integers, template bombs --------------------
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e300", "99999999"])
def test_delays_and_hours_must_be_finite_and_sane(value):
    for key in ("delay_seconds", "follow_up_after_hours"):
        msg = problems(BASE.format(line=f"{key} = {value}"))
        assert f"'line[0].{key}' (line 12)" in msg
        assert "finite" in msg or "out of range" in msg


def test_a_huge_policy_number_names_its_range():
    msg = problems(BASE.format(line="") + "\n[policy]\ndedupe_hours = 1e12\n")
    assert "'policy.dedupe_hours' (line 15): 1e+12 is out of range; give 0..8784 hours" in msg


def test_per_reason_delay_out_of_range():
    msg = problems(BASE.format(line="delays = { voicemail = inf }"))
    assert "'line[0].delays.voicemail'" in msg


def test_deep_nesting_is_a_config_error_not_a_recursion_error():
    text = "a = " + "[" * 5000 + "]" * 5000
    assert "nested too deeply" in problems(text)


def test_a_5000_digit_integer_is_a_config_error_not_a_value_error():
    msg = problems("[policy]\ninternal_max_digits = " + "9" * 5000 + "\n")
    assert "config" not in msg or "TOML" in msg
    assert "refused" in msg or "out of range" in msg


def test_a_4000_digit_integer_is_out_of_range():
    msg = problems("[policy]\ninternal_max_digits = " + "9" * 4000 + "\n")
    assert "'policy.internal_max_digits' (line 2)" in msg and "out of range" in msg


BOMBS = [
    "{{ 'x'|center(10**8) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ 'x' * 10**8 }}",
    "{{ 'x'.center(10**8) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ 10**10**10 }}",
    "{{ ('x' * 1000)|replace('x', 'x' * 1000) }}",
    "{{ 'ab'|indent(100000000) }}",
    "{{ 'x'|wordwrap(100000000) }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ 'x' " + "~ 'x' " * 1200 + "}}",      # longer than a template may be
]


@pytest.mark.parametrize("bomb", BOMBS)
def test_template_bombs_are_refused_quickly(bomb):
    t0 = time.monotonic()
    with pytest.raises(TemplateError):
        check_template(bomb)
    assert time.monotonic() - t0 < 1.0


def test_a_template_bomb_in_the_config_names_the_key():
    msg = problems(BASE.format(line="template = \"{{ 'x'|center(10**8) }} Reply STOP to opt out.\""))
    assert "'line[0].template' (line 12)" in msg and "more than a text needs" in msg


def test_ordinary_templates_still_render():
    out = render("{{ business.name|upper }} {{ hours|truncate(20) }}{% if reason == 'busy' %} b{% endif %}"
                 "{% set who = caller.name or 'there' %} hi {{ who }}", sample_vars("busy"))
    assert out == "ACME Mon-Fri 08:00-17:00 b hi Caller"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_any_template_text_renders_or_is_a_template_error(src):
    try:
        check_template(src)
    except TemplateError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(), st.integers(min_value=-10 ** 30, max_value=10 ** 30)))
def test_any_number_for_a_delay_loads_sane_or_is_refused(x):
    value = repr(x) if isinstance(x, int) else ("nan" if x != x else ("inf" if x == float("inf") else
                                                 "-inf" if x == float("-inf") else repr(x)))
    try:
        cfg = loads(BASE.format(line=f"delay_seconds = {value}"))
    except ConfigError as e:
        assert "'line[0].delay_seconds'" in str(e)
    else:
        assert 0 <= cfg.line[0].delay_seconds <= 86400


# ---- issue 11 finding 7: refuse with key, line and fix ----------------------------------------
def test_missing_or_empty_business_name_is_refused_for_the_service():
    text = BASE.format(line="").replace('name = "Acme Dental"\n', "")
    loads(text)       # replay, explain… need no name
    msg = problems(text, for_service=True)
    assert "'business.name' (line 2): missing or empty" in msg and 'name = "Acme Dental"' in msg
    msg = problems(BASE.format(line="").replace('"Acme Dental"', '"  "'), for_service=True)
    assert "'business.name' (line 3): missing or empty" in msg


def test_a_line_number_that_is_not_a_phone_number():
    msg = problems(BASE.format(line="").replace('number = "+15125550100"', 'number = "main office"'))
    assert "'line[0].number' (line 10): 'main office' is not a phone number" in msg
    assert '"+15125550100"' in msg
    cfg = loads(BASE.format(line="").replace('"+15125550100"\nname', '"(512) 555-0100"\nname'))
    assert cfg.line[0].number == "(512) 555-0100"


def test_an_impossible_holiday():
    msg = problems(BASE.format(line='[line.hours]\nmon = ["08:00-17:00"]\nholidays = ["2026-13-25"]'))
    assert "'line[0].hours.holidays' (line 14): '2026-13-25' is not YYYY-MM-DD" in msg


def test_an_overnight_span_is_refused_with_the_split_to_write():
    msg = problems(BASE.format(line='[line.hours]\nmon = ["17:00-08:00"]'))
    assert "'line[0].hours.mon' (line 13): '17:00-08:00' ends before it starts" in msg
    assert 'mon = ["17:00-24:00"]' in msg and '"00:00-08:00" on the following day' in msg
    cfg = loads(BASE.format(line='[line.hours]\nmon = ["17:00-24:00"]\ntue = ["00:00-08:00"]'))
    assert cfg.line[0].hours.mon == ("17:00-24:00",)


def test_an_empty_secret_file(tmp_path):
    f = tmp_path / "ami-secret"
    f.write_text("\n")
    msg = problems(BASE.format(line="").replace('secret = "s3cret"', f'secret_file = "{f}"'))
    assert f"'pbx.ami.secret_file' (line 7): {f} is empty" in msg


def test_a_missing_secret_is_refused_for_the_service():
    text = BASE.format(line="").replace('secret = "s3cret"', 'host = "127.0.0.1"')
    msg = problems(text, for_service=True)
    assert "'pbx.ami.secret' (line 6): missing" in msg and "secret_file" in msg
    fs = text.replace("[pbx.ami]", '[pbx]\ntype = "freeswitch"\n[pbx.esl]')
    assert "'pbx.esl.password'" in problems(fs, for_service=True)


def test_no_lines_and_the_log_transport_are_warned_when_running_for_real():
    text = '[business]\nname = "Acme"\n[pbx.ami]\nsecret = "x"\n'
    cfg = loads(text, for_service=True)
    joined = "\n".join(cfg.warnings)
    assert "no [[line]]" in joined and "'transport.type'" in joined and "nobody receives them" in joined
    assert loads(text).warnings == ()


# ---- finding 3: the example week, and closed weekdays said -----------------------------------
def test_the_example_config_is_open_on_weekdays_and_check_config_is_quiet_about_it(tmp_path):
    cfg = loads(example(tmp_path), for_service=True)
    h = cfg.line[0].hours
    assert all(getattr(h, d) for d in ("mon", "tue", "wed", "thu", "fri"))
    assert not any("closed all day" in w for w in cfg.warnings)
    text = render(cfg.line[0].templates["after-hours"], {**sample_vars("after-hours"),
                                                          "business": {"name": "Acme Dental", "phone": ""}})
    assert "(closed)" not in text


def test_a_line_left_closed_on_whole_weekdays_is_warned():
    cfg = loads(BASE.format(line='[line.hours]\nmon = ["08:00-17:00"]\ntue = ["08:00-17:00"]\nsun = []'))
    w = [w for w in cfg.warnings if "closed all day" in w]
    assert len(w) == 1 and "line +15125550100 (Main) is closed all day on Wed, Thu, Fri, Sat:" in w[0]
    assert "(line 12)" in w[0]


# ---- finding 6 and the one-segment texts -----------------------------------------------------
def test_lint_warnings_reach_the_config():
    cfg = loads(BASE.format(line='template = "Hi from {{ business.name }}: 20% off today! Reply STOP to opt out."'))
    assert any("'line[0].template' (line 12)" in w and "promotional" in w.lower() for w in cfg.warnings)


def test_builtin_texts_fit_one_segment():
    for tpl in (DEFAULT_TEMPLATE, FOLLOW_UP_TEMPLATE):
        for reason in ("after-hours", "no-answer", "voicemail"):
            text = render(tpl, {**sample_vars(reason),
                                "business": {"name": "Acme Dental and Orthodontics", "phone": "+15125550100"}})
            assert sms_info(text).segments == 1, text


def test_a_two_segment_template_is_warned_with_where_it_splits():
    long = ("Hi, this is {{ business.name }}. Sorry we missed your call - we are closed right now. "
            "Reply here and we will get back to you, or call us at +15125550100. Reply STOP to opt out.")
    cfg = loads(BASE.format(line=f'template = "{long}"'))
    w = [w for w in cfg.warnings if "segments" in w]
    assert len(w) == 1 and "'line[0].template' (line 12): needs 2 SMS segments" in w[0]
    assert "it splits after" in w[0] and '| "TOP to opt out.' in w[0] or '| "' in w[0]


# ---- quiet hours: 24:00 like line hours, "" documented -----------------------------------------
def test_quiet_hours_accept_24_00_and_say_how_to_turn_them_off():
    cfg = loads(BASE.format(line="") + '\n[compliance]\nquiet_hours = "00:00-24:00"\n')
    assert cfg.compliance.quiet_hours == "00:00-24:00"
    msg = problems(BASE.format(line="") + '\n[compliance]\nquiet_hours = "20:00-08:00"\n')
    assert '"" turns quiet hours off' in msg


def test_00_to_24_quiet_hours_allow_a_text_at_23_59():
    from datetime import datetime
    from zoneinfo import ZoneInfo
    from pbx_textback.core.policy.quiet import QuietHours, inside
    late = datetime(2026, 11, 26, 23, 59, tzinfo=ZoneInfo("America/Chicago")).timestamp()
    assert inside(late, "America/Chicago", QuietHours("00:00", "24:00"))
