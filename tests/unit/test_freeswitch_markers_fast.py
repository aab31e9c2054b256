"""The FreeSWITCH tracker reads its after-hours markers by lookup (variable markers by event
header: on_var_present; set/export data by key: on_set_indexed; playback paths by value:
on_play_indexed). Each marks a call exactly as reading every marker one by one does (the
plain readings below, kept here as the reference): same marks, same order, for any markers
(repeated headers, interleaved, duplicates) and any event."""
from hypothesis import given, settings, strategies as hs

from pbx_textback.core.model import Marker
from pbx_textback.core.pbx import freeswitch_markers as M
from pbx_textback.core.pbx.freeswitch import DEFAULT_MARKERS
from pbx_textback.core.pbx.freeswitch_call import FsCall


def on_var_keys(keys: tuple, call: FsCall, ev: dict) -> None:
    """Every variable marker in turn (keys: M.var_keys(markers))."""
    for header, value, m in keys:
        if ev.get(header) == value:
            M.mark(call, m)


def on_set(markers, call: FsCall, data: str) -> None:
    """Every marker in turn against each `k=v` of a set/export app's data."""
    parts = data[3:].split(data[2]) if data.startswith("^^") and len(data) > 2 else [data]
    for part in parts:
        k, sep, v = part.partition("=")
        if not sep:
            continue
        for m in markers:
            if m.kind == "variable" and m.key == k.strip() and m.value == v.strip():
                M.mark(call, m)


def on_play(markers, call: FsCall, path: str) -> None:
    """Every marker in turn against a played path, its file name and that without extension."""
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0]
    for m in markers:
        if m.kind == "playback" and m.value in (path, base, stem):
            M.mark(call, m)

_names = hs.sampled_from(["office_open", "after_hours", "x", "y"])
_vals = hs.sampled_from(["true", "false", "1", "", "TRUE"])
_marker = hs.builds(Marker, hs.just("variable"), _names, _vals, hs.booleans())
_event = hs.dictionaries(hs.sampled_from(["variable_office_open", "variable_after_hours",
                                          "variable_x", "variable_y", "Event-Name"]),
                         hs.one_of(_vals, hs.lists(_vals, max_size=2)), max_size=5)


def _marks(read, table, ev):
    call = FsCall("root")
    read(table, call, ev)
    return call.closed_marks, call.open_marks


def test_interleaved_headers_keep_the_markers_order():
    a1, b, a2 = (Marker("variable", "a", "1", True), Marker("variable", "b", "1", True),
                 Marker("variable", "a", "2", True))
    keys = M.var_keys([a1, b, a2])
    ev = {"variable_a": "2", "variable_b": "1"}
    table = dict(M.by_header(keys))
    for present in (["variable_a", "variable_b"], ["variable_b", "variable_a"]):
        assert _marks(lambda t, c, e: M.on_var_present(t, present, c, e), table, ev)[0] == ["b=1", "a=2"]
    assert _marks(on_var_keys, keys, ev)[0] == ["b=1", "a=2"]


@settings(max_examples=400, deadline=None)
@given(hs.one_of(hs.lists(_marker, max_size=8), hs.just(list(DEFAULT_MARKERS))), _event)
def test_present_headers_only_marks_as_one_per_marker(markers, ev):
    # what the tracker does: only the marker headers the event has, in a set's order
    keys = M.var_keys(markers)
    table = dict(M.by_header(keys))
    present = ev.keys() & set(table)
    assert _marks(lambda t, c, e: M.on_var_present(t, present, c, e), table, ev) \
        == _marks(on_var_keys, keys, ev)


# set/export data and playback paths, read by key / by value (set_index, play_index), mark a
# call as reading every marker does (on_set, on_play)
_any_marker = hs.builds(Marker, hs.sampled_from(["variable", "playback", "destination"]),
                        _names, hs.sampled_from(["true", "1", "closed", "closed.wav", "a/closed",
                                                 "x\\\\closed.wav", ""]), hs.booleans())
_set_data = hs.lists(hs.tuples(hs.sampled_from(["office_open", " after_hours ", "x", "y", ""]),
                               hs.sampled_from(["=", "", "=="]),
                               hs.sampled_from(["true", " 1", "false ", "", "closed"])),
                     max_size=4).flatmap(lambda parts: hs.sampled_from([
                         "|".join(k + s + v for k, s, v in parts),
                         "^^|" + "|".join(k + s + v for k, s, v in parts),
                         "^^" + "".join(k + s + v for k, s, v in parts)]))
_path = hs.lists(hs.sampled_from(["closed", ".wav", "/", "\\", "a", "closed.wav", "."]),
                 max_size=5).map("".join)
_markers = hs.one_of(hs.lists(_any_marker, max_size=10), hs.just(list(DEFAULT_MARKERS)))


@settings(max_examples=400, deadline=None)
@given(_markers, _set_data)
def test_set_by_key_marks_as_every_marker(markers, data):
    assert _marks(M.on_set_indexed, M.set_index(markers), data) == \
        _marks(on_set, markers, data)


@settings(max_examples=400, deadline=None)
@given(_markers, _path)
def test_play_by_value_marks_as_every_marker(markers, path):
    assert _marks(M.on_play_indexed, M.play_index(markers), path) == \
        _marks(on_play, markers, path)
