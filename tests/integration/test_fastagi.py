"""The FastAGI feature codes over real TCP, with an AGI client that speaks exactly as Asterisk 22
does for the snippet's `AGI(agi://127.0.0.1:PORT/callback,PJSIP/${CHANNEL(endpoint)})` on
PJSIP/100 (res_agi.c: launch_netscript + setup_env; every command answered `200 result=1`).
The header is generated from the parsed snippet: script name, arguments and priority follow it."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import urlparse

import pytest

from pbx_textback.ami.fastagi import FeatureCodes, parse_agi_header
from pbx_textback.core.pbx import dialplan_vars as dv
from pbx_textback.store import callbacks as cbs
from pbx_textback.store.db import PENDING, Call, Message, open_store
from tests import asterisk_conf as ac

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_800_000.0
H = 3600.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 15))


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "t.sqlite3"))
    cbs.create_tables(s)
    yield s
    s.close()


def add_call(call_id, caller, at, *, missed=True, answered=False, direction="inbound",
             called="+15125550100", line="main", withheld=False):
    return Call.create(call_id=call_id, pbx="asterisk", caller=caller, caller_raw=caller,
                       called=called, line=line, direction=direction, missed=missed,
                       reason="no-answer" if missed else "answered",
                       record=json.dumps({"withheld": withheld}), created_at=at, answered=answered)


def add_text(call, body, at, kind="missed-call"):
    return Message.create(call=call, direction="out", kind=kind, line=call.line, peer=call.caller,
                          body=body, state="sent", due_at=at, created_at=at, updated_at=at).id


# ---- the Asterisk side, following the snippet ------------------------------------------------------
SNIPPET = ac.parse_file(ROOT / "dialplan_snippets" / "freepbx" / "extensions_custom.conf")


def agi_header(code: str, port: int, *, endpoint="100", chan_seq=0x42, query="") -> bytes:
    """What Asterisk writes when PJSIP/<endpoint> runs the snippet's AGI() for `code`."""
    steps = SNIPPET.contexts[dv.CTX_FEATURES].extens[code]
    [agi] = [s for s in steps if s.app == "AGI"]
    url, *args = ac.split_args(agi.args)
    url = url.replace(f":{dv.AGI_PORT}/", f":{port}/") + query
    args = [a.replace("${CHANNEL(endpoint)}", endpoint) for a in args]
    script = urlparse(url).path.lstrip("/") + (f"?{urlparse(url).query}" if query else "")
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: {url}",
        f"agi_channel: PJSIP/{endpoint}-{chan_seq:08x}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: 1795800000.{chan_seq}",
        "agi_version: 22.10.1",
        f"agi_callerid: {endpoint}",
        "agi_calleridname: Front Desk",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        f"agi_dnid: {code}",
        "agi_rdnis: unknown",
        "agi_context: from-internal",
        f"agi_extension: {code}",
        f"agi_priority: {agi.prio}",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140291825211072",
    ] + [f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)]
    return ("\n".join(lines) + "\n\n").encode()


async def asterisk_agi(port: int, code: str, *, endpoint="100", answers=None, query="") -> list[str]:
    """Run one AGI session like Asterisk: send the header, answer every command, return them.
    `answers` maps a command's first words to the line Asterisk answers (default 200 result=1)."""
    answers = answers or {}
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(agi_header(code, port, endpoint=endpoint, query=query))
    await w.drain()
    cmds = []
    while True:
        line = await asyncio.wait_for(r.readline(), 5)
        if not line:
            break
        cmd = line.decode().rstrip("\n")
        cmds.append(cmd)
        reply = next((v for k, v in answers.items() if cmd.startswith(k)), "200 result=1")
        w.write(reply.encode() + b"\n")
        await w.drain()
    w.close()
    return cmds


def agi_vars(cmds: list[str]) -> dict[str, str]:
    out = {}
    for c in cmds:
        if c.startswith("SET VARIABLE "):
            _, _, name, value = c.split(" ", 3)
            out[name] = value.strip('"')
    return out


class Pbx:
    """The service's side of AMI/outbox: records originates and queued texts."""

    def __init__(self, originate_reply="Success"):
        self.actions: list[dict] = []
        self.reply = originate_reply

    async def originate(self, action: dict):
        self.actions.append(dict(action))
        await asyncio.sleep(0)
        if self.reply == "raise":
            raise ConnectionError("AMI not connected")
        return [{"Response": "Success", "Message": "Originate successfully queued"},
                {"Event": "OriginateResponse", "Response": self.reply,
                 "Reason": "4" if self.reply == "Success" else "3", "Channel": action["Channel"]}]

    def queue_text(self, *, peer, line, kind, body):
        now = T0 + 10 * H
        return Message.create(direction="out", kind=kind, line=line, peer=peer, body=body,
                              state=PENDING, due_at=now, created_at=now, updated_at=now).id


def features(store, pbx, clock, **kw):
    return FeatureCodes(store, originate=pbx.originate, queue_text=pbx.queue_text, clock=clock,
                        originate_delay_s=0, **kw)


def waiting_callers(store):
    add_call("c-old", "+13105550101", T0 + 1 * H)                       # oldest waiting
    add_call("c-mid", "+13105550102", T0 + 2 * H)
    add_call("c-reached", "+13105550103", T0 + 0.5 * H)                 # ... then we called them
    add_call("o-1", "+15125550100", T0 + 0.7 * H, missed=False, answered=True, direction="outbound",
             called="+13105550103")
    add_call("c-anon", "+13105550104", T0 + 0.2 * H, withheld=True)    # withheld: never
    add_call("c-stale", "+13105550105", T0 - 30 * H)                    # outside the window
    add_call("c-ok", "+13105550106", T0 + 0.1 * H, missed=False, answered=True)


# ---- *88 ------------------------------------------------------------------------------------------------
def test_callback_rings_the_desk_phone_then_the_oldest_waiting_caller(store, caplog):
    waiting_callers(store)
    pbx, clock = Pbx(), Clock(T0 + 3 * H)

    async def go():
        fc = features(store, pbx, clock)
        port = await fc.start(port=0)
        cmds = await asterisk_agi(port, dv.FEATURE_CALLBACK)
        await fc.drain()
        cmds2 = await asterisk_agi(port, dv.FEATURE_CALLBACK, endpoint="101")
        await fc.drain()
        cmds3 = await asterisk_agi(port, dv.FEATURE_CALLBACK)
        await fc.stop()
        return cmds, cmds2, cmds3

    with caplog.at_level(logging.INFO, logger="pbx_textback.fastagi"):
        cmds, cmds2, cmds3 = run(go())
    assert cmds == [
        'SET VARIABLE TEXTBACK_RESULT "calling"',
        'SET VARIABLE TEXTBACK_REASON ""',
        'SET VARIABLE TEXTBACK_NUMBER "13105550101"',
        'VERBOSE "textback: calling" 1',
        'SAY DIGITS 13105550101 ""',
        'STREAM FILE beep ""',
        "HANGUP",
    ]
    # the channel id we give the callback is its call id: the service knows whom it called
    assert pbx.actions[0].pop("ChannelId").startswith("textback-cb-c-old-")
    assert pbx.actions[0] == {
        "Action": "Originate", "Channel": "PJSIP/100", "Context": "from-internal",
        "Exten": "+13105550101", "Priority": "1",
        "CallerID": '"Callback +13105550101" <+13105550101>', "Timeout": "30000",
        "Variable": "TEXTBACK_CALLBACK=c-old", "Async": "true"}
    assert pbx.actions[1]["Channel"] == "PJSIP/101" and pbx.actions[1]["Exten"] == "+13105550102"
    assert agi_vars(cmds3) == {dv.VAR_RESULT: dv.RESULT_NONE, dv.VAR_REASON: dv.REASON_NOBODY}
    assert len(pbx.actions) == 2
    rows = list(cbs.Callback.select().order_by(cbs.Callback.id))
    assert [(r.call.call_id, r.peer, r.endpoint, r.state) for r in rows] == [
        ("c-old", "+13105550101", "PJSIP/100", "connected"),
        ("c-mid", "+13105550102", "PJSIP/101", "connected")]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals == [f"{dv.FEATURE_CALLBACK} from PJSIP/100: refused, {dv.REASON_NOBODY}"]


def test_failed_originate_leaves_the_caller_waiting(store):
    add_call("c-1", "+13105550101", T0)
    pbx, clock = Pbx(originate_reply="Failure"), Clock(T0 + H)

    async def go():
        fc = features(store, pbx, clock)
        port = await fc.start(port=0)
        await asterisk_agi(port, dv.FEATURE_CALLBACK)
        await fc.drain()
        pbx.reply = "raise"                       # AMI down: still a failure, still waiting
        await asterisk_agi(port, dv.FEATURE_CALLBACK)
        await fc.drain()
        pbx.reply = "Success"
        second = await asterisk_agi(port, dv.FEATURE_CALLBACK)
        await fc.drain()
        await fc.stop()
        return second

    second = run(go())
    assert agi_vars(second)[dv.VAR_RESULT] == dv.RESULT_CALLING
    states = [(r.state, r.detail) for r in cbs.Callback.select().order_by(cbs.Callback.id)]
    assert states == [("failed", "3"), ("failed", "ConnectionError: AMI not connected"),
                      ("connected", "")]


def test_caller_who_hangs_up_during_the_digits_still_gets_the_call(store):
    add_call("c-1", "+13105550101", T0)
    pbx = Pbx()

    async def go():
        fc = features(store, pbx, Clock(T0 + H))
        port = await fc.start(port=0)
        cmds = await asterisk_agi(port, dv.FEATURE_CALLBACK, answers={"SAY DIGITS": "HANGUP"})
        await fc.drain()
        await fc.stop()
        return cmds

    cmds = run(go())
    assert cmds[-1].startswith("SAY DIGITS")
    assert [a["Exten"] for a in pbx.actions] == ["+13105550101"]


def test_two_phones_at_once_get_two_different_callers(store):
    add_call("c-1", "+13105550101", T0)
    add_call("c-2", "+13105550102", T0 + 1)
    pbx = Pbx()

    async def go():
        fc = features(store, pbx, Clock(T0 + H))
        port = await fc.start(port=0)
        res = await asyncio.gather(asterisk_agi(port, dv.FEATURE_CALLBACK, endpoint="100"),
                                   asterisk_agi(port, dv.FEATURE_CALLBACK, endpoint="101"))
        await fc.drain()
        await fc.stop()
        return res

    a, b = run(go())
    assert {agi_vars(a)[dv.VAR_NUMBER], agi_vars(b)[dv.VAR_NUMBER]} == {"13105550101", "13105550102"}
    assert sorted(x["Exten"] for x in pbx.actions) == ["+13105550101", "+13105550102"]


def test_stop_before_the_originate_marks_the_callback_failed(store):
    add_call("c-1", "+13105550101", T0)
    pbx = Pbx()

    async def go():
        fc = FeatureCodes(store, originate=pbx.originate, queue_text=pbx.queue_text,
                          clock=Clock(T0 + H), originate_delay_s=30)
        port = await fc.start(port=0)
        await asterisk_agi(port, dv.FEATURE_CALLBACK)
        await fc.stop()

    run(go())
    assert pbx.actions == []
    [row] = cbs.Callback.select()
    assert row.state == "failed" and "stopped" in row.detail


# ---- *89 ------------------------------------------------------------------------------------------------
def test_textagain_queues_the_last_text_for_the_last_missed_caller(store, caplog):
    old = add_call("c-1", "+13105550101", T0)
    last = add_call("c-2", "+13105550102", T0 + H, line="sales")
    add_text(old, "old text", T0 + 60)
    add_text(last, "Sorry we missed you - Acme Plumbing", T0 + H + 60)
    pbx = Pbx()

    async def go():
        fc = features(store, pbx, Clock(T0 + 2 * H))
        port = await fc.start(port=0)
        first = await asterisk_agi(port, dv.FEATURE_TEXTAGAIN)
        again = await asterisk_agi(port, dv.FEATURE_TEXTAGAIN)
        await fc.stop()
        return first, again

    with caplog.at_level(logging.INFO, logger="pbx_textback.fastagi"):
        first, again = run(go())
    assert agi_vars(first) == {dv.VAR_RESULT: dv.RESULT_QUEUED, dv.VAR_REASON: "",
                               dv.VAR_NUMBER: "13105550102"}
    [m] = Message.select().where(Message.kind == "manual")
    assert (m.peer, m.line, m.body, m.state) == ("+13105550102", "sales",
                                                 "Sorry we missed you - Acme Plumbing", PENDING)
    assert agi_vars(again) == {dv.VAR_RESULT: dv.RESULT_NONE, dv.VAR_REASON: dv.REASON_JUST_TEXTED}
    assert sum("refused" in r.getMessage() for r in caplog.records) == 1


def test_textagain_refusals(store):
    pbx = Pbx()

    async def go(fc):
        port = await fc.start(port=0)
        try:
            return agi_vars(await asterisk_agi(port, dv.FEATURE_TEXTAGAIN))
        finally:
            await fc.stop()

    assert run(go(features(store, pbx, Clock(T0)))) == {
        dv.VAR_RESULT: dv.RESULT_NONE, dv.VAR_REASON: dv.REASON_NOBODY}
    add_call("c-1", "+13105550101", T0)
    fc = features(store, pbx, Clock(T0 + H), is_opted_out=lambda peer: peer == "+13105550101")
    assert run(go(fc)) == {dv.VAR_RESULT: dv.RESULT_NONE, dv.VAR_REASON: dv.REASON_OPTED_OUT}

    def broken(**kw):
        raise RuntimeError("outbox down")
    fc = FeatureCodes(store, originate=pbx.originate, queue_text=broken, clock=Clock(T0 + H))
    assert run(go(fc)) == {dv.VAR_RESULT: dv.RESULT_FAILED, dv.VAR_REASON: dv.REASON_ERROR}
    assert Message.select().count() == 0


# ---- a peer that misbehaves -----------------------------------------------------------------------------
def test_client_closing_mid_header_does_not_freeze_the_loop(store):
    add_call("c-1", "+13105550101", T0)
    pbx = Pbx()

    async def go():
        fc = features(store, pbx, Clock(T0 + H))
        port = await fc.start(port=0)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)
        t = asyncio.get_running_loop().create_task(ticker())
        header = agi_header(dv.FEATURE_CALLBACK, port)
        for cut in (1, len(header) // 2, len(header) - 1):   # -1: the last blank line missing
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(header[:cut])
            await w.drain()
            w.close()
        await asyncio.sleep(0.1)
        before = ticks
        cmds = await asyncio.wait_for(asterisk_agi(port, dv.FEATURE_TEXTAGAIN), 1.0)
        await asyncio.sleep(0.05)
        after = ticks
        t.cancel()
        await fc.stop()
        return before, after, cmds

    before, after, cmds = run(go())
    assert before > 5 and after > before
    assert agi_vars(cmds)[dv.VAR_RESULT] == dv.RESULT_QUEUED


@pytest.mark.parametrize("garbage", [
    b"\x00\xff\xfe garbage \x80\n\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"agi_network: yes\nagi_network_script: nosuch\n\n",
    b"\xff" * 40000,                              # no header end within the limit
    b"agi_network_script: callback\n",            # then EOF
])
def test_garbage_is_dropped_and_the_next_client_is_served(store, garbage):
    add_call("c-1", "+13105550101", T0)
    pbx = Pbx()

    async def go():
        fc = features(store, pbx, Clock(T0 + H))
        port = await fc.start(port=0)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(garbage)
        await w.drain()
        w.write_eof()
        rest = await asyncio.wait_for(r.read(), 2)       # the server closes, answers nothing
        w.close()
        cmds = await asyncio.wait_for(asterisk_agi(port, dv.FEATURE_CALLBACK), 1.0)
        await fc.drain()
        await fc.stop()
        return rest, cmds

    rest, cmds = run(go())
    assert rest == b""
    assert agi_vars(cmds)[dv.VAR_RESULT] == dv.RESULT_CALLING
    assert len(pbx.actions) == 1


def test_a_query_string_is_not_our_script(store):
    """Routes match agi_network_script exactly: `callback?x=1` is refused, not half-run."""
    add_call("c-1", "+13105550101", T0)
    pbx = Pbx()

    async def go():
        fc = features(store, pbx, Clock(T0 + H))
        port = await fc.start(port=0)
        cmds = await asterisk_agi(port, dv.FEATURE_CALLBACK, query="?endpoint=PJSIP/100")
        await fc.stop()
        return cmds

    assert run(go()) == []
    assert pbx.actions == [] and cbs.Callback.select().count() == 0


def test_bad_endpoint_argument_is_refused(store):
    add_call("c-1", "+13105550101", T0)
    pbx = Pbx()

    async def go():
        fc = features(store, pbx, Clock(T0 + H))
        port = await fc.start(port=0)
        cmds = await asterisk_agi(port, dv.FEATURE_CALLBACK, endpoint="100&Local/evil@x")
        await fc.stop()
        return cmds

    cmds = run(go())
    assert agi_vars(cmds) == {dv.VAR_RESULT: dv.RESULT_NONE, dv.VAR_REASON: dv.REASON_BAD_ENDPOINT}
    assert pbx.actions == [] and cbs.Callback.select().count() == 0


def test_parse_agi_header_keeps_empty_values():
    h = parse_agi_header(b"agi_network: yes\nagi_accountcode: \nagi_arg_1: PJSIP/100\n\n")
    assert h == {"agi_network": "yes", "agi_accountcode": "", "agi_arg_1": "PJSIP/100"}


# ---- FreeSWITCH: the event the snippet fires ----------------------------------------------------------
def fs_event(feature: str) -> dict:
    """The CUSTOM event mod_dptools' `event` app fires for the snippet on user 1000 (headers as
    the snippet sets them, plus the channel data FreeSWITCH adds)."""
    import xml.etree.ElementTree as ET
    root = ET.parse(ROOT / "dialplan_snippets" / "freeswitch" / "textback.xml").getroot()
    for ext in root.findall("extension"):
        for a in ext.iter("action"):
            data = a.get("data") or ""
            if a.get("application") == "event" and f"Textback-Feature={feature}" in data:
                hdrs = dict(p.split("=", 1) for p in data.split(","))
                hdrs = {k: v.replace("${user_name}", "1000").replace("${domain_name}", "pbx.example")
                        for k, v in hdrs.items()}
                hdrs.update({"Unique-ID": "9f3c", "Caller-Caller-ID-Number": "1000"})
                return hdrs
    raise AssertionError(feature)


def test_freeswitch_feature_events(store):
    add_call("c-1", "+13105550101", T0)
    add_call("c-2", "+13105550102", T0 + 1)
    pbx, sent = Pbx(), []

    async def api(cmd):
        sent.append(cmd)
        return "+OK 1e2f-uuid"

    async def go():
        fc = FeatureCodes(store, originate=pbx.originate, queue_text=pbx.queue_text,
                          clock=Clock(T0 + H), esl_api=api, fs_originate_delay_s=0)
        r1 = await fc.handle_esl_event(fs_event(dv.FS_FEATURE_CALLBACK))
        r2 = await fc.handle_esl_event(fs_event(dv.FS_FEATURE_TEXTAGAIN))
        r3 = await fc.handle_esl_event({"Event-Name": "CHANNEL_HANGUP_COMPLETE"})
        bad = fs_event(dv.FS_FEATURE_CALLBACK)
        bad[dv.FS_H_ENDPOINT] = "user/1000@x bridge(evil)"
        r4 = await fc.handle_esl_event(bad)
        await fc.drain()
        return r1, r2, r3, r4

    r1, r2, r3, r4 = run(go())
    assert (r1, r2, r3, r4) == (dv.RESULT_CALLING, dv.RESULT_QUEUED, None, dv.RESULT_NONE)
    assert sent == ["originate {origination_caller_id_name='Callback +13105550101',"
                    "origination_caller_id_number=+13105550101,originate_timeout=30,"
                    "textback_callback=c-1}user/1000@pbx.example +13105550101 XML default"]
    assert [r.state for r in cbs.Callback.select()] == ["connected"]
    [m] = Message.select().where(Message.kind == "manual")
    assert m.peer == "+13105550102"


def test_unguarded_panoramisk_handler_does_freeze_the_loop(tmp_path):
    """The sharp edge our guard exists for (LIBRARY-NOTES), shown on panoramisk 1.4 itself in
    a child process: a client that closes mid-header and the loop never runs anything again."""
    import subprocess
    import sys
    script = tmp_path / "freeze.py"
    script.write_text(
        "import asyncio\n"
        "from panoramisk import fast_agi\n"
        "async def main():\n"
        "    app = fast_agi.Application()\n"
        "    async def cb(req): pass\n"
        "    app.add_route('callback', cb)\n"
        "    srv = await asyncio.start_server(app.handler, '127.0.0.1', 0)\n"
        "    port = srv.sockets[0].getsockname()[1]\n"
        "    r, w = await asyncio.open_connection('127.0.0.1', port)\n"
        "    w.write(b'agi_network: yes\\nagi_network_script: callback\\n'); await w.drain(); w.close()\n"
        "    for _ in range(20):\n"
        "        await asyncio.sleep(0.01)\n"
        "    print('loop alive')\n"
        "asyncio.run(main())\n")
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, str(script)], timeout=1.5, capture_output=True)


def test_waiting_query_on_both_databases(store_factory):
    """The correlated NOT EXISTS queries of store/callbacks.py on SQLite and PostgreSQL."""
    s = store_factory()
    cbs.create_tables(s)
    waiting_callers(s)
    now = T0 + 3 * H
    assert cbs.last_missed(s, now=now, window_s=24 * H).call_id == "c-mid"
    got = []
    while (c := cbs.claim_oldest_waiting(s, endpoint="PJSIP/100", now=now, window_s=24 * H)):
        got.append(c[0].call_id)
    assert got == ["c-old", "c-mid"]
    first = cbs.Callback.select().order_by(cbs.Callback.id).first()
    cbs.finish_callback(s, first.id, cbs.FAILED, now=now, detail="3")   # failed: waiting again
    again = cbs.claim_oldest_waiting(s, endpoint="PJSIP/101", now=now, window_s=24 * H)
    assert again[0].call_id == "c-old"
