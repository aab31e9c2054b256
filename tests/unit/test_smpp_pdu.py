"""SMPP pieces without a socket: submit_sm parts (UDH bytes, encodings), PDU bytes through
smpplib's codec, short_message decoding, receipt parsing and message id normalization."""
import pytest
from hypothesis import given, settings, strategies as st

from pbx_textback.core.text.sms import GSM7_BASIC, GSM7_EXT, encode_gsm7, split_text
from pbx_textback.smpp import pdu as P
from pbx_textback.smpp.dlr import (make_report, message_id_keys, message_ids_match,
                                   normalize_message_id, parse_receipt)

GSM_CHARS = [c for c in GSM7_BASIC if c != "\x1b"] + list(GSM7_EXT)
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=500)
any_text = st.text(max_size=400)        # includes astral chars (surrogate pairs in UTF-16)


# ------------------------------------------------------------------ parts and UDH

def test_udh_bytes_for_a_two_part_gsm_text():
    parts = P.plan_parts("a" * 200, ref=0x2A)
    assert [p.short_message[:6] for p in parts] == [bytes.fromhex("0500032A0201"),
                                                    bytes.fromhex("0500032A0202")]
    assert [(p.esm_class, p.data_coding, p.index, p.total) for p in parts] == \
        [(0x40, 0, 1, 2), (0x40, 0, 2, 2)]
    assert parts[0].short_message[6:] == b"a" * 153 and parts[1].short_message[6:] == b"a" * 47


def test_single_part_has_no_udh():
    (p,) = P.plan_parts("Hi €", ref=9)
    assert (p.esm_class, p.data_coding, p.short_message) == (0, 0, b"Hi \x1b\x65")


def test_euro_is_never_split_from_its_escape():
    parts = P.plan_parts("a" * 152 + "€" + "b" * 10, ref=1)
    assert parts[0].short_message[6:] == b"a" * 152               # 152 septets, ESC not alone
    assert parts[1].short_message[6:8] == b"\x1b\x65"


def test_ucs2_parts_keep_surrogate_pairs_whole():
    parts = P.plan_parts("Ж" * 66 + "😀" + "x" * 5, ref=3)
    assert parts[0].data_coding == 8 and len(parts[0].short_message) == 6 + 132
    assert parts[1].short_message[6:10] == "😀".encode("utf-16-be")


def test_payload_mode_one_pdu_no_udh():
    (p,) = P.plan_parts("z" * 400, long_mode="payload")
    assert p.short_message == b"" and p.message_payload == b"z" * 400 and p.esm_class == 0


def test_latin1_default_sends_latin1_or_falls_back_to_ucs2():
    (p,) = P.plan_parts("Café", data_coding_default="latin1")
    assert (p.data_coding, p.short_message) == (0, "Café".encode("latin-1"))
    (p,) = P.plan_parts("5 €", data_coding_default="latin1")     # € has no Latin-1 form
    assert (p.data_coding, p.short_message) == (8, "5 €".encode("utf-16-be"))


def test_packed_gsm_after_udh_uses_one_fill_bit():
    parts = P.plan_parts("a" * 200, ref=5, gsm7_packed=True)
    body = parts[0].short_message[6:]
    assert len(body) == 134                           # ceil((1 + 153*7) / 8)
    assert P.unpack_gsm(body, 6) == b"a" * 153


@settings(max_examples=300)
@given(text=st.one_of(gsm_text, any_text), ref=st.integers(0, 255),
       packed=st.booleans(), latin1=st.booleans())
def test_parts_decode_back_to_the_text(text, ref, packed, latin1):
    default = "latin1" if latin1 else "gsm7"
    parts = P.plan_parts(text, ref=ref, gsm7_packed=packed, data_coding_default=default)
    total = len(parts)
    out = []
    for i, p in enumerate(parts, 1):
        assert len(p.short_message) <= 160
        if total > 1:
            udh, body = P.split_udh(p.short_message)
            assert P.concat_info(udh) == (ref, total, i) and p.esm_class == 0x40
            assert len(p.short_message) <= 140 or (p.data_coding == 0 and not packed)
        else:
            udh, body = b"", p.short_message
        out.append(P.decode_text(body, p.data_coding, data_coding_default=default,
                                 gsm7_packed=packed, udh_len=len(udh)))
    got = "".join(out)
    if packed:              # 23.038: a CR on an octet boundary is doubled, <CR><CR> == <CR>
        got, text = got.rstrip("\r"), text.rstrip("\r")
    assert got == text
    if total > 1 and not latin1:
        assert [p.text for p in parts] == split_text(text)[1]


@given(septets=st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)),
       udh_len=st.sampled_from([0, 6, 7]))
def test_pack_unpack_round_trip(septets, udh_len):
    got = P.unpack_gsm(P.pack_gsm(septets, udh_len), udh_len)
    assert got.rstrip(b"\r") == septets.rstrip(b"\r")


# ------------------------------------------------------------------ PDUs through smpplib

def test_submit_sm_bytes_and_back():
    seq = P.Sequencer()
    (part,) = P.plan_parts("hello")
    p = P.make("submit_sm", seq, service_type="", source_addr_ton=1, source_addr_npi=1,
               source_addr=P.address("+15125550100", 1), dest_addr_ton=1, dest_addr_npi=1,
               destination_addr="15125550123", esm_class=0, registered_delivery=1,
               data_coding=0, short_message=part.short_message)
    data = p.generate()
    assert data[4:16] == bytes.fromhex("00000004" "00000000" "00000001")
    q = P.parse(data)
    assert (q.command, q.sequence, q.source_addr, q.destination_addr, q.short_message,
            q.registered_delivery) == ("submit_sm", 1, b"15125550100", b"15125550123", b"hello", 1)
    assert P.make("enquire_link", seq).sequence == 2


def test_response_carries_the_request_sequence():
    data = P.response("deliver_sm_resp", 0x1234, P.ESME_RX_T_APPN)
    assert P.header(data)[1:] == (0x80000005, 0x64, 0x1234)
    assert P.parse(P.response("generic_nack", 7, P.ESME_RINVCMDID)).status == 3


def test_deliver_sm_with_vendor_and_misplaced_tlvs_parses():
    seq = P.Sequencer()
    p = P.make("deliver_sm", seq, source_addr="15125550123", destination_addr="15125550100",
               esm_class=4, data_coding=0, short_message=b"id:1A2B stat:DELIVRD",
               receipted_message_id="1A2B", message_state=2)
    data = bytearray(p.generate())
    # a vendor TLV, and dest_addr_subunit (which smpplib knows but not for deliver_sm)
    extra = bytes.fromhex("1401" "0002" "abcd") + bytes.fromhex("0005" "0001" "01")
    data += extra
    data[0:4] = len(data).to_bytes(4, "big")
    q = P.parse(bytes(data))
    assert q.receipted_message_id == b"1A2B" and q.message_state == 2
    assert q.tlvs[0x1401] == b"\xab\xcd" and q.tlvs[0x0005] == b"\x01"


@settings(max_examples=300)
@given(st.binary(min_size=16, max_size=300))
def test_parse_garbage_raises_only_pdu_error(data):
    data = len(data).to_bytes(4, "big") + data[4:]
    try:
        P.parse(data)
    except P.PduError:
        pass


@given(st.binary(max_size=200), st.integers(0, 255), st.booleans(), st.sampled_from([0, 6, 7]))
def test_decode_text_never_raises(body, dc, packed, udh_len):
    assert isinstance(P.decode_text(body, dc, gsm7_packed=packed, udh_len=udh_len), str)


@given(st.binary(max_size=50))
def test_udh_helpers_never_raise(data):
    udh, rest = P.split_udh(data)
    assert udh + rest == data
    info = P.concat_info(udh)
    assert info is None or 1 <= info[2] <= info[1]


@pytest.mark.parametrize("dc, body, want", [
    (0, encode_gsm7("¡Hola! {€}"), "¡Hola! {€}"),
    (8, "Привет 😀".encode("utf-16-be"), "Привет 😀"),
    (3, "Café".encode("latin-1"), "Café"),
    (0xF0, encode_gsm7("flash"), "flash"),
    (0x04, b"\x00\xff", "\x00\xff"),
])
def test_decode_by_data_coding(dc, body, want):
    assert P.decode_text(body, dc) == want


def test_data_coding_zero_as_latin1():
    assert P.decode_text("Café".encode("latin-1"), 0, data_coding_default="latin1") == "Café"


def test_status_names():
    assert P.status_name(0x58) == "ESME_RTHROTTLED (0x58)"
    assert P.status_name(0x0B) == "ESME_RINVDSTADR (0x0B)"
    assert P.status_name(0x64) == "ESME_RX_T_APPN (0x64)"


# ------------------------------------------------------------------ receipts and ids

RECEIPT = ("id:0000001A2B sub:001 dlvrd:001 submit date:2411271015 done date:2411271016 "
           "stat:DELIVRD err:000 text:Sorry we missed your")


def test_parse_standard_receipt():
    f = parse_receipt(RECEIPT)
    assert f == {"id": "0000001A2B", "sub": "001", "dlvrd": "001", "submit date": "2411271015",
                 "done date": "2411271016", "stat": "DELIVRD", "err": "000",
                 "text": "Sorry we missed your"}


def test_receipt_text_field_may_contain_keywords():
    f = parse_receipt("id:7 stat:UNDELIV err:001 text:stat:DELIVRD id:9")
    assert (f["id"], f["stat"], f["text"]) == ("7", "UNDELIV", "stat:DELIVRD id:9")


def test_report_prefers_tlvs_and_maps_states():
    r = make_report(receipted_message_id=b"1a2b\0", message_state=5, text=RECEIPT)
    assert (r.message_id, r.state, r.final) == ("1a2b", "failed", True)
    r = make_report(text=RECEIPT.replace("DELIVRD", "EXPIRED").replace("err:000", "err:00B"))
    assert (r.message_id, r.state, r.error) == ("0000001A2B", "expired", "EXPIRED err:00B")
    r = make_report(text="id:5 stat:ENROUTE")
    assert (r.state, r.final) == ("enroute", False)
    assert make_report(text="no id here") is None


@settings(max_examples=500)
@given(st.text(max_size=300), st.one_of(st.none(), st.binary(max_size=20), st.text(max_size=20)),
       st.one_of(st.none(), st.integers(-5, 300)), st.one_of(st.none(), st.binary(max_size=3)))
def test_receipt_parsing_never_raises(text, rid, state, nec):
    parse_receipt(text)
    r = make_report(receipted_message_id=rid, message_state=state, network_error_code=nec,
                    text=text)
    assert r is None or (r.message_id and isinstance(r.state, str))


@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=12))
def test_receipt_id_from_text(mid):
    r = make_report(text=f"id:{mid} sub:001 dlvrd:001 stat:DELIVRD err:000 text:x")
    assert r.message_id == mid and r.state == "delivered"


@pytest.mark.parametrize("a, b, same", [
    ("1A2B", "1a2b", True),
    ("0001A2B", "1a2b", True),
    ("1A2B", "6699", True),          # hex in submit_sm_resp, decimal in the receipt
    ("6699", "00001A2B", True),
    ("0", "000", True),
    ("abc-1", "ABC-1", True),
    ("1A2B", "1A2C", False),
    ("msg-1", "msg-2", False),
    ("", "", False),
])
def test_message_ids_match(a, b, same):
    assert message_ids_match(a, b) is same
    assert message_ids_match(b, a) is same


@given(st.integers(0, 2**64))
def test_hex_and_decimal_forms_of_one_id_match(n):
    assert message_ids_match(format(n, "X"), str(n))
    assert message_ids_match("00" + format(n, "x"), str(n))


@given(st.text(max_size=30))
def test_normalize_is_idempotent_and_keys_start_with_it(mid):
    n = normalize_message_id(mid)
    assert normalize_message_id(n) == n
    keys = message_id_keys(mid)
    assert not keys or keys[0] == n
