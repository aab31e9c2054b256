"""ESL framing: bytes in, frames out, any split, hostile values, garbage."""
import json
import logging

import pytest
from hypothesis import given, settings, strategies as st

from pbx_textback.core.pbx.eslframe import EslFraming, parse_stream


def plain_event(headers: dict, body: bytes = b"") -> bytes:
    text = "".join(f"{k}: {v}\n" for k, v in headers.items())
    inner = text.encode()
    if body:
        inner += b"Content-Length: %d\n\n" % len(body) + body
    else:
        inner += b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner


def json_event(obj: dict) -> bytes:
    b = json.dumps(obj).encode()
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(b) + b


GREETING = b"Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n"
EV1 = plain_event({"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u1",
                   "Caller-Caller-ID-Number": "%2B15125550123", "Caller-Caller-ID-Name": "JOHN%20SMITH"})
EV2 = json_event({"Event-Name": "CHANNEL_ANSWER", "Unique-ID": "u2", "Caller-Caller-ID-Name": "Zoë"})
API = b"Content-Type: api/response\nContent-Length: 6\n\n+OK hi"
STREAM = GREETING + EV1 + EV2 + API


def test_frames_of_each_kind():
    fr = parse_stream(STREAM)
    assert [f.get("Content-Type") or f["Event-Name"] for f in fr] == [
        "auth/request", "command/reply", "CHANNEL_CREATE", "CHANNEL_ANSWER", "api/response"]
    assert fr[1]["Reply-Text"] == "+OK accepted"      # '+' stays '+' in outer headers
    assert fr[2]["Caller-Caller-ID-Number"] == "+15125550123"
    assert fr[2]["Caller-Caller-ID-Name"] == "JOHN SMITH"
    assert fr[3]["Caller-Caller-ID-Name"] == "Zoë"
    assert fr[4]["_body"] == "+OK hi"


def test_inner_body_goes_to__body():
    ev = plain_event({"Event-Name": "MESSAGE", "from_user": "%2B1512"}, body="héllo\n\nworld".encode())
    (f,) = parse_stream(ev)
    assert f["_body"] == "héllo\n\nworld" and f["from_user"] == "+1512"
    assert f["Content-Length"] == str(len("héllo\n\nworld".encode()))


def test_json_values_are_strings_and_body_kept():
    (f,) = parse_stream(json_event({"Event-Name": "CUSTOM", "n": 5, "b": True, "l": [1, "x"],
                                    "_body": "text"}))
    assert f["n"] == "5" and f["b"] == "true" and f["l"] == "ARRAY::1|:x" and f["_body"] == "text"


def test_header_injection_in_a_caller_name_stays_in_its_value():
    name = "EVIL%0AVM-Action%3A%20leave-message%0AUnique-ID%3A%20victim"
    ev = plain_event({"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u1",
                      "Caller-Caller-ID-Name": name})
    (f,) = parse_stream(ev)
    assert f["Unique-ID"] == "u1"
    assert "VM-Action" not in f
    assert f["Caller-Caller-ID-Name"] == "EVIL\nVM-Action: leave-message\nUnique-ID: victim"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, len(STREAM) - 1), max_size=40))
def test_any_split_gives_the_same_frames(cuts):
    want = parse_stream(STREAM)
    f = EslFraming()
    out, pos = [], 0
    for c in sorted(set(cuts)) + [len(STREAM)]:
        out += f.feed(STREAM[pos:c])
        pos = c
    assert out == want and f.pending == 0 and f.errors == 0


def test_utf8_split_inside_a_character():
    f = EslFraming()
    cut = EV2.index("Zo".encode()) + 3           # inside the two bytes of ë
    out = f.feed(EV2[:cut]) + f.feed(EV2[cut:])
    assert out[0]["Caller-Caller-ID-Name"] == "Zoë"


def test_garbage_is_dropped_and_framing_resynchronizes(caplog):
    caplog.set_level(logging.ERROR, "pbx_textback.esl")
    f = EslFraming()
    out = f.feed(b"\x00\xff\xfegarbage line\nmore junk\n\n" + EV1 + b"junk without end" + EV2)
    names = [x.get("Event-Name") for x in out]
    assert names == ["CHANNEL_CREATE", "CHANNEL_ANSWER"]
    assert f.errors >= 2 and "ESL:" in caplog.text


def test_body_that_is_not_what_it_says_is_dropped(caplog):
    caplog.set_level(logging.ERROR, "pbx_textback.esl")
    bad_json = b"Content-Length: 5\nContent-Type: text/event-json\n\n{oops"
    no_name = b"Content-Length: 4\nContent-Type: text/event-plain\n\nx: y"
    out = parse_stream(bad_json + no_name + EV1)
    assert [x["Event-Name"] for x in out] == ["CHANNEL_CREATE"]
    assert "not JSON" in caplog.text and "without Event-Name" in caplog.text


def test_content_length_larger_than_the_body_then_eof(caplog):
    caplog.set_level(logging.ERROR, "pbx_textback.esl")
    f = EslFraming()
    out = f.feed(EV1 + b"Content-Length: 900\nContent-Type: text/event-plain\n\nEvent-Name: X\n")
    assert [x["Event-Name"] for x in out] == ["CHANNEL_CREATE"]
    assert f.pending > 0
    assert f.eof() == [] and f.pending == 0
    assert "closed inside a frame" in caplog.text


def test_lying_content_length_swallowing_the_next_frames_resyncs():
    lying = b"Content-Length: %d\nContent-Type: text/event-json\n\n{\"Event-Name\":\"A\"}" % (
        18 + len(EV2) - 10)
    out = parse_stream(lying + EV2 + EV1 + EV2)
    names = [x["Event-Name"] for x in out]
    assert names[-2:] == ["CHANNEL_CREATE", "CHANNEL_ANSWER"]


def test_oversized_body_is_skipped_without_buffering(caplog):
    caplog.set_level(logging.ERROR, "pbx_textback.esl")
    f = EslFraming(max_body=1000)
    big = b"Content-Length: 5000\nContent-Type: text/event-plain\n\n" + b"x" * 5000
    out = []
    for i in range(0, len(big), 700):
        out += f.feed(big[i:i + 700])
    out += f.feed(EV1)
    assert [x["Event-Name"] for x in out] == ["CHANNEL_CREATE"]
    assert f.pending == 0 and "over 1000" in caplog.text


def test_oversized_header_block_is_dropped():
    f = EslFraming(max_header=256)
    out = f.feed(b"X-Junk: " + b"a" * 1000) + f.feed(b"\n\n" + EV1)
    assert [x["Event-Name"] for x in out] == ["CHANNEL_CREATE"]
    assert f.errors >= 1


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(junk):
    f = EslFraming()
    f.feed(junk)
    f.feed(junk[::-1])
    out = f.feed(b"\n\n" + EV1)
    f.eof()
    assert all(isinstance(x, dict) for x in out)


@pytest.mark.parametrize("bad", [b"Content-Length: -1\n\n", b"Content-Length: 1e3\n\n",
                                 b"Content-Type: api/response\nContent-Length: x\n\n"])
def test_bad_content_length(bad):
    out = parse_stream(bad + EV1)
    assert out[-1]["Event-Name"] == "CHANNEL_CREATE"


# -- issue 10 finding 23: hostile values never cost more than their own frame, and framing
#    never depends on how the stream was split -------------------------------------------------

def test_a_content_length_of_superscript_two_drops_only_its_frame(caplog):
    """"²".isdigit() is True in Python, int("²") raises: that used to drop the whole read."""
    caplog.set_level(logging.ERROR, "pbx_textback.esl")
    bad = b"Content-Length: \xc2\xb2\nContent-Type: text/event-plain\n\n"
    inner = "Event-Name: MESSAGE\nContent-Length: ²\n\nhello".encode()
    inner_bad = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner
    f = EslFraming()
    out = f.feed(EV1 + bad + EV2 + inner_bad + EV1)
    names = [x["Event-Name"] for x in out]
    assert names == ["CHANNEL_CREATE", "CHANNEL_ANSWER", "MESSAGE", "CHANNEL_CREATE"]
    assert f.bugs == 0 and "bad Content-Length" in caplog.text


def test_list_valued_json_headers_become_strings_like_plain_arrays():
    (f,) = parse_stream(json_event({"Event-Name": "CHANNEL_CREATE", "Channel-Name": ["sofia/x"],
                                    "variable_originated_legs": ["a;b", "c;d"],
                                    "Caller-Caller-ID-Name": [["x"], {"y": 1}, None, 5]}))
    assert f["Channel-Name"] == "sofia/x"                          # one value: that value
    assert f["variable_originated_legs"] == "ARRAY::a;b|:c;d"      # as the plain format says it
    assert all(isinstance(v, str) for v in f.values())


def test_deeply_nested_json_drops_only_its_frame():
    deep = b"[" * 100000 + b"]" * 100000
    bad = b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(deep) + deep
    f = EslFraming(max_body=1 << 20)
    out = f.feed(EV1 + bad + EV2)
    assert [x["Event-Name"] for x in out] == ["CHANNEL_CREATE", "CHANNEL_ANSWER"]
    assert f.bugs == 0


def test_a_header_block_over_the_limit_is_dropped_the_same_in_one_read_or_many():
    big = (b"X-Pad: " + b"a" * (70 * 1024) + b"\nContent-Type: command/reply\n"
           b"Reply-Text: +OK\n\n" + EV1 + EV2)
    whole = EslFraming().feed(big)
    f = EslFraming()
    pieces = []
    for i in range(0, len(big), 4096):
        pieces += f.feed(big[i:i + 4096])
    assert pieces == whole
    assert [x.get("Event-Name") for x in whole][-2:] == ["CHANNEL_CREATE", "CHANNEL_ANSWER"]


# hostile pieces a stream is made of; max_header is small so an oversized block is cheap
_PIECES = [
    EV1, EV2, API, GREETING, b"\n", b"\r\n", b"junk", b"\x00\xff\xfe",
    b"Content-Length: \xc2\xb2\nContent-Type: text/event-plain\n\n",
    b"Content-Length: 99999999999999999999\nContent-Type: api/response\n\n",
    b"Content-Length: 40\nContent-Type: text/event-json\n\n{\"Event-Name\": [1, [2]]}",
    b"Content-Length: 3\nContent-Type: text/event-plain\n\nabc",
    b"X-Pad: " + b"p" * 300 + b"\n",
    b"Content-Type: command/reply\r\nReply-Text: +OK crlf\r\n\r\n",
    b"Content-Len", b"gth: 5\n", b"Content-Type: api/response\n\n", b"12345",
    json_event({"Event-Name": "CUSTOM", "Event-Subclass": ["a::b"], "n": 10 ** 300,
                "f": 1e308, "l": [[[]]], "d": {"k": [1]}}),
    b"Content-Length: 44\nContent-Type: text/event-plain\n\n"
    + "Event-Name: MESSAGE\nContent-Length: ²\n\nbody".encode(),
    plain_event({"Event-Name": "X", "Event-Date-Timestamp": "9" * 300}),
]


def _frames_any_split(stream: bytes, cuts, **kw):
    f = EslFraming(**kw)
    out = []
    pos = 0
    for c in sorted(set(x for x in cuts if 0 < x < len(stream))) + [len(stream)]:
        out += f.feed(stream[pos:c])
        pos = c
    out += f.eof()
    return out, f


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14), st.lists(st.integers(0, 4000), max_size=30))
def test_any_split_of_a_hostile_stream_gives_the_same_frames(pieces, cuts):
    stream = b"".join(pieces)
    whole, f1 = _frames_any_split(stream, [], max_header=256)
    split, f2 = _frames_any_split(stream, cuts, max_header=256)
    assert split == whole
    assert f1.bugs == 0 and f2.bugs == 0                 # hostile input is never a crash
    for fr in whole:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in fr.items())


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                    max_leaves=12))
def test_any_json_value_becomes_a_string(value):
    (f,) = parse_stream(json_event({"Event-Name": "CUSTOM", "v": value}))
    assert isinstance(f["v"], str)


# ---- the fast ways (the usual event envelope; JSON scanned without json.loads' probes) against
# the careful way they skip, which says the same on any stream, cut anywhere ---------------------
import re  # noqa: E402

from pbx_textback.core.pbx import eslframe  # noqa: E402

_ODD = [
    b"Content-Length: 0\nContent-Type: text/event-plain\n\n",
    b"Content-Length: 0007\nContent-Type: text/event-json\n\n{\"a\":1}",
    b"Content-Length: 9\nContent-Type: text/event-json\n\n {\"a\":1} ",
    b"Content-Length: 30\nContent-Type: text/event-json\n\n{\"Event-Name\":\"X\"}{\"b\":\"c\"}  ",
    b"Content-Length: 25\nContent-Type: text/event-json\n\n{\"Event-Name\":\"\xed\xa0\x80\"}",
    b"Content-Length: 22\nContent-Type: text/event-json\n\n{\"Event-Name\":\"\xff\"}",
    b"Content-Length: 12\nContent-Type: text/event-plain\nX: y\n\nEvent-Name: ",
    b"Content-Length: 12\r\nContent-Type: text/event-plain\r\n\r\nEvent-Name: Y",
    b"Content-Length: 1234567890123\nContent-Type: text/event-json\n\n",
    json_event({"Event-Name": "CUSTOM", "DP": ["a", "b"], "v": None, "t": True}),
    plain_event({"Event-Name": "MESSAGE"}, b"hi %0A there"),
]


def _careful(monkeypatch):
    monkeypatch.setattr(eslframe, "_EVENT_HEAD", re.compile(rb"(?!)"))   # never matches

    def no_scan(text, idx):
        raise StopIteration(idx)
    monkeypatch.setattr(eslframe, "_scan_json", no_scan)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES + _ODD), max_size=14),
       st.lists(st.integers(0, 4000), max_size=30), st.lists(st.integers(0, 4000), max_size=30))
def test_the_fast_ways_give_what_the_careful_way_gives(pieces, cuts, cuts2):
    stream = b"".join(pieces)
    fast, f1 = _frames_any_split(stream, cuts, max_header=256)
    with pytest.MonkeyPatch.context() as mp:
        _careful(mp)
        careful, f2 = _frames_any_split(stream, cuts2, max_header=256)
    assert fast == careful
    assert (f1.errors, f1.bugs) == (f2.errors, f2.bugs) and f1.bugs == 0


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=40).map(lambda b: b'{"' + b),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6),
                 lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                 max_leaves=10).map(lambda v: json.dumps({"Event-Name": "X", "v": v},
                                                         separators=(",", ":")).encode())))
def test_a_json_body_reads_the_same_as_json_loads_reads_it(body):
    got = EslFraming()._json(body)
    with pytest.MonkeyPatch.context() as mp:
        _careful(mp)
        want = EslFraming()._json(body)
    assert got == want


def test_the_usual_envelope_takes_the_fast_way():
    """(So the property above compares two ways, not one way twice.)"""
    assert eslframe._EVENT_HEAD.match(EV1) and eslframe._EVENT_HEAD.match(EV2)
    assert not eslframe._EVENT_HEAD.match(API)


# the list hint: values named before `":[` in the text are converted first; with or without
# the hint (or with a wrong one), every value ends as _str made it, keys in the same order
_jkey = st.sampled_from(["a", "DP", 'q"x', "b\\\\", "[", '":[', "\u00e9", ""])


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_jkey, st.recursive(
           st.none() | st.booleans() | st.integers() | st.text(alphabet='ab":[\\{}', max_size=6),
           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_jkey, kids, max_size=2),
           max_leaves=8), max_size=6),
       st.booleans(), st.text(alphabet='ab":[', max_size=20))
def test_the_list_hint_never_changes_the_values(obj, ascii_only, noise):
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only)
    want = {k: eslframe._str(v) for k, v in obj.items()}
    for hint in (text, "", noise, noise + text):
        got = json.loads(text)
        eslframe.strings_only(got, hint)
        assert got == want and list(got) == list(want)


# strings_only's own ways for a list of strs (one joined, no call per element) and its "every
# value a str" check: against the simple reference, on any object and any hint, right or wrong
_skey = st.sampled_from(["a", "DP", 'q"x', 'k\\"', "[", '":[', "x[", '"', "\u00e9", "", "|:"])
_sval = st.text(alphabet='ab":[]|\\{},', max_size=6)
_scalar = st.none() | st.booleans() | st.integers() | st.floats() | _sval


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_skey, st.one_of(
           _scalar,
           st.lists(_sval, max_size=4),                                # FreeSWITCH's arrays
           st.lists(_scalar, max_size=4),                              # a non-str inside
           st.recursive(_scalar, lambda kids: st.lists(kids, max_size=3)
                        | st.dictionaries(_skey, kids, max_size=2), max_leaves=6)),
           max_size=7),
       st.dictionaries(_skey, st.lists(_sval, max_size=2) | _sval, max_size=4),
       st.sampled_from(["tight", "spaced", "other", "noise", "both"]), st.text(alphabet='ab":[ ', max_size=12))
def test_strings_only_gives_what_the_reference_gives_whatever_the_hint(obj, other, how, noise):
    text = json.dumps(obj, separators=(",", ":"))
    hint = {"tight": text,
            "spaced": json.dumps(obj),                                 # `": [`: no key read
            "other": json.dumps(other, separators=(",", ":")),         # another object's lists
            "noise": noise,
            "both": json.dumps(other, separators=(",", ":")) + noise + text}[how]
    want = {k: eslframe._str(v) for k, v in json.loads(text).items()}
    got = json.loads(text)
    eslframe.strings_only(got, hint)
    assert got == want and list(got) == list(want)
    assert all(v.__class__ is str for v in got.values())
