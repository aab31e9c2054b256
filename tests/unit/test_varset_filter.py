"""The service's framing skips the VarSets of variables the tracker does not read: on every
recorded trace the tracker's records with that filter equal those without it, field by field
(timestamps too), fed whole, in small reads, from the middle of a call (a gap before it) and
closed early (a gap after it)."""
import re
from pathlib import Path

import pytest

from pbx_textback.core.model import Marker
from pbx_textback.core.pbx.amiframe import RAW_KEY, AmiFraming, first, parse_raw
from pbx_textback.core.pbx.asterisk import (
    DEFAULT_MARKERS, SERVICE_AMI_EVENTS, AsteriskSettings, AsteriskTracker, records_from_stream)
from pbx_textback.core.pbx.streams import split_at

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
TRACES = sorted(p for p in list(FIX.glob("*.ami")) + list(FIX.glob("originate/*.ami")))
_EVENT = re.compile(rb"(?m)^(Event: [^\r\n]*\r\n)")


def stamped(data: bytes) -> bytes:
    """The trace as with manager.conf timestampevents = yes: every event a Timestamp, 10 ms
    apart, so a skipped event that moved a call's clock would show in its record."""
    n = iter(range(1, 10 ** 7))
    return _EVENT.sub(lambda m: m.group(1) + b"Timestamp: %.6f\r\n" % (1795800000 + next(n) / 100),
                      data)


def frames(data: bytes) -> list[bytes]:
    """The trace cut into its frames (the banner, and the login response, kept in front)."""
    parts = data.split(b"\r\n\r\n")
    return [p + b"\r\n\r\n" for p in parts if p.strip()]


def records(framing: AmiFraming, pieces, settings=None, *, expire_at=None):
    t = AsteriskTracker(settings)
    out = []
    for piece in pieces:
        for ev in framing.feed(piece):
            out.extend(t.feed(ev))
    if expire_at is not None:     # the rest of the trace was lost: close what is open
        out.extend(t.expire(0.0))
        out.extend(t.expire(expire_at))
    return out + t.flush()


def both(pieces, settings=None, **kw):
    tr = AsteriskTracker(settings)
    filt = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=tr.read_vars)
    return records(AmiFraming(), pieces, settings, **kw), records(filt, pieces, settings, **kw), filt


# A marker on a variable nobody else reads: the filter must keep its VarSets.
MARKED = AsteriskSettings(markers=DEFAULT_MARKERS + (Marker("variable", "RINGGROUP", "600", True),
                                                     Marker("variable", "QUEUENUM", "400", True)))


@pytest.mark.parametrize("stamp", [False, True], ids=["plain", "timestamps"])
@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.name)
def test_records_equal_whole_and_in_small_reads(trace, stamp):
    data = trace.read_bytes()
    data = stamped(data) if stamp else data
    for settings in (None, MARKED):
        for pieces in ([data], split_at(data, range(0, len(data), 97)),
                       split_at(data, range(0, len(data), 1460))):
            plain, filt, framing = both(pieces, settings)
            assert filt == plain
        assert framing.errors == 0


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.name)
def test_records_equal_after_a_gap_before_or_after(trace):
    """The feed starts at every frame of the trace (channels first seen mid-call, maybe by a
    VarSet), or stops there and the open calls are closed unseen."""
    fr = frames(stamped(trace.read_bytes()))
    for k in range(1, len(fr)):
        plain, filt, _ = both([b"".join(fr[k:])])
        assert filt == plain, f"fed from frame {k}"
        plain, filt, _ = both([b"".join(fr[:k])], expire_at=1e12)
        assert filt == plain, f"cut after frame {k}"


def test_varsets_nobody_reads_come_short_and_whole_on_demand():
    data = b"".join(p.read_bytes() for p in TRACES)
    tr = AsteriskTracker(MARKED)
    assert {"DIALSTATUS", "VMSTATUS", "FROM_DID", "CALLINGNUMPRES_SV", "TCSTATE", "RINGGROUP",
            "QUEUENUM"} <= tr.read_vars
    framing = AmiFraming(wanted=SERVICE_AMI_EVENTS, wanted_vars=tr.read_vars)
    got = [f for f in framing.feed(data) if f.get("Event") == "VarSet"]
    varsets = [f for f in AmiFraming().feed(data) if f.get("Event") == "VarSet"]
    assert len(got) == len(varsets)
    whole = [f for f in got if RAW_KEY not in f]
    assert whole == [f for f in varsets if f["Variable"].lstrip("_") in tr.read_vars]
    short = [f for f in got if RAW_KEY in f]
    assert framing.shortened == len(short) > 2 * len(whole)
    full = [f for f in varsets if f["Variable"].lstrip("_") not in tr.read_vars]
    assert [parse_raw(f) for f in short] == full
    assert [{k: f[k] for k in ("Uniqueid", "Linkedid")} for f in short] == \
        [{k: f.get(k, "") for k in ("Uniqueid", "Linkedid")} for f in full]


def test_replay_reads_what_the_service_reads():
    data = (FIX / "05-ringgroup-voicemail.ami").read_bytes()
    assert records_from_stream(data) == records_from_stream(data, filtered=False)


# ---- the short VarSet against the whole parse, on frames no recording shows ------------------
import string  # noqa: E402

from hypothesis import given, settings, strategies as hs  # noqa: E402

READ = frozenset({"DIALSTATUS", "TCSTATE"})
_hdr = hs.sampled_from(["Uniqueid", "Linkedid", "Timestamp", "Variable", "Value", "Channel",
                        "ActionID", "X"])
_val = hs.one_of(hs.sampled_from(["", "_", "___", "DIALSTATUS", "__DIALSTATUS", "_TCSTATE",
                                  "RINGTIME", "__FROM_DID_X", "1795.1", "none"]),
                 hs.text(string.ascii_letters + "_ :.é", max_size=6))
_line = hs.one_of(hs.tuples(_hdr, _val).map(lambda kv: f"{kv[0]}: {kv[1]}"),
                  hs.tuples(_hdr, _val).map(lambda kv: f"{kv[0]}:{kv[1]}"), _hdr)
# mostly the shape Asterisk sends (a plain Uniqueid and Variable), with odd lines mixed in
_varset = hs.tuples(_val, _val, hs.lists(_line, max_size=4), hs.lists(_line, max_size=2)).map(
    lambda t: "\r\n".join(["Event: VarSet", f"Uniqueid: {t[0]}"] + t[2] + [f"Variable: {t[1]}"] + t[3]))


def _whole(frames):
    return [parse_raw(f) if RAW_KEY in f else f for f in frames]


@settings(max_examples=400, deadline=None)
@given(hs.lists(_varset, min_size=1, max_size=5), hs.lists(hs.integers(0, 10**4), max_size=4))
def test_a_short_varset_is_the_whole_frame_again_and_only_for_unread_variables(texts, cuts):
    data = "".join(t + "\r\n\r\n" for t in texts).encode("utf-8")
    whole = AmiFraming().feed(data)
    f = AmiFraming(wanted=frozenset({"VarSet"}), wanted_vars=READ)
    got = [fr for piece in split_at(data, [c % (len(data) + 1) for c in cuts]) for fr in f.feed(piece)]
    assert _whole(got) == whole
    for fr, w in zip(got, whole):
        if RAW_KEY in fr:     # what the tracker reads of a short one is what it reads whole
            assert first(w, "Variable") and first(w, "Variable").lstrip("_") not in READ
            assert all(fr[k] == first(w, k) for k in ("Uniqueid", "Linkedid"))   # as the tracker reads them
            assert fr.get("Timestamp") == w.get("Timestamp")     # (a list: never short)
            assert "ActionID" not in w


# ---- the tracker's short-VarSet path against the whole one, on made-up call streams ---------
_ids = hs.sampled_from(["1.1", "1.2", "2.1", "2.2", "none"])
_ev = hs.one_of(
    hs.tuples(hs.just("Newchannel"), _ids, hs.sampled_from(["", "1.1", "2.1"])).map(
        lambda t: f"Event: Newchannel\r\nChannel: PJSIP/itsp-{t[1]}\r\nChannelState: 4\r\n"
                  f"Context: from-trunk\r\nExten: 5125550140\r\nCallerIDNum: 5125550123\r\n"
                  f"Uniqueid: {t[1]}\r\nLinkedid: {t[2]}"),
    hs.tuples(hs.just("VarSet"), _ids, hs.sampled_from(["", "1.1", "2.1", "2.2"]),
              hs.sampled_from(["RINGTIME", "__X", "DIALSTATUS", "TCSTATE", "_FROM_DID"]),
              hs.sampled_from(["", "BUSY", "closed", "1795800000.5"])).map(
        lambda t: f"Event: VarSet\r\nChannel: PJSIP/itsp-{t[1]}\r\nContext: from-trunk\r\n"
                  f"Uniqueid: {t[1]}\r\nLinkedid: {t[2]}\r\nVariable: {t[3]}\r\nValue: {t[4]}"),
    hs.tuples(hs.just("Hangup"), _ids).map(
        lambda t: f"Event: Hangup\r\nChannel: PJSIP/itsp-{t[1]}\r\nUniqueid: {t[1]}\r\nCause: 16"))


@settings(max_examples=300, deadline=None)
@given(hs.lists(_ev, min_size=1, max_size=14), hs.booleans(), hs.booleans(),
       hs.lists(hs.integers(0, 10**4), max_size=3))
def test_the_tracker_makes_the_same_records_from_short_varsets_as_from_whole_ones(evs, stamp, gap,
                                                                                  cuts):
    """Channels met first in a VarSet, moved between calls, hung up and heard of again, global
    variables ("none"), calls closed by a gap (their end time is their last event's): the
    tracker's shortcut for short VarSets (feed() before its dispatch, stragglers not parsed)
    changes no record."""
    data = "".join(e + "\r\n\r\n" for e in evs).encode("utf-8")
    if stamp:
        data = stamped(data)
    pieces = split_at(data, [c % (len(data) + 1) for c in cuts])
    whole, short, _ = both(pieces, MARKED, expire_at=10 ** 6 if gap else None)
    assert short == whole


@given(hs.lists(hs.tuples(hs.text(string.ascii_letters + " _:", min_size=1, max_size=12),
                          hs.text(max_size=8)), max_size=6))
def test_no_frame_read_off_the_wire_carries_the_short_varset_key(headers):
    """RAW_KEY marks the framing's own short VarSets: no header of a frame can be it (so the
    tracker tells a short frame by that key alone)."""
    lines = ["Event: VarSet", "Uniqueid: 1.1", "Variable: RINGTIME"] + [f"{k}: {v}" for k, v in headers]
    data = ("\r\n".join(lines).replace("\r\n\r\n", "\r\n") + "\r\n\r\n").encode("utf-8")
    for f in (AmiFraming(), AmiFraming(wanted=frozenset({"VarSet"}))):
        for fr in f.feed(data):
            assert RAW_KEY not in fr
    assert all(RAW_KEY not in fr for fr in AmiFraming().feed(b"Event: X\r\nraw frame: 1\r\n\r\n"))


def test_a_dict_with_the_key_but_not_from_the_framing_is_only_an_error():
    t = AsteriskTracker()
    assert t.feed({RAW_KEY: "x"}) == []
    assert t.feed({RAW_KEY: "x", "Event": "VarSet", "Uniqueid": ["1", "2"]}) == []
    assert t.errors == 1      # the VarSet one: the handler says what was wrong


@given(hs.text(alphabet=hs.sampled_from(list("CALERIDPSNUMcalerispnum()-= _\u017f\u212a1")), max_size=30))
def test_the_presentation_precheck_never_hides_a_match(data):
    """Newexten's cheap test before _PRES_SET: whatever the regex matches passes it."""
    from pbx_textback.core.pbx.asterisk import _PRES_SET
    if _PRES_SET.search(data):
        assert "(" in data and "pres" in data.casefold()
