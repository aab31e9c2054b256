"""Template lint, run when a template is loaded or saved. Pure (rendering is passed in).

Codes (level):
- syntax (error): the template does not parse.
- render (error): the render function raised.
- business-name (error): the rendered text does not name the business.
- opt-out (error on first contact): no "Reply STOP to opt out" or equivalent instruction.
- promotional (warning): promotional wording in a transactional template (it would make the
  text marketing, which needs prior express WRITTEN consent; a missed call is not that).
- hipaa-variable (error, HIPAA mode): a variable outside HIPAA_ALLOWED. Caller name, caller
  number, reason_text and anything free-text could tie the recipient to a health service.
  Allowed: business.*, line.*, hours, calls_missed — values the business itself sets or counts —
  plus reason and voicemail_left, closed sets of values fixed by the code (not free text).
- hipaa-line-name (warning, HIPAA mode): line.name is admin free text; it must not name a
  treatment or department ("Oncology desk").
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from jinja2 import Environment, TemplateSyntaxError, nodes

ERROR, WARNING = "error", "warning"

HIPAA_ALLOWED = ("business.*", "line.*", "hours", "calls_missed", "reason", "voicemail_left")

# An instruction to reply with an opt-out keyword; matched on the rendered text, any case.
OPT_OUT_PATTERNS: tuple[str, ...] = (
    r"\b(?:reply|text|txt|send|respond(?: with)?|msg)\s+[\"'“‘]?(?:stop|end|quit|cancel|"
    r"unsubscribe|stopall|opt[- ]?out)\b",
    r"\b(?:responda|responde|envie|envía|envíe|escriba|escribe)\s+[\"'“‘]?(?:stop|alto|baja|parar)\b",
    r"\b(?:stop|alto)\s+(?:to|para)\s+(?:opt|unsubscribe|cancel|end|quit|darse|dejar|cancelar|no\s+recibir)",
)

# Promotional wording (CTIA: marketing content in a conversational/transactional message).
# (pattern, what it is). Exceptions for common non-promotional uses are in the patterns.
PROMO_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\bsales?\b(?!\s+(?:team|department|dept|rep|representative|office|tax))", "sale"),
    (r"(?<!\d)\d+\s*%\s*off\b|\b\d+\s*percent\s+off\b", "% off"),
    (r"\bdiscounts?\b|\bdiscounted\b", "discount"),
    (r"\bdeals?\b(?!\s+with)", "deal"),
    (r"(?<!feel\s)(?<!toll[\s-])\bfree\b(?![\s-]+(?:to|of\s+charge\s+to\s+call))", "free"),
    (r"\blimited[\s-]+time\b", "limited time"),
    (r"\bpromo(?:tion|tional)?s?\b|\bpromo\s*code\b", "promo"),
    (r"\bbuy\s+now\b|\bshop\s+now\b|\border\s+now\b|\bact\s+now\b", "buy now"),
    (r"\bcoupons?\b|\bvouchers?\b", "coupon"),
    (r"\bspecial\s+offers?\b|\bexclusive\s+offers?\b|\boffer\s+ends\b", "special offer"),
    (r"\bclearance\b|\bblack\s+friday\b|\bcyber\s+monday\b", "sale event"),
    (r"\bsave\s+(?:\$|up\s+to|\d)", "save $"),
    (r"\bwin\b|\bgiveaway\b|\bsweepstakes?\b|\bprize\b", "contest"),
)


@dataclass(frozen=True)
class LintIssue:
    level: str          # error | warning
    code: str
    message: str

    def to_dict(self) -> dict:
        return {"level": self.level, "code": self.code, "message": self.message}


_parser = Environment()
_JINJA_GLOBALS = frozenset({"loop", "range", "dict", "lipsum", "cycler", "joiner", "namespace",
                            "super", "varargs", "kwargs", "caller_macro"})


def template_variables(source: str) -> list[str]:
    """Variables a template reads, dotted where accessed by attribute/constant key: ["business.name",
    "caller.name", "hours"]. Names the template sets itself (set, for, macros) are left out."""
    ast = _parser.parse(source)
    local = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")} | _JINJA_GLOBALS
    found: list[str] = []

    def visit(node, parent_is_attr=False):
        if isinstance(node, (nodes.Getattr, nodes.Getitem)):
            chain, base = [], node
            while isinstance(base, (nodes.Getattr, nodes.Getitem)):
                if isinstance(base, nodes.Getattr):
                    chain.append(base.attr)
                elif isinstance(base.arg, nodes.Const):
                    chain.append(str(base.arg.value))
                else:
                    chain.append("*")
                    visit(base.arg)
                base = base.node
            if isinstance(base, nodes.Name) and base.ctx == "load" and base.name not in local:
                found.append(".".join([base.name] + list(reversed(chain))[:1]))
            else:
                visit(base)
            return
        if isinstance(node, nodes.Name):
            if node.ctx == "load" and node.name not in local:
                found.append(node.name)
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(ast)
    return list(dict.fromkeys(found))


def _hipaa_ok(var: str, allowed: Iterable[str]) -> bool:
    for a in allowed:
        if a.endswith(".*"):
            if var == a[:-2] or var.startswith(a[:-1]):
                return True
        elif var == a:
            return True
    return False


def _literal_text(source: str) -> str:
    """The template's own words: tags, expressions and comments removed (every branch kept)."""
    s = re.sub(r"\{#.*?#\}", " ", source, flags=re.S)
    s = re.sub(r"\{%.*?%\}", " ", s, flags=re.S)
    return re.sub(r"\{\{.*?\}\}", " ", s, flags=re.S)


def lint_template(source: str, *, first_contact: bool = True, hipaa: bool = False,
                  transactional: bool = True, render: Callable[[str], str | Iterable[str]],
                  business_name: str | None = None,
                  opt_out_patterns: Iterable[str] = OPT_OUT_PATTERNS,
                  hipaa_allowed: Iterable[str] = HIPAA_ALLOWED) -> list[LintIssue]:
    """Issues, errors first. `render(source)` returns the text as it would be sent with sample
    values (or several texts, e.g. one per missed-call reason: each must pass).
    business_name: what the text must contain; None -> the template must use business.name."""
    issues: list[LintIssue] = []
    try:
        variables = template_variables(source)
    except TemplateSyntaxError as e:
        return [LintIssue(ERROR, "syntax", f"template syntax, line {e.lineno}: {e.message}")]

    texts: list[str] = []
    try:
        out = render(source)
        texts = [out] if isinstance(out, str) else [str(t) for t in out]
    except Exception as e:   # the lead's render raises TemplateError; anything else is a bug there
        issues.append(LintIssue(ERROR, "render", f"template cannot render: {e}"))

    def fold(s: str) -> str:
        return " ".join(s.casefold().split())

    if texts:
        if business_name:
            missing = [t for t in texts if fold(business_name) not in fold(t)]
            if missing:
                issues.append(LintIssue(ERROR, "business-name",
                                        f"the text does not name the business ({business_name!r}): "
                                        f"start with e.g. \"{{{{ business.name }}}}: ...\""))
        elif "business.name" not in variables and "business" not in variables:
            issues.append(LintIssue(ERROR, "business-name",
                                    "the template does not use {{ business.name }}: texts must name the business"))
        if first_contact:
            rx = [re.compile(p, re.I) for p in opt_out_patterns]
            if not all(any(r.search(t) for r in rx) for t in texts):
                issues.append(LintIssue(ERROR, "opt-out",
                                        "a first-contact text must say how to opt out, e.g. \"Reply STOP to opt out.\""))

    if transactional:
        words = _literal_text(source)
        hits = [label for pat, label in PROMO_PATTERNS if re.search(pat, words, re.I)]
        if hits:
            issues.append(LintIssue(WARNING, "promotional",
                                    f"promotional wording in a transactional text ({', '.join(hits)}): "
                                    "marketing texts need prior express written consent"))

    if hipaa:
        allowed = tuple(hipaa_allowed)
        for var in variables:
            if not _hipaa_ok(var, allowed):
                issues.append(LintIssue(ERROR, "hipaa-variable",
                                        f"HIPAA mode: {{{{ {var} }}}} could carry health information; "
                                        f"allowed: {', '.join(allowed)}"))
        if any(v == "line.name" or v == "line" for v in variables):
            issues.append(LintIssue(WARNING, "hipaa-line-name",
                                    "HIPAA mode: line.name is free text; make sure no line is named "
                                    "after a treatment or department"))

    return sorted(issues, key=lambda i: i.level != ERROR)
