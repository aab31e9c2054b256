"""Ingest fast paths (issue 14 part 3) give exactly what the careful paths give.

- AMI: the service's event filter skips just the events it names as unread, the same way on
  the fast (CRLF) path and the careful path, for any split of the reads;
- ESL plain: the str.split cut of an event's header block == the regex cut;
- ESL json: the shortcut for all-string events == the value-by-value conversion;
- the service's event set covers what the tracker and the AMI source read.
"""
from __future__ import annotations

import json
import re
import string

from hypothesis import given, settings, strategies as hs

from pbx_textback.core.pbx import eslframe
from pbx_textback.core.pbx.amiframe import AmiFraming
from pbx_textback.core.pbx.asterisk import _HANDLERS, SERVICE_AMI_EVENTS
from tests.reads import careful_ami, feed_all, split

WANTED = frozenset({"Newchannel", "Hangup"})
NAMES = ("Newchannel", "Hangup", "CEL", "Cdr", "Hangup: x", "")

key = hs.text(string.ascii_letters + string.digits + "-_: ", min_size=0, max_size=8)
value = hs.text(string.ascii_letters + ": ,é\r", max_size=12)
line = hs.one_of(hs.tuples(key, value).map(lambda kv: f"{kv[0]}: {kv[1]}"), key,
                 hs.sampled_from(["ActionID: 7", "Response: Success", "ActionID:", "Event: Cdr"]))
frame_text = hs.tuples(hs.sampled_from(NAMES), hs.lists(line, max_size=6)).map(
    lambda t: "\r\n".join([f"Event: {t[0]}"] + t[1]))


@settings(max_examples=300, deadline=None)
@given(hs.lists(frame_text, min_size=1, max_size=6), hs.sampled_from(["\r\n", "\n"]),
       hs.lists(hs.integers(0, 10**5), max_size=5))
def test_filtered_framing_is_the_same_on_both_paths_in_any_split(frames, eol, cuts):
    data = "".join(t + "\r\n\r\n" for t in frames).replace("\r\n", eol).encode("utf-8")
    fast = AmiFraming(wanted=WANTED)
    got = feed_all(fast, split(data, cuts))
    assert got == careful_ami(wanted=WANTED).feed(data)


def unread(text: str) -> bool:
    """The filter's rule, written out plainly: an event whose first line names an event not
    wanted, with no ActionID or Response line after it."""
    first, *rest = text.split("\r\n")
    return (first.startswith("Event: ") and first[7:] not in WANTED
            and not any(ln.startswith(("ActionID:", "Response:")) for ln in rest))


plain_frame = hs.tuples(hs.sampled_from(NAMES), hs.lists(
    hs.tuples(hs.sampled_from(["Uniqueid", "Channel", "ActionID", "Response", "X"]),
              hs.text(string.ascii_letters + " :é", max_size=8)), max_size=5)).map(
    lambda t: "\r\n".join([f"Event: {t[0]}"] + [f"{k}: {v}" for k, v in t[1]]))


@settings(max_examples=200, deadline=None)
@given(hs.lists(plain_frame, min_size=1, max_size=6))
def test_filter_skips_exactly_the_unread_events(frames):
    data = "".join(t + "\r\n\r\n" for t in frames).encode("utf-8")
    everything = AmiFraming().feed(data)
    assert len(everything) == len(frames)           # one frame per text (no empty lines)
    kept = [fr for t, fr in zip(frames, everything) if not unread(t)]
    f = AmiFraming(wanted=WANTED)
    assert f.feed(data) == kept
    assert f.skipped == len(frames) - len(kept)


def test_filter_keeps_responses_and_action_events_and_still_reports_oversized(caplog):
    data = (b"Response: Success\r\nActionID: 1\r\n\r\n"
            b"Event: CoreShowChannel\r\nActionID: 2\r\nChannel: PJSIP/a-1\r\n\r\n"
            b"Event: CEL\r\nChannel: PJSIP/a-1\r\n\r\n"
            b"Event: CEL\r\nX: " + b"y" * 300 + b"\r\n\r\n"
            b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n")
    f = AmiFraming(max_frame=200, wanted=frozenset({"Hangup"}))
    got = f.feed(data)
    assert [fr.get("Event", fr.get("Response")) for fr in got] == [
        "Success", "CoreShowChannel", "Hangup"]
    assert f.skipped == 1 and f.errors == 1 and "frame over 200 bytes" in caplog.text


def test_service_event_set_has_what_the_tracker_and_the_ami_source_read():
    assert set(_HANDLERS) <= SERVICE_AMI_EVENTS
    assert {"FullyBooted", "Shutdown", "CoreShowChannel", "CoreShowChannelsComplete",
            "OriginateResponse", "UserEvent", "VarSet", "Newexten"} <= SERVICE_AMI_EVENTS
    assert "CEL" not in SERVICE_AMI_EVENTS and "Cdr" not in SERVICE_AMI_EVENTS


# ---- ESL ---------------------------------------------------------------------------------------
esl_key = hs.text(string.ascii_letters + "-_: %", min_size=0, max_size=8)
esl_value = hs.text(string.ascii_letters + ": %0Aé\r", max_size=10)
esl_line = hs.one_of(hs.tuples(esl_key, esl_value).map(lambda kv: f"{kv[0]}: {kv[1]}"),
                     hs.tuples(esl_key, esl_value).map(lambda kv: f"{kv[0]}:{kv[1]}"), esl_key)


@settings(max_examples=500, deadline=None)
@given(hs.lists(esl_line, max_size=8), hs.booleans())
def test_esl_plain_split_cut_is_the_regex_cut(lines, trailing):
    head = "\n".join(lines) + ("\n" if trailing else "")
    want: dict = {}
    for k, v in eslframe._LINE.findall(head):
        want[k] = v
    assert eslframe._plain_lines(head) == want


json_value = hs.recursive(
    hs.one_of(hs.text(max_size=5), hs.integers(), hs.booleans(), hs.none(), hs.floats(allow_nan=False)),
    lambda inner: hs.one_of(hs.lists(inner, max_size=3), hs.dictionaries(hs.text(max_size=3), inner, max_size=2)),
    max_leaves=5)


@settings(max_examples=300, deadline=None)
@given(hs.dictionaries(hs.text(max_size=6), hs.one_of(hs.text(max_size=6), json_value), max_size=6))
def test_esl_json_event_values_are_the_strings_the_careful_conversion_gives(obj):
    obj = {"Event-Name": "CHANNEL_CREATE", **obj}
    body = json.dumps(obj).encode("utf-8")
    frame = (f"Content-Length: {len(body)}\nContent-Type: text/event-json\n\n").encode() + body
    got = eslframe.EslFraming().feed(frame)
    assert got == [{str(k): eslframe._str(v) for k, v in obj.items()}]
    assert all(type(v) is str for v in got[0].values())


def test_esl_plain_event_with_a_percent_encoded_line_break_stays_one_header():
    body = "Event-Name: CUSTOM\nCaller-Caller-ID-Name: Eve%0AEvent-Name: HACK\nX: a%20b\n\n"
    frame = f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n{body}".encode()
    [ev] = eslframe.EslFraming().feed(frame)
    assert ev["Event-Name"] == "CUSTOM" and ev["Caller-Caller-ID-Name"] == "Eve\nEvent-Name: HACK"
    assert ev["X"] == "a b" and re.fullmatch(r"[^\n]*", ev["Event-Name"])


@settings(max_examples=500, deadline=None)
@given(hs.lists(esl_line, max_size=8), hs.booleans())
def test_esl_plain_one_pass_decode_is_cut_then_decode(lines, trailing):
    head = "\n".join(lines) + ("\n" if trailing else "")
    want = {k: eslframe.unquote(v, errors="replace") for k, v in eslframe._plain_lines(head).items()}
    assert eslframe._plain_event(head) == want
