"""The whole service on FreeSWITCH over real sockets: the real ESL child process
(`python -m pbx_textback.esl`, greenswitch) against the loopback ESL replay server, which like
FreeSWITCH sends only the events the child subscribed to. Recorded traces are moved to the
real clock (shift_times) so the shipped defaults (quiet hours, max age, call-back window)
apply as they would live."""
import asyncio
import socket
import time
import uuid
from pathlib import Path

from pbx_textback.config import loads
from pbx_textback.core.pbx import dialplan_vars as dv
from pbx_textback.esl.replay_server import EslReplayServer, rewrite_events, shift_times
from pbx_textback.service import Service
from pbx_textback.store import db as st

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch"
CALLER = "+15125550123"                  # the recorded SMS's sender
ABANDONED = ("+15125550125", "bdcb56c4-a15a-493f-8a9c-e93b4e3fc4b1")   # 03-abandoned: caller, leg
RECORDED_AT = 1795735052.0               # about when the recorded traces happened


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def now_trace(tmp_path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(shift_times(data, time.time() - RECORDED_AT))
    return p


def plain_event(headers: dict) -> bytes:
    """One event frame as FreeSWITCH writes it with `event plain` (values URL-encoded)."""
    from urllib.parse import quote
    body = "".join(f"{k}: {quote(str(v), safe='/+')}\n" for k, v in headers.items()).encode() + b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def event_app(subclass: str, **headers) -> bytes:
    """What the snippet's `event` application fires on a desk phone's channel."""
    uid = str(uuid.uuid4())
    return plain_event({"Event-Subclass": subclass, "Event-Name": "CUSTOM",
                        "Core-UUID": "3150d247-a4e5-43ca-9e0c-23f8f87ad02e",
                        "Event-Date-Timestamp": str(int(time.time() * 1e6)),
                        "Channel-Name": "sofia/internal/1000@127.0.0.1", "Unique-ID": uid,
                        **headers})


async def run_service(tmp_path, traces, until, *, features=False, api_replies=None,
                      timeout=25.0, pace=0.0):
    server = EslReplayServer(traces, password="s3cret", api_replies=api_replies, pace=pace)
    port = await server.start()
    agi_port = free_port()
    cfg = loads(f'''
[business]
name = "Acme Plumbing"
[pbx]
type = "freeswitch"
[pbx.esl]
port = {port}
password = "s3cret"
[store]
path = "{tmp_path / 's.sqlite3'}"
[features]
enabled = {str(features).lower()}
port = {agi_port}
''')
    svc = Service(cfg)
    result = {"stopped_by_test": False, "agi_port": agi_port, "server": server}

    async def watch():
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.1)
            if await until(svc, server, result):
                break
        result["stopped_by_test"] = True
        svc.stop()
    try:
        await svc.run(extra_tasks=[watch()])
    finally:
        await server.stop()
    st.open_store(str(tmp_path / "s.sqlite3"))
    return result


# -- finding 17: a STOP that reaches FreeSWITCH as a SIP MESSAGE ---------------------------------

def stop_trace() -> bytes:
    """The recorded carrier SIP MESSAGE (tests/fixtures/freeswitch/sms-sip-message.esl) with
    the caller's text being STOP."""
    said = b"Content-Length: 33\n\nHi, do you do emergency callouts?"
    return rewrite_events((FIX / "sms-sip-message.esl").read_bytes(),
                          lambda b: b.replace(said, b"Content-Length: 4\n\nSTOP"))


def test_a_stop_by_sip_message_through_freeswitch_opts_the_caller_out(tmp_path):
    trace = now_trace(tmp_path, "stop.esl", stop_trace())

    async def until(svc, server, res):
        return svc.store.consent_history(CALLER) and st.Message.select().where(
            st.Message.kind == "confirmation").exists()
    res = asyncio.run(run_service(tmp_path, [trace], until))
    assert res["stopped_by_test"]
    (reply,) = st.Message.select().where(st.Message.direction == "in")
    assert (reply.peer, reply.body, reply.transport) == (CALLER, "STOP", "freeswitch")
    kinds = [c.kind for c in st.Consent.select().where(st.Consent.number == CALLER)]
    assert "opt-out" in kinds
    (conf,) = st.Message.select().where(st.Message.kind == "confirmation")
    assert conf.peer == CALLER and conf.state not in (st.FAILED, st.CANCELLED)
    assert "RECV_MESSAGE" in next(c for c in res["server"].commands if c.startswith("event "))


# -- finding 19 (and 20: no FastAGI listener on a FreeSWITCH box) --------------------------------

def test_star88_and_star89_on_freeswitch_reach_the_service(tmp_path):
    missed = now_trace(tmp_path, "missed.esl", (FIX / "03-abandoned.esl").read_bytes())
    codes = tmp_path / "codes.esl"
    endpoint = "user/1000@127.0.0.1"
    codes.write_bytes(
        event_app(dv.FS_FEATURE_SUBCLASS, **{dv.FS_H_FEATURE: dv.FS_FEATURE_TEXTAGAIN,
                                             dv.FS_H_ENDPOINT: endpoint})
        + event_app(dv.FS_FEATURE_SUBCLASS, **{dv.FS_H_FEATURE: dv.FS_FEATURE_CALLBACK,
                                               dv.FS_H_ENDPOINT: endpoint}))

    async def until(svc, server, res):
        if "agi" not in res and svc.features is not None:
            try:                           # nothing may listen on the FastAGI port here
                _, w = await asyncio.open_connection("127.0.0.1", res["agi_port"])
                w.close()
                res["agi"] = "listening"
            except OSError:
                res["agi"] = "refused"
        return any(c.startswith("api originate") for c in server.commands)
    res = asyncio.run(run_service(tmp_path, [missed, codes], until, features=True,
                                  api_replies={"originate": "+OK 7f4de4bc"}))
    assert res["stopped_by_test"]
    (manual,) = st.Message.select().where(st.Message.kind == "manual")     # *89
    assert manual.peer == ABANDONED[0]
    (cmd,) = [c for c in res["server"].commands if c.startswith("api originate")]   # *88
    assert endpoint in cmd and ABANDONED[0] in cmd
    assert res["agi"] == "refused"


# -- finding 23: `show channels as json` answering nonsense -------------------------------------

def test_a_nonsense_show_channels_answer_does_not_stop_the_service(tmp_path):
    """The answer comes right after the (re)connect; the second call plays a second later and
    must still be decided."""
    first = now_trace(tmp_path, "abandoned.esl", (FIX / "03-abandoned.esl").read_bytes())
    second = now_trace(tmp_path, "busy.esl", (FIX / "04-busy.esl").read_bytes())

    async def until(svc, server, res):
        return svc.store.has_call("a8b2dd92-ab75-4e47-ba5c-f4e9dd790dda")    # 04's caller leg
    for n, answer in enumerate(['{"rows": 5}', '{"rows": [5, null, {"uuid": [1]}]}', '[1, 2]',
                                '{"rows": {"a": 1}}', '{"row_count": 1, "rows": [{"uuid": '
                                '"x", "created_epoch": "1e999"}]}']):
        (tmp_path / str(n)).mkdir()
        res = asyncio.run(run_service(tmp_path / str(n), [first, second], until, pace=1.5,
                                      api_replies={"show channels as json": answer}))
        assert res["stopped_by_test"], answer
        assert "api show channels as json" in res["server"].commands
        assert st.Call.select().where(st.Call.call_id.in_((
            ABANDONED[1], "a8b2dd92-ab75-4e47-ba5c-f4e9dd790dda"))).count() == 2
