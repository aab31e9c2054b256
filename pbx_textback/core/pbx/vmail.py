"""A PBX's voicemail notification e-mail (bytes) -> `VoicemailFact`, or None. Pure, never raises.

What is recognised, by what the PBX's *default* templates write (not by file names):

Asterisk app_voicemail (`make_email_file()`, non-IMAP storage):
- headers `X-Asterisk-CallerID` (written whenever the caller number is non-empty) and
  `X-Asterisk-CallerIDName` (only when there is a name); `Message-ID:
  <Asterisk-MSGNUM-RANDOM-MAILBOX-PID@host>`;
- the built-in body "... left a M:SS long [urgent ]message (number N)\\nin mailbox M from
  CIDNAME-or-CIDNUM-or-"an unknown caller", on DATE so you might ...", the voicemail.conf.sample
  `emailbody` (same words, `${VM_CALLERID}` = `"Name" <num>` | name | num | "an unknown
  caller", ", so you might"), the FreePBX-style labelled body ("mailbox M" ... `From:` /
  `Length:` / `Date:` lines) and the pager body ("New M:SS long msg in box M\\nfrom X, on D");
- the subject "[PBX]: New message N in mailbox M" (with or without the `[PBX]: ` prefix).
The caller number comes from `X-Asterisk-CallerID` when present: the default body carries the
name *or* the number, never both.

FreeSWITCH mod_voicemail (`voicemail.tpl` / `notify-voicemail.tpl`, `switch_simple_email()`):
- `X-Mailer: FreeSWITCH`, subject `Voicemail from "NAME" <NUMBER> HH:MM:SS`, body lines
  `Created:`, `From: "NAME" <NUMBER>`, `Duration: HH:MM:SS`, `Account: ACCOUNT@DOMAIN`;
  `From:` header is the caller at the voicemail domain; attachment `msg_<uuid>.<ext>`.
- a template that adds `X-Voicemail-Caller-Id-Number` / `-Name` / `X-Voicemail-Account` /
  `X-Voicemail-Message-Len` / `X-Voicemail-Called-Number` headers is read from those first.
  When the name is absent FreeSWITCH writes the number as the name: such a name is dropped.

`caller` is "" for anonymous/withheld/unknown callers ("an unknown caller", "anonymous",
"0000000000", ...): never a number anyone would text. `msg_id` is the PBX's own id of the
message (Asterisk: the message number VM_MSGNUM; FreeSWITCH: the uuid of the attached file), or
None. `message_id_header` is the mail's `Message-ID` as written (None when absent: FreeSWITCH's
template has none; an MTA on the way may add one). A trailing lone `.` line (msmtp passes the
PBX's sendmail terminator through) is ignored.

Hostile mail costs bounded work (the listener parses every mail before relaying it): header
values are capped and Content-* headers read as text (`_BoundedPolicy`), and mail with far
more MIME containers or parts than any notification is not parsed (`_too_complex`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr

from pbx_textback.core.numbers import _clean, _is_anonymous

ASTERISK, FREESWITCH, UNKNOWN = "asterisk", "freeswitch", "unknown"

MAX_PARSE_BYTES = 64 * 1024 * 1024   # the listener's size limit is lower; this is a last guard
MAX_HEADER_CHARS = 4096              # a PBX's headers are far shorter; RFC 5322 lines stop at 998
MAX_PARAMS = 16                      # parameters kept per Content-* header (a PBX writes 1 or 2)


class _BoundedPolicy(policy.EmailPolicy):
    """policy.default with bounded header work. The stdlib's structured MIME header parser is
    quadratic on malformed values (a 70 KB Content-Type of ';' or '"': minutes in the listener),
    so every header value is cut at MAX_HEADER_CHARS, and Content-Type, -Disposition and
    -Transfer-Encoding are kept as plain text: the email package reads the type and the
    parameters from that text anyway (get_content_type, get_param, get_filename), re-reading
    every parameter at each call, so a Content-* header keeps its first MAX_PARAMS only."""

    def header_source_parse(self, sourcelines):
        name, value = super().header_source_parse(sourcelines)
        value = value[:MAX_HEADER_CHARS]
        if name.strip().lower().startswith("content-") and value.count(";") > MAX_PARAMS:
            value = ";".join(value.split(";", MAX_PARAMS + 1)[:MAX_PARAMS + 1])
        return name, value


# The stdlib's MIME parser checks every line against every enclosing boundary, and walks every
# part: a PBX's notification has one or two multipart containers and a few parts, so mail with
# far more is not one and is not parsed (400 nested containers in 60 KB took 3 s).
MAX_MULTIPART = 16
MAX_BOUNDARY_LINES = 256


def _too_complex(data: bytes) -> bool:
    return (data.count(b"\n--") > MAX_BOUNDARY_LINES
            or len(re.findall(rb"(?i)multipart/", data)) > MAX_MULTIPART)


_HEADERS = HeaderRegistry()
for _name in ("content-type", "content-disposition", "content-transfer-encoding"):
    _HEADERS.map_to_type(_name, UnstructuredHeader)
_POLICY = _BoundedPolicy(header_factory=_HEADERS)


@dataclass(frozen=True)
class VoicemailFact:
    pbx: str                         # asterisk | freeswitch | unknown
    caller: str                      # number as the PBX wrote it ("" when anonymous/unknown)
    caller_name: str                 # "" when absent
    mailbox: str                     # the voicemail box (Asterisk mailbox, FreeSWITCH account)
    called: str | None               # the DID, when the mail says (default templates do not)
    duration_s: float | None
    left_at: str | None              # as written in the mail (the PBX's date format)
    msg_id: str | None               # the PBX's own message id (Asterisk VM_MSGNUM, FS file uuid)
    message_id_header: str | None    # the mail's Message-ID header as written

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ---- small helpers ---------------------------------------------------------------------------
_WS = re.compile(r"\s+")


def _one_line(s: str) -> str:
    return _WS.sub(" ", s).strip()


def _printable(s: str) -> str:
    """What Asterisk's strip_control_and_high() would leave, kept for non-ASCII names."""
    return "".join(ch for ch in s if ch >= " " and ch != "\x7f").strip()


def _header(msg: EmailMessage, name: str) -> str:
    """A header's decoded value ("" when absent); the raw value when decoding fails."""
    try:
        v = msg.get(name)
        if v is None:
            return ""
        return _one_line(str(v))
    except Exception:            # noqa: BLE001 - a broken header must not stop the parse
        for k, raw in msg.raw_items():
            if k.lower() == name.lower():
                return _one_line(str(raw))
        return ""


def _find_header(msg: EmailMessage, *names: str) -> str:
    for n in names:
        v = _header(msg, n)
        if v:
            return v
    return ""


def _decode(payload: bytes, charset: str | None) -> str:
    if (charset or "").lower() in ("", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"):
        # Asterisk declares its `charset` (default ISO-8859-1) but writes the caller name's bytes
        # as they came, UTF-8 from SIP: valid multi-byte UTF-8 is almost never real Latin-1 text.
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
    for cs in (charset, "utf-8"):
        if not cs:
            continue
        try:
            return payload.decode(cs)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return payload.decode("latin-1")


def _part_text(part) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:            # noqa: BLE001
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    try:
        cs = part.get_content_charset()
    except Exception:            # noqa: BLE001
        cs = None
    return _decode(payload, cs)


def _strip_html(s: str) -> str:
    s = re.sub(r"(?is)<(script|style|title|head)\b.*?</\1\s*>", " ", s)
    s = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", s)
    s = re.sub(r"<[^>]*>", "", s)
    return s.replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">").replace(
        "&quot;", '"').replace("&amp;", "&")


def _texts(msg: EmailMessage) -> tuple[str, list[str]]:
    """The first text/plain body (else de-tagged text/html), and every attachment file name."""
    plain = html = None
    names: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            ctype = part.get_content_type()
            disp = part.get_content_disposition()
            fname = part.get_filename()
        except Exception:        # noqa: BLE001
            continue
        if fname:
            names.append(str(fname))
        if disp == "attachment":
            continue
        if ctype == "text/plain" and plain is None:
            plain = _part_text(part)
        elif ctype == "text/html" and html is None:
            html = _strip_html(_part_text(part))
    body = plain if plain is not None else (html or "")
    return body.replace("\r\n", "\n").replace("\r", "\n"), names


def _strip_final_dot(data: bytes) -> bytes:
    """Drop one trailing lone `.` line: the PBX's `sendmail -t` terminator, passed on by msmtp."""
    trimmed = data.rstrip(b"\r\n")
    if trimmed == b".":
        return b""
    if trimmed.endswith(b"\n."):
        return trimmed[:-1]
    return data


def _seconds(s: str | None) -> float | None:
    """`M:SS` (Asterisk VM_DUR), `HH:MM:SS` (FreeSWITCH), or plain seconds."""
    if not s:
        return None
    s = s.strip()
    m = re.fullmatch(r"(\d{1,6})(?::(\d{1,2}))?(?::(\d{1,2}))?(?:\.\d+)?", s)
    if not m:
        return None
    parts = [int(p) for p in m.groups() if p is not None]
    total = 0
    for p in parts:
        total = total * 60 + p
    if len(parts) == 1 and "." in s:
        return float(s)
    return float(total)


def _caller(num: str, name: str) -> tuple[str, str]:
    """Normalize a (number, name) pair: "" for anonymous; drop a name that is only the number."""
    num = _printable(num)
    name = _printable(name).strip('"').strip()
    if num:
        cleaned = _clean(num)
        if _is_anonymous(cleaned) or not re.search(r"\d", cleaned):
            num = ""
        else:
            num = cleaned
    if name and (_is_anonymous(name) or name.lower() == "an unknown caller"):
        name = ""
    if name and num and re.sub(r"[^\d]", "", name) == re.sub(r"[^\d]", "", num) \
            and not re.search(r"[A-Za-z]", name):
        name = ""
    return num, name


def _split_callerid(s: str) -> tuple[str, str]:
    """Asterisk `${VM_CALLERID}` / FreeSWITCH `"NAME" <NUMBER>` -> (number, name)."""
    s = _one_line(s)
    if not s or s.lower() in ("an unknown caller", "unknown"):
        return "", ""
    m = re.fullmatch(r'(?:"(.*)"|([^<]*?))\s*<([^<>]*)>', s)
    if m:
        name = m.group(1) if m.group(1) is not None else (m.group(2) or "")
        return m.group(3).strip(), name.strip()
    if re.fullmatch(r"\+?[\d*#\-\s().]+", s) and re.search(r"\d", s):
        return s, ""
    return "", s.strip('"')


# ---- Asterisk --------------------------------------------------------------------------------
_AST_MSGID = re.compile(r"<?Asterisk-(\d+)-(\d+)-(.+)-(\d+)@[^>]*>?\s*$")
_AST_SUBJECT = re.compile(r"New message (\d+) in mailbox (\S+)", re.I)
_AST_BODY = re.compile(
    r"left an? (?P<dur>\d+:\d{2}) long (?:urgent )?message\s*(?:\(number (?P<num>\d+)\))?\s*"
    r"in mailbox (?P<mbox>\S+) from (?P<cid>.*?), on (?P<date>.*?),?\s+so you might", re.S | re.I)
_AST_PAGER = re.compile(
    r"New (?P<dur>\d+:\d{2}) long (?:\w+ )?msg in box (?P<mbox>\S+)\s+from (?P<cid>.*?), on "
    r"(?P<date>[^\n]*)", re.S | re.I)
_LABEL = re.compile(r"^[ \t]*(From|Length|Duration|Date|Caller|Caller ?ID)[ \t]*:[ \t]*(.*?)\s*$",
                    re.I | re.M)


def _asterisk(msg: EmailMessage, body: str, subject: str, mid: str) -> VoicemailFact | None:
    hdr_num = _header(msg, "X-Asterisk-CallerID")
    hdr_name = _header(msg, "X-Asterisk-CallerIDName")
    has_hdr = any(k.lower().startswith("x-asterisk-callerid") for k in msg.keys())
    mid_m = _AST_MSGID.search(mid) if mid else None
    subj_m = _AST_SUBJECT.search(subject)
    text = body.replace("\t", " ")
    body_m = _AST_BODY.search(text) or _AST_PAGER.search(text)
    labelled = None
    if body_m is None and re.search(r"new voicemail in mailbox (\S+?):?\s", text, re.I):
        labelled = {k.lower().replace(" ", ""): v for k, v in _LABEL.findall(text)}
    if not (body_m or subj_m or mid_m or labelled):
        return None              # at most an X-Asterisk-CallerID header: not a notification

    mailbox = msgnum = dur = date = cid = None
    if body_m:
        d = body_m.groupdict()
        mailbox, dur, date, cid = d["mbox"], d["dur"], _one_line(d["date"]), _one_line(d["cid"])
        msgnum = d.get("num")
    elif labelled is not None:
        mm = re.search(r"new voicemail in mailbox (\S+?):?\s", text, re.I)
        mailbox = mm.group(1) if mm else None
        cid = labelled.get("from") or labelled.get("callerid") or labelled.get("caller")
        dur = (labelled.get("length") or labelled.get("duration") or "").split(" ")[0] or None
        date = labelled.get("date")
    if subj_m:
        msgnum = msgnum or subj_m.group(1)
        mailbox = mailbox or subj_m.group(2)
    if mid_m:
        msgnum = msgnum or mid_m.group(1)
        mailbox = mailbox or mid_m.group(3)

    body_num, body_name = _split_callerid(cid or "")
    # X-Asterisk-CallerID is written whenever the number is non-empty, so it is the number.
    # The body shows the name when there is one, in full: the headers went through
    # strip_control_and_high(), which drops every non-ASCII byte of a name.
    num = hdr_num if has_hdr else body_num
    name = body_name or hdr_name
    num, name = _caller(num, name)
    return VoicemailFact(
        pbx=ASTERISK, caller=num, caller_name=name, mailbox=(mailbox or "").rstrip(",.:"),
        called=_header(msg, "X-Voicemail-Called-Number") or None,
        duration_s=_seconds(dur), left_at=date or None, msg_id=msgnum,
        message_id_header=mid or None)


# ---- FreeSWITCH ------------------------------------------------------------------------------
_FS_SUBJECT = re.compile(r'Voicemail from\s+(?P<cid>.*?<[^<>]*>)\s*(?P<len>\d+:\d{2}:\d{2})?\s*$',
                         re.I)
_FS_LINE = re.compile(r"^[ \t]*(Created|From|Duration|Account)[ \t]*:[ \t]*(.*?)[ \t]*$", re.M)
_FS_FILE = re.compile(r"msg_([0-9a-fA-F-]{8,})\.\w+$")


def _freeswitch(msg: EmailMessage, body: str, subject: str, mid: str,
                files: list[str]) -> VoicemailFact | None:
    hdr_num = _find_header(msg, "X-Voicemail-Caller-Id-Number", "X-Voicemail-Caller-ID-Number")
    hdr_name = _find_header(msg, "X-Voicemail-Caller-Id-Name")
    has_hdr = any(k.lower().startswith("x-voicemail-caller-id") for k in msg.keys())
    mailer = _header(msg, "X-Mailer").lower()
    subj_m = _FS_SUBJECT.search(subject)
    lines: dict[str, str] = {}
    for k, v in _FS_LINE.findall(body):
        lines.setdefault(k.lower(), v)
    body_ok = "duration" in lines and ("account" in lines or "from" in lines)
    if not (subj_m or body_ok or has_hdr):
        return None
    pbx = FREESWITCH if ("freeswitch" in mailer or subj_m or body_ok) else UNKNOWN

    if has_hdr:
        num, name = hdr_num, hdr_name
    elif "from" in lines and "<" in lines["from"]:
        num, name = _split_callerid(lines["from"])
    elif subj_m:
        num, name = _split_callerid(subj_m.group("cid"))
    else:
        fname, faddr = parseaddr(_header(msg, "From"))
        num, name = faddr.split("@", 1)[0], fname
    num, name = _caller(num, name)

    account = _find_header(msg, "X-Voicemail-Account") or lines.get("account", "")
    mailbox = account.split("@", 1)[0].strip()
    length = (_find_header(msg, "X-Voicemail-Message-Len") or lines.get("duration")
              or (subj_m.group("len") if subj_m else None))
    msg_id = None
    for f in files:
        m = _FS_FILE.search(f)
        if m:
            msg_id = m.group(1)
            break
    left_at = lines.get("created") or _header(msg, "Date") or None
    return VoicemailFact(
        pbx=pbx, caller=num, caller_name=name, mailbox=mailbox,
        called=_header(msg, "X-Voicemail-Called-Number") or None,
        duration_s=_seconds(length), left_at=left_at, msg_id=msg_id,
        message_id_header=mid or None)


# ---- entry point -----------------------------------------------------------------------------
def parse_voicemail(data: bytes) -> VoicemailFact | None:
    """The voicemail fact a notification mail states, or None (not one, or unreadable)."""
    try:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            return None
        data = bytes(data)
        if not data or len(data) > MAX_PARSE_BYTES or _too_complex(data):
            return None
        msg = BytesParser(policy=_POLICY).parsebytes(_strip_final_dot(data))
        subject = _header(msg, "Subject")
        mid = _header(msg, "Message-ID")
        body, files = _texts(msg)
        if _header(msg, "X-Mailer").lower().startswith("freeswitch") or \
                _FS_SUBJECT.search(subject):
            return _freeswitch(msg, body, subject, mid, files) or _asterisk(msg, body, subject, mid)
        return _asterisk(msg, body, subject, mid) or _freeswitch(msg, body, subject, mid, files)
    except Exception:            # noqa: BLE001 - never raise on any bytes (fuzz-tested);
        return None              # RecursionError (deeply nested MIME) included
