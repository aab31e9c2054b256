"""After-hours markers on a FreeSWITCH call: the variables, prompts and destinations a dialplan
uses to route a call as closed (or open). Pure: each function notes what it matched on the call."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pbx_textback.core.model import Marker

if TYPE_CHECKING:
    from pbx_textback.core.pbx.freeswitch_call import FsCall


def on_set(markers, call: FsCall, data: str) -> None:
    if data.startswith("^^") and len(data) > 2:
        parts = data[3:].split(data[2])
    else:
        parts = [data]
    for part in parts:
        k, sep, v = part.partition("=")
        if not sep:
            continue
        k = k.strip()
        for m in markers:
            if m.kind == "variable" and m.key == k and m.value == v.strip():
                mark(call, m)


def set_index(markers) -> dict:
    """The variable markers by key, in order, for on_set_indexed: FusionPBX dialplans run
    many set/export apps per call, each read against a few markers, not every one."""
    table: dict[str, list] = {}
    for m in markers:
        if m.kind == "variable":
            table.setdefault(m.key, []).append(m)
    return {k: tuple(ms) for k, ms in table.items()}


def on_set_indexed(index: dict, call: FsCall, data: str) -> None:
    """on_set with set_index(markers): the same marks in the same order."""
    if data.startswith("^^") and len(data) > 2:
        parts = data[3:].split(data[2])
    else:
        parts = [data]
    for part in parts:
        k, sep, v = part.partition("=")
        if not sep:
            continue
        ms = index.get(k.strip())
        if ms:
            v = v.strip()
            for m in ms:
                if m.value == v:
                    mark(call, m)


def play_index(markers) -> dict:
    """The playback markers by value, as (index, marker), for on_play_indexed."""
    table: dict[str, list] = {}
    for i, m in enumerate(markers):
        if m.kind == "playback":
            table.setdefault(m.value, []).append((i, m))
    return {v: tuple(ms) for v, ms in table.items()}


def on_play_indexed(index: dict, call: FsCall, path: str) -> None:
    """on_play with play_index(markers): the same marks in the same order."""
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0]
    hits = index.get(path, ())
    if base != path:
        hits += index.get(base, ())
    if stem != base and stem != path:
        hits += index.get(stem, ())
    for _, m in (sorted(hits, key=_first) if len(hits) > 1 else hits):
        mark(call, m)


def on_vars(markers, call: FsCall, ev: dict) -> None:
    on_var_keys(var_keys(markers), call, ev)


def var_keys(markers) -> tuple:
    """The variable markers as (event header, value, marker), in order: made once per
    tracker, so each channel event costs one lookup per marker and no string building."""
    return tuple(("variable_" + m.key, m.value, m) for m in markers if m.kind == "variable")


def on_var_keys(keys: tuple, call: FsCall, ev: dict) -> None:
    get = ev.get
    for header, value, m in keys:
        if get(header) == value:
            mark(call, m)


def by_header(keys: tuple) -> tuple:
    """var_keys grouped for on_var_heads: (header, {value: ((index, marker), ...)}), each
    header once, in order of first use."""
    table: dict[str, dict[str, list]] = {}
    for i, (header, value, m) in enumerate(keys):
        table.setdefault(header, {}).setdefault(value, []).append((i, m))
    return tuple((h, {v: tuple(ms) for v, ms in vals.items()}) for h, vals in table.items())


def on_var_heads(heads: tuple, call: FsCall, ev: dict) -> None:
    """on_var_keys with one lookup per header, not one per marker (the default markers read
    ten headers with two values each), marking in the same order."""
    get = ev.get
    hits = None
    for header, by_value in heads:
        v = get(header)
        if v is not None and v.__class__ is str:
            found = by_value.get(v)
            if found:
                hits = found if hits is None else hits + found
    if hits:
        for _, m in (sorted(hits, key=_first) if len(hits) > 1 else hits):
            mark(call, m)


def on_var_present(by_header: dict, present, call: FsCall, ev: dict) -> None:
    """on_var_heads for the headers `present` (in any order) of dict(by_header(...)): the
    hits are sorted by marker index, so the marks come in the same order."""
    hits = None
    for header in present:
        v = ev[header]
        if v.__class__ is str:
            found = by_header[header].get(v)
            if found:
                hits = found if hits is None else hits + found
    if hits:
        for _, m in (sorted(hits, key=_first) if len(hits) > 1 else hits):
            mark(call, m)


def _first(pair):
    return pair[0]


def on_play(markers, call: FsCall, path: str) -> None:
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0]
    for m in markers:
        if m.kind == "playback" and m.value in (path, base, stem):
            mark(call, m)


def on_dest(markers, call: FsCall, ev: dict) -> None:
    dest = ev.get("Caller-Destination-Number")
    if not dest:
        return
    for m in markers:
        if m.kind == "destination" and m.value == dest and (
                not m.key or m.key == ev.get("Caller-Context")):
            mark(call, m)


_DESCRIBED: dict[Marker, str] = {}   # a marker's words, made once (a set variable re-marks
                                     # its call on every later event of the channel)


def mark(call: FsCall, m: Marker) -> None:
    d = _DESCRIBED.get(m)
    if d is None:
        if len(_DESCRIBED) >= 1024:
            _DESCRIBED.clear()
        d = _DESCRIBED[m] = m.describe()
    lst = call.closed_marks if m.closed else call.open_marks
    if d not in lst:
        lst.append(d)
