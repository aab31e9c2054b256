"""Delivery receipts: the SMPP 3.4 Appendix B receipt text, the message_state TLV, and message
id normalization (SMSCs answer submit_sm with a hex id and quote it in decimal in the receipt,
or pad it with zeros, or change its case). Pure; never raises on what an SMSC sends."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

# Receipt text stat: values -> our states
STAT_STATES = {
    "DELIVRD": "delivered", "DELIVERED": "delivered",
    "UNDELIV": "failed", "UNDELIVERABLE": "failed",
    "EXPIRED": "expired",
    "DELETED": "deleted",
    "REJECTD": "rejected", "REJECTED": "rejected",
    "ACCEPTD": "accepted", "ACCEPTED": "accepted",
    "ENROUTE": "enroute",
    "UNKNOWN": "unknown",
}
# message_state TLV (SMPP 3.4 5.2.28)
MESSAGE_STATES = {1: "enroute", 2: "delivered", 3: "expired", 4: "deleted", 5: "failed",
                  6: "accepted", 7: "unknown", 8: "rejected"}
FINAL_STATES = frozenset({"delivered", "failed", "expired", "deleted", "rejected"})

_KEYS = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text")
_KEY_RE = re.compile(r"(?i)(?:^|(?<=\s))(submit[ _]date|done[ _]date|id|sub|dlvrd|stat|err|text)\s*:")
# the same on a lower-cased ASCII text: half the time of the case-insensitive search (every
# receipt is read); lower() keeps an ASCII text's positions, so the values are cut from the original
_KEY_RE_LOWER = re.compile(_KEY_RE.pattern[4:])


def parse_receipt(text: str) -> dict[str, str]:
    """Fields of a receipt text: keys among id, sub, dlvrd, submit date, done date, stat, err,
    text (lower case, one space). `text` runs to the end. Missing keys are absent; the first
    occurrence of a key wins. Never raises."""
    if not isinstance(text, str):
        return {}
    out: dict[str, str] = {}
    matches = list(_KEY_RE_LOWER.finditer(text.lower()) if text.isascii() else _KEY_RE.finditer(text))
    for i, m in enumerate(matches):
        key = m.group(1).lower().replace("_", " ")        # "submit_date" -> "submit date"
        if key in out:
            continue
        if key == "text":
            out[key] = text[m.end():]
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out[key] = text[m.end():end].strip()
    return out


def normalize_message_id(mid) -> str:
    """Whitespace and NULs dropped, lower case, leading zeros stripped ('0' stays '0')."""
    if mid is None:
        return ""
    if isinstance(mid, bytes):
        mid = mid.decode("latin-1")
    s = "".join(str(mid).replace("\0", "").split()).lower()   # ids never hold blanks
    stripped = s.lstrip("0")
    return stripped if stripped or not s else "0"


_HEX = re.compile(r"[0-9a-f]+")
_DEC = re.compile(r"[0-9]+")


def message_id_keys(mid) -> tuple[str, ...]:
    """The normalized id first, then the same number in the other base: a decimal-looking id
    also as hex, a hex-looking id also as decimal. Look up exact first, then the others."""
    n = normalize_message_id(mid)
    if not n:
        return ()
    keys = [n]
    if len(n) <= 40:                               # ids, not arbitrary text
        if _DEC.fullmatch(n):
            keys.append(format(int(n, 10), "x"))
        if _HEX.fullmatch(n):
            keys.append(str(int(n, 16)))
    return tuple(dict.fromkeys(keys))


def message_ids_match(a, b) -> bool:
    """Same id as strings (case-insensitive, leading zeros stripped), or the same number
    read as hex on one side and decimal on the other. The cross-base match is inherently
    ambiguous ('10' hex == '16' decimal): callers that hold many ids look up exact first."""
    ka, kb = message_id_keys(a), message_id_keys(b)
    if not ka or not kb:
        return False
    return ka[0] == kb[0] or ka[0] in kb[1:] or kb[0] in ka[1:]


@dataclass(frozen=True)
class DeliveryReport:
    message_id: str               # as the receipt gave it (TLV first, else the text's id:)
    state: str                    # delivered|failed|expired|deleted|rejected|accepted|enroute|unknown
    error: str | None             # e.g. "UNDELIV err:001", None when delivered
    raw: str                      # the receipt text
    final: bool = True
    submit_id: str | None = None  # the id our submit_sm_resp got, when this process sent it
    msg_ref: str | None = None    # the submit()'s msg_ref, when this process sent it
    handset: str = ""             # source_addr of the receipt (the phone)
    sender: str = ""              # destination_addr of the receipt (our number)
    received_at: datetime | None = None
    fields: dict = field(default_factory=dict, compare=False)


def _first(value: str | None) -> str:
    words = (value or "").split()
    return words[0] if words else ""


def make_report(*, receipted_message_id=None, message_state=None, network_error_code=None,
                text: str = "", handset: str = "", received_at: datetime | None = None,
                sender: str = "", match=None) -> DeliveryReport | None:
    """A DeliveryReport from what a DLR deliver_sm carries, or None when it names no id.
    match: the receipt's id -> (submit id, msg_ref) of a text this process sent, else None."""
    fields = parse_receipt(text)
    mid = receipted_message_id or ""
    if isinstance(mid, bytes):
        mid = mid.decode("latin-1")
    mid = str(mid).replace("\0", "").strip()
    if not mid:
        mid = _first(fields.get("id"))
    if not mid:
        return None
    stat = _first(fields.get("stat")).upper()
    if isinstance(message_state, int) and message_state in MESSAGE_STATES:
        state = MESSAGE_STATES[message_state]
    else:
        state = STAT_STATES.get(stat, "unknown")
    err = _first(fields.get("err"))
    error = None
    if state != "delivered":
        bits = [stat or state.upper()]
        if err:
            bits.append(f"err:{err}")
        if network_error_code:
            nec = network_error_code
            bits.append("network_error:" + (nec.hex() if isinstance(nec, bytes) else str(nec)))
        error = " ".join(bits)
    hit = match(mid) if match is not None else None
    return DeliveryReport(mid, state, error, text, state in FINAL_STATES, hit[0] if hit else None,
                          hit[1] if hit else None, handset=handset, sender=sender,
                          received_at=received_at, fields=fields)
