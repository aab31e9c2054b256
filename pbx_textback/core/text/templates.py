"""Message templates: Jinja2 in a sandbox with StrictUndefined.

A template that cannot render is an error when it is loaded, never a half-rendered text, so
every template is test-rendered against sample values for every reason at load time.
"""
from __future__ import annotations

from functools import lru_cache

from jinja2 import StrictUndefined, TemplateError as _JinjaError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from pbx_textback.core.model import MISSED_REASONS

REASON_TEXT = {
    "after-hours": "called while we were closed",
    "queue-abandon": "waited in our queue",
    "voicemail": "reached our voicemail",
    "busy": "got a busy line",
    "unavailable": "could not get through",
    "no-answer": "rang with no answer",
    "abandoned": "hung up before we answered",
}


# Built-in texts fit one GSM-7 segment (160) with a business name of up to ~30 characters.
DEFAULT_TEMPLATE = (
    "Hi, this is {{ business.name }}. Sorry we missed your call"
    "{% if reason == 'after-hours' %} - we are closed now{% endif %}. "
    "Reply here to reach us"
    "{% if business.phone %} or call {{ business.phone }}{% endif %}. "
    "Reply STOP to opt out.")


FOLLOW_UP_TEMPLATE = (
    "Hi again from {{ business.name }}: we tried to reach you after your call. "
    "Reply here any time{% if business.phone %} or call {{ business.phone }}{% endif %}. "
    "Reply STOP to opt out.")


class TemplateError(ValueError):
    pass


# A text is a few hundred characters. Bounding the template, every value an expression makes
# and the syntax (no loops, no macros: nothing repeats) bounds a render's time and memory, so
# an admin's typo or a pasted "range" bomb cannot stall or exhaust the service.
MAX_TEMPLATE = 2000      # characters of template source
MAX_VALUE = 2000         # characters (or items) any expression may produce; widths and counts too
_REFUSED = {nodes.For: "loops ({% for %})", nodes.Macro: "macros", nodes.CallBlock: "call blocks",
            nodes.FilterBlock: "filter blocks", nodes.Include: "include", nodes.Import: "import",
            nodes.FromImport: "import", nodes.Extends: "extends"}


def _too_big(v) -> bool:
    if isinstance(v, (str, bytes, list, tuple, dict, set)):
        return len(v) > MAX_VALUE
    if isinstance(v, int) and not isinstance(v, bool):
        return abs(v) > 10 ** 12
    return False


def _check_args(args, kwargs) -> None:
    for v in list(args) + list(kwargs.values()):
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_VALUE:
            raise SecurityError(f"a width or count of {v} is more than a text needs (at most {MAX_VALUE})")


def _checked(result):
    if _too_big(result):
        raise SecurityError(f"an expression makes a value longer than {MAX_VALUE}: not a text message")
    return result


class _TextEnvironment(SandboxedEnvironment):
    """The sandbox, with every operation that can multiply a value's size bounded."""
    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and (not isinstance(right, (int, float)) or abs(right) > 64):
            raise SecurityError("power too large for a text template")
        if operator == "*" and isinstance(right, int) and isinstance(left, (str, list, tuple)) \
                or operator == "*" and isinstance(left, int) and isinstance(right, (str, list, tuple)):
            seq, n = (left, right) if isinstance(right, int) else (right, left)
            if len(seq) * max(n, 0) > MAX_VALUE:
                raise SecurityError(f"repeating a value makes it longer than {MAX_VALUE}")
        if operator == "%" and isinstance(left, str):
            raise SecurityError("%-formatting is not available in text templates")
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj, *args, **kwargs):     # noqa: N805 (jinja's signature)
        if getattr(__obj, "__name__", "") in ("format", "format_map"):
            raise SecurityError("str.format is not available in text templates")
        _check_args(args, kwargs)
        return _checked(super().call(__context, __obj, *args, **kwargs))


def _bounded_filter(fn):
    def filt(*args, **kwargs):
        _check_args(args[1:], kwargs)       # args[0] is the value (or the context/env)
        return _checked(fn(*args, **kwargs))
    for attr in ("jinja_pass_arg",):        # keep @pass_context / @pass_environment
        if hasattr(fn, attr):
            setattr(filt, attr, getattr(fn, attr))
    return filt


_env = _TextEnvironment(undefined=StrictUndefined, autoescape=False,
                        trim_blocks=True, lstrip_blocks=True)
_env.filters = {name: _bounded_filter(fn) for name, fn in _env.filters.items() if name != "format"}
_env.globals = {}   # no range, lipsum, cycler…: nothing a text needs


@lru_cache(maxsize=256)
def _compile(source: str):
    if len(source) > MAX_TEMPLATE:
        raise TemplateError(f"template is {len(source)} characters; at most {MAX_TEMPLATE}")
    try:
        ast = _env.parse(source)
    except _JinjaError as e:
        raise TemplateError(f"template syntax: {e}") from None
    for kind, what in _REFUSED.items():
        if any(True for _ in ast.find_all(kind)):
            raise TemplateError(f"template uses {what}: a text template is plain text with "
                                "{{ variables }} and {% if %}")
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
    # every missed call renders its line's template, and most templates read only values that
    # are the same call after call (the business, the reason): the text rendered for the same
    # values of the names it reads is kept (~28 us a render -> a lookup; bounded)
    names = _reads(source)
    key = None
    if names is not None:
        try:
            key = (source, tuple(_frozen(variables.get(n, _ABSENT)) for n in names))
            text = _RENDERED.get(key)
        except TypeError:       # a value that cannot be a key: rendered each time
            key = text = None
        if text is not None:
            return text
    try:
        text = _compile(source).render(**variables)
    except TemplateError:
        raise
    except _JinjaError as e:
        raise TemplateError(f"template cannot render: {e}") from None
    except Exception as e:   # sandbox violations and the like
        raise TemplateError(f"template cannot render: {e}") from None
    text = " ".join(text.split())
    if key is not None:
        if len(_RENDERED) >= _RENDERED_MAX:
            _RENDERED.clear()
        _RENDERED[key] = text
    return text


_RENDERED: dict = {}          # (source, the values of the names it reads) -> the text
_RENDERED_MAX = 1024
_ABSENT = object()            # a name the variables lack: renders to an error, never kept


@lru_cache(maxsize=256)
def _reads(source: str) -> tuple[str, ...] | None:
    """The top-level names a template reads, in a fixed order; None when its text is not a
    function of their values alone (the `random` filter) or it does not compile."""
    try:
        _compile(source)                    # a template that does not compile is never kept
        ast = _env.parse(source)
    except (TemplateError, _JinjaError):
        return None
    if any(f.name == "random" for f in ast.find_all(nodes.Filter)):
        return None
    return tuple(sorted(meta.find_undeclared_variables(ast)))


def _frozen(value):
    """A value as part of a key: equal keys only for values that render alike (the type is
    part of it: True and 1, 1 and 1.0 print differently; a dict's order is kept)."""
    if isinstance(value, dict):
        return (dict, tuple((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_frozen(v) for v in value))
    hash(value)                   # TypeError for anything else unhashable
    return (type(value), value)


def check_template(source: str) -> None:
    """Raise TemplateError unless the template renders to a non-empty text for every reason."""
    for reason in MISSED_REASONS:
        if not render(source, sample_vars(reason)):
            raise TemplateError(f"template renders to an empty text for reason {reason}")
