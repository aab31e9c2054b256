"""Ownership rules applied when a missed call or a reply opens a conversation: the glue between
the pure rules (core/policy/ownership.py) and the store. Called by the pipeline's arrival hook
in the service, right after the call or reply is stored.

Which arrivals run the rules: a conversation nobody owns (new, or open and unassigned), and a
done one that the caller reopens. A snoozed conversation, or an open one with an owner, keeps
its owner: the owner is the last agent who answered, and a reply is the answer to them.
"""
from __future__ import annotations

import logging
import re

import phonenumbers
from phonenumbers import geocoder

from ..core.policy.ownership import Arrival, OwnerRule, pick_owner
from ..store import desk
from ..store import web as sw

log = logging.getLogger("pbx_textback.web")


def region_of(e164: str) -> str:
    """'US Texas', 'GB London': the country and the place libphonenumber names for the number."""
    try:
        n = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return ""
    return " ".join(p for p in (phonenumbers.region_code_for_number(n) or "",
                                geocoder.description_for_number(n, "en")) if p)


def rules_in_force(cfg, store) -> list[OwnerRule]:
    """The admin page's list when it set one, else the TOML's."""
    page = desk.owner_rules(store)
    return list(cfg.web.owner_rules) if page is None else page


def on_arrival(cfg, store, peer: str, line: str, queue: str, now: float) -> str:
    """Pick and store an owner for the conversation with `peer` if it needs one. Returns the
    owner it has afterwards ('' = unassigned), or '' without a look when there are no rules
    (nothing to pick: every missed call comes here while the inbox is served)."""
    rules = rules_in_force(cfg, store)
    if not rules:
        return ""
    found = desk.owner_of(store, peer)
    state, owner = found if found is not None else (sw.OPEN, "")
    if owner and state != sw.DONE:
        return owner
    from ..core.policy.decide import find_line
    ln = find_line(cfg, line) if line else None
    a = Arrival(caller=peer, line=line, campaign=(ln.name if ln is not None else ""), queue=queue,
                region=region_of(peer), previous_owner=owner or desk.last_agent_for(store, peer))
    agent, why = pick_owner(rules, a, desk.signed_in(store, now))
    if agent != owner:
        sw.set_owner(store, peer, agent, "rules", now)
    log.info("conversation owner %s: %s", agent or "none", why)
    return agent


_EXT = re.compile(r"(?:^|[/:])(\d{2,8})(?:[-@;/]|$)")


def extension_of(endpoint: str) -> str:
    """The desk phone's extension in what the PBX names: 'PJSIP/101-0000002a', 'SIP/101',
    'sofia/internal/101@pbx', '101' -> '101'; '' when none."""
    m = _EXT.search(endpoint or "")
    return m.group(1) if m else ""


def on_reached(store, peer: str, endpoint: str, now: float) -> str:
    """A call between the caller and an agent's desk phone (answered, or a call back): that
    agent owns the conversation now, the last who answered. Returns the agent ('' if none)."""
    ext = extension_of(endpoint)
    if not ext:
        return ""
    u = sw.WebUser.get_or_none((sw.WebUser.extension == ext) & (sw.WebUser.disabled == False))  # noqa: E712
    if u is None:
        return ""
    found = desk.owner_of(store, peer)
    if found is None or found[1] != u.name:
        sw.set_owner(store, peer, u.name, "call", now)
        log.info("conversation owner %s: talked to the caller on extension %s", u.name, ext)
    return u.name
