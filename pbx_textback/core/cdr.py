"""Calls rebuilt from the PBX's stored CDR, for the gap while the event socket was down. Pure.

A CDR says ANSWERED for calls the PBX itself answered (voicemail, IVR, queue) and carries no
presentation flag, so a call rebuilt from it is `recovered` and says how sure it is: only an
unambiguous verdict (a person's extension answered; every dial rang out, was busy or failed;
voicemail took it) may be texted, and only when the config allows it.
"""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from .asterisk import channel_endpoint
from .numbers import is_anonymous
from .model import (
    DIAL_BUSY, DIAL_NOANSWER, DIAL_UNAVAILABLE, INBOUND, INTERNAL, OUTBOUND, CallRecord)

# cdr_csv's Master.csv columns (loguniqueid and loguserfield on, as Asterisk ships them)
CSV_COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
               "lastdata", "start", "answer", "end", "duration", "billsec", "disposition",
               "amaflags", "uniqueid", "userfield")
# The same fields in AMI `Event: Cdr` (cdr_manager) and FreePBX's asteriskcdrdb naming
AMI_NAMES = {"Source": "src", "Destination": "dst", "DestinationContext": "dcontext",
             "CallerID": "clid", "Channel": "channel", "DestinationChannel": "dstchannel",
             "LastApplication": "lastapp", "LastData": "lastdata", "StartTime": "start",
             "AnswerTime": "answer", "EndTime": "end", "Duration": "duration",
             "BillableSeconds": "billsec", "Disposition": "disposition", "UniqueID": "uniqueid",
             "UserField": "userfield", "AccountCode": "accountcode", "calldate": "start"}
PBX_APPS = {"voicemail", "vm", "playback", "background", "waitexten", "read", "record", "answer",
            "hangup", "congestion", "busy", "wait", "musiconhold", "progress", "ivr"}


def normalize(row: dict) -> dict:
    """Any of the three spellings -> the cdr_csv field names, values stripped."""
    out = {}
    for k, v in row.items():
        key = AMI_NAMES.get(k, k).lower()
        out[key] = (v or "").strip() if isinstance(v, str) else ("" if v is None else str(v))
    return out


def _ts(s: str, tz: str) -> float | None:
    if not s:
        return None
    try:
        dt = datetime.fromisoformat(s.replace("/", "-"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=ZoneInfo(tz))).timestamp()


def _did(row: dict) -> str:
    if row.get("did"):
        return row["did"]
    m = re.search(r"did:([+\d]+)", row.get("userfield", ""))
    return m.group(1) if m else ""


def _anonymous(row: dict) -> bool:
    clid = row.get("clid", "").lower()
    return is_anonymous(row.get("src", "")) or "anonymous" in clid or "restricted" in clid


def recover(rows: list[dict], *, trunk_endpoints: set[str], tz: str,
            internal_max_digits: int = 6) -> list[CallRecord]:
    """CDR rows (any spelling) -> one recovered CallRecord per call (the caller's uniqueid, or
    linkedid where the CDR has it)."""
    calls: dict[str, list[dict]] = {}
    for raw in rows:
        r = normalize(raw)
        key = r.get("linkedid") or r.get("uniqueid")
        if key:
            calls.setdefault(key, []).append(r)
    return [_one(key, rs, trunk_endpoints, tz, internal_max_digits) for key, rs in calls.items()]


def _one(key, rs, trunks, tz, internal_max) -> CallRecord:
    first = min(rs, key=lambda r: r.get("start", ""))
    tech, ep = channel_endpoint(first.get("channel", ""))
    src_digits = sum(ch.isdigit() for ch in first.get("src", ""))
    dst_digits = sum(ch.isdigit() for ch in first.get("dst", ""))
    did = _did(first)
    if ep in trunks or did:
        direction = INBOUND
    elif any(channel_endpoint(r.get("dstchannel", ""))[1] in trunks for r in rs) or dst_digits > internal_max:
        direction = OUTBOUND
    elif src_digits > internal_max:
        direction = INBOUND
    else:
        direction = INTERNAL
    answered_by, results, voicemail, why = "", [], False, ""
    for r in rs:
        disp = r.get("disposition", "").upper()
        app = r.get("lastapp", "").lower()
        dtech, dep = channel_endpoint(r.get("dstchannel", ""))
        person = bool(dep) and dtech != "local" and dep not in trunks
        if disp == "ANSWERED" and person and app in ("dial", "queue"):
            answered_by = dep
        elif app == "voicemail":
            voicemail = True
        elif disp == "ANSWERED" and app in ("dial", "queue") and dtech == "local":
            why = why or "answered through a Local channel: a person or the PBX, the CDR cannot tell"
        elif disp == "ANSWERED" and (app in PBX_APPS or not dep):
            why = why or f"answered by the PBX itself ({r.get('lastapp') or 'no app'}): IVR, announcement or hangup"
        elif disp in ("NO ANSWER", "NOANSWER"):
            results.append(DIAL_NOANSWER)
        elif disp == "BUSY":
            results.append(DIAL_BUSY)
        elif disp in ("FAILED", "CONGESTION"):
            results.append(DIAL_UNAVAILABLE)
    if answered_by or voicemail:
        why = ""           # a person, or voicemail, settles it whatever else the rows say
    queue = next((r.get("lastdata", "").split(",")[0] for r in rs if r.get("lastapp", "").lower() == "queue"), "")
    start = _ts(first.get("start", ""), tz)
    end = max((_ts(r.get("end", ""), tz) or 0 for r in rs), default=0) or None
    notes = ["rebuilt from the PBX's CDR after a gap in the event stream"]
    if why:
        notes.append(f"ambiguous: {why}")
    return CallRecord(
        pbx="cdr", call_id=key, caller=first.get("src", ""), called=did or first.get("dst", ""),
        direction=direction, caller_name=_clid_name(first.get("clid", "")),
        withheld=_anonymous(first), started_at=start, ended_at=end,
        answered_by_human=bool(answered_by), answered_by=answered_by,
        dial_results=tuple(results), queue=queue, queue_abandoned=bool(queue) and not answered_by and not voicemail,
        voicemail=voicemail, voicemail_left=None, recovered=True, recovered_why=why,
        notes=tuple(notes))


def _clid_name(clid: str) -> str:
    m = re.match(r'\s*"([^"]*)"', clid)
    return m.group(1) if m else ""
