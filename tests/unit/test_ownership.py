"""Ownership rules for a new conversation: the admin's order, the first rule naming a signed-in
agent wins, else unassigned."""
import pytest
from hypothesis import given, settings, strategies as st

from pbx_textback.core.policy.ownership import Arrival, OwnerRule, matches, pick_owner

AUSTIN = Arrival(caller="+15125550177", line="+15125550140", campaign="Spring promo", queue="sales",
                 region="US Texas", previous_owner="joe")
RULES = [OwnerRule("line", "ana", "+15125550199"),           # another DID: no match
         OwnerRule("campaign", "maria", "spring promo"),
         OwnerRule("territory", "lee", "512"),
         OwnerRule("sticky")]


def test_the_first_matching_rule_with_a_signed_in_agent_wins():
    assert pick_owner(RULES, AUSTIN, {"maria", "lee", "joe"})[0] == "maria"
    agent, why = pick_owner(RULES, AUSTIN, {"lee", "joe"})
    assert agent == "lee" and why.startswith("rule 3")


def test_the_admins_order_decides_not_the_kind_of_rule():
    order = [RULES[3], RULES[2], RULES[1]]
    assert pick_owner(order, AUSTIN, {"maria", "lee", "joe"})[0] == "joe"     # sticky listed first


def test_nobody_signed_in_leaves_it_unassigned_and_says_why():
    agent, why = pick_owner(RULES, AUSTIN, {"ana"})
    assert agent == ""
    assert "rule 2 names maria, who is not signed in" in why and "rule 4 names joe" in why
    assert pick_owner([], AUSTIN, {"maria"}) == ("", "unassigned: no rule matches")


def test_sticky_needs_a_previous_owner():
    fresh = Arrival(caller="+15125550177")
    assert not matches(OwnerRule("sticky"), fresh)
    assert pick_owner([OwnerRule("sticky")], fresh, {"joe"})[0] == ""


@pytest.mark.parametrize("rule, hit", [
    (OwnerRule("line", "a", "+15125550140"), True), (OwnerRule("line", "a", "15125550140"), True),
    (OwnerRule("line", "a", "+15125550141, +15125550140"), True), (OwnerRule("line", "a", "+1512555014"), False),
    (OwnerRule("territory", "a", "512"), True), (OwnerRule("territory", "a", "737, 512"), True),
    (OwnerRule("territory", "a", "214"), False), (OwnerRule("territory", "a", "texas"), True),
    (OwnerRule("territory", "a", "US"), True), (OwnerRule("territory", "a", "GB"), False),
    (OwnerRule("territory", "a", "+1512"), True), (OwnerRule("territory", "a", "+44"), False),
    (OwnerRule("campaign", "a", "SPRING PROMO"), True), (OwnerRule("campaign", "a", "fall"), False),
    (OwnerRule("queue", "a", "Sales"), True), (OwnerRule("queue", "a", "support"), False),
])
def test_what_each_kind_of_rule_matches(rule, hit):
    assert matches(rule, AUSTIN) is hit


def test_a_text_has_no_queue_and_a_line_without_label_no_campaign():
    text = Arrival(caller="+15125550177", line="+15125550140")
    assert not matches(OwnerRule("queue", "a", "sales"), text)
    assert not matches(OwnerRule("campaign", "a", "spring"), text)


@pytest.mark.parametrize("kwargs, says", [
    ({"by": "colour", "agent": "a", "match": "x"}, "by must be one of"),
    ({"by": "line", "agent": "", "match": "+1512"}, "agent is missing"),
    ({"by": "queue", "agent": "a", "match": " , "}, "match is missing"),
    ({"by": "sticky", "agent": "a"}, "takes no agent"),
])
def test_a_bad_rule_is_refused_in_words(kwargs, says):
    with pytest.raises(ValueError, match=says):
        OwnerRule(**kwargs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(RULES), max_size=6), st.sets(st.sampled_from(["ana", "maria", "lee", "joe", "x"])))
def test_the_owner_is_always_a_signed_in_agent_or_nobody(rules, online):
    agent, why = pick_owner(rules, AUSTIN, online)
    assert agent == "" or agent in online
    assert why
    # and it is the first rule that matches with a signed-in agent
    first = next(((r.agent or AUSTIN.previous_owner) for r in rules if matches(r, AUSTIN)
                  and (r.agent or AUSTIN.previous_owner) in online), "")
    assert agent == first
