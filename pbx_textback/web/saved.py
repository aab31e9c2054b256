"""Saved replies: an agent's stock answers with variables ({{ caller.number }}, {{ business.name }},
{{ agent.name }}, ...), rendered by the same sandbox as the automated texts
(core/text/templates.py), so a saved reply can do no more than a line's template."""
from __future__ import annotations

from ..core.policy.decide import find_line, template_vars
from ..core.text.templates import TemplateError, render, sample_vars, variables

MAX_NAME = 60
MAX_BODY = 1600


def vars_for(cfg, peer: str, line: str, agent: str, reason: str, now: float) -> dict:
    ln = find_line(cfg, line) if line else None
    if ln is not None:
        v = template_vars(cfg, ln, caller=peer, caller_name="", reason=reason or "no-answer", at=now)
    else:
        v = variables(business_name=cfg.business.name, business_phone=cfg.business.phone, line_number=line,
                      line_name="", caller_number=peer, caller_name="", reason=reason or "no-answer", hours="")
    return {**v, "agent": {"name": agent}}


def check(name: str, body: str) -> str:
    """'' when the saved reply may be stored, else what is wrong, in words."""
    if not name.strip():
        return "Give the saved reply a name."
    if len(name) > MAX_NAME:
        return f"The name is {len(name)} characters; at most {MAX_NAME}."
    if not body.strip():
        return "The saved reply is empty."
    if len(body) > MAX_BODY:
        return f"The saved reply is {len(body)} characters; at most {MAX_BODY}."
    try:
        if not render(body, {**sample_vars(), "agent": {"name": "Sam"}}):
            return "The saved reply renders to an empty text."
    except TemplateError as e:
        return f"The saved reply cannot be used: {e}"
    return ""


def fill(cfg, body: str, peer: str, line: str, agent: str, reason: str, now: float) -> str:
    """The text for this caller (TemplateError when it cannot render)."""
    return render(body, vars_for(cfg, peer, line, agent, reason, now))
