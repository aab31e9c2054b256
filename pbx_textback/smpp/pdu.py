"""SMPP 3.4 PDUs through smpplib's codec (no smpplib Client), plus the pure pieces of the
transport: splitting a text into submit_sm parts (UDH / message_payload), decoding a
short_message, concatenation headers, command_status classes.

smpplib sharp edges handled here (LIBRARY-NOTES):
- its codec wants a `client` with `next_sequence()`/`sequence`: `Sequencer` is ours;
- a response built by make_pdu gets the client's *current* sequence: set it to the request's;
- parse_pdu raises on a TLV it knows by name but the command does not list, and trusts the
  spec's TLV sizes over the TLV's length: `parse()` keeps smpplib's mandatory-field parsing
  and reads TLVs itself (by their own length), keeping unknown ones in `pdu.tlvs`.
"""
from __future__ import annotations

import struct
import types
from dataclasses import dataclass
from functools import lru_cache

from smpplib import command_codes, consts
from smpplib import smpp as _smpp

from pbx_textback.core.text import sms

HEADER_LEN = 16
MAX_PDU_LEN = 70_000          # message_payload may carry up to 64 KiB

# command_status values we act on
ESME_ROK = 0x00
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64
ESME_RUNKNOWNERR = 0xFF

#: answered by pausing, lowering the rate and resending the same part transparently
THROTTLE_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})
#: worth trying again later (the outbox decides when): everything else is permanent
TEMPORARY_STATUSES = frozenset({ESME_RINVBNDSTS, ESME_RSYSERR, ESME_RSUBMITFAIL, ESME_RX_T_APPN,
                                ESME_RUNKNOWNERR, 0x13})
#: a bind refused for these is a configuration problem: alert, reconnect slowly
BIND_CONFIG_STATUSES = frozenset({ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID})

_STATUS_NAMES = {v: k[len("SMPP_"):] for k, v in vars(consts).items()
                 if k.startswith("SMPP_ESME_") and isinstance(v, int)}
_STATUS_NAMES.setdefault(ESME_RX_T_APPN, "ESME_RX_T_APPN")
_OPT_NAMES = {code: name for name, code in consts.OPTIONAL_PARAMS.items()}

DC_DEFAULT, DC_IA5, DC_BINARY, DC_LATIN1, DC_BINARY2, DC_UCS2 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x08
ESM_UDHI = 0x40
UDH_CONCAT8 = 0x00
UDH_CONCAT16 = 0x08
GSM_CR = 0x0D


def status_name(code: int | None) -> str:
    """'ESME_RTHROTTLED (0x58)'."""
    if code is None:
        return "no status"
    return f"{_STATUS_NAMES.get(code, 'ESME status')} (0x{code:02X})"


class PduError(Exception):
    """Bytes that are not a PDU we can read."""


class Sequencer:
    """The `client` smpplib's codec asks for: a sequence counter (1 .. 0x7FFFFFFF)."""

    allow_unknown_opt_params = True

    def __init__(self) -> None:
        self.sequence = 0

    def next_sequence(self) -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        return self.sequence


def make(name: str, client: Sequencer, **kw):
    """A request PDU with the next sequence number."""
    return _smpp.make_pdu(name, client=client, **kw)


def response(name: str, request_seq: int, status: int = ESME_ROK, **kw) -> bytes:
    """A response's bytes: smpplib would give it the client's current sequence, not the
    request's."""
    if not kw:
        # every receipt is answered (deliver_sm_resp): smpplib's octets for the name, made
        # once, with this status and sequence in the header (~15 us -> ~1 us a response)
        known = _PLAIN_RESP.get(name)
        if known is None:
            raw = _smpp_response(name, 0, ESME_ROK)
            known = _PLAIN_RESP[name] = (raw[:8], raw[HEADER_LEN:])     # (length, command_id), body
        head, body = known
        return head + struct.pack(">LL", status, request_seq) + body
    return _smpp_response(name, request_seq, status, **kw)


def _smpp_response(name: str, request_seq: int, status: int, **kw) -> bytes:
    p = _smpp.make_pdu(name, client=_NO_SEQ, **kw)
    p.sequence = request_seq
    p.status = status
    return p.generate()


_PLAIN_RESP: dict[str, tuple[bytes, bytes]] = {}


_NO_SEQ = Sequencer()


def header(data: bytes) -> tuple[int, int, int, int]:
    """(length, command_id, status, sequence)."""
    if len(data) < HEADER_LEN:
        raise PduError(f"short PDU ({len(data)} octets)")
    return struct.unpack(">LLLL", data[:HEADER_LEN])


# command_id -> name, as smpplib's get_command_name answers (the first name with that code): it
# walks its table for every PDU read
_COMMAND_NAMES: dict[int, str] = {}
for _n, _c in command_codes.commands.items():
    _COMMAND_NAMES.setdefault(_c, _n)


def command_name(command_id: int) -> str | None:
    return _COMMAND_NAMES.get(command_id)


def _parse_tlvs(self, data: bytes) -> None:
    """Replacement for smpplib's parse_optional_params (bound per instance): TLVs by their
    own length; known ones set as attributes when the command lists them; all kept raw."""
    pos, n = 0, len(data)
    while pos + 4 <= n:
        tag, ln = struct.unpack_from(">HH", data, pos)
        pos += 4
        val = data[pos:pos + ln]
        pos += ln
        self.tlvs[tag] = val
        name = _OPT_NAMES.get(tag)
        param = self.params.get(name) if name else None
        if param is None:
            continue
        if param.type is int:
            setattr(self, name, int.from_bytes(val, "big") if val else 0)
        elif param.type is str:
            setattr(self, name, val.split(b"\0", 1)[0])
        else:
            setattr(self, name, val)


def parse(data: bytes):
    """smpplib PDU from one whole PDU's bytes (deliver_sm and submit_sm_resp: an object with
    the same attributes, read here); raises PduError (never anything else)."""
    _length, cid, _status, _seq = header(data)
    if cid in _FAST:
        try:
            return _read_fast(data, _length, cid, _status, _seq)
        except Exception:      # _Unsure, or anything odd: smpplib's reading (and its errors)
            pass
    return parse_smpplib(data)


def parse_smpplib(data: bytes):
    """parse() through smpplib for every command."""
    _length, cid, _status, _seq = header(data)
    name = command_name(cid)
    if name is None:
        raise PduError(f"unknown command_id 0x{cid:08X}")
    try:
        p = _smpp.make_pdu(name, client=_NO_SEQ, sequence=0, allow_unknown_opt_params=True)
        p.tlvs = {}
        p.parse_optional_params = types.MethodType(_parse_tlvs, p)
        p.parse(data)
    except Exception as e:  # smpplib raises struct.error, IndexError, ValueError, ...
        raise PduError(f"malformed {name}: {e!r}") from e
    return p


# ---- the hot path's PDUs without smpplib's objects ---------------------------------------------
# Every text is one submit_sm out and a submit_sm_resp and a deliver_sm (its receipt) in; making
# and reading them through smpplib's generic Command objects cost ~0.15 ms of CPU per text. These
# write and read the same octets (tests/unit/test_smpp_fastpdu.py holds them to smpplib's); any
# PDU they are unsure of goes through smpplib as before.
_SUBMIT_SM = command_codes.get_command_code("submit_sm")
_ADDR_MAX = 21


def _cstr(value, limit: int) -> bytes:
    """A C-octet string as smpplib writes it: cut to limit-1 characters, then the NUL."""
    v = value or ""
    if len(v) >= limit:
        v = v[:limit - 1]
    return v.encode("latin-1") + b"\0"


def submit_sm(seq: int, *, service_type: str, source_addr_ton: int, source_addr_npi: int,
              source_addr: str, dest_addr_ton: int, dest_addr_npi: int, destination_addr: str,
              esm_class: int, protocol_id: int, priority_flag: int, registered_delivery: int,
              replace_if_present_flag: int, data_coding: int, sm_default_msg_id: int,
              short_message: bytes | None, message_payload: bytes | None = None) -> bytes:
    """The bytes make("submit_sm", ...).generate() gives for these fields (and sequence)."""
    if short_message and message_payload:
        raise ValueError("`message_payload` can not be used with `short_message`")
    sm = short_message or b""
    body = b"".join((
        _cstr(service_type, 6), bytes((source_addr_ton, source_addr_npi)), _cstr(source_addr, _ADDR_MAX),
        bytes((dest_addr_ton, dest_addr_npi)), _cstr(destination_addr, _ADDR_MAX),
        bytes((esm_class, protocol_id, priority_flag)), b"\0\0",      # schedule, validity: none
        bytes((registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, len(sm))), sm,
        struct.pack(">HH", 0x0424, len(message_payload)) + message_payload if message_payload else b""))
    return struct.pack(">LLLL", len(body) + HEADER_LEN, _SUBMIT_SM, ESME_ROK, seq) + body


class _Read:
    """A parsed PDU with the attributes smpplib's would have (every parameter, None when
    absent; command, sequence, status, length; tlvs)."""

    def __init__(self, name: str, params, length: int, status: int, seq: int):
        self.__dict__.update(params)
        self.command, self.length, self.status, self.sequence = name, length, status, seq
        self.tlvs = {}
        self.allow_unknown_opt_params = True


def _layout(name: str):
    """(every parameter None, the mandatory ones in order with their kind, the param table)."""
    cls = _smpp.make_pdu(name, client=_NO_SEQ, sequence=0)
    fields = []
    for f in cls.params_order:
        if cls.field_is_optional(f):
            break
        prm = cls.params[f]
        kind = "int" if prm.type is int else "str" if prm.type is str else "ostr"
        fields.append((f, kind, getattr(prm, "size", None), getattr(prm, "len_field", None)))
    return {f: getattr(cls, f, None) for f in cls.params}, tuple(fields), cls.params   # its defaults


_FAST = {}
for _name in ("deliver_sm", "submit_sm_resp"):
    _FAST[command_codes.get_command_code(_name)] = (_name, *_layout(_name))


class _Unsure(Exception):
    """Not a PDU the quick reader vouches for: smpplib reads it."""


def _read_fast(data: bytes, length: int, cid: int, status: int, seq: int):
    name, blank, fields, params = _FAST[cid]
    p = _Read(name, blank, length, status, seq)
    pos, n = HEADER_LEN, len(data)
    for f, kind, size, len_field in fields:
        if pos == n:
            break
        if kind == "int":
            if size != 1 or pos + 1 > n:
                raise _Unsure
            setattr(p, f, data[pos])
            pos += 1
        elif kind == "str":
            end = data.find(b"\0", pos)
            if end < 0:
                raise _Unsure
            setattr(p, f, data[pos:end])
            pos = end + 1
        else:
            ln = int(getattr(p, len_field))
            setattr(p, f, data[pos:pos + ln])
            pos += ln
    if pos < n:
        p.params = params
        _parse_tlvs(p, data[pos:])
        del p.params
    return p


def resp_message_id(data: bytes) -> str:
    """text_field(parse(data).message_id) of a submit_sm_resp (every text's answer): a body of
    just the id and its NUL is read in place; anything else (no NUL, TLVs after it) through
    parse(), with its errors."""
    end = data.find(b"\0", HEADER_LEN)
    if end == len(data) - 1:
        return data[HEADER_LEN:end].decode("latin-1")
    if len(data) == HEADER_LEN:
        return ""
    return text_field(parse(data).message_id)


def text_field(value) -> str:
    """A C-octet string as parsed by smpplib (bytes) or as given (str)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("latin-1")
    return str(value)


# ------------------------------------------------------------------ outgoing parts

@dataclass(frozen=True)
class PartSpec:
    """What one submit_sm carries for one part of a text."""
    short_message: bytes
    esm_class: int
    data_coding: int
    message_payload: bytes | None
    index: int           # 1-based
    total: int
    text: str            # the characters of this part (for logs and tests)


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """UDH with the 8-bit-reference concatenation IE: 05 00 03 ref total seq."""
    return bytes((5, UDH_CONCAT8, 3, ref & 0xFF, total, seq))


def _fill_bits(udh_len: int) -> int:
    return (7 - (udh_len * 8) % 7) % 7


def pack_gsm(septets: bytes, udh_len: int = 0) -> bytes:
    """Packed septets after a UDH of udh_len octets (fill bits to the septet boundary). When
    7 bits would be left spare, a CR fills them (3GPP 23.038 6.1.2.3.1) so the receiver
    cannot read a stray '@'."""
    fill = _fill_bits(udh_len)
    bits = fill + 7 * len(septets)
    if bits % 8 == 1 or (bits % 8 == 0 and septets.endswith(bytes((GSM_CR,)))):
        # 7 spare bits: a CR fills them. A text that itself ends in CR on an octet boundary
        # gets a second CR (23.038: <CR><CR> means the same as <CR>).
        septets = septets + bytes((GSM_CR,))
    return sms.pack_septets(septets, fill)


def unpack_gsm(body: bytes, udh_len: int = 0) -> bytes:
    """Inverse of pack_gsm for the octets after the UDH."""
    fill = _fill_bits(udh_len)
    count = (len(body) * 8 - fill) // 7
    septets = sms.unpack_septets(body, count, fill)
    if septets and (len(body) * 8 - fill) % 7 == 0 and septets[-1] == GSM_CR:
        septets = septets[:-1]          # the CR that filled 7 spare bits
    return septets


def _latin1_ok(parts: list[str]) -> bool:
    try:
        for p in parts:
            p.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def plan_parts(text: str, *, ref: int = 0, data_coding_default: str = "gsm7",
               gsm7_packed: bool = False, long_mode: str = "udh") -> list[PartSpec]:
    """The submit_sm payloads for a text (see _plan_parts). A text that goes as one submit_sm
    does not depend on `ref`: its plan is kept (most texts are the same few rendered templates,
    and splitting and encoding one cost more than the rest of its submit_sm). Only one SMS's
    worth of characters: a long text in one message_payload is not kept (memory)."""
    got = _one_part_plan(text, data_coding_default, gsm7_packed, long_mode) if len(text) <= 160 else None
    if got is not None:
        return [got]
    return _plan_parts(text, ref=ref, data_coding_default=data_coding_default,
                       gsm7_packed=gsm7_packed, long_mode=long_mode)


@lru_cache(maxsize=512)
def _one_part_plan(text: str, data_coding_default: str, gsm7_packed: bool, long_mode: str) -> PartSpec | None:
    """The one PartSpec of a text that needs no concatenation (frozen: safe to share), else None."""
    parts = _plan_parts(text, ref=0, data_coding_default=data_coding_default, gsm7_packed=gsm7_packed,
                        long_mode=long_mode)
    return parts[0] if len(parts) == 1 else None


def _plan_parts(text: str, *, ref: int = 0, data_coding_default: str = "gsm7",
                gsm7_packed: bool = False, long_mode: str = "udh") -> list[PartSpec]:
    """The submit_sm payloads for a text. GSM 03.38 when every character fits (data_coding 0),
    else UCS-2 (data_coding 8); split by core.text.sms.split_text (never inside an escape or
    surrogate pair). When the SMSC reads data_coding 0 as Latin-1, GSM text is sent as Latin-1
    octets with data_coding 0 (the SMSC maps it to GSM on air, so GSM limits apply), or as
    UCS-2 when a GSM character has no Latin-1 form (€, Greek capitals)."""
    encoding, parts = sms.split_text(text)
    dc = DC_UCS2 if encoding == "ucs2" else DC_DEFAULT
    latin1 = False
    if encoding == "gsm7" and data_coding_default == "latin1":
        if _latin1_ok(parts):
            latin1 = True
        else:
            encoding, parts = sms.split_text(text, "ucs2")
            dc = DC_UCS2

    def enc(s: str, udh_len: int) -> bytes:
        if encoding == "ucs2":
            return sms.encode_ucs2(s)
        if latin1:
            return s.encode("latin-1")
        septets = sms.encode_gsm7(s)
        return pack_gsm(septets, udh_len) if gsm7_packed else septets

    if len(parts) == 1:
        return [PartSpec(enc(parts[0], 0), 0, dc, None, 1, 1, parts[0])]
    if long_mode == "payload":
        return [PartSpec(b"", 0, dc, enc(text, 0), 1, 1, text)]
    total = len(parts)
    out = []
    for i, p in enumerate(parts, 1):
        udh = concat_udh(ref, total, i)
        out.append(PartSpec(udh + enc(p, len(udh)), ESM_UDHI, dc, None, i, total, p))
    return out


def address(number: str, ton: int) -> str:
    """International numbers (TON 1) go without '+'."""
    number = (number or "").strip()
    if ton == 1 and number.startswith("+"):
        return number[1:]
    return number


# ------------------------------------------------------------------ incoming

def split_udh(short_message: bytes) -> tuple[bytes, bytes]:
    """(udh including its length octet, rest). A UDHL pointing past the end -> no UDH."""
    if not short_message:
        return b"", short_message
    udhl = short_message[0]
    if udhl + 1 > len(short_message):
        return b"", short_message
    return short_message[:udhl + 1], short_message[udhl + 1:]


def concat_info(udh: bytes) -> tuple[int, int, int] | None:
    """(ref, total, seq) from an 8- or 16-bit concatenation IE in a UDH, else None."""
    pos, end = 1, len(udh)
    while pos + 2 <= end:
        iei, ln = udh[pos], udh[pos + 1]
        val = udh[pos + 2:pos + 2 + ln]
        if len(val) < ln:
            return None
        if iei == UDH_CONCAT8 and ln == 3 and val[1] >= 1 and 1 <= val[2] <= val[1]:
            return val[0], val[1], val[2]
        if iei == UDH_CONCAT16 and ln == 4 and val[2] >= 1 and 1 <= val[3] <= val[2]:
            return (val[0] << 8) | val[1], val[2], val[3]
        pos += 2 + ln
    return None


def decode_text(body: bytes, data_coding: int, *, data_coding_default: str = "gsm7",
                gsm7_packed: bool = False, udh_len: int = 0) -> str:
    """short_message octets (after any UDH) to text. 0 (and 1, which SMSCs use for the same
    thing) per the SMSC's setting: GSM 03.38 unpacked/packed or Latin-1; 3 Latin-1; 8 UCS-2;
    2/4 binary (Latin-1, byte for byte); GSM data coding group 0xF_ by its bit 2."""
    dc = data_coding or 0
    if (dc & 0xF0) == 0xF0:
        dc = DC_BINARY2 if dc & 0x04 else DC_DEFAULT
    elif (dc & 0xC0) == 0x00 and dc > 0x0F:        # general coding group: alphabet in bits 2-3
        dc = {0: DC_DEFAULT, 1: DC_BINARY2, 2: DC_UCS2}.get((dc >> 2) & 0x03, DC_LATIN1)
    if dc in (DC_DEFAULT, DC_IA5):
        if data_coding_default == "latin1":
            return body.decode("latin-1")
        if gsm7_packed:
            return sms.decode_gsm7(unpack_gsm(body, udh_len))
        return sms.decode_gsm7(body)
    if dc == DC_UCS2:
        return sms.decode_ucs2(body[:len(body) // 2 * 2]) + ("\ufffd" if len(body) % 2 else "")
    return body.decode("latin-1")
