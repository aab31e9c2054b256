"""The file that keeps the calls the store refused (store/spool.py): what goes in comes back
the same, in order, once; whatever else a crash or a hand leaves in it never raises and never
hides the good lines."""
import tempfile
from pathlib import Path

from hypothesis import given, settings, strategies as S

from pbx_textback.core.model import CallRecord, Leg
from pbx_textback.store.spool import CallSpool

text = S.text(max_size=30)
legs = S.builds(Leg, id=text, name=text, kind=S.sampled_from(["caller", "extension", "trunk"]),
                endpoint=text, answered=S.booleans(), hangup_cause=text)
records = S.builds(
    CallRecord, pbx=S.sampled_from(["asterisk", "freeswitch", "cdr"]), call_id=text.filter(bool),
    caller=text, called=text, direction=S.sampled_from(["inbound", "outbound", "internal"]),
    caller_name=text, withheld=S.booleans(),
    started_at=S.none() | S.floats(0, 4e9), ended_at=S.none() | S.floats(0, 4e9),
    dial_results=S.lists(text, max_size=3).map(tuple), caller_cancelled=S.booleans(),
    voicemail_left=S.none() | S.booleans(), legs=S.lists(legs, max_size=3).map(tuple),
    notes=S.lists(text, max_size=3).map(tuple))


@settings(max_examples=60, deadline=None)
@given(S.lists(records, max_size=4), S.binary(max_size=200))
def test_what_goes_in_comes_back_and_garbage_is_skipped(recs, junk):
    with tempfile.TemporaryDirectory() as d:
        spool = CallSpool(Path(d) / "refused-calls.jsonl")
        for r in recs:
            assert spool.add(r) == ""
            assert spool.add(r) == ""                    # a call already in the file: once
        first = {}
        for r in recs:
            first.setdefault(r.call_id, r)
        with spool.path.open("ab") as f:
            f.write(b"\n" + junk)
        back = CallSpool(spool.path).load()
        assert back[:len(first)] == list(first.values())
        assert all(isinstance(r, CallRecord) and r.call_id for r in back)


def test_keep_only_rewrites_and_removes(tmp_path):
    spool = CallSpool(tmp_path / "refused-calls.jsonl")
    a, b = (CallRecord("asterisk", i, "+15125551234", "+15125550100", "inbound") for i in ("1.1", "2.2"))
    spool.add(a)
    spool.add(b)
    spool.keep_only([b])
    assert CallSpool(spool.path).load() == [b] and "1.1" not in spool and "2.2" in spool
    spool.keep_only([])
    assert not spool.path.exists() and CallSpool(spool.path).load() == []


def test_a_directory_it_cannot_write_says_why(tmp_path):
    spool = CallSpool(tmp_path / "missing" / "refused-calls.jsonl")
    why = spool.add(CallRecord("asterisk", "1.1", "+15125551234", "+15125550100", "inbound"))
    assert "No such file or directory" in why and str(spool.path) in why
    assert CallSpool.beside(":memory:") is None
    assert CallSpool.beside("/var/lib/pbx-textback/textback.sqlite3").path == \
        Path("/var/lib/pbx-textback/refused-calls.jsonl")
