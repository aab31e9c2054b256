"""SMS encoding: GSM 03.38 or UCS-2, length in units and segments, splitting, codecs. Pure.

Text is taken exactly as given: one character outside GSM 03.38 (’ – á 😀) makes the whole
message UCS-2, and `ucs2_chars` names the culprits so a template editor can show them.
We split ourselves because smpplib.gsm.make_parts cuts escape pairs and miscounts.
"""
from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 default alphabet, index = septet value. 0x1B is ESC (switch to the extension table);
# it stands here only to keep the indexes right and never counts as a GSM character of a text.
GSM7_BASIC: str = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
ESC = 0x1B

# Extension table: these cost two septets (ESC + code).
GSM7_EXT: dict[str, int] = {
    "\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}

# (single-part limit, per-part limit with an 8-bit-reference concatenation UDH of 6 octets)
LIMITS: dict[str, tuple[int, int]] = {"gsm7": (160, 153), "ucs2": (70, 67)}

_BASIC_CODE = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != ESC}
_EXT_CHAR = {code: ch for ch, code in GSM7_EXT.items()}

# Every text sent goes through here (the split, the encode, the receipt's decode): one pass in
# C (a set test, str.translate) per text instead of a Python step per character. The loops
# below stay for what the fast paths hand back (non-GSM text, escapes, octets >= 0x80).
_GSM = frozenset(_BASIC_CODE) | frozenset(GSM7_EXT)
_ENCODE = str.maketrans({**{ch: chr(i) for ch, i in _BASIC_CODE.items()},
                         **{ch: "\x1b" + chr(code) for ch, code in GSM7_EXT.items()}})
_DECODE = str.maketrans({chr(i): GSM7_BASIC[i] for i in range(0x80) if i != ESC})


@dataclass(frozen=True)
class SmsInfo:
    encoding: str                  # "gsm7" | "ucs2"
    units: int                     # septets (gsm7) or UTF-16 code units (ucs2)
    segments: int
    ucs2_chars: tuple[str, ...]    # distinct chars that forced UCS-2, first-seen order

    def to_dict(self) -> dict:
        return {"encoding": self.encoding, "units": self.units, "segments": self.segments,
                "ucs2_chars": list(self.ucs2_chars)}


def _non_gsm(text: str) -> tuple[str, ...]:
    if _GSM.issuperset(text):
        return ()
    return tuple(dict.fromkeys(c for c in text if c not in _BASIC_CODE and c not in GSM7_EXT))


def _atoms(text: str, encoding: str) -> list[tuple[int, int]]:
    """(start index, cost) of each piece a part boundary must not cut."""
    out: list[tuple[int, int]] = []
    if encoding == "gsm7":
        for i, c in enumerate(text):
            if c in _BASIC_CODE:
                out.append((i, 1))
            elif c in GSM7_EXT:
                out.append((i, 2))
            else:
                raise ValueError(f"character {c!r} at {i} is not in the GSM 03.38 alphabet")
        return out
    if encoding != "ucs2":
        raise ValueError(f"unknown SMS encoding {encoding!r}")
    i, n = 0, len(text)
    while i < n:
        o = ord(text[i])
        # A str may carry a surrogate pair as two code points (from a lax decoder): keep it whole.
        if 0xD800 <= o <= 0xDBFF and i + 1 < n and 0xDC00 <= ord(text[i + 1]) <= 0xDFFF:
            out.append((i, 2))
            i += 2
            continue
        out.append((i, 2 if o > 0xFFFF else 1))
        i += 1
    return out


def _plan(text: str, encoding: str) -> tuple[int, list[int]]:
    """Total units and the start index of each part (greedy fill, which is minimal here)."""
    if encoding == "gsm7" and _GSM.issuperset(text):
        units = len(text.translate(_ENCODE))          # an extension character is two septets
        if units <= LIMITS["gsm7"][0]:
            return units, [0]
    atoms = _atoms(text, encoding)
    units = sum(cost for _, cost in atoms)
    single, multi = LIMITS[encoding]
    if units <= single:
        return units, [0]
    starts, used = [0], 0
    for i, cost in atoms:
        if used + cost > multi:
            starts.append(i)
            used = 0
        used += cost
    return units, starts


def sms_info(text: str) -> SmsInfo:
    bad = _non_gsm(text)
    encoding = "ucs2" if bad else "gsm7"
    units, starts = _plan(text, encoding)
    return SmsInfo(encoding, units, len(starts), bad)


def split_text(text: str, encoding: str | None = None) -> tuple[str, list[str]]:
    """(encoding, parts). Raises ValueError if `encoding` is "gsm7" and the text is not GSM."""
    if encoding is None:
        encoding = "ucs2" if _non_gsm(text) else "gsm7"
    _, starts = _plan(text, encoding)
    ends = starts[1:] + [len(text)]
    return encoding, [text[a:b] for a, b in zip(starts, ends)]


def encode_gsm7(text: str) -> bytes:
    """One octet per septet (unpacked), ESC + code for extension characters."""
    if _GSM.issuperset(text):
        return text.translate(_ENCODE).encode("latin-1")
    out = bytearray()
    for i, c in enumerate(text):
        code = _BASIC_CODE.get(c)
        if code is not None:
            out.append(code)
        elif c in GSM7_EXT:
            out += bytes((ESC, GSM7_EXT[c]))
        else:
            raise ValueError(f"character {c!r} at {i} is not in the GSM 03.38 alphabet")
    return bytes(out)


def decode_gsm7(data: bytes) -> str:
    """Inverse of encode_gsm7. Octets >= 0x80 and a trailing lone ESC become '?'."""
    if data.isascii() and ESC not in data:
        return data.decode("ascii").translate(_DECODE)
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == ESC:
            if i + 1 >= n:
                out.append("?")
                break
            code = data[i + 1]
            if code in _EXT_CHAR:
                out.append(_EXT_CHAR[code])
            elif code < 0x80 and code != ESC:
                out.append(GSM7_BASIC[code])   # 03.38: unknown extension shows the basic char
            else:
                out.append("?")
            i += 2
            continue
        out.append(GSM7_BASIC[b] if b < 0x80 else "?")
        i += 1
    return "".join(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """GSM 03.38 packing, LSB first. `fill_bits` (0-6) zero bits come first, to align after a UDH."""
    if not 0 <= fill_bits <= 6:
        raise ValueError("fill_bits must be 0..6")
    out = bytearray()
    acc, nbits = 0, fill_bits
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Inverse of pack_septets; `count` septets (the UDL), since trailing bits are ambiguous."""
    bits = int.from_bytes(data, "little") >> fill_bits
    return bytes((bits >> (7 * k)) & 0x7F for k in range(count))


def encode_ucs2(text: str) -> bytes:
    """UTF-16-BE (what phones do with data_coding 8); lone surrogates pass through."""
    return text.encode("utf-16-be", "surrogatepass")


def decode_ucs2(data: bytes) -> str:
    return data.decode("utf-16-be", errors="replace")


def encode(text: str, encoding: str) -> bytes:
    if encoding == "gsm7":
        return encode_gsm7(text)
    if encoding == "ucs2":
        return encode_ucs2(text)
    raise ValueError(f"unknown SMS encoding {encoding!r}")
