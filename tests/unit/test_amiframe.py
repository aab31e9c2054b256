"""AMI framing: bytes in, header dicts out, whatever the socket does to them."""
import logging
from pathlib import Path

from hypothesis import given, settings, strategies as st

from pbx_textback.core.pbx.amiframe import AmiFraming, first

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
TRACE = (FIX / "01-answered.ami").read_bytes()


def feed_all(chunks, **kw):
    f = AmiFraming(**kw)
    out = []
    for c in chunks:
        out += f.feed(c)
    return out, f


def test_banner_and_login_response_and_events():
    frames, f = feed_all([TRACE])
    assert f.banner == "Asterisk Call Manager/11.0.0"
    assert frames[0]["Response"] == "Success" and frames[0]["ActionID"] == "textback-login-1"
    events = [fr for fr in frames if "Event" in fr]
    assert len(events) == 114                      # scenarios.toml: events = 114
    assert events[0]["Event"] == "FullyBooted"
    assert f.errors == 0


def test_lf_only_streams_frame_the_same():
    crlf, _ = feed_all([TRACE])
    lf, _ = feed_all([TRACE.replace(b"\r\n", b"\n")])
    assert lf == crlf


def test_repeated_headers_are_kept_as_a_list():
    frames, _ = feed_all([b"Event: Test\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nX: y\r\n\r\n"])
    assert frames[0]["ChanVariable"] == ["A=1", "B=2"]
    assert first(frames[0], "ChanVariable") == "A=1"


def test_empty_values_and_colons_inside_values():
    frames, _ = feed_all([b"Event: Newexten\r\nAccountCode: \r\nAppData: sip:+1512@host:5060\r\n\r\n"])
    assert frames[0]["AccountCode"] == ""
    assert frames[0]["AppData"] == "sip:+1512@host:5060"


NAME = "José Müller"


@given(st.integers(min_value=1, max_value=60))
def test_utf8_caller_name_survives_any_split(cut):
    data = f"Event: Newchannel\r\nCallerIDName: {NAME}\r\nUniqueid: 1.1\r\n\r\n".encode()
    cut = min(cut, len(data) - 1)
    frames, f = feed_all([data[:cut], data[cut:]])
    assert frames[0]["CallerIDName"] == NAME and f.errors == 0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(TRACE) - 1), max_size=40))
def test_any_byte_split_gives_the_same_frames(cuts):
    whole, _ = feed_all([TRACE])
    pos, chunks = 0, []
    for c in sorted(set(cuts)):
        chunks.append(TRACE[pos:c])
        pos = c
    chunks.append(TRACE[pos:])
    parts, _ = feed_all(chunks)
    assert parts == whole


def test_garbage_frame_is_dropped_and_the_next_one_read(caplog):
    caplog.set_level(logging.ERROR)
    data = (b"Event: A\r\nK: 1\r\n\r\n" + b"\x00\xff\xfe garbage with no header\r\n\r\n"
            + b"Event: B\r\nK: 2\r\n\r\n")
    frames, f = feed_all([data])
    assert [fr["Event"] for fr in frames] == ["A", "B"]
    assert f.errors == 1 and "garbage frame" in caplog.text


def test_oversized_frame_is_dropped_and_framing_goes_on(caplog):
    caplog.set_level(logging.ERROR)
    big = b"Event: Big\r\nX: " + b"a" * (10 * 1024 * 1024) + b"\r\n\r\n"
    chunks = [b"Event: A\r\n\r\n"] + [big[i:i + 65536] for i in range(0, len(big), 65536)] + [b"Event: C\r\n\r\n"]
    frames, f = feed_all(chunks)
    assert [fr["Event"] for fr in frames] == ["A", "C"]
    assert "over" in caplog.text
    assert len(f._buf) < 1024                      # memory was not kept


def test_invalid_utf8_is_replaced_not_fatal(caplog):
    caplog.set_level(logging.ERROR)
    frames, f = feed_all([b"Event: Newchannel\r\nCallerIDName: Jos\xe9\r\n\r\nEvent: Next\r\n\r\n"])
    assert frames[0]["CallerIDName"] == "Jos\ufffd" and frames[1]["Event"] == "Next"
    assert "invalid UTF-8" in caplog.text


def test_truncated_stream_keeps_the_partial_frame_for_later():
    data = b"Event: A\r\nK: 1\r\n\r\nEvent: B\r\nK: 2"
    frames, f = feed_all([data])
    assert [fr["Event"] for fr in frames] == ["A"]
    assert f.feed(b"\r\n\r\n")[0]["K"] == "2"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_never_raises(data):
    f = AmiFraming(max_frame=512)
    for fr in f.feed(data) + f.feed(b"\r\n\r\n"):
        assert "Event" in fr or "Response" in fr
