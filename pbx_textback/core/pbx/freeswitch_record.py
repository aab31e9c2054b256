"""A finished FreeSWITCH call -> its CallRecord: who called, what was dialled, who answered
(read from the graph of bridges), how it ended. Pure; the tracker only gathers the facts."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pbx_textback.core.model import (
    DIAL_ANSWER, DIAL_BUSY, DIAL_CANCEL, DIAL_NOANSWER, DIAL_UNAVAILABLE, INBOUND, INTERNAL,
    OUTBOUND, CallRecord, Leg, build)
from pbx_textback.core.pbx.freeswitch_call import FsCall, FsLeg


if TYPE_CHECKING:
    from pbx_textback.core.pbx.freeswitch import FsTrackerSettings

# Hangup causes of a dial attempt (a rung leg, or the caller leg's originate_disposition).


_NOANSWER = {"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT",
             "NOANSWER"}
# CALL_REJECTED is the phone's "decline" button (603): the person chose not to take it,
# which is what busy means to the caller.


_BUSY = {"USER_BUSY", "CALL_REJECTED", "BUSY"}


_UNAVAILABLE = {"SUBSCRIBER_ABSENT", "USER_NOT_REGISTERED", "UNALLOCATED_NUMBER",
                "NORMAL_TEMPORARY_FAILURE", "DESTINATION_OUT_OF_ORDER", "NO_ROUTE_DESTINATION",
                "RECOVERY_ON_TIMER_EXPIRE", "NETWORK_OUT_OF_ORDER", "SWITCH_CONGESTION",
                "INCOMPATIBLE_DESTINATION", "INVALID_NUMBER_FORMAT", "NO_ROUTE_TRANSIT_NET",
                "FACILITY_REJECTED", "SERVICE_UNAVAILABLE", "CHAN_NOT_IMPLEMENTED",
                "GATEWAY_DOWN", "MEDIA_TIMEOUT", "CHANUNAVAIL", "CONGESTION"}


_CANCEL = {"ORIGINATOR_CANCEL", "LOSE_RACE", "CANCEL"}


_ANSWER = {"SUCCESS", "PICKED_OFF", "ANSWER"}


_ANON = {"", "anonymous", "restricted", "private", "unknown", "unavailable", "withheld",
         "0000000000"}


_TRUNK_TECHS = {"freetdm", "gsmopen", "skypopen", "khomp", "dahdi"}


_PHONE_TECHS = {"user", "verto.rtc", "rtc"}


def kind_of(leg: FsLeg, s: FsTrackerSettings) -> tuple[str, str]:
    name = leg.name
    tech, _, rest = name.partition("/")
    if tech == "loopback":
        return "local", rest.split("-")[0]
    if tech == "sofia":
        prof, _, tail = rest.partition("/")
        if prof == "gateway":
            gw, _, num = tail.partition("/")
            return "trunk", num.split("@")[0]
        endpoint = tail.split("@")[0]
        if leg.direction == "outbound":
            if prof in s.inbound_profiles or (leg.gateway and _is_gateway(leg, s)):
                return "trunk", endpoint
            return "extension", endpoint
        if _external_inbound(leg, s):
            return "caller", leg.cid_num or endpoint
        return "extension", leg.user_name or leg.cid_num or endpoint
    if tech in _PHONE_TECHS:
        return "extension", rest.split("@")[0]
    if tech in _TRUNK_TECHS:
        return "trunk", rest.rsplit("/", 1)[-1]
    return "other", rest


def _is_gateway(leg: FsLeg, s: FsTrackerSettings) -> bool:
    return not s.gateways or leg.gateway in s.gateways


def _external_inbound(leg: FsLeg, s: FsTrackerSettings) -> bool:
    if leg.direction != "inbound" or leg.loopback or leg.name.startswith("loopback/"):
        return False
    if leg.user_name:
        return False            # an authenticated desk phone
    if leg.gateway and _is_gateway(leg, s):
        return True
    return leg.context in s.inbound_contexts or leg.profile in s.inbound_profiles


def record(call: FsCall, s: FsTrackerSettings) -> CallRecord:
    notes = list(call.notes)
    origin = origin_leg(call, s) or min(call.legs.values(), key=lambda l: l.seq)
    kinds = {uid: kind_of(l, s) for uid, l in call.legs.items()}
    okind = kinds[origin.uid][0]
    # direction
    if okind == "caller":
        direction = INBOUND
    else:
        trunk = any(k == "trunk" for k, _ in kinds.values())
        direction = OUTBOUND if trunk or (origin.direction == "outbound" and
                                          kinds[origin.uid][0] == "trunk") else INTERNAL
        who = origin.user_name or origin.cid_num or origin.name
        notes.append(f"started by {who} ({'authenticated user' if origin.user_name else 'context ' + (origin.context or '?')}"
                     f"{', ' + origin.profile + ' profile' if origin.profile else ''})"
                     + (": it went out through a trunk" if direction == OUTBOUND else
                        ": it stayed inside the PBX"))
    # called number: the DID as the caller dialled it
    if origin.dest_is_first and origin.dest:
        called = origin.dest
    else:
        called = origin.req_user or origin.dest
        if origin.adopted:
            notes.append("the dialled number comes from the SIP request (first events "
                         "of the call were not seen)")
    caller = origin.cid_num
    withheld = False
    why_withheld = ""
    if origin.hide_number:
        withheld, why_withheld = True, "Caller-Privacy-Hide-Number is true"
    elif "id" in re.split(r"[^a-z0-9-]+", origin.privacy.lower()):   # id;critical, ARRAY::id|:...
        withheld, why_withheld = True, f"SIP Privacy: {origin.privacy}"
    elif caller.strip().lower() in _ANON:
        withheld, why_withheld = True, f"caller number {caller or 'absent'!r}"
    if withheld:
        notes.append(f"the caller's number is withheld ({why_withheld})")
    # who answered: a person's leg reachable from the caller through bridges
    human, human_ts = human_leg(call, origin, kinds)
    answered_by = ""
    if human is not None:
        answered_by = kinds[human.uid][1]
        kind = kinds[human.uid][0]
        via = " (queue agent)" if call.queue_agent_uuid == human.uid or (
            call.queue_agent and call.queue) else ""
        notes.append(f"bridged to {human.name}{via}: answered by a person"
                     if kind != "trunk" else
                     f"bridged to the outside number {answered_by} ({human.name}): "
                     "answered there")
    elif call.picked_off:
        leg = call.legs.get(call.picked_off[0])
        answered_by = kinds[leg.uid][1] if leg else ""
        human_ts = leg.ended if leg else None
        notes.append(f"the ringing phone {answered_by} was picked up from another phone "
                     "(PICKED_OFF): answered by a person")
    answered_by_human = human is not None or bool(call.picked_off)
    # system answer
    system_answered = bool(origin.answered is not None and (
        origin.app_answered or not answered_by_human or
        (human_ts is not None and origin.answered < human_ts - 0.5)))
    if system_answered and not answered_by_human:
        loop = any(k == "local" for k, _ in kinds.values())
        notes.append("the PBX answered the caller itself"
                     + (" (voicemail through a loopback leg)" if loop and call.voicemail
                        else ""))
    # times
    start = origin.created
    end = origin.ended
    talk = ring = None
    if answered_by_human and human_ts is not None and end is not None:
        talk = max(0.0, end - human_ts)
        if start is not None:
            ring = max(0.0, human_ts - start)
    elif start is not None:
        stop = origin.answered if origin.answered is not None else end
        if stop is not None:
            ring = max(0.0, stop - start)
    # dial results, in order
    dial_results = tuple(r for r, _, _ in call.dials)
    for r, raw, what in call.dials:
        notes.append(f"{what}: {raw} ({r})")
    # caller gave up; a PBX shutting down hangs up every channel with SYSTEM_SHUTDOWN and
    # cancels the ringing phones under the caller's bridge: that is not the caller
    shutdown = origin.cause == "SYSTEM_SHUTDOWN"
    cancelled = (not answered_by_human) and not shutdown and (
        origin.cause == "ORIGINATOR_CANCEL" or origin.hangup_disposition == "recv_cancel"
        or (bool(call.dials) and call.dials[-1][0] == DIAL_CANCEL
            and call.dials[-1][1] in ("ORIGINATOR_CANCEL", "CANCEL")))
    if cancelled:
        notes.append("the caller hung up while it was ringing")
    elif shutdown and not answered_by_human:
        notes.append("FreeSWITCH shut down (Hangup-Cause SYSTEM_SHUTDOWN) before anyone "
                     "answered: the caller did not hang up, the PBX cut the call")
    # queue
    queue_abandoned = False
    if call.queue_started:
        q = call.queue or "?"
        if answered_by_human:
            notes.append(f"queue {q}: an agent took it")
        elif call.queue_cause == "Cancel" and call.queue_cancel_reason not in (
                "TIMEOUT", "NO_AGENT_TIMEOUT", "EXIT_WITH_KEY"):
            queue_abandoned = True
            notes.append(f"queue {q}: the caller left before an agent answered "
                         f"(member-queue-end {call.queue_cause}"
                         f"{'/' + call.queue_cancel_reason if call.queue_cancel_reason else ''})")
        elif call.queue_cause == "Cancel":
            notes.append(f"queue {q}: the queue gave up ({call.queue_cancel_reason}) and "
                         "the dialplan went on")
        elif not call.queue_ended and origin.ended is not None:
            queue_abandoned = True
            notes.append(f"queue {q}: the caller hung up in the queue (no member-queue-end "
                         "seen)")
        else:
            notes.append(f"queue {q}: left with {call.queue_cause or 'no cause'}")
    # voicemail
    voicemail_left: bool | None = None
    if call.voicemail:
        if call.voicemail_left:
            voicemail_left = True
            notes.append("a voicemail message was left (vm::maintenance leave-message)")
        elif call.voicemail_lua:
            notes.append("voicemail reached (FusionPBX voicemail: whether a message was "
                         "left is not on the event socket)")
        else:
            voicemail_left = False
            notes.append("voicemail reached, no message left")
    # after hours
    after: bool | None = None
    marker = ""
    if call.closed_marks:
        after, marker = True, call.closed_marks[0]
        notes.append(f"the PBX routed it as closed: {marker}")
    elif call.open_marks:
        after, marker = False, call.open_marks[0]
    # (build(): a frozen dataclass's keyword __init__ costs more than all of the above)
    legs = tuple(
        build(Leg, {"id": l.uid, "name": l.name, "kind": kinds[l.uid][0],
                    "endpoint": kinds[l.uid][1], "answered": l.answered is not None,
                    "hangup_cause": l.cause})
        for l in sorted(call.legs.values(), key=lambda l: l.seq))
    return build(CallRecord, {
        "pbx": "freeswitch", "call_id": origin.uid, "caller": caller, "called": called,
        "direction": direction, "caller_name": origin.cid_name, "withheld": withheld,
        "started_at": start, "ended_at": end, "answered_by_human": answered_by_human,
        "answered_by": answered_by, "talk_seconds": talk, "ring_seconds": ring,
        "dial_results": dial_results, "caller_cancelled": cancelled,
        "hangup_cause": origin.cause, "queue": call.queue, "queue_abandoned": queue_abandoned,
        "voicemail": call.voicemail, "voicemail_left": voicemail_left,
        "pbx_after_hours": after, "after_hours_marker": marker,
        "system_answered": system_answered, "recovered": False, "recovered_why": "",
        "legs": legs, "notes": tuple(notes)})


def human_leg(call: FsCall, origin: FsLeg, kinds: dict) -> tuple[FsLeg | None, float | None]:
    adj: dict[str, set[str]] = {}
    for a, b in call.edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    # breadth first from the caller: the earliest answer wins, a tie goes to the leg fewer
    # bridges away, then to the one seen first; never to the walk's order (sets of uids: it
    # changed with the hash seed, so one run said "answered by a person", the next "there")
    depth = {origin.uid: 0}
    todo = [origin.uid]
    best: tuple[tuple, FsLeg] | None = None
    for cur in todo:
        for nxt in adj.get(cur, ()):
            if nxt in depth:
                continue
            depth[nxt] = depth[cur] + 1
            todo.append(nxt)
            leg = call.legs.get(nxt)
            if leg is None:
                continue
            kind = kinds[nxt][0]
            if kind in ("extension", "trunk") and leg.answered is not None and \
                    not leg.loopback:
                t = call.bridged_at.get(nxt) or leg.answered
                key = (t, depth[nxt], leg.seq)
                if best is None or key < best[0]:
                    best = (key, leg)
    return (best[1], best[0][0]) if best is not None else (None, None)


def origin_leg(call: FsCall, s: FsTrackerSettings) -> FsLeg | None:
    legs = sorted(call.legs.values(), key=lambda l: l.seq)
    if not legs:
        return None
    for l in legs:
        if l.direction == "inbound" and not l.loopback and not l.name.startswith("loopback/"):
            if l.user_name or l.context in s.inbound_contexts or l.profile in s.inbound_profiles \
                    or l.gateway:
                if not l.user_name:
                    return l
    for l in legs:
        if l.direction == "inbound" and not l.loopback and not l.name.startswith("loopback/"):
            return l
    return legs[0]


def dial_result(raw: str) -> str:
    raw = (raw or "").upper()
    if raw in _ANSWER:
        return DIAL_ANSWER
    if raw in _NOANSWER:
        return DIAL_NOANSWER
    if raw in _BUSY:
        return DIAL_BUSY
    if raw in _CANCEL:
        return DIAL_CANCEL
    if raw in _UNAVAILABLE:
        return DIAL_UNAVAILABLE
    return ""


_VARBLOCK = re.compile(r"\{[^}]*\}|\[[^\]]*\]|<[^>]*>")


def short_dial(s: str, n: int = 80) -> str:
    """A dial string, shortened to its targets: `user/1000@d` -> `user/1000`."""
    targets = []
    for t in re.split(r",|\||:_:", _VARBLOCK.sub("", s)):
        t = t.strip()
        if not t:
            continue
        tech, _, rest = t.partition("/")
        if tech == "sofia":
            prof, _, tail = rest.partition("/")
            tail = tail[4:] if tail.startswith("sip:") else tail
            t = f"sofia/{prof}/{tail.split('@')[0]}"
        else:
            t = t.split("@")[0]
        targets.append(t)
    out = ", ".join(targets) or s
    return out if len(out) <= n else out[:n - 1] + "…"
