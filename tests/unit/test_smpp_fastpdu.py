"""The hot path's own submit_sm writer and deliver_sm / submit_sm_resp reader (smpp/pdu.py)
against smpplib's: the same octets out, the same fields in, for any field values."""
from hypothesis import given, settings, strategies as st

from pbx_textback.smpp import pdu as P

ADDR = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=25)
BYTE = st.integers(0, 255)
SHORT = st.binary(max_size=254)


def _fields(p, names) -> dict:
    return {k: getattr(p, k, "<absent>") for k in (*names, "command", "sequence", "status", "length", "tlvs")}


@settings(max_examples=400)
@given(seq=st.integers(1, 0x7FFFFFFF), service_type=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8),
       ton=BYTE, npi=BYTE, src=ADDR, dton=BYTE, dnpi=BYTE, dst=ADDR, esm=BYTE, pid=BYTE, prio=BYTE,
       reg=BYTE, rep=BYTE, dc=BYTE, dflt=BYTE, sm=SHORT, payload=st.one_of(st.none(), st.binary(min_size=1, max_size=600)))
def test_submit_sm_octets_equal_smpplibs(seq, service_type, ton, npi, src, dton, dnpi, dst, esm, pid, prio,
                                         reg, rep, dc, dflt, sm, payload):
    if payload:
        sm = b""                        # smpplib refuses both at once, as ours does
    kw = dict(service_type=service_type, source_addr_ton=ton, source_addr_npi=npi, source_addr=src,
              dest_addr_ton=dton, dest_addr_npi=dnpi, destination_addr=dst, esm_class=esm, protocol_id=pid,
              priority_flag=prio, registered_delivery=rep and reg, replace_if_present_flag=rep,
              data_coding=dc, sm_default_msg_id=dflt, short_message=sm)
    if payload is not None:
        kw["message_payload"] = payload
    seqs = P.Sequencer()
    seqs.sequence = seq - 1
    theirs = P.make("submit_sm", seqs, **kw).generate()
    assert P.submit_sm(seq, **kw) == theirs


def test_submit_sm_refuses_short_message_and_payload_at_once():
    import pytest
    with pytest.raises(ValueError):
        P.submit_sm(1, service_type="", source_addr_ton=1, source_addr_npi=1, source_addr="1",
                    dest_addr_ton=1, dest_addr_npi=1, destination_addr="2", esm_class=0, protocol_id=0,
                    priority_flag=0, registered_delivery=0, replace_if_present_flag=0, data_coding=0,
                    sm_default_msg_id=0, short_message=b"a", message_payload=b"b")


TLV = st.tuples(st.sampled_from([0x001E, 0x0427, 0x0423, 0x020C, 0x020E, 0x020F, 0x0424, 0x1401, 0x0005]),
                st.binary(max_size=12))


@settings(max_examples=400)
@given(src=ADDR, dst=ADDR, esm=BYTE, dc=BYTE, sm=SHORT, rid=st.one_of(st.none(), st.text("0123456789ABCDEF", max_size=20)),
       state=st.one_of(st.none(), st.integers(0, 8)), extra=st.lists(TLV, max_size=4), cut=st.integers(0, 40))
def test_deliver_sm_reads_as_smpplib_reads_it(src, dst, esm, dc, sm, rid, state, extra, cut):
    kw = dict(source_addr=src[:20], destination_addr=dst[:20], esm_class=esm, data_coding=dc, short_message=sm)
    if rid is not None:
        kw["receipted_message_id"] = rid
    if state is not None:
        kw["message_state"] = state
    data = bytearray(P.make("deliver_sm", P.Sequencer(), **kw).generate())
    for tag, val in extra:
        data += tag.to_bytes(2, "big") + len(val).to_bytes(2, "big") + val
    if cut:                                 # a PDU cut short anywhere: read the same, or refused the same
        del data[max(16, len(data) - cut):]
    data[0:4] = len(data).to_bytes(4, "big")
    _same(bytes(data))


@given(st.one_of(st.none(), st.text("0123456789abcdef-", max_size=70)), st.sampled_from([0, 0x58, 0x45]),
       st.integers(0, 3))
def test_submit_sm_resp_reads_as_smpplib_reads_it(mid, status, cut):
    body = b"" if mid is None else mid.encode() + b"\0"
    data = bytearray((16 + len(body)).to_bytes(4, "big") + bytes.fromhex("80000004") + status.to_bytes(4, "big")
                     + (7).to_bytes(4, "big") + body)
    if cut and len(data) > 16:
        del data[max(16, len(data) - cut):]
        data[0:4] = len(data).to_bytes(4, "big")
    _same(bytes(data))
    _same_id(bytes(data))


@settings(max_examples=300)
@given(st.binary(max_size=60), st.lists(TLV, max_size=2))
def test_a_submit_sm_resps_id_reads_as_through_parse(body, extra):
    """resp_message_id (the link's read of every submit_sm_resp) against the parse it saves."""
    for tail in (b"", b"".join(t.to_bytes(2, "big") + len(v).to_bytes(2, "big") + v for t, v in extra)):
        b = body + tail
        _same_id((16 + len(b)).to_bytes(4, "big") + bytes.fromhex("80000004") + bytes(4) + (7).to_bytes(4, "big") + b)


def _same_id(data: bytes) -> None:
    try:
        want = P.text_field(P.parse(data).message_id)
    except P.PduError:
        try:
            P.resp_message_id(data)
        except P.PduError:
            return
        raise AssertionError("parse refuses it, resp_message_id does not")
    assert P.resp_message_id(data) == want


@settings(max_examples=300)
@given(st.binary(min_size=0, max_size=200), st.sampled_from([0x00000005, 0x80000004]))
def test_any_body_reads_as_smpplib_reads_it(body, cid):
    data = (16 + len(body)).to_bytes(4, "big") + cid.to_bytes(4, "big") + bytes(4) + (9).to_bytes(4, "big") + body
    _same(data)


def _same(data: bytes) -> None:
    try:
        slow = P.parse_smpplib(data)
    except P.PduError:
        try:
            P.parse(data)
        except P.PduError:
            return
        raise AssertionError("smpplib refuses it, the quick reader does not")
    assert _fields(P.parse(data), slow.params) == _fields(slow, slow.params)


@settings(max_examples=300)
@given(name=st.sampled_from(["deliver_sm_resp", "data_sm_resp", "enquire_link_resp", "generic_nack",
                             "unbind_resp", "submit_sm_resp", "bind_transceiver_resp"]),
       seq=st.integers(1, 0x7FFFFFFF), status=st.integers(0, 0xFFFFFFFF))
def test_plain_response_octets_equal_smpplibs(name, seq, status):
    """response() without fields (every receipt's deliver_sm_resp) from octets made once:
    what smpplib writes for that name, status and sequence."""
    from smpplib import smpp
    p = smpp.make_pdu(name, client=P.Sequencer())
    p.sequence, p.status = seq, status
    assert P.response(name, seq, status) == p.generate()
