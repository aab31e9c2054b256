"""The real service across AMI gaps and restarts: the loopback AMI server plays recorded
traces (cut where the connection dropped), the real panoramisk client, the PBX's CDR as
cdr_csv writes it, and a real SQLite store."""
import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pbx_textback.ami.replay_server import AmiReplayServer, trace_frames
from pbx_textback.config import loads
from pbx_textback.core.pbx.amiframe import frames_from_bytes
from pbx_textback.core.pbx.cdr import CSV_COLUMNS
from pbx_textback.service import Service
from pbx_textback.store import callbacks as cbs
from pbx_textback.store import db as st
from tests.integration.test_cdr_recovery import write_master_csv as write_csv

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
NO_ANSWER = "+17375550188"            # 02-no-answer.ami's caller
BEFORE = ["04-busy.ami", "05-ringgroup-voicemail.ami", "07-queue-abandon.ami"]


def cdr_rows(names):
    rows = []
    for n in names:
        rows += [f for f in frames_from_bytes((FIX / n).read_bytes()) if f.get("Event") == "Cdr"]
    return rows


def write_master_csv(path: Path, rows, *, end_at: float, zone=timezone.utc, uniqueid=True):
    """The rows as cdr_csv writes them (loguniqueid, loguserfield), moved so the last one
    ends at `end_at`, their times written in `zone` (UTC: [csv] usegmtime=yes)."""
    last = max(datetime.fromisoformat(r["EndTime"]).replace(tzinfo=timezone.utc).timestamp() for r in rows)
    cols = CSV_COLUMNS if uniqueid else CSV_COLUMNS[:16] + ("userfield",)
    write_csv(path, rows, end_at - last, zone=zone, cols=cols)


def config(tmp_path, port, *, cdr=True, extra="", quiet_hours_off=True):
    text = f"""
[pbx.ami]
username = "t"
secret = "s"
port = {port}
[store]
path = "{tmp_path / 's.sqlite3'}"
{'[compliance]' + chr(10) + 'quiet_hours = ""' if quiet_hours_off else ''}
{extra}
"""
    if cdr:
        text += f"""
[pbx.cdr]
source = "csv"
path = "{tmp_path / 'Master.csv'}"
cdr_conf = "{tmp_path / 'cdr.conf'}"
settle_seconds = 0.3
"""
    return loads(text)


def cut_before_first(name: str, event: bytes, tmp_path: Path) -> Path:
    """The trace up to (not including) its first `event` frame: the AMI connection dropped
    there, with the call still ringing."""
    data = (FIX / name).read_bytes()
    frames = trace_frames(data)
    i = next(i for i, f in enumerate(frames) if f.startswith(b"Event: " + event + b"\r\n"))
    out = tmp_path / f"cut-{name}"
    out.write_bytes(data[:data.index(frames[0])] + b"".join(frames[:i]))
    return out


async def run_service(cfg, server, *, until, on_state=None, timeout=15.0):
    seen = []
    svc = Service(cfg, on_verdict=seen.append)
    if on_state is not None:
        inner = svc.on_state

        def hooked(state, detail=""):
            inner(state, detail)
            on_state(svc, state)
        svc.on_state = hooked

    async def stop_when_done():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(svc, seen):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        svc.stop()
    await svc.run(extra_tasks=[stop_when_done()])
    return seen


def sent_to(tmp_path):
    st.open_store(str(tmp_path / "s.sqlite3"))
    return {m.peer for m in st.Message.select().where(st.Message.state == st.SENT)}


# -- finding 11 ------------------------------------------------------------------------------

@pytest.mark.parametrize("quiet_hours_off", [True, False], ids=["quiet-hours-off", "shipped-quiet-hours"])
def test_a_call_ringing_when_ami_drops_and_ending_in_the_gap_is_decided_from_the_cdr(tmp_path, quiet_hours_off):
    (tmp_path / "cdr.conf").write_text("[csv]\nusegmtime=yes\nloguniqueid=yes\nloguserfield=yes\n")
    cut = cut_before_first("02-no-answer.ami", b"DialEnd", tmp_path)

    def on_state(svc, state):
        if state == "disconnected":   # Asterisk was killed; the call rings out and ends meanwhile
            write_master_csv(tmp_path / "Master.csv", cdr_rows(["02-no-answer.ami"]), end_at=time.time())

    def done(svc, seen):
        return seen and (not quiet_hours_off or svc.store.next_due() is None)

    async def main():
        server = AmiReplayServer([cut], username="t", secret="s", close_after_each=True)
        port = await server.start()
        try:
            return await run_service(config(tmp_path, port, quiet_hours_off=quiet_hours_off), server,
                                     on_state=on_state, until=done)
        finally:
            await server.stop()
    seen = asyncio.run(main())
    (v,) = seen
    assert v.call.caller == NO_ANSWER and v.call.recovered and v.call.pbx == "cdr"
    assert (v.outcome.missed, v.outcome.reason, v.decision.action) == (True, "no-answer", "text")
    assert any("reconcile" in n for n in v.call.notes)
    texted = sent_to(tmp_path)
    if quiet_hours_off:
        assert texted == {NO_ANSWER}
    else:       # one text, owed: when it goes inside the caller's window is the outbox's part
        (msg,) = st.Message.select().where(st.Message.peer == NO_ANSWER)
        assert msg.state in (st.SENT, st.PENDING, st.SENDING) and msg.call.call_id == v.call.call_id


def test_without_a_cdr_the_gap_call_is_decided_from_its_events_and_not_texted(tmp_path):
    """Twin with no [pbx.cdr]: the call is still decided (never left open), as unsure."""
    cut = cut_before_first("02-no-answer.ami", b"DialEnd", tmp_path)

    async def main():
        server = AmiReplayServer([cut], username="t", secret="s", close_after_each=True)
        port = await server.start()
        try:
            return await run_service(config(tmp_path, port, cdr=False), server,
                                     until=lambda svc, seen: bool(seen))
        finally:
            await server.stop()
    (v,) = asyncio.run(main())
    assert v.call.caller == NO_ANSWER and v.call.recovered and v.call.pbx == "asterisk"
    assert v.decision.action == "skip"
    assert [c.name for c in v.decision.checks if not c.ok] == ["recovered"]


# -- finding 14 ------------------------------------------------------------------------------

def test_a_new_store_does_not_recover_calls_from_before_the_install(tmp_path):
    """Calls that ended 20-40 minutes before the service first ran are in the CDR; the AMI
    connection drops once. Nothing from before the install is recovered or texted."""
    (tmp_path / "cdr.conf").write_text("[csv]\nusegmtime=yes\nloguniqueid=yes\nloguserfield=yes\n")
    write_master_csv(tmp_path / "Master.csv", cdr_rows(BEFORE), end_at=time.time() - 20 * 60)

    reconnected = []

    def settled(server):          # back for the CDR's settle time and its reading, and more
        if server.logins >= 2 and not reconnected:
            reconnected.append(time.monotonic())
        return reconnected and time.monotonic() - reconnected[0] > 2.0

    async def main():
        server = AmiReplayServer([FIX / "01-answered.ami"], username="t", secret="s", close_after_each=True)
        port = await server.start()
        try:
            return await run_service(config(tmp_path, port), server,
                                     until=lambda svc, seen: settled(server), timeout=10)
        finally:
            await server.stop()
    seen = asyncio.run(main())
    assert [v.call.caller for v in seen] == ["+15125550123"]          # the live call only
    assert sent_to(tmp_path) == set()
    assert st.Call.select().where(st.Call.recovered == True).count() == 0  # noqa: E712


def test_calls_that_ended_while_the_service_was_stopped_are_recovered(tmp_path):
    """The store knows when the service last ran: after a restart, what ended since is
    recovered, in the right zone (cdr.conf says usegmtime=yes; the business is in Chicago)."""
    (tmp_path / "cdr.conf").write_text("[csv]\nusegmtime=yes\nloguniqueid=yes\nloguserfield=yes\n")
    extra = '[business]\ntimezone = "America/Chicago"\n'

    async def once(traces, until):
        server = AmiReplayServer(traces, username="t", secret="s")
        port = await server.start()
        try:
            return await run_service(config(tmp_path, port, extra=extra), server, until=until)
        finally:
            await server.stop()
    asyncio.run(once([FIX / "01-answered.ami"], lambda svc, seen: bool(seen)))
    end = time.time() + 1          # while the service is stopped
    write_master_csv(tmp_path / "Master.csv", cdr_rows(["02-no-answer.ami"]), end_at=end)
    seen = asyncio.run(once([], lambda svc, seen: seen and svc.store.next_due() is None))
    (v,) = seen
    assert v.call.caller == NO_ANSWER and v.call.recovered and v.decision.action == "text"
    assert abs(v.call.ended_at - int(end)) <= 1                       # not six hours off
    assert sent_to(tmp_path) == {NO_ANSWER}
    msg = st.Message.select().where(st.Message.peer == NO_ANSWER).get()
    assert msg.due_at <= time.time()


# -- finding 12 ------------------------------------------------------------------------------

def test_a_star88_callback_reaches_the_caller_and_ends_the_wait(tmp_path):
    """+15125550321 missed a call earlier; a text for them waits (a delay). The recorded *88
    callback reaches them: the waiting text is cancelled, and neither *88 nor *89 picks them
    again."""
    data = (FIX / "88-callback.ami").read_bytes()
    frames = trace_frames(data)
    start = next(i for i, f in enumerate(frames) if b"Exten: *88\r\n" in f)
    trace = tmp_path / "callback-only.ami"
    trace.write_bytes(data[:data.index(frames[0])] + b"".join(frames[start:]))
    extra = '[[line]]\nnumber = "+15125550110"\ndelay_seconds = 600\n'
    from pbx_textback.core.model import CallRecord

    async def main():
        server = AmiReplayServer([trace], username="t", secret="s")
        port = await server.start()
        cfg = config(tmp_path, port, cdr=False, extra=extra)
        seen = []
        svc = Service(cfg, on_verdict=seen.append)
        now = time.time()
        svc.pipeline.on_record(CallRecord(
            "asterisk", "1795968918.10", "+15125550321", "+15125550110", "inbound",
            started_at=now - 300, ended_at=now - 280, dial_results=("no-answer",)), now=now - 280)
        pending = st.Message.select().where(st.Message.peer == "+15125550321").get()
        assert pending.state == st.PENDING

        async def stop_when_done():
            for _ in range(200):
                await asyncio.sleep(0.05)
                if len(seen) >= 2:
                    break
            svc.stop()
        await svc.run(extra_tasks=[stop_when_done()])
        await server.stop()
        return seen
    seen = asyncio.run(main())
    back = [v for v in seen if v.call.direction == "outbound"]
    assert [v.call.called for v in back] == ["+15125550321"]
    store = st.open_store(str(tmp_path / "s.sqlite3"))
    msg = st.Message.select().where(st.Message.peer == "+15125550321").get()
    assert msg.state == st.CANCELLED and "reached by outbound call" in msg.note
    now = time.time()
    assert cbs.last_missed(store, now=now, window_s=86400) is None                # *89
    assert cbs.claim_oldest_waiting(store, endpoint="PJSIP/100", now=now, window_s=86400) is None  # *88
    store.close()
    # `explain NUMBER` shows the call back to that number too (finding 20)
    cfgf = tmp_path / "c.toml"
    cfgf.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    for key in ("+15125550321", "5125550321"):
        p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "explain", key, "-c", str(cfgf), "--json"],
                           capture_output=True, text=True, timeout=60)
        rows = json.loads(p.stdout)["calls"]      # one JSON document
        assert [(r["direction"], r["caller"], r["called"]) for r in rows] == [
            ("inbound", "+15125550321", "+15125550110"), ("outbound", "100", "+15125550321")], p.stderr


def test_the_service_knows_whom_its_callback_called_without_dialplan_events(tmp_path):
    """An AMI user without the `dialplan` read class sees no Newexten, and panoramisk keeps our
    own OriginateResponse to itself: the callback's channel id, which the service chose, tells
    the call apart and whom it called."""
    from pbx_textback.ami.fastagi import FeatureCodes
    from pbx_textback.core.model import CallRecord
    from tests.amisim import Sim
    extra = '[[line]]\nnumber = "+15125550110"\ndelay_seconds = 600\n'
    svc = Service(config(tmp_path, 1, cdr=False, extra=extra))
    now = time.time()
    svc.pipeline.on_record(CallRecord("asterisk", "1795968918.10", "+15125550321", "+15125550110",
                                      "inbound", dial_results=("no-answer",)), now=now)
    svc.features = FeatureCodes(svc.store, originate=None, queue_text=svc.queue_manual, clock=time.time)
    waiting = st.Call.get(st.Call.call_id == "1795968918.10")
    action = svc.features.originate_action("PJSIP/100", waiting)
    s = Sim()
    phone = s.originated_out("100")          # no Newexten, no OriginateResponse
    ours = s.uid(phone)
    for ev in s.events:
        ev.update({k: action["ChannelId"] for k in ("Uniqueid", "Linkedid", "DestUniqueid")
                   if ev.get(k) == ours})
        svc.on_event(ev)
    call = st.Call.get(st.Call.call_id == action["ChannelId"])
    assert (call.direction, call.called, call.answered) == ("outbound", "+15125550321", True)
    msg = st.Message.select().where(st.Message.peer == "+15125550321").get()
    assert msg.state == st.CANCELLED
    svc.store.close()
