"""Template lint, with a simple stand-in renderer (the lead passes the real one)."""
import re

import pytest

from pbx_textback.core.text.lint import LintIssue, lint_template, template_variables

VARS = {"business.name": "Acme Dental", "business.phone": "+15125550100", "line.name": "Main",
        "caller.name": "Jane", "hours": "Mon-Fri 8-5", "calls_missed": "1", "reason_text": "rang"}


def render(source: str) -> str:
    """Stand-in: replaces {{ var }} with VARS, drops tags; raises on an unknown variable."""
    def sub(m):
        name = m.group(1).split("|")[0].strip()
        if name not in VARS:
            raise ValueError(f"undefined {name}")
        return VARS[name]
    out = re.sub(r"\{\{\s*(.*?)\s*\}\}", sub, re.sub(r"\{%.*?%\}", "", source))
    return " ".join(out.split())


GOOD = "{{ business.name }}: sorry we missed your call. Reply here or call {{ business.phone }}. Reply STOP to opt out."


def codes(issues):
    return {(i.level, i.code) for i in issues}


def lint(src, **kw):
    kw.setdefault("render", render)
    kw.setdefault("business_name", "Acme Dental")
    return lint_template(src, **kw)


def test_good_template_is_clean():
    assert lint(GOOD) == []
    assert lint(GOOD, hipaa=True) == []


def test_must_name_the_business():
    src = "Sorry we missed your call. Reply STOP to opt out."
    assert ("error", "business-name") in codes(lint(src))
    assert ("error", "business-name") in codes(lint(src, business_name=None))     # static check
    assert lint(GOOD, business_name=None) == []
    assert lint("ACME DENTAL here. Reply STOP to opt out.") == []                 # any case


@pytest.mark.parametrize("tail", ["Reply STOP to opt out.", "Text STOP to unsubscribe", "Reply 'stop' to end",
                                  "Txt END to quit", "Responda ALTO para darse de baja", "STOP to opt out"])
def test_opt_out_language_variants(tail):
    assert lint("{{ business.name }}: we missed you. " + tail) == []


def test_first_contact_needs_opt_out_language_configurable():
    src = "{{ business.name }}: sorry we missed your call."
    assert ("error", "opt-out") in codes(lint(src))
    assert lint(src, first_contact=False) == []
    assert lint(src + " Send NOMORE to leave.", opt_out_patterns=[r"\bsend nomore\b"]) == []


def test_promotional_wording_warns_in_transactional_templates():
    src = GOOD + " This week only: 20% off cleanings, limited time deal!"
    issues = lint(src)
    assert ("warning", "promotional") in codes(issues)
    msg = next(i.message for i in issues if i.code == "promotional")
    assert "% off" in msg and "limited time" in msg and "deal" in msg
    assert lint(src, transactional=False) == []


@pytest.mark.parametrize("ok_text", ["Feel free to reply here.", "Call our toll-free line.",
                                     "Our sales team will call you back.", "We will deal with it today."])
def test_ordinary_words_are_not_promotional(ok_text):
    assert lint(GOOD + " " + ok_text) == []


def test_promo_in_an_unrendered_branch_still_warns():
    src = GOOD + "{% if reason == 'x' %} Buy now!{% endif %}"
    assert ("warning", "promotional") in codes(lint(src, render=lambda s: render(GOOD)))


def test_hipaa_mode_refuses_free_text_variables():
    src = "Hi {{ caller.name }}, " + GOOD
    issues = lint(src, hipaa=True)
    assert ("error", "hipaa-variable") in codes(issues)
    assert "caller.name" in next(i.message for i in issues if i.code == "hipaa-variable")
    assert ("error", "hipaa-variable") in codes(lint(GOOD + " You {{ reason_text }}.", hipaa=True))
    assert ("error", "hipaa-variable") in codes(lint(GOOD + "{{ caller['name'] | upper }}", hipaa=True))
    assert lint(src) == []                                   # fine outside HIPAA mode
    allowed = GOOD + " Hours: {{ hours }}. Missed: {{ calls_missed }}."
    assert lint(allowed, hipaa=True) == []
    assert ("warning", "hipaa-line-name") in codes(lint(GOOD + " ({{ line.name }})", hipaa=True))


def test_template_variables():
    src = ("{% set greeting = 'Hi' %}{{ greeting }} {{ business.name }} {{ caller['name'] }}"
           "{% for x in [1] %}{{ loop.index }}{{ x }}{% endfor %}{{ hours|default('') }}")
    assert template_variables(src) == ["business.name", "caller.name", "hours"]


def test_syntax_and_render_errors():
    assert codes(lint("{{ business.name ")) == {("error", "syntax")}
    issues = lint("{{ business.name }} {{ nope }} Reply STOP to opt out.")
    assert ("error", "render") in codes(issues)
    assert issues[0].level == "error"


def test_several_rendered_texts_must_each_pass():
    texts = ["Acme Dental: missed you. Reply STOP to opt out.", "Acme Dental: we are closed."]
    assert ("error", "opt-out") in codes(lint("x", render=lambda s: texts))


def test_issue_to_dict():
    assert LintIssue("error", "opt-out", "m").to_dict() == {"level": "error", "code": "opt-out", "message": "m"}


def test_the_shipped_default_templates_pass():
    from pbx_textback.core.text.templates import DEFAULT_TEMPLATE, FOLLOW_UP_TEMPLATE, render as jrender, sample_vars
    from pbx_textback.core.model import MISSED_REASONS
    for src in (DEFAULT_TEMPLATE, FOLLOW_UP_TEMPLATE):
        many = lambda s: [jrender(s, sample_vars(r)) for r in MISSED_REASONS]   # noqa: E731
        assert lint_template(src, render=many, business_name="Acme", hipaa=True) == []


def test_a_long_run_of_digits_is_linted_in_linear_time():
    """The '% off' pattern tried every start inside a digit run: 15,000 digits took seconds in
    check-config (found by fuzzing the config loader)."""
    import time
    from pbx_textback.core.text.lint import lint_template
    t0 = time.process_time()
    lint_template("Hi " + "7" * 15000 + " there", render=lambda s: s, business_name="Acme")
    assert time.process_time() - t0 < 0.5
