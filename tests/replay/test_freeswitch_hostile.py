"""Issue 10 finding 23: hostile values inside real recorded FreeSWITCH traffic cost no event
and no verdict. The recorded streams are rewritten (values only, every Content-Length made
right again) and go through the framing, the tracker and the service's pipeline."""
import json
import re
from pathlib import Path

import pytest

from pbx_textback.config import loads
from pbx_textback.core.pbx.eslframe import parse_stream
from pbx_textback.esl.replay_server import rewrite_events
from pbx_textback.service import Service

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"


def service_verdicts(tmp_path, raw: bytes, tag: str):
    cfg = loads(f'[pbx]\ntype = "freeswitch"\n[store]\npath = "{tmp_path / (tag + ".sqlite3")}"\n'
                '[compliance]\nquiet_hours = ""\n')
    seen = []
    svc = Service(cfg, on_verdict=seen.append)
    try:
        for ev in parse_stream(raw):
            if "Event-Name" in ev:
                svc.on_event(ev)
    finally:
        svc.store.close()
    return sorted((v.to_json()["caller"], v.to_json()["missed"], v.to_json()["reason"],
                   v.decision.action) for v in seen)


def listify(body: bytes) -> bytes:
    """Every string value as a one-element JSON list (how FreeSWITCH writes an array header)."""
    obj = json.loads(body)
    return json.dumps({k: [v] if k != "Event-Name" and isinstance(v, str) else v
                       for k, v in obj.items()}).encode()


@pytest.mark.parametrize("name", ["01-answered.json.esl", "05-voicemail.json.esl",
                                  "07-queue-abandon.json.esl"])
def test_list_valued_json_headers_keep_every_verdict(tmp_path, name):
    raw = (FIX / name).read_bytes()
    want = service_verdicts(tmp_path, raw, "want")
    assert want
    assert service_verdicts(tmp_path, rewrite_events(raw, listify), "got") == want


_STAMP = re.compile(rb"^((?:Event-Date-Timestamp|Caller-Channel-[A-Za-z-]+-Time): )\d+$", re.M)


@pytest.mark.parametrize("digits", [300, 310])
@pytest.mark.parametrize("name", ["03-abandoned.esl", "14-concurrent.esl"])
def test_huge_timestamps_cost_the_time_not_the_verdict(tmp_path, name, digits):
    """Every timestamp of every event 300 digits long (a float, 1e294 s: the pipeline's dates
    overflowed) or 310 (no float at all: the tracker dropped every event)."""
    raw = (FIX / name).read_bytes()
    huge = b"9" * digits
    bad = rewrite_events(raw, lambda b: _STAMP.sub(lambda m: m.group(1) + huge, b))
    assert bad.count(huge) > 100
    want = service_verdicts(tmp_path, raw, "want")
    got = service_verdicts(tmp_path, bad, "got")
    assert [g[:3] for g in got] == [w[:3] for w in want]
    assert [g[3] for g in got] == [w[3] for w in want]
