"""SMS encoding: tables from GSM 03.38, segment boundaries, splitting, codecs, properties."""
import pytest
from hypothesis import event, given, settings, strategies as st

from pbx_textback.core.text import sms
from pbx_textback.core.text.sms import (GSM7_BASIC, GSM7_EXT, SmsInfo, decode_gsm7, decode_ucs2,
                                   encode, encode_gsm7, encode_ucs2, pack_septets, sms_info,
                                   split_text, unpack_septets)

from tests.unit.gsm0338_tables import GSM_BASIC_CHARS, GSM_EXT_CHARS, basic_table, extension_table

# ---------------------------------------------------------------- tables


def test_basic_alphabet_matches_the_standard():
    assert len(GSM7_BASIC) == 128
    for code, ch in basic_table().items():
        if ch is not None:
            assert GSM7_BASIC[code] == ch, hex(code)
    assert len(set(GSM7_BASIC)) == 128
    assert GSM7_BASIC[0x1B] == "\x1b"       # ESC slot holds ESC itself (no glyph)


def test_extension_table_matches_the_standard():
    assert GSM7_EXT == extension_table()
    assert not set(GSM7_EXT) & GSM_BASIC_CHARS


def test_every_basic_char_costs_one_septet_and_every_ext_char_two():
    for ch in GSM_BASIC_CHARS:
        assert sms_info(ch) == SmsInfo("gsm7", 1, 1, ()), repr(ch)
    for ch in GSM_EXT_CHARS:
        assert sms_info(ch) == SmsInfo("gsm7", 2, 1, ()), repr(ch)
    assert sms_info("".join(sorted(GSM_BASIC_CHARS))).units == 127


def test_escape_char_itself_is_not_gsm_text():
    # A literal ESC in the text would be read as the start of an extension pair.
    info = sms_info("a\x1bb")
    assert info.encoding == "ucs2" and info.ucs2_chars == ("\x1b",)


# ---------------------------------------------------------------- boundaries

@pytest.mark.parametrize("text, encoding, units, segments", [
    ("", "gsm7", 0, 1),
    ("a" * 160, "gsm7", 160, 1),
    ("a" * 161, "gsm7", 161, 2),
    ("a" * 306, "gsm7", 306, 2),
    ("a" * 307, "gsm7", 307, 3),
    ("€" * 80, "gsm7", 160, 1),
    ("€" * 81, "gsm7", 162, 2),            # 76 € (152 septets) fit a part, not 77
    ("€" * 153, "gsm7", 306, 3),           # 76 + 76 + 1
    ("Ж" * 70, "ucs2", 70, 1),
    ("Ж" * 71, "ucs2", 71, 2),
    ("Ж" * 134, "ucs2", 134, 2),
    ("Ж" * 135, "ucs2", 135, 3),
    ("😀" * 35, "ucs2", 70, 1),            # astral chars are two UTF-16 units
    ("😀" * 36, "ucs2", 72, 2),            # 33 emoji (66 units) per part: 33 + 3
])
def test_boundaries(text, encoding, units, segments):
    info = sms_info(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)
    enc, parts = split_text(text)
    assert enc == encoding and len(parts) == segments and "".join(parts) == text


def test_euro_straddling_the_153_boundary_moves_whole_to_part_two():
    text = "a" * 152 + "€" + "b" * 10       # € would take septets 153 and 154
    enc, parts = split_text(text)
    assert enc == "gsm7"
    assert parts == ["a" * 152, "€" + "b" * 10]
    assert encode_gsm7(parts[0]) == bytes([0x61]) * 152
    assert encode_gsm7(parts[1])[:2] == bytes([0x1B, 0x65])


def test_euro_ending_exactly_at_153_stays_in_part_one():
    text = "a" * 151 + "€" + "b" * 10
    _, parts = split_text(text)
    assert parts[0] == "a" * 151 + "€"


def test_emoji_straddling_the_67_unit_boundary_moves_whole():
    text = "Ж" * 66 + "😀" + "Ж" * 10
    enc, parts = split_text(text)
    assert enc == "ucs2"
    assert parts == ["Ж" * 66, "😀" + "Ж" * 10]


def test_surrogate_pair_given_as_two_code_points_is_not_split():
    pair = "😀".encode("utf-16-be").decode("utf-16-be", "surrogatepass")
    lax = "\ud83d\ude00"                   # what a lax decoder leaves in a str
    assert pair == "😀" and len(lax) == 2
    _, parts = split_text("Ж" * 66 + lax + "Ж" * 10)
    assert parts[0] == "Ж" * 66 and parts[1].startswith(lax)


def test_one_curly_apostrophe_flips_to_ucs2_and_is_named():
    gsm = "Hi, it's Acme. Sorry we missed your call."
    assert sms_info(gsm).encoding == "gsm7"
    info = sms_info(gsm.replace("'", "’"))
    assert info.encoding == "ucs2"
    assert info.ucs2_chars == ("’",)
    assert info.units == len(gsm)


def test_ucs2_chars_are_distinct_in_first_seen_order():
    assert sms_info("a–b’c–á’").ucs2_chars == ("–", "’", "á")


def test_to_dict():
    assert sms_info("x’").to_dict() == {"encoding": "ucs2", "units": 2, "segments": 1,
                                        "ucs2_chars": ["’"]}


def test_empty_text_is_one_empty_part():
    assert split_text("") == ("gsm7", [""])
    assert split_text("", "ucs2") == ("ucs2", [""])


def test_forced_encodings():
    assert split_text("a" * 71, "ucs2") == ("ucs2", ["a" * 67, "a" * 4])
    with pytest.raises(ValueError):
        split_text("it’s", "gsm7")
    with pytest.raises(ValueError):
        split_text("abc", "latin1")


# ---------------------------------------------------------------- codecs

def test_encode_gsm7_uses_escape_pairs():
    assert encode_gsm7("@a€{") == bytes([0x00, 0x61, 0x1B, 0x65, 0x1B, 0x28])
    with pytest.raises(ValueError):
        encode_gsm7("’")


def test_decode_gsm7_tolerates_unknown_octets():
    assert decode_gsm7(bytes([0x48, 0x80, 0xFF, 0x69])) == "H??i"
    assert decode_gsm7(bytes([0x61, 0x1B])) == "a?"          # trailing lone ESC
    # 03.38: an escape to a code missing from the extension table shows the basic char.
    assert decode_gsm7(bytes([0x1B, 0x41])) == "A"


# Packing vectors from the literature (GSM 03.38 examples), not from this implementation.
@pytest.mark.parametrize("text, packed_hex", [
    ("hellohello", "E8329BFD4697D9EC37"),
    ("How are you?", "C8F71D14969741F977FD07"),
])
def test_pack_septets_known_vectors(text, packed_hex):
    packed = pack_septets(encode_gsm7(text))
    assert packed == bytes.fromhex(packed_hex)
    assert unpack_septets(packed, len(text)) == encode_gsm7(text)


def test_pack_rejects_bad_fill():
    with pytest.raises(ValueError):
        pack_septets(b"a", 7)


def test_ucs2_codec():
    assert encode_ucs2("A’😀") == b"\x00A\x20\x19\xd8\x3d\xde\x00"
    assert decode_ucs2(b"\x00A\x20\x19\xd8\x3d\xde\x00") == "A’😀"
    assert decode_ucs2(b"\x00A\x00") == "A\ufffd"           # odd length
    assert decode_ucs2(b"\xd8\x3d\x00A") == "\ufffdA"       # lone high surrogate


def test_encode_dispatch():
    assert encode("€", "gsm7") == b"\x1b\x65"
    assert encode("€", "ucs2") == b"\x20\xac"
    with pytest.raises(ValueError):
        encode("a", "utf8")


# ---------------------------------------------------------------- properties

_GSM = sorted(GSM_BASIC_CHARS)
_EXT = sorted(GSM_EXT_CHARS)
_gsm_chars = st.sampled_from(_GSM + _EXT)
_any_chars = st.one_of(st.sampled_from(_GSM), st.sampled_from(_EXT),
                       st.sampled_from("’–áЖ中😀🎉\U0001F1FA"),
                       st.characters(exclude_categories=("Cs",)))
# Lengths around the 1-, 2- and 3-part boundaries, not just the short texts hypothesis favours.
gsm_text = st.one_of(st.text(_gsm_chars, max_size=40), st.text(_gsm_chars, min_size=140, max_size=480))
any_text = st.one_of(gsm_text, st.text(_any_chars, max_size=40),
                     st.text(_any_chars, min_size=60, max_size=220))


def _cost(ch, encoding):
    if encoding == "gsm7":
        return 2 if ch in GSM_EXT_CHARS else 1
    return len(ch.encode("utf-16-be")) // 2


def _reference_min_parts(text, encoding):
    """Minimal number of parts by dynamic programming over char boundaries."""
    costs = [_cost(c, encoding) for c in text]
    single, multi = {"gsm7": (160, 153), "ucs2": (70, 67)}[encoding]
    if sum(costs) <= single:
        return 1
    inf = float("inf")
    best = [0] + [inf] * len(costs)
    for j in range(1, len(costs) + 1):
        used = 0
        for i in range(j - 1, -1, -1):
            used += costs[i]
            if used > multi:
                break
            best[j] = min(best[j], best[i] + 1)
    return best[-1]


def _expected_encoding(text):
    ok = GSM_BASIC_CHARS | GSM_EXT_CHARS
    return "gsm7" if all(c in ok for c in text) else "ucs2"


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_split_properties(text):
    enc, parts = split_text(text)
    event(f"{enc} {min(len(parts), 4)} parts")
    assert enc == _expected_encoding(text)
    assert "".join(parts) == text
    assert len(parts) == _reference_min_parts(text, enc)
    assert all(parts) or parts == [""]
    limit = {"gsm7": (160, 153), "ucs2": (70, 67)}[enc][len(parts) > 1]
    for p in parts:
        units = sum(_cost(c, enc) for c in p)
        assert units <= limit
        data = encode(p, enc)
        assert len(data) == units * (1 if enc == "gsm7" else 2)
        if enc == "ucs2" and data:
            first = int.from_bytes(data[:2], "big")
            last = int.from_bytes(data[-2:], "big")
            assert not 0xDC00 <= first <= 0xDFFF
            assert not 0xD800 <= last <= 0xDBFF
        if enc == "gsm7" and data:
            assert data[-1] != 0x1B          # no escape pair cut in half
            assert decode_gsm7(data) == p


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_sms_info_agrees_with_split(text):
    info = sms_info(text)
    enc, parts = split_text(text)
    assert info.encoding == enc and info.segments == len(parts)
    assert info.units == sum(_cost(c, enc) for c in text)
    ok = GSM_BASIC_CHARS | GSM_EXT_CHARS
    assert info.ucs2_chars == tuple(dict.fromkeys(c for c in text if c not in ok))


@given(gsm_text)
def test_gsm7_round_trip(text):
    data = encode_gsm7(text)
    assert decode_gsm7(data) == text
    assert len(data) == sms_info(text).units


@given(st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)),
       st.integers(min_value=0, max_value=6))
def test_pack_unpack_round_trip(septets, fill):
    packed = pack_septets(septets, fill)
    assert len(packed) == (len(septets) * 7 + fill + 7) // 8
    assert unpack_septets(packed, len(septets), fill) == septets
    # fill bits are zero bits at the start of the stream
    assert int.from_bytes(packed, "little") == int.from_bytes(pack_septets(septets), "little") << fill


@given(st.binary(max_size=200))
def test_decoders_never_raise(data):
    assert isinstance(decode_gsm7(data), str)
    assert isinstance(decode_ucs2(data), str)


def test_module_has_no_io_imports():
    src = open(sms.__file__, encoding="utf-8").read()
    for bad in ("smpplib", "socket", "asyncio", "time"):
        assert f"import {bad}" not in src


def _reference_encode(text):
    """Character by character from the standard's tables (tests/unit/gsm0338_tables.py)."""
    code = {c: i for i, c in basic_table().items() if c is not None}
    ext = extension_table()
    out = bytearray()
    for c in text:
        if c in code:
            out.append(code[c])
        elif c in ext:
            out += bytes((0x1B, ext[c]))
        else:
            return None
    return bytes(out)


def _reference_decode(data):
    basic = basic_table()
    ext = {v: k for k, v in extension_table().items()}
    out, i = [], 0
    while i < len(data):
        b = data[i]
        if b == 0x1B:
            if i + 1 >= len(data):
                out.append("?")
                break
            c = data[i + 1]
            out.append(ext[c] if c in ext else basic[c] if c < 0x80 and c != 0x1B else "?")
            i += 2
            continue
        out.append(basic[b] if b < 0x80 else "?")
        i += 1
    return "".join(out)


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_encode_gsm7_is_the_standards_codes(text):
    """The one-pass encode (str.translate) gives each character's code from the tables, and
    refuses what is not GSM as before."""
    want = _reference_encode(text)
    if want is None:
        with pytest.raises(ValueError):
            encode_gsm7(text)
    else:
        assert encode_gsm7(text) == want


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b))))
def test_decode_gsm7_is_the_standards_characters(data):
    assert decode_gsm7(data) == _reference_decode(data)
