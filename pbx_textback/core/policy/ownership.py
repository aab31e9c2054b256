"""Who owns a new conversation: the admin's rules, in the admin's order. Pure.

A rule names an agent for conversations that match it: by the line the caller reached (the
DID), by territory (the caller's area code, or region), by campaign (the line's label), by
the queue the call reached, or sticky (the caller's previous owner). The first rule whose
agent is signed in wins; else the conversation stays unassigned and shows in Needs reply.
A rule that names an agent who is away is skipped, not waited for: a caller must not sit in
the inbox of someone who went home.
"""
from __future__ import annotations

from dataclasses import dataclass

BY = ("line", "territory", "campaign", "queue", "sticky")


@dataclass(frozen=True)
class OwnerRule:
    """`[[web.owner_rules]]` in the TOML, or a row the admin page keeps. `match` is one value
    or several separated by commas; sticky matches every caller who had an owner."""
    by: str
    agent: str = ""          # sticky: empty (the previous owner is the agent)
    match: str = ""

    def __post_init__(self):
        if self.by not in BY:
            raise ValueError(f"owner rule: by must be one of {', '.join(BY)}, not {self.by!r}")
        if self.by == "sticky":
            if self.agent or self.match:
                raise ValueError("owner rule by sticky takes no agent and no match: it names the previous owner")
        else:
            if not self.agent.strip():
                raise ValueError(f"owner rule by {self.by}: agent is missing")
            if not self.values():
                raise ValueError(f"owner rule by {self.by}: match is missing")

    def values(self) -> tuple[str, ...]:
        return tuple(v.strip() for v in self.match.split(",") if v.strip())

    def describe(self) -> str:
        if self.by == "sticky":
            return "sticky: the caller's previous owner"
        return f"by {self.by} {self.match} -> {self.agent}"


@dataclass(frozen=True)
class Arrival:
    """What is known of a conversation when a missed call or a reply opens it."""
    caller: str                  # E.164
    line: str = ""               # the DID called or written to, E.164
    campaign: str = ""           # the line's label (its name in the config)
    queue: str = ""              # the queue the call reached ('' for a text)
    region: str = ""             # the caller's region: ISO country and/or state words
    previous_owner: str = ""     # who last owned or answered this caller


def area_code(e164: str) -> str:
    """The NANP area code (+1 512 ... -> '512'); '' elsewhere."""
    return e164[2:5] if e164.startswith("+1") and len(e164) == 12 else ""


def matches(rule: OwnerRule, a: Arrival) -> bool:
    values = rule.values()
    if rule.by == "sticky":
        return bool(a.previous_owner)
    if rule.by == "line":
        digits = "".join(ch for ch in a.line if ch.isdigit())
        return any(v.lstrip("+") == digits and digits for v in values)
    if rule.by == "campaign":
        return any(v.casefold() == a.campaign.casefold() for v in values if a.campaign)
    if rule.by == "queue":
        return any(v.casefold() == a.queue.casefold() for v in values if a.queue)
    # territory: digits are a prefix of the caller's number after the country code on NANP
    # (an area code, '512'), else of the whole number ('+4420'); words are a region
    ac = area_code(a.caller)
    region = {w.casefold() for w in a.region.replace(",", " ").split()} | {a.region.casefold()}
    for v in values:
        if v.lstrip("+").isdigit():
            if (ac and ac.startswith(v) and not v.startswith("+")) or a.caller.startswith("+" + v.lstrip("+")):
                return True
        elif v.casefold() in region:
            return True
    return False


def pick_owner(rules: tuple[OwnerRule, ...] | list[OwnerRule], a: Arrival,
               signed_in: set[str] | frozenset[str]) -> tuple[str, str]:
    """(agent, why): the first matching rule whose agent is signed in; ('', why) when none."""
    skipped = []
    for i, rule in enumerate(rules, 1):
        if not matches(rule, a):
            continue
        agent = a.previous_owner if rule.by == "sticky" else rule.agent
        if agent in signed_in:
            return agent, f"rule {i} ({rule.describe()})"
        skipped.append(f"rule {i} names {agent}, who is not signed in")
    if skipped:
        return "", "unassigned: " + "; ".join(skipped)
    return "", "unassigned: no rule matches"
