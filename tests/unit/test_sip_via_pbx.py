"""Texts through the PBX: AMI MessageSend and FreeSWITCH `chat`. The fakes replay the PBXs' real
answers: the Success frame recorded in tests/fixtures/asterisk/messagesend.ami, the error
answers written down in its README (recorded with the shipped manager.conf), and FreeSWITCH's
chat_api_function replies (`Sent`; `Error! Message Not Sent` recorded in the fixture README)."""
from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from hypothesis import given, strategies as st

from pbx_textback.ami.client import AmiConnectionLost, AmiNotConnected
from pbx_textback.core.pbx.amiframe import frames_from_bytes
from pbx_textback.core.pbx.eslframe import parse_stream
from pbx_textback.esl.parent import EslError, EslNotConnected
from pbx_textback.sip.via_pbx import (AmiMessageTransport, EslChatTransport, escape_chat_field,
                                      split_chat_args)

FIX = Path(__file__).resolve().parents[1] / "fixtures"
MSG = NS(id=7, peer="+15125550123", line="+15125550100", body="Test ✓ reply from +15125550123")


def recorded_ami_answer(action_id: str) -> dict:
    frames = frames_from_bytes((FIX / "asterisk" / "messagesend.ami").read_bytes())
    return next(f for f in frames if f.get("ActionID") == action_id)


# README of the fixture: with the configs as shipped the same action got exactly this
PERMISSION_DENIED = {"Response": "Error", "ActionID": "textback-msg-1", "Message": "Permission denied"}


class FakeAmi:
    def __init__(self, answer=None, exc=None):
        self.answer, self.exc, self.actions = answer, exc, []

    async def send_action(self, action: dict, timeout: float = 5.0):
        self.actions.append((action, timeout))
        if self.exc:
            raise self.exc
        return self.answer


def ami(answer=None, exc=None, **kw):
    fake = FakeAmi(answer, exc)
    kw.setdefault("endpoint_template", "pjsip:{peer}")
    kw.setdefault("from_template", "sip:{line}@127.0.0.1")
    return AmiMessageTransport(fake.send_action, **kw), fake


def test_ami_success_recorded():
    t, fake = ami(recorded_ami_answer("textback-msg-1"), endpoint_template="pjsip:100/sip:{peer}@127.0.0.1")
    res = asyncio.run(t.send(MSG))
    assert res.status == "sent" and res.transport_id == "textback-msg-1"
    (action, timeout), = fake.actions
    assert action == {"Action": "MessageSend", "Destination": "pjsip:100/sip:+15125550123@127.0.0.1",
                      "From": "sip:+15125550100@127.0.0.1", "Body": "Test ✓ reply from +15125550123"}
    assert timeout == 10.0


def test_ami_the_recorded_action_shape():
    """The action as recorded (README), to desk phone 100: Destination pjsip:100."""
    t, fake = ami(recorded_ami_answer("textback-msg-1"), endpoint_template="pjsip:{peer}")
    desk = NS(id=1, peer="100", line="+15125550100", body="Test ✓ reply from +15125550123")
    assert asyncio.run(t.send(desk)).status == "sent"
    assert fake.actions[0][0] == {"Action": "MessageSend", "Destination": "pjsip:100",
                                  "From": "sip:+15125550100@127.0.0.1",
                                  "Body": "Test ✓ reply from +15125550123"}


def test_ami_permission_denied_says_the_fix():
    t, _ = ami(PERMISSION_DENIED, endpoint_template="pjsip:trunk/sip:{peer}@sip.example")
    res = asyncio.run(t.send(MSG))
    assert res.status == "failed"
    assert "Permission denied" in res.error and "write=" in res.error and "res_pjsip_messaging" in res.error


def test_ami_other_errors():
    t, _ = ami({"Response": "Error", "Message": "Message technology not found."},
               endpoint_template="pjsip:trunk/sip:{peer}@sip.example")
    res = asyncio.run(t.send(MSG))
    assert res.status == "failed" and "load res_pjsip_messaging" in res.error
    t, _ = ami({"Response": "Error", "Message": "Message failed to send."},
               endpoint_template="pjsip:trunk/sip:{peer}@sip.example")
    res = asyncio.run(t.send(MSG))
    assert res.status == "failed" and "pjsip:trunk/sip:+15125550123@sip.example" in res.error


@pytest.mark.parametrize("exc,status", [(AmiNotConnected("down"), "retry"), (AmiConnectionLost("cut"), "unknown"),
                                        (asyncio.TimeoutError(), "unknown")])
def test_ami_connection_faults(exc, status):
    t, _ = ami(exc=exc, endpoint_template="pjsip:trunk/sip:{peer}@sip.example")
    assert asyncio.run(t.send(MSG)).status == status


def test_ami_multiline_body_goes_base64():
    t, fake = ami(recorded_ami_answer("textback-msg-1"), endpoint_template="pjsip:trunk/sip:{peer}@sip.example")
    body = "Sorry we missed you.\r\nReply STOP to opt out ✓"
    asyncio.run(t.send(NS(id=1, peer="+15125550123", line="+15125550100", body=body)))
    action = fake.actions[0][0]
    assert "Body" not in action and base64.b64decode(action["Base64Body"]).decode() == body


def test_ami_template_checks():
    with pytest.raises(ValueError, match="endpoint named X"):
        AmiMessageTransport(None, "pjsip:{peer}@mytrunk", "sip:{line}@pbx")
    with pytest.raises(ValueError, match="pjsip:"):
        AmiMessageTransport(None, "sip:{peer}@mytrunk", "sip:{line}@pbx")
    AmiMessageTransport(None, "pjsip:sip:{peer}@sip.example", "sip:{line}@pbx")     # default endpoint: fine
    AmiMessageTransport(None, "pjsip:mytrunk/{peer_digits}@sip.example", "sip:{line}@pbx")


# -- FreeSWITCH -------------------------------------------------------------------------------

def recorded_chat_argument() -> str:
    frames = parse_stream((FIX / "freeswitch" / "sms-sip-message.esl").read_bytes())
    return next(f for f in frames if f.get("Event-Name") == "API" and f.get("API-Command") == "chat")["API-Command-Argument"]


class FakeApi:
    def __init__(self, reply="Sent", exc=None):
        self.reply, self.exc, self.cmds = reply, exc, []

    async def api(self, cmd: str, timeout: float = 5.0) -> str:
        self.cmds.append((cmd, timeout))
        if self.exc:
            raise self.exc
        return self.reply


def fs(reply="Sent", exc=None, **kw):
    fake = FakeApi(reply, exc)
    kw.setdefault("to_template", "external/sip:{peer}@127.0.0.1:5380")
    kw.setdefault("from_template", "{line}@127.0.0.1")
    return EslChatTransport(fake.api, **kw), fake


def test_chat_command_is_the_recorded_one():
    t, fake = fs()
    body = "Sorry we missed your call - Acme Plumbing. Reply here or call back anytime."
    res = asyncio.run(t.send(NS(id=3, peer="+15125550123", line="+15125550100", body=body)))
    assert res.status == "sent" and res.transport_id == "fs-chat-3"
    cmd, timeout = fake.cmds[0]
    assert cmd == "chat " + recorded_chat_argument() and timeout == 40.0


def test_chat_not_sent_and_invalid_and_faults():
    t, _ = fs("Error! Message Not Sent")
    res = asyncio.run(t.send(MSG))
    assert res.status == "retry" and "Not Sent" in res.error
    t, _ = fs("Invalid")
    assert asyncio.run(t.send(MSG)).status == "failed"
    t, _ = fs(exc=EslNotConnected("child down"))
    assert asyncio.run(t.send(MSG)).status == "retry"
    t, _ = fs(exc=EslError("-ERR chat Command not found!"))
    res = asyncio.run(t.send(MSG))
    assert res.status == "failed" and "mod_dptools" in res.error
    t, _ = fs(exc=asyncio.TimeoutError())
    assert asyncio.run(t.send(MSG)).status == "unknown"


def test_chat_without_profile_refused():
    with pytest.raises(ValueError, match="registered users only"):
        EslChatTransport(None, "sip:{peer}@127.0.0.1", "{line}@127.0.0.1")


def test_chat_api_without_timeout_parameter():
    seen = []

    async def api(cmd):
        seen.append(cmd)
        return "Sent"
    t = EslChatTransport(api, "external/sip:{peer}@h", "{line}@h", content_type="text/plain")
    assert asyncio.run(t.send(MSG)).status == "sent"
    assert seen[0].endswith("|text/plain")
    assert split_chat_args(seen[0][5:]) == ["sip", "+15125550100@h", "external/sip:+15125550123@h",
                                            MSG.body, "text/plain"]


@pytest.mark.parametrize("body", [
    "a|b", "a|b|c|d", "We're closed, we'll call you back", "'quoted'", "back\\slash\\", "\\n is not a newline",
    "line1\nline2\r\n", "  leading and trailing  ", "   ", "tab\there", "\\'|'\\", "50% off $20 ${x}",
])
def test_chat_body_survives_freeswitch_splitting(body):
    t, fake = fs()
    asyncio.run(t.send(NS(id=1, peer="+15125550123", line="+15125550100", body=body)))
    cmd = fake.cmds[0][0]
    assert "\n" not in cmd and "\r" not in cmd                     # one ESL command line
    args = split_chat_args(cmd[len("chat "):])
    assert args == ["sip", "+15125550100@127.0.0.1", "external/sip:+15125550123@127.0.0.1:5380", body]


def test_chat_empty_body_not_sent():
    t, fake = fs()
    res = asyncio.run(t.send(NS(id=1, peer="+15125550123", line="+15125550100", body="")))
    assert res.status == "failed" and fake.cmds == []
    assert split_chat_args("sip|f|t|") == ["sip", "f", "t"]          # FreeSWITCH: 3 fields -> Invalid


def test_unescaped_pipe_is_what_freeswitch_would_do():
    """Why escaping matters: a raw `|` ends the text and the rest becomes the content type,
    and a pair of apostrophes is eaten as quotes."""
    assert split_chat_args("sip|f|t|Call us | we are open") == ["sip", "f", "t", "Call us", "we are open"]
    assert split_chat_args("sip|f|t|We're closed, we'll call") == ["sip", "f", "t", "Were closed, well call"]


@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=200))
def test_chat_escape_round_trip(text):
    assert split_chat_args("sip|f|t|" + escape_chat_field(text)) == ["sip", "f", "t", text]


def test_ami_last_look_is_taken_right_before_the_write():
    """The outbox's last look (the sending contract): held -> nothing written, `retry`; let
    through -> written; no answer after it -> `unknown`."""
    t, fake = ami(recorded_ami_answer("textback-msg-1"), endpoint_template="pjsip:100/sip:{peer}@127.0.0.1")
    looks = []
    assert asyncio.run(t.send(MSG, lambda: looks.append(len(fake.actions)) or False)).status == "retry"
    assert fake.actions == [] and looks == [0]
    assert asyncio.run(t.send(MSG, lambda: looks.append(len(fake.actions)) or True)).status == "sent"
    assert looks == [0, 0] and len(fake.actions) == 1
    t, fake = ami(exc=asyncio.TimeoutError(), endpoint_template="pjsip:100/sip:{peer}@127.0.0.1")
    assert asyncio.run(t.send(MSG, lambda: True)).status == "unknown"


@pytest.mark.parametrize("kind", ["ami", "esl"])
def test_the_outbox_last_look_saying_hold_sends_nothing_to_the_pbx(kind):
    """Issue 10 #7: the gate runs right before the action/command is written; 'hold' writes nothing."""
    looks = []

    def last_look():
        looks.append(1)
        return False
    if kind == "ami":
        t, fake = ami(recorded_ami_answer("textback-msg-1"), endpoint_template="pjsip:100/sip:{peer}@127.0.0.1")
        sent = lambda: fake.actions  # noqa: E731
    else:
        t, fake = fs("Sent")
        sent = lambda: fake.cmds  # noqa: E731
    res = asyncio.run(t.send(MSG, last_look))
    assert res.status == "retry" and looks == [1] and sent() == []
    assert asyncio.run(t.send(MSG, lambda: True)).status == "sent" and len(sent()) == 1


def test_chat_follows_the_sending_contract():
    """send(row, last_look): held by the last look or never written -> retry; written and no
    answer -> unknown; only FreeSWITCH's own -ERR is failed (issue 10 finding 18)."""
    from pbx_textback.esl.parent import EslAnswerLost, EslTimeout
    t, fake = fs()
    looks = []
    res = asyncio.run(t.send(MSG, lambda: looks.append(1) or False))
    assert res.status == "retry" and fake.cmds == [] and looks == [1]
    for exc, status in ((EslTimeout("no answer within 40 s"), "unknown"),
                        (EslAnswerLost("connection lost"), "unknown"),
                        (EslNotConnected("down"), "retry"),
                        (EslError("-ERR no reply"), "failed")):
        t, _ = fs(exc=exc)
        res = asyncio.run(t.send(MSG, lambda: True))
        assert res.status == status, exc
        assert "mod_dptools" not in res.error
