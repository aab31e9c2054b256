"""What the admin pages may change, and how page values sit on top of the TOML file. Pure: no
store, no clock (store/settings.py keeps the values and their history).

A page setting has a key shaped like the file's own: `business.name`, `line[+15125550100].template`,
`line[+15125550100].hours.mon`. Its value overrides the file's. The merge happens on the parsed
TOML (before the config is built), so a page value passes exactly the checks a file value does.
Lines are matched by their `number`; the file decides which lines exist.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re

from pbx_textback.core.model import MISSED_REASONS

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BUSINESS_KEYS = {"name": str, "phone": str}
LINE_KEYS = {"name": str, "enabled": bool, "template": str, "follow_up_template": str,
             "delay_seconds": float, "quiet_hours": str}
INFRASTRUCTURE = ("pbx", "transport", "store", "web", "smtp", "features")
_LINE = re.compile(r"^line\[([^\]]+)\]\.(.+)$")


class SettingRefused(ValueError):
    """A key the page may not set, or a value of the wrong kind: the message says which."""


def parse_key(key: str) -> tuple:
    """'line[+1512…].hours.mon' -> ('line', '+1512…', 'hours', 'mon'); refuses what the page
    may not set, infrastructure first (it needs a restart and belongs to config management)."""
    head = key.split(".", 1)[0].split("[", 1)[0]
    if head in INFRASTRUCTURE:
        raise SettingRefused(f"{key}: the PBX, transports, store and listeners stay in the TOML file "
                             "(edit it, then `systemctl reload pbx-textback`)")
    if head == "business":
        rest = key.partition(".")[2]
        if rest in BUSINESS_KEYS:
            return ("business", rest)
    m = _LINE.match(key)
    if m:
        number, rest = m.groups()
        parts = tuple(rest.split("."))
        if (len(parts) == 1 and parts[0] in LINE_KEYS) or \
                (len(parts) == 2 and parts[0] == "templates" and parts[1] in MISSED_REASONS) or \
                (len(parts) == 2 and parts[0] == "hours" and parts[1] in DAYS + ("holidays",)):
            return ("line", number) + parts
    raise SettingRefused(f"{key}: not a setting the page can change")


def check_value(key: str, value):
    """The value in the type the file would hold, or SettingRefused."""
    path = parse_key(key)
    if value is None:
        return None
    if path[0] == "business":
        want = BUSINESS_KEYS[path[1]]
    elif path[2] in ("templates",):
        want = str
    elif path[2] == "hours":
        want = list
    else:
        want = LINE_KEYS[path[2]]
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is list:
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise SettingRefused(f"{key}: expected a list of texts")
    elif not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
        raise SettingRefused(f"{key}: expected {'a number' if want is float else want.__name__}")
    return value


def line_key(number: str, *rest: str) -> str:
    return f"line[{number}]." + ".".join(rest)


def merge(data: dict, overrides: dict) -> tuple[dict, list[str]]:
    """The file's parsed TOML with the page's values on top -> (new data, keys that matched no
    line of the file). The input is left as it was."""
    out = copy.deepcopy(data)
    unmatched = []
    for key in sorted(overrides):
        value = overrides[key]
        path = parse_key(key)
        if path[0] == "business":
            table = out.setdefault("business", {})
            if isinstance(table, dict):
                table[path[1]] = copy.deepcopy(value)
            continue
        lines = out.get("line")
        line = next((ln for ln in lines if isinstance(ln, dict) and ln.get("number") == path[1]), None) \
            if isinstance(lines, list) else None
        if line is None:
            unmatched.append(key)
            continue
        table = line
        for part in path[2:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                break
        else:
            table[path[-1]] = copy.deepcopy(value)
    return out, unmatched


def file_value(data: dict, key: str):
    """The file's own value for a key (None: the file does not set it)."""
    path = parse_key(key)
    if path[0] == "business":
        b = data.get("business")
        return b.get(path[1]) if isinstance(b, dict) else None
    lines = data.get("line") if isinstance(data.get("line"), list) else []
    node = next((ln for ln in lines if isinstance(ln, dict) and ln.get("number") == path[1]), None)
    for part in path[2:]:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def template_version(source: str) -> str:
    """A template's short fingerprint: stored with each decision, so `explain` can say which
    text (the file's, or which page change) wrote the message."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def encode(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def decode(text: str | None):
    return None if text is None else json.loads(text)


# ---- TOML out ------------------------------------------------------------------------------
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _str(s: str) -> str:
    """A TOML basic string: quotes, backslashes and every control character escaped."""
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c
                         for c in s) + '"'


def _k(key: str) -> str:
    return key if _BARE.fullmatch(key) else _str(key)


def _v(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_v(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_k(k)} = {_v(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dump_toml(data: dict) -> str:
    """A TOML document for plain data (tables, arrays of tables, strings, numbers, booleans)."""
    out: list[str] = []

    def table(d: dict, name: str, header: str | None, always: bool = False) -> None:
        plain = {k: v for k, v in d.items() if not _is_table(v) and not _is_table_array(v)}
        if header is not None and (plain or not d or always):
            out.append(header)
        out.extend(f"{_k(k)} = {_v(v)}" for k, v in plain.items())
        if plain or header is not None:
            out.append("")
        for k, v in d.items():
            sub = f"{name}.{_k(k)}" if name else _k(k)
            if _is_table(v):
                table(v, sub, f"[{sub}]")
            elif _is_table_array(v):
                for item in v:
                    table(item, sub, f"[[{sub}]]", always=True)
    table(data, "", None)
    return "\n".join(out).strip() + "\n"


def _is_table(v) -> bool:
    return isinstance(v, dict)


def _is_table_array(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def overrides_as_toml(overrides: dict) -> str:
    """The page's values shaped like the config file: [business] keys, and one [[line]] per
    line with its `number` and the changed keys (to copy into the file by hand or by config
    management; lines are matched by number)."""
    doc: dict = {}
    lines: dict[str, dict] = {}
    for key in sorted(overrides):
        path = parse_key(key)
        if path[0] == "business":
            doc.setdefault("business", {})[path[1]] = overrides[key]
            continue
        table = lines.setdefault(path[1], {"number": path[1]})
        for part in path[2:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = overrides[key]
    if lines:
        doc["line"] = list(lines.values())
    return dump_toml(doc) if doc else ""
