"""After-hours markers on a FreeSWITCH call: the variables, prompts and destinations a dialplan
uses to route a call as closed (or open). Pure: each function notes what it matched on the call."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pbx_textback.core.model import Marker

if TYPE_CHECKING:
    from pbx_textback.core.pbx.freeswitch_call import FsCall


def set_index(markers) -> dict:
    """The variable markers by key, in order, for on_set_indexed: FusionPBX dialplans run
    many set/export apps per call, each read against a few markers, not every one."""
    table: dict[str, list] = {}
    for m in markers:
        if m.kind == "variable":
            table.setdefault(m.key, []).append(m)
    return {k: tuple(ms) for k, ms in table.items()}


def on_set_indexed(index: dict, call: FsCall, data: str) -> None:
    """The variable markers a set/export app's data matches (`k=v`, or `^^<sep>k=v<sep>...`),
    read by key through set_index(markers), marked in the markers' order."""
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
    """The playback markers a path matches (the whole path, its file name, or that without
    its extension), read by value through play_index(markers), marked in the markers' order."""
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0]
    hits = index.get(path, ())
    if base != path:
        hits += index.get(base, ())
    if stem != base and stem != path:
        hits += index.get(stem, ())
    for _, m in (sorted(hits, key=_first) if len(hits) > 1 else hits):
        mark(call, m)


def var_keys(markers) -> tuple:
    """The variable markers as (event header, value, marker), in order: made once per
    tracker, so each channel event costs one lookup per marker and no string building."""
    return tuple(("variable_" + m.key, m.value, m) for m in markers if m.kind == "variable")


def by_header(keys: tuple) -> tuple:
    """var_keys grouped by header for on_var_present: (header, {value: ((index, marker),
    ...)}), each header once, in order of first use."""
    table: dict[str, dict[str, list]] = {}
    for i, (header, value, m) in enumerate(keys):
        table.setdefault(header, {}).setdefault(value, []).append((i, m))
    return tuple((h, {v: tuple(ms) for v, ms in vals.items()}) for h, vals in table.items())


def on_var_present(by_header: dict, present, call: FsCall, ev: dict) -> None:
    """The variable markers an event matches, read for the headers `present` (in any order)
    of dict(by_header(...)), one lookup per header, not one per marker (the default markers
    read ten headers with two values each); the hits are sorted by marker index, so the
    marks come in the markers' order."""
    hits = None
    done = call.var_hits
    for header in present:
        v = ev[header]
        if v.__class__ is str:
            found = by_header[header].get(v)
            if found and id(found) not in done:      # marked already: it would change nothing
                if hits is None:
                    hits, fresh = found, [found]
                else:
                    hits += found
                    fresh.append(found)
    if hits:
        for _, m in (sorted(hits, key=_first) if len(hits) > 1 else hits):
            mark(call, m)
        for found in fresh:
            done[id(found)] = found


def _first(pair):
    return pair[0]


def on_dest(markers, call: FsCall, ev: dict) -> None:
    dest = ev.get("Caller-Destination-Number")
    if not dest:
        return
    for m in markers:
        if m.kind == "destination" and m.value == dest and (
                not m.key or m.key == ev.get("Caller-Context")):
            mark(call, m)


# a marker's words, made once (a set variable re-marks its call on every later event of the
# channel), by the marker's id: hashing a Marker (a frozen dataclass) runs Python code for
# each of its fields, on every mark. The entry holds the marker, so its id is not reused.
_DESCRIBED: dict[int, tuple[Marker, str]] = {}


def mark(call: FsCall, m: Marker) -> None:
    known = _DESCRIBED.get(id(m))
    if known is None or known[0] is not m:
        if len(_DESCRIBED) >= 1024:
            _DESCRIBED.clear()
        known = _DESCRIBED[id(m)] = (m, m.describe())
    d = known[1]
    lst = call.closed_marks if m.closed else call.open_marks
    if d not in lst:
        lst.append(d)
