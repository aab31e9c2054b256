"""The ESL child writes an event-json body to the parent as FreeSWITCH sent it (not parsed and
re-encoded): what the parent reads from that line, its values made strings, must be the
event the child's framing read, for every recorded event and for any JSON body the framing
accepts; a body that is not plainly safe on one line goes re-encoded."""
import asyncio
import json
from pathlib import Path

from hypothesis import given, settings, strategies as st

from pbx_textback.core.pbx.eslframe import CT_JSON, EslFraming
from pbx_textback.esl.child import _raw_line
from pbx_textback.esl.parent import EslChild
from pbx_textback.esl.replay_server import trace_frames

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"


def _frame(body: bytes) -> list[dict]:
    head = b"Content-Length: %d\nContent-Type: %s\n\n" % (len(body), CT_JSON.encode())
    return EslFraming().feed(head + body)


def _parent_reads(line: str) -> dict:
    """What the parent (EslChild._line) hands on for the line."""
    got = []
    parent = EslChild("127.0.0.1", 1, "x", on_event=got.append)
    asyncio.run(parent._line(line.encode("utf-8")))
    [ev] = got
    return ev


def test_every_recorded_json_event_reads_the_same_through_the_raw_line():
    n = 0
    for p in sorted(FIX.glob("*.json.esl")):
        for fr in trace_frames(p.read_bytes()):
            body = fr.split(b"\n\n", 1)[1]
            [want] = _frame(body)
            line = _raw_line(body)
            assert line is not None and line.endswith("}\n") and line.count("\n") == 1
            assert _parent_reads(line) == want
            n += 1
    assert n > 100


_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                      | st.text(max_size=6),
                      lambda kids: st.lists(kids, max_size=3)
                      | st.dictionaries(st.text(max_size=3), kids, max_size=3), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _value, max_size=5), st.booleans(),
       st.sampled_from(["", " ", "\n", "\ufeff", "  \t"]))
def test_any_accepted_json_body_reads_the_same_or_goes_re_encoded(obj, ascii_only, pad):
    obj = {"Event-Name": "CUSTOM", **obj}
    sep = (",", ":") if ascii_only else (", ", ": ")
    body = (pad + json.dumps(obj, ensure_ascii=ascii_only, separators=sep) + pad).encode()
    frames = _frame(body)
    line = _raw_line(body)
    if not frames:
        return                  # the framing dropped it: the child writes nothing
    if line is not None:
        assert line.count("\n") == 1
        assert _parent_reads(line) == frames[0]


def test_unsafe_bodies_go_re_encoded():
    deep = b'{"Event-Name":"X","v":' + b"[" * 70 + b"]" * 70 + b"}"
    assert _frame(deep)                          # the framing reads it ...
    assert _raw_line(deep) is None               # ... the line is not trusted with it
    assert _raw_line(b'{"Event-Name":"X",\n"a":"b"}') is None
    assert _raw_line('\ufeff{"Event-Name":"X"}'.encode()) is None
    assert _raw_line(b'{"Event-Name":"\xed\xa0\x80"}') is None     # a lone surrogate
