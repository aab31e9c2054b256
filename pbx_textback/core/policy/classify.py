"""CallRecord -> Outcome. Shared by every PBX: trackers normalize, this decides.

Precedence when several reasons apply: answered > after-hours > queue-abandon > voicemail >
busy > unavailable > no-answer > abandoned.
"""
from __future__ import annotations

from pbx_textback.core.model import (
    ABANDONED, AFTER_HOURS, ANSWERED, BUSY, DIAL_BUSY, DIAL_NOANSWER, DIAL_UNAVAILABLE, INBOUND,
    NO_ANSWER, QUEUE_ABANDON, UNAVAILABLE, VOICEMAIL, CallRecord, Outcome)


def classify(call: CallRecord, *, service_closed: bool | None = None,
             min_talk_seconds: float = 0) -> Outcome:
    """service_closed: the service's own business hours at call time (None: unknown or not set)."""
    if call.direction != INBOUND:
        return Outcome(False, call.direction, f"{call.direction} call: only inbound calls can be missed")
    if call.answered_by_human:
        short = (min_talk_seconds > 0 and call.talk_seconds is not None
                 and call.talk_seconds < min_talk_seconds)
        if not short:
            who = f" by {call.answered_by}" if call.answered_by else ""
            return Outcome(False, ANSWERED, f"a person answered{who}")
        short_note = f"answered{' by ' + call.answered_by if call.answered_by else ''} but talked " \
                     f"{call.talk_seconds:.0f}s < min_talk_seconds {min_talk_seconds:g}"
    else:
        short_note = ""
    why = lambda s: f"{short_note}; {s}" if short_note else s  # noqa: E731
    if call.pbx_after_hours:
        return Outcome(True, AFTER_HOURS, why(f"the PBX routed it as closed ({call.after_hours_marker})"))
    if service_closed:
        return Outcome(True, AFTER_HOURS, why("outside the line's business hours"))
    if call.queue_abandoned:
        q = f" {call.queue}" if call.queue else ""
        return Outcome(True, QUEUE_ABANDON, why(f"caller left queue{q} before an agent answered"))
    if call.voicemail:
        left = {True: "left a message", False: "left no message", None: "message unknown"}[call.voicemail_left]
        return Outcome(True, VOICEMAIL, why(f"reached voicemail, {left}"))
    results = set(call.dial_results)
    if DIAL_BUSY in results:
        return Outcome(True, BUSY, why("the called party was busy"))
    if DIAL_UNAVAILABLE in results:
        return Outcome(True, UNAVAILABLE, why("the called party was unavailable or congested"))
    if DIAL_NOANSWER in results:
        return Outcome(True, NO_ANSWER, why("rang out with no answer"))
    if short_note:
        return Outcome(True, NO_ANSWER, short_note)
    if call.hangup_cause == "SYSTEM_SHUTDOWN" and not call.caller_cancelled:
        return Outcome(True, ABANDONED, why("the PBX shut down before anyone answered"))
    return Outcome(True, ABANDONED, why("caller hung up before anyone answered"))
