"""The FreeSWITCH tracker's shortcuts against the careful way, fact by fact: _vars_leg's test
for the headers most legs never have (skipped as a block when none is there) against reading
each one as before, for any event and any leg. (The link headers' one-pass test is held to
the careful way by test_freeswitch_joined_fast.py, which joins nothing.)"""
from __future__ import annotations

from dataclasses import asdict

from hypothesis import given, settings, strategies as hs

from pbx_textback.core.pbx.freeswitch import FreeswitchTracker
from pbx_textback.core.pbx.freeswitch_call import FsLeg

_HEADS = ["variable_sip_req_user", "variable_sip_to_user", "variable_user_name",
          "variable_sip_gateway_name", "variable_sip_gateway", "variable_sofia_profile_name",
          "Caller-Privacy-Hide-Number", "variable_sip_Privacy", "variable_privacy",
          "variable_loopback_leg", "Channel-Name"]
_VALUES = hs.sampled_from(["", "true", "false", "100", "gw1", "external", "A", "id", None])


def careful_vars_leg(leg: FsLeg, ev: dict) -> None:
    """_vars_leg as it was: every header looked up on every event."""
    g = ev.get
    if not leg.req_user:
        leg.req_user = g("variable_sip_req_user") or g("variable_sip_to_user") or ""
    if not leg.user_name:
        leg.user_name = g("variable_user_name") or ""
    if not leg.gateway:
        leg.gateway = g("variable_sip_gateway_name") or g("variable_sip_gateway") or ""
    if not leg.profile:
        leg.profile = g("variable_sofia_profile_name") or ""
    if g("Caller-Privacy-Hide-Number") == "true":
        leg.hide_number = True
    p = g("variable_sip_Privacy") or g("variable_privacy")
    if p:
        leg.privacy = p
    if not leg.loopback:
        leg.loopback = g("variable_loopback_leg") or ""


@settings(max_examples=500)
@given(hs.lists(hs.dictionaries(hs.sampled_from(_HEADS), _VALUES, max_size=6), max_size=4),
       hs.fixed_dictionaries({}, optional={
           "req_user": hs.just("9"), "user_name": hs.just("u"), "gateway": hs.just("g"),
           "profile": hs.just("p"), "privacy": hs.just("x"), "loopback": hs.just("B")}))
def test_the_leg_facts_are_read_as_before(events, start):
    fast, careful = FsLeg("a", **start), FsLeg("a", **start)
    for ev in events:
        FreeswitchTracker._vars_leg(fast, ev)
        careful_vars_leg(careful, ev)
        assert asdict(fast) == asdict(careful)
