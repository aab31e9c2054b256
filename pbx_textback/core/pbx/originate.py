"""Calling a caller back from a desk phone: the PBX command that rings the phone first and then
dials the caller, and how the PBX's answer reads. Pure: header dicts and strings only.

Asterisk: the Originate recorded on a real Asterisk 22 (tests/fixtures/asterisk/originate/):
the desk phone is the Channel; when it answers, the channel runs Context/Exten, i.e. the
phone's own dialplan dials the caller through the line's outbound route (so the trunk's caller
ID rules apply). `CallerID` is what the desk phone shows: "Callback +1512…". With Async the
answer comes in two parts: `Response: Success` (queued) now, `OriginateResponse` when the phone
answers (Success, Reason 4) or not (Failure, Reason 3 no answer / 5 busy / 8 congestion).

FreeSWITCH: `originate {vars}user/100 <number> XML <context>`: the same shape (the user's phone
rings with the caller's number as caller ID, then the dialplan's route dials the caller);
the answer is `+OK <uuid>` or `-ERR <CAUSE>`.
"""
from __future__ import annotations

import re
from typing import Any

# OriginateResponse Reason: Asterisk's AST_CONTROL_* codes (include/asterisk/frame.h)
REASONS = {"0": "the desk phone could not be rung", "1": "the desk phone hung up",
           "3": "the desk phone did not answer", "4": "the desk phone answered",
           "5": "the desk phone is busy", "8": "the desk phone's line is congested"}

_EXT = re.compile(r"^[A-Za-z0-9_.+-]{1,40}$")
_NUMBER = re.compile(r"^\+?\d{3,20}$")


def valid_extension(ext: str) -> bool:
    return bool(_EXT.match(ext or ""))


def desk_channel(template: str, ext: str) -> str:
    """The agent's phone as the PBX names it: "PJSIP/{ext}" -> "PJSIP/100"."""
    if not valid_extension(ext):
        raise ValueError(f"not a desk-phone extension: {ext!r}")
    return template.replace("{ext}", ext)


def ami_originate(channel: str, context: str, number: str, *, ring_seconds: int, action_id: str = "",
                  extra: dict | None = None, exten: str = "") -> dict:
    """The Originate action, field for field as recorded (extra: *88's ChannelId/Variable;
    exten: the number as the context dials it, when it is not the E.164 one)."""
    if not _NUMBER.match(number):
        raise ValueError(f"not a dialable number: {number!r}")
    act = {"Action": "Originate"}
    if action_id:
        act["ActionID"] = action_id
    act.update({"Channel": channel, "Context": context, "Exten": exten or number, "Priority": "1",
                "CallerID": f'"Callback {number}" <{number}>', "Timeout": str(int(ring_seconds) * 1000)})
    act.update(extra or {})
    act["Async"] = "true"
    return act


def fs_originate(endpoint: str, context: str, number: str, *, ring_seconds: int, extra_vars=(),
                 exten: str = "") -> str:
    if not _NUMBER.match(number):
        raise ValueError(f"not a dialable number: {number!r}")
    vars_ = ",".join([f"origination_caller_id_name='Callback {number}'",
                      f"origination_caller_id_number={number}",
                      f"originate_timeout={int(ring_seconds)}", *extra_vars])
    return f"originate {{{vars_}}}{endpoint} {exten or number} XML {context}"


def ami_result(res: Any) -> tuple[bool, str, str]:
    """(desk phone answered, why in words, the originated channel's Uniqueid or "") from
    AmiSource.send_action's answer to an Async Originate: [Response, OriginateResponse]."""
    frames = [f for f in (res if isinstance(res, list) else [res]) if isinstance(f, dict)]
    final = [f for f in frames if f.get("Event") == "OriginateResponse"]
    f = final[-1] if final else (frames[-1] if frames else {})
    ok = str(f.get("Response", "")).lower() == "success" and bool(final)
    reason = str(f.get("Reason", ""))
    uid = str(f.get("Uniqueid", ""))
    uid = uid if re.match(r"^[\w.:-]+$", uid) and not uid.startswith("<") else ""
    if final:
        why = REASONS.get(reason, f"the PBX answered {f.get('Response', '?')} (reason {reason or '?'})")
    else:
        why = f"the PBX refused: {f.get('Message') or f.get('Response') or 'no answer'}"
    return ok, why, uid


def fs_result(res: Any) -> tuple[bool, str, str]:
    """`+OK <uuid>` / `-ERR NO_ANSWER` (text or a reply dict's body) -> (ok, why, uuid)."""
    text = res.get("body", res.get("Reply-Text", "")) if isinstance(res, dict) else str(res or "")
    text = str(text).strip()
    if text.startswith("+OK"):
        return True, REASONS["4"], text[3:].strip()[:80]
    cause = text.removeprefix("-ERR").strip() or "no answer"
    words = {"NO_ANSWER": REASONS["3"], "USER_BUSY": REASONS["5"], "ORIGINATOR_CANCEL": REASONS["1"],
             "NO_USER_RESPONSE": REASONS["3"], "USER_NOT_REGISTERED": "the desk phone is not registered"}
    return False, words.get(cause, f"FreeSWITCH: {cause[:120]}"), ""


def outcome_words(state: str, detail: str, call: dict | None) -> str:
    """A callback's result as the desk reads it on the timeline. state: the callback row's
    (originating | connected | failed); call: the PBX's record of the call it made, if any
    (answered, reason, hangup cause)."""
    if state == "originating":
        return "ringing the desk phone"
    if state == "failed":
        return detail or "failed"
    if call is None:
        return "desk phone answered: calling the caller"
    if call.get("answered"):
        return "connected"
    cause = str(call.get("hangup_cause") or "")
    if cause == "17" or call.get("reason") == "busy":
        return "caller busy"
    if cause in ("18", "19") or call.get("reason") in ("no-answer", "noanswer"):
        return "caller did not answer"
    return "caller not reached" + (f" (cause {cause})" if cause else "")
