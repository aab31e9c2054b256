"""The service's AMI event filter over a real socket: AmiSource(wanted=SERVICE_AMI_EVENTS)
against AmiReplayServer playing the recorded traces delivers exactly the recorded events whose
names the service reads, in order, and the tracker decides the same calls from them as from
every event (the events it skips are ones no consumer reads)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbx_textback.core.pbx.asterisk import SERVICE_AMI_EVENTS, AsteriskTracker
from tests.integration.test_ami_client import (
    FIX, SCENARIOS, Harness, expected_events, live, run)

TRACES = [s for s in SCENARIOS if s["file"] in ("01-answered.ami", "05-ringgroup-voicemail.ami",
                                                 "07-queue-abandon.ami", "12-concurrent.ami")]


def decide(events):
    tr = AsteriskTracker()
    return [r for ev in events for r in tr.feed(ev)] + tr.flush()


@pytest.mark.parametrize("chunking", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("sc", TRACES, ids=[s["file"] for s in TRACES])
def test_filtered_source_delivers_the_events_the_service_reads(sc, chunking):
    path: Path = FIX / sc["file"]
    every = expected_events(path)
    want = [e for e in every if e["Event"] in SERVICE_AMI_EVENTS]
    assert 0 < len(want) < len(every)           # the trace has events the filter skips

    async def main():
        async with Harness([path], chunking=chunking,
                           client_kw={"wanted": SERVICE_AMI_EVENTS}) as h:
            await h.server.wait_idle()
            await h.until(lambda: len(live(h.events)) >= len(want), what="the wanted events")
            await asyncio.sleep(0.05)
            got = live(h.events)
            assert got[:len(want)] == want
            assert all(e["Event"] == "FullyBooted" for e in got[len(want):])
            assert h.client._protocol.framing.skipped == len(every) - len(want)
            assert h.state_names()[:2] == ["connecting", "connected"]
    run(main())
    assert decide(want) == decide(every)


@pytest.mark.parametrize("chunking", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("sc", TRACES, ids=[s["file"] for s in TRACES])
def test_varsets_nobody_reads_come_short_and_the_calls_stay_the_same(sc, chunking):
    """As the service runs it (wanted + the tracker's read_vars): the VarSets of other variables
    come short, each whole again on demand, and the tracker's records are field for field
    those from every event."""
    from pbx_textback.core.pbx.amiframe import RAW_KEY, parse_raw
    path: Path = FIX / sc["file"]
    every = expected_events(path)
    want = [e for e in every if e["Event"] in SERVICE_AMI_EVENTS]
    read = AsteriskTracker().read_vars

    async def main():
        async with Harness([path], chunking=chunking,
                           client_kw={"wanted": SERVICE_AMI_EVENTS, "wanted_vars": read}) as h:
            await h.server.wait_idle()
            await h.until(lambda: len(live(h.events)) >= len(want), what="the wanted events")
            await asyncio.sleep(0.05)
            got = live(h.events)[:len(want)]
            short = [e for e in got if RAW_KEY in e]
            assert short and all(e["Event"] == "VarSet" for e in short)
            assert [parse_raw(e) if RAW_KEY in e else e for e in got] == want
            assert all(parse_raw(e)["Variable"].lstrip("_") not in read for e in short)
            assert decide(got) == decide(every)
    run(main())


def test_the_service_reads_whole_the_variables_its_markers_name(tmp_path):
    from dataclasses import replace
    from pbx_textback.config import default_config
    from pbx_textback.core.model import Marker
    from pbx_textback.service import Service
    cfg = default_config()
    cfg = replace(cfg, store=replace(cfg.store, path=str(tmp_path / "s.sqlite3")),
                  pbx=replace(cfg.pbx, after_hours_markers=(Marker("variable", "NIGHTMODE", "1", True),)))
    svc = Service(cfg)
    src = svc._source()
    assert src.wanted == SERVICE_AMI_EVENTS
    assert src.wanted_vars == svc.tracker.read_vars
    assert {"NIGHTMODE", "TCSTATE", "DIALSTATUS", "VMSTATUS", "FROM_DID",
            "CALLINGNUMPRES_SV"} <= src.wanted_vars
