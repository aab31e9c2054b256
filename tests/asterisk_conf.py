"""A small parser of Asterisk's extensions.conf syntax, for checking our dialplan snippets
(no Asterisk installs here). Follows pbx_config's rules:

- `;` starts a comment unless escaped `\\;`; `;--` ... `--;` is a block comment (may span lines);
- `[name]`, `[name](+)`, `[name](!)`, `[name](template)` open a context; repeating a name
  appends to it (pbx_config finds-or-creates contexts);
- `exten => ext,prio[(label)],App(args)`, `same => prio[(label)],App(args)`, `include => ctx`;
  prio is a number, `n`, or `hint`; `exten => ext/cid,...` is kept as ext;
- `#include` / `#exec` lines are recorded; `key = value` lines (general, globals) are kept;
- Asterisk has no line continuation: a trailing backslash is reported as an error.

Also a minimal evaluator for `${VAR}`, `$["a" = "b"]` and `${IF(c?x:y)}`, enough to produce the
values a snippet's UserEvent carries.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class ConfError(ValueError):
    pass


@dataclass
class Step:
    exten: str
    prio: int
    label: str
    app: str
    args: str
    line: int


@dataclass
class Context:
    name: str
    extens: dict[str, list[Step]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    settings: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Conf:
    contexts: dict[str, Context] = field(default_factory=dict)
    file_includes: list[str] = field(default_factory=list)

    def steps(self):
        for ctx in self.contexts.values():
            for steps in ctx.extens.values():
                for s in steps:
                    yield ctx, s


_CTX = re.compile(r"^\[([^\]]+)\](\([^)]*\))?\s*$")
_PRIO = re.compile(r"^(n|\d+|hint)(?:\(([A-Za-z0-9_-]+)\))?$")


def _strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if c == ";":
            break
        out.append(c)
        i += 1
    return "".join(out).rstrip()


def split_args(s: str, sep: str = ",") -> list[str]:
    """Split at top-level `sep`, respecting (), ${}, $[] and double quotes."""
    parts, depth, cur, quoted = [], 0, [], False
    for c in s:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in "([{":
            depth += 1
        elif not quoted and c in ")]}":
            depth -= 1
        if c == sep and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _app(text: str, lineno: int) -> tuple[str, str]:
    text = text.strip()
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?$", text, re.S)
    if not m:
        raise ConfError(f"line {lineno}: not an application call: {text!r}")
    args = m.group(2) or ""
    if args.count("(") != args.count(")"):
        raise ConfError(f"line {lineno}: unbalanced parentheses in {text!r}")
    return m.group(1), args


def parse(text: str) -> Conf:
    conf = Conf()
    ctx: Context | None = None
    last: tuple[str, int] | None = None          # (exten, prio) of the previous step
    in_block = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw
        if in_block:
            end = line.find("--;")
            if end < 0:
                continue
            line = line[end + 3:]
            in_block = False
        while ";--" in line:
            start = line.index(";--")
            end = line.find("--;", start + 3)
            if end < 0:
                line = line[:start]
                in_block = True
                break
            line = line[:start] + line[end + 3:]
        line = _strip_comment(line).strip()
        if not line:
            continue
        if line.endswith("\\"):
            raise ConfError(f"line {lineno}: Asterisk has no line continuation")
        if line.startswith("#"):
            kw, _, rest = line.partition(" ")
            if kw not in ("#include", "#exec", "#tryinclude"):
                raise ConfError(f"line {lineno}: unknown directive {kw}")
            conf.file_includes.append(rest.strip().strip('"'))
            continue
        m = _CTX.match(line)
        if m:
            name = m.group(1).strip()
            ctx = conf.contexts.setdefault(name, Context(name))
            last = None
            continue
        if ctx is None:
            raise ConfError(f"line {lineno}: outside any [context]")
        key, sep, value = line.partition("=>")
        if not sep:
            k, sep2, v = line.partition("=")
            if not sep2:
                raise ConfError(f"line {lineno}: not `key => value` nor `key = value`: {line!r}")
            ctx.settings.append((k.strip(), v.strip()))
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "include":
            ctx.includes.append(value)
            continue
        if key == "exten":
            parts = value.split(",", 2)
            if len(parts) < 3:
                raise ConfError(f"line {lineno}: exten needs ext,prio,app")
            exten, prio_s, app_s = parts[0].strip().split("/")[0], parts[1].strip(), parts[2]
        elif key == "same":
            if last is None:
                raise ConfError(f"line {lineno}: `same =>` with no exten before it")
            parts = value.split(",", 1)
            if len(parts) < 2:
                raise ConfError(f"line {lineno}: same needs prio,app")
            exten, prio_s, app_s = last[0], parts[0].strip(), parts[1]
        else:
            raise ConfError(f"line {lineno}: unknown keyword {key!r}")
        pm = _PRIO.match(prio_s)
        if not pm:
            raise ConfError(f"line {lineno}: bad priority {prio_s!r}")
        steps = ctx.extens.setdefault(exten, [])
        if pm.group(1) == "hint":
            last = (exten, 0)
            continue
        if pm.group(1) == "n":
            if not steps or last is None or last[0] != exten:
                raise ConfError(f"line {lineno}: priority n for {exten} with no priority before it")
            prio = steps[-1].prio + 1
        else:
            prio = int(pm.group(1))
        if not steps and prio != 1:
            raise ConfError(f"line {lineno}: {exten}@{ctx.name} does not start at priority 1")
        if any(s.prio == prio for s in steps):
            raise ConfError(f"line {lineno}: {exten}@{ctx.name} priority {prio} twice")
        if steps and prio < steps[-1].prio:
            raise ConfError(f"line {lineno}: {exten}@{ctx.name} priority {prio} goes backwards")
        label = pm.group(2) or ""
        if label and any(s.label == label for s in steps):
            raise ConfError(f"line {lineno}: label {label} twice in {exten}@{ctx.name}")
        app, args = _app(app_s, lineno)
        steps.append(Step(exten, prio, label, app, args, lineno))
        last = (exten, prio)
    if in_block:
        raise ConfError("unterminated ;-- block comment")
    return conf


def parse_file(path) -> Conf:
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def merge(*confs: Conf) -> Conf:
    out = Conf()
    for c in confs:
        out.file_includes += c.file_includes
        for name, ctx in c.contexts.items():
            mine = out.contexts.setdefault(name, Context(name))
            mine.includes += ctx.includes
            mine.settings += ctx.settings
            for ext, steps in ctx.extens.items():
                if ext in mine.extens:
                    raise ConfError(f"{ext}@{name} defined twice")
                mine.extens[ext] = list(steps)
    return out


# ---- targets of Goto / Gosub / GotoIf / hangup handlers -----------------------------------------
def targets(step: Step) -> list[tuple[str, str, str]]:
    """(context, exten, priority-or-label) triples a step jumps to; '' = the current one."""
    out = []

    def loc(spec: str):
        spec = re.sub(r"\(.*\)$", "", spec.strip())        # Gosub(ctx,s,1(args))
        parts = [p.strip() for p in split_args(spec)]
        if len(parts) == 1:
            return ("", "", parts[0])
        if len(parts) == 2:
            return ("", parts[0], parts[1])
        return (parts[0], parts[1], parts[2])

    app = step.app.lower()
    if app in ("goto", "gosub"):
        out.append(loc(step.args))
    elif app in ("gotoif", "gosubif"):
        _, _, branches = step.args.rpartition("?")
        for b in split_args(branches, ":"):
            if b.strip():
                out.append(loc(b))
    elif app == "set":
        name, _, value = step.args.partition("=")
        if name.strip().upper() == "CHANNEL(HANGUP_HANDLER_PUSH)":
            out.append(loc(value))
    return out


# ---- a minimal evaluator --------------------------------------------------------------------------
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CMP = re.compile(r'\$\[\s*"([^"]*)"\s*(=|!=)\s*"([^"]*)"\s*\]')
_IF = re.compile(r"\$\{IF\(([01])\?([^:)]*):([^)]*)\)\}")


def evaluate(text: str, variables: dict[str, str]) -> str:
    text = _VAR.sub(lambda m: variables.get(m.group(1), ""), text)
    text = _CMP.sub(lambda m: "1" if (m.group(1) == m.group(3)) == (m.group(2) == "=") else "0", text)
    text = _IF.sub(lambda m: m.group(2) if m.group(1) == "1" else m.group(3), text)
    if "${" in text or "$[" in text:
        raise ConfError(f"cannot evaluate {text!r}")
    return text


def user_event(step: Step) -> tuple[str, list[tuple[str, str]]]:
    """UserEvent(name,Header: value,...) -> (name, [(header, value template)])."""
    assert step.app.lower() == "userevent", step
    parts = split_args(step.args)
    headers = []
    for p in parts[1:]:
        k, sep, v = p.partition(": ")
        if not sep:
            raise ConfError(f"line {step.line}: UserEvent body {p!r} is not `Header: value`")
        headers.append((k.strip(), v))
    return parts[0].strip(), headers


def pattern_matches(pattern: str, exten: str) -> bool:
    """Asterisk's extension patterns: `_` then X N Z [set] . ! ; else an exact name."""
    if not pattern.startswith("_"):
        return pattern == exten
    rx, i, p = "", 0, pattern[1:]
    while i < len(p):
        c = p[i]
        if c == "X":
            rx += "[0-9]"
        elif c == "Z":
            rx += "[1-9]"
        elif c == "N":
            rx += "[2-9]"
        elif c == ".":
            rx += ".+"
        elif c == "!":
            rx += ".*"
        elif c == "[":
            j = p.index("]", i)
            rx += "[" + p[i + 1:j].replace("\\", "\\\\") + "]"
            i = j
        else:
            rx += re.escape(c)
        i += 1
    return re.fullmatch(rx, exten) is not None


def find_exten(ctx: Context, exten: str) -> list[Step] | None:
    if exten in ctx.extens:
        return ctx.extens[exten]
    for pat, steps in ctx.extens.items():
        if pattern_matches(pat, exten):
            return steps
    return None
