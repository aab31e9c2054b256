"""Calls rebuilt from the PBX's stored CDR, for the gap while the event socket was down. Pure.

A CDR says ANSWERED for calls the PBX itself answered (voicemail, IVR, queue) and carries no
presentation flag, so a call rebuilt from it is `recovered` and says how sure it is: only an
unambiguous verdict (a person's extension answered; every dial rang out, was busy or failed;
voicemail took it) may be texted, and only when the config allows it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from pbx_textback.core.pbx.asterisk import channel_endpoint
from pbx_textback.core.numbers import is_anonymous
from pbx_textback.core.model import (
    DIAL_BUSY, DIAL_NOANSWER, DIAL_UNAVAILABLE, INBOUND, INTERNAL, OUTBOUND, CallRecord)

# cdr_csv's Master.csv columns (loguniqueid and loguserfield on, as Asterisk's sample cdr.conf
# has them); without loguniqueid the uniqueid column is missing, and nothing can be matched
CSV_BASE = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
            "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")
CSV_COLUMNS = CSV_BASE + ("uniqueid", "userfield")
CSV_NEW = ("peeraccount", "linkedid", "sequence")          # [csv] newcdrcolumns=yes
LOCAL = "local"     # CDR times in the PBX box's own zone (Asterisk writes local time by default)
_UNIQUEID = re.compile(r"^(?:[\w-]+-)?\d{9,}\.\d+$")    # 1795970547.134, systemname-1795970547.134
# The same fields in AMI `Event: Cdr` (cdr_manager) and FreePBX's asteriskcdrdb naming
AMI_NAMES = {"Source": "src", "Destination": "dst", "DestinationContext": "dcontext",
             "CallerID": "clid", "Channel": "channel", "DestinationChannel": "dstchannel",
             "LastApplication": "lastapp", "LastData": "lastdata", "StartTime": "start",
             "AnswerTime": "answer", "EndTime": "end", "Duration": "duration",
             "BillableSeconds": "billsec", "Disposition": "disposition", "UniqueID": "uniqueid",
             "UserField": "userfield", "AccountCode": "accountcode", "calldate": "start"}
PBX_APPS = {"voicemail", "vm", "playback", "background", "waitexten", "read", "record", "answer",
            "hangup", "congestion", "busy", "wait", "musiconhold", "progress", "ivr"}


@dataclass(frozen=True)
class CsvConf:
    """cdr.conf's [csv] section, as cdr_csv reads it (each option is off unless set)."""
    found: bool = False          # the file had a [csv] section
    usegmtime: bool = False
    loguniqueid: bool = False
    loguserfield: bool = False
    newcdrcolumns: bool = False


def _ast_true(v: str) -> bool:
    return v.strip().lower() in ("yes", "true", "y", "t", "1", "on")


def parse_cdr_conf(text: str) -> CsvConf:
    """The [csv] options of a cdr.conf text (comments after `;`, `=` or `=>`)."""
    section, opts, found = "", {}, False
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and "]" in line:
            section = line[1:line.index("]")].strip().lower()
            found = found or section == "csv"
            continue
        if section != "csv" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        opts[key.strip().lower()] = _ast_true(value.lstrip(">"))
    return CsvConf(found, *(opts.get(k, False) for k in
                            ("usegmtime", "loguniqueid", "loguserfield", "newcdrcolumns")))


def csv_row(values: list[str], conf: CsvConf | None = None) -> dict:
    """One Master.csv line as a dict. Its width says which optional columns cdr_csv wrote
    (rows written before a cdr.conf change differ); where two layouts fit, cdr.conf decides,
    else whether the 17th value looks like a uniqueid."""
    extra = len(values) - len(CSV_BASE)
    new = extra >= 3            # newcdrcolumns adds three, the others one each
    if new:
        extra -= 3
    if extra >= 2:
        cols = CSV_COLUMNS
    elif extra == 1:
        if conf is not None and conf.found and conf.loguniqueid != conf.loguserfield:
            uid = conf.loguniqueid
        else:
            uid = bool(_UNIQUEID.match(values[len(CSV_BASE)].strip()))
        cols = CSV_BASE + (("uniqueid",) if uid else ("userfield",))
    else:
        cols = CSV_BASE
    if new:
        cols = cols + CSV_NEW
    return dict(zip(cols, values))


def cdr_zone(configured: str, source: str, conf: CsvConf | None) -> str:
    """The zone the CDR's times are in: the config's pbx.cdr.timezone when set; for cdr_csv
    with [csv] usegmtime=yes, UTC; else the PBX box's own zone, which Asterisk writes in."""
    if configured:
        return configured
    if source == "csv" and conf is not None and conf.usegmtime:
        return "UTC"
    return LOCAL


def cdr_time_text(epoch: float, tz: str) -> str:
    """An epoch as the CDR writes its times (for comparing with them as text)."""
    dt = datetime.fromtimestamp(epoch) if tz == LOCAL else \
        datetime.fromtimestamp(epoch, timezone.utc).astimezone(ZoneInfo(tz))
    return dt.strftime("%Y-%m-%d %H:%M:%S")


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
    if dt.tzinfo or tz == LOCAL:
        return dt.timestamp()       # a naive time is taken as this box's local time
    return dt.replace(tzinfo=ZoneInfo(tz)).timestamp()


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
