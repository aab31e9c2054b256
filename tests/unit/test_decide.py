"""The decision: every check runs and says why; a text only when all pass."""
from dataclasses import replace

from pbx_textback.config import default_config, loads
from pbx_textback.core.policy.decide import Facts, decide
from pbx_textback.core.model import DIAL_NOANSWER, CallRecord

CFG = loads("""
[business]
name = "Acme Dental"
phone = "+15125550100"
[[line]]
number = "+15125550100"
name = "Main"
template = "Hi from {{ business.name }}, sorry we missed you ({{ reason }}). Reply STOP to opt out."
[line.templates]
voicemail = "Got your voicemail at {{ business.name }}{% if voicemail_left %} - thanks for the message{% endif %}. Reply STOP to opt out."
[[line]]
number = "+15125550120"
enabled = false
[[line]]
number = "+15125550130"
reasons = ["voicemail"]
""")

MISSED = CallRecord("asterisk", "1.1", "+15125550123", "+15125550100", "inbound",
                    dial_results=(DIAL_NOANSWER,))


def checks(v):
    return {c.name: (c.ok, c.detail) for c in v.decision.checks}


def test_missed_call_to_a_line_is_texted_with_its_template():
    v = decide(MISSED, CFG, now=1000.0)
    assert v.outcome.reason == "no-answer" and v.decision.action == "text"
    assert v.decision.to == "+15125550123" and v.decision.line == "+15125550100"
    assert v.decision.body == "Hi from Acme Dental, sorry we missed you (no-answer). Reply STOP to opt out."
    assert all(ok for ok, _ in checks(v).values())


def test_per_reason_template_and_voicemail_left():
    rec = replace(MISSED, voicemail=True, voicemail_left=True)
    v = decide(rec, CFG, now=1000.0)
    assert v.decision.body.startswith("Got your voicemail at Acme Dental - thanks for the message")


def test_answered_calls_are_never_texted():
    v = decide(replace(MISSED, answered_by_human=True, answered_by="100"), CFG, now=1000.0)
    assert v.outcome.missed is False and v.decision.action == "skip" and v.decision.body == ""


def test_withheld_number_is_skipped_as_anonymous_even_with_a_number():
    v = decide(replace(MISSED, withheld=True), CFG, now=1000.0)
    assert v.outcome.missed is True and v.decision.action == "skip"
    assert checks(v)["caller"] == (False, "anonymous: the caller withheld their number")


def test_absent_or_anonymous_caller_is_skipped():
    for raw in ("", "anonymous", "<unknown>"):
        v = decide(replace(MISSED, caller=raw), CFG, now=1000.0)
        assert v.decision.action == "skip" and checks(v)["caller"][1].startswith("anonymous")


def test_internal_extension_and_foreign_numbers_are_not_textable():
    v = decide(replace(MISSED, caller="101"), CFG, now=1000.0)
    assert checks(v)["caller"][1].startswith("internal")
    v = decide(replace(MISSED, caller="+447911123456"), CFG, now=1000.0)
    assert checks(v)["caller"][1].startswith("foreign")


def test_dedupe_one_text_per_caller_per_line_per_window():
    v = decide(MISSED, CFG, now=1000.0, facts=Facts(last_text_at=1000.0 - 3600))
    assert v.decision.action == "skip" and checks(v)["dedupe"][0] is False
    v = decide(MISSED, CFG, now=1000.0 + 25 * 3600, facts=Facts(last_text_at=1000.0))
    assert v.decision.action == "text"


def test_disabled_line_reason_off_and_unknown_line():
    v = decide(replace(MISSED, called="+15125550120"), CFG, now=1000.0)
    assert checks(v)["line-enabled"][0] is False and v.decision.action == "skip"
    v = decide(replace(MISSED, called="+15125550130"), CFG, now=1000.0)
    assert checks(v)["reason-enabled"] == (False, "texts for no-answer are off for this line")
    v = decide(replace(MISSED, called="+15125550199"), CFG, now=1000.0)
    assert checks(v)["line"][0] is False and v.decision.action == "skip"


def test_did_matches_in_any_format():
    v = decide(replace(MISSED, called="5125550100"), CFG, now=1000.0)
    assert v.decision.line == "+15125550100" and v.decision.action == "text"


def test_opted_out_and_extra_compliance_checks_block():
    from pbx_textback.core.policy.consent import ConsentEvent, consent_check
    opted_out = consent_check([ConsentEvent("opt-out", "+15125550123", 900.0, source="STOP")], "+15125550123")
    v = decide(MISSED, CFG, now=1000.0, facts=Facts(extra_checks=(opted_out,)))
    assert v.decision.action == "skip" and checks(v)["consent"][0] is False


def test_no_config_every_inbound_number_is_a_line():
    v = decide(MISSED, default_config(), now=None)
    assert v.decision.action == "text" and "every inbound number" in checks(v)["line"][1]
    assert "STOP" in v.decision.body


def test_outbound_and_internal_calls_never_decide_to_text():
    for d in ("outbound", "internal"):
        v = decide(replace(MISSED, direction=d), CFG, now=1000.0)
        assert v.outcome.missed is False and v.outcome.reason == d and v.decision.action == "skip"
