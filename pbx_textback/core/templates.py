"""Message templates: Jinja2 in a sandbox with StrictUndefined.

A template that cannot render is an error when it is loaded, never a half-rendered text, so
every template is test-rendered against sample values for every reason at load time.
"""
from __future__ import annotations

from functools import lru_cache

from jinja2 import StrictUndefined, TemplateError as _JinjaError
from jinja2.sandbox import SandboxedEnvironment

from .model import MISSED_REASONS

REASON_TEXT = {
    "after-hours": "called while we were closed",
    "queue-abandon": "waited in our queue",
    "voicemail": "reached our voicemail",
    "busy": "got a busy line",
    "unavailable": "could not get through",
    "no-answer": "rang with no answer",
    "abandoned": "hung up before we answered",
}


DEFAULT_TEMPLATE = (
    "Hi, this is {{ business.name }}. Sorry we missed your call"
    "{% if reason == 'after-hours' %} - we are closed right now{% endif %}. "
    "Reply here and we will get back to you"
    "{% if business.phone %}, or call us at {{ business.phone }}{% endif %}. "
    "Reply STOP to opt out.")


FOLLOW_UP_TEMPLATE = (
    "Hi again from {{ business.name }}: we tried to reach you after your call. "
    "Reply here any time{% if business.phone %} or call {{ business.phone }}{% endif %}. "
    "Reply STOP to opt out.")


class TemplateError(ValueError):
    pass


_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                            trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=256)
def _compile(source: str):
    try:
        return _env.from_string(source)
    except _JinjaError as e:
        raise TemplateError(f"template syntax: {e}") from None


def variables(*, business_name: str, business_phone: str, line_number: str, line_name: str,
              caller_number: str, caller_name: str, reason: str, hours: str, calls_missed: int = 1,
              voicemail_left: bool = False) -> dict:
    """The one set of names every template may use (missed-call texts, follow-ups, the
    load-time check), so a template that passes the check renders when it is sent."""
    return {
        "business": {"name": business_name, "phone": business_phone},
        "line": {"number": line_number, "name": line_name},
        "caller": {"number": caller_number, "name": caller_name},
        "reason": reason, "reason_text": REASON_TEXT.get(reason, reason),
        "hours": hours, "calls_missed": calls_missed, "voicemail_left": bool(voicemail_left),
    }


def sample_vars(reason: str = "no-answer") -> dict:
    return variables(business_name="Acme", business_phone="+15125550100", line_number="+15125550100",
                     line_name="Main", caller_number="+15125550123", caller_name="Caller",
                     reason=reason, hours="Mon-Fri 08:00-17:00")


def render(source: str, variables: dict) -> str:
    try:
        text = _compile(source).render(**variables)
    except TemplateError:
        raise
    except _JinjaError as e:
        raise TemplateError(f"template cannot render: {e}") from None
    except Exception as e:   # sandbox violations and the like
        raise TemplateError(f"template cannot render: {e}") from None
    return " ".join(text.split())


def check_template(source: str) -> None:
    """Raise TemplateError unless the template renders to a non-empty text for every reason."""
    for reason in MISSED_REASONS:
        if not render(source, sample_vars(reason)):
            raise TemplateError(f"template renders to an empty text for reason {reason}")
