"""AMI framing's fast path looks for a bare LF frame by frame (unfiltered) and hands the rest of
the buffer to the careful loop from the first frame that has one: made-up streams with bare LFs,
bare CRs, stray blank lines, malformed and repeated lines, in any split of the reads, give the
frames AND the errors the careful loop alone gives (unfiltered), and the frames it gives with
the service's filter (short VarSets read whole again)."""
from __future__ import annotations

import re
import string

from hypothesis import given, settings, strategies as hs

from pbx_textback.core.pbx.amiframe import RAW_KEY, AmiFraming, parse_raw
from tests.reads import careful_ami, feed_all, split

WANTED = frozenset({"Newchannel", "Hangup", "VarSet"})
READ = frozenset({"DIALSTATUS"})

_key = hs.one_of(hs.sampled_from(["Event", "Uniqueid", "Linkedid", "Variable", "Value", "ActionID",
                                  "Response", "Channel", "Timestamp"]),
                 hs.text(string.ascii_letters + " -_:", min_size=0, max_size=6))
_value = hs.one_of(hs.sampled_from(["", "VarSet", "Hangup", "CEL", "DIALSTATUS", "RINGTIME", "1.1",
                                    "Success", "a: b"]),
                   hs.text(string.ascii_letters + ": ,é\r\n", max_size=8))
_line = hs.one_of(hs.tuples(_key, _value).map(lambda kv: f"{kv[0]}: {kv[1]}"),
                  hs.tuples(_key, _value).map(lambda kv: f"{kv[0]}:{kv[1]}"), _key)
_first = hs.sampled_from(["Event: VarSet", "Event: Hangup", "Event: CEL", "Event: Cdr",
                          "Response: Success", "Event: CEL\nActionID: 1", ""])
_frame = hs.tuples(_first, hs.lists(_line, max_size=5)).map(lambda t: [t[0]] + t[1])
# each line ended CRLF mostly, sometimes by a bare LF (or nothing: two lines run together)
_eol = hs.sampled_from(["\r\n"] * 6 + ["\n", "\r", ""])


@hs.composite
def streams(draw):
    out = []
    for lines in draw(hs.lists(_frame, min_size=1, max_size=6)):
        for ln in lines:
            out.append(ln + draw(_eol))
        out.append(draw(hs.sampled_from(["\r\n"] * 8 + ["\n", "\r\n\r\n"])))   # the blank line
    return "".join(out).encode("utf-8")


@settings(max_examples=500, deadline=None)
@given(streams(), hs.lists(hs.integers(0, 10**4), max_size=4))
def test_unfiltered_fast_path_gives_the_careful_frames_and_errors(data, cuts):
    slow = careful_ami()
    want = feed_all(slow, [data])
    assert feed_all(AmiFraming(), split(data, cuts)) == want
    # the same frames reported, none lost unsaid. (A stray blank line between frames is an
    # error only when it is read in front of the next frame: whether it is depends on where
    # a read, or the fast path's stretch, ends, on both paths alike; it loses nothing.)
    fast = AmiFraming()
    assert feed_all(fast, [data]) == want
    if re.search(rb"\r?\n\r?\n\r?\n", data) is None:
        assert fast.errors == slow.errors


@settings(max_examples=500, deadline=None)
@given(streams(), hs.lists(hs.integers(0, 10**4), max_size=4))
def test_filtered_fast_path_gives_the_careful_frames(data, cuts):
    fast = AmiFraming(wanted=WANTED, wanted_vars=READ)
    got = [parse_raw(fr) if RAW_KEY in fr else fr for fr in feed_all(fast, split(data, cuts))]
    assert got == feed_all(careful_ami(wanted=WANTED, wanted_vars=READ), [data])


def test_a_bare_lf_late_in_a_read_leaves_the_frames_before_it_to_the_fast_path():
    head = b"".join(b"Event: Hangup\r\nUniqueid: 1.%d\r\n\r\n" % i for i in range(3))
    data = head + b"Event: Hangup\nUniqueid: 2.1\n\nEvent: Hangup\r\nUniqueid: 3.1\r\n\r\n"
    f = AmiFraming()
    assert [fr["Uniqueid"] for fr in f.feed(data)] == ["1.0", "1.1", "1.2", "2.1", "3.1"]
    assert f.errors == 0


def test_a_bare_lf_inside_a_value_splits_the_line_as_the_careful_loop_does():
    data = "Event: Hangup\r\nCallerIDName: Zoë\nUniqueid: 9.9\r\nCause: 16\r\n\r\n".encode("utf-8")
    assert AmiFraming().feed(data) == [{"Event": "Hangup", "CallerIDName": "Zoë",
                                        "Uniqueid": "9.9", "Cause": "16"}]
