"""Long replies in parts (issue 10 #21): whatever part numbers a gateway sends, the
reassembly never raises, never allocates by a header's claim, and joins real parts in order."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from hypothesis import given, settings, strategies as st

from pbx_textback.smpp import SmppSettings, SmppTransport
from pbx_textback.smpp import pdu as P
from pbx_textback.smpp.reassembly import MAX_PARTS, MoParts, valid_concat

u32 = st.integers(0, 0xFFFFFFFF)
part_no = st.one_of(st.integers(0, 300), u32, st.none())


def _deliver(ref, total, seq, text="x"):
    """A parsed deliver_sm as the transport sees it (SAR TLVs as integers, any width)."""
    return SimpleNamespace(esm_class=0, short_message=text.encode(), data_coding=0,
                           source_addr=b"15125550177", destination_addr=b"15125550100",
                           sar_msg_ref_num=ref, sar_total_segments=total, sar_segment_seqnum=seq)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(part_no, part_no, part_no), max_size=30))
def test_any_sar_numbers_never_raise_and_stay_bounded(parts):
    got = []

    async def go():
        t = SmppTransport(SmppSettings(), on_mo=lambda m: got.append(m) or True)
        for i, (ref, total, seq) in enumerate(parts):
            status = t.inbound.mo(_deliver(ref, total, seq, f"p{i}"))
            assert status == P.ESME_ROK
        # parts held only for valid multi-part numbers, at most as many as were sent
        assert len(t.inbound.parts) <= len(parts)
        return t
    t = asyncio.run(go())
    invalid = [p for p in parts if p[0] is not None and not (p[1] and p[1] > 1 and valid_concat(*p))]
    assert len(got) >= len(invalid)          # an invalid part is a whole reply, handed over at once
    for held in t.inbound.parts._held.values():
        assert all(1 <= k <= held["total"] <= MAX_PARTS for k in held["parts"])


@given(st.integers(2, 12), st.data())
def test_real_parts_in_any_order_join_once(total, data):
    order = data.draw(st.permutations(list(range(1, total + 1))))
    dupes = data.draw(st.lists(st.sampled_from(order[:-1]), max_size=3))   # a part sent twice
    m = MoParts()
    for i, seq in enumerate(order[:-1] + dupes):
        assert m.add(("a", "b", 7, total), total, seq, f"<{seq}>", float(i)) is None
    full = m.add(("a", "b", 7, total), total, order[-1], f"<{order[-1]}>", 99.0)
    assert full == "".join(f"<{i}>" for i in range(1, total + 1))
    m.done(("a", "b", 7, total))
    assert len(m) == 0


def test_expired_parts_show_their_gaps():
    m = MoParts()
    m.add(("a", "b", 1, 3), 3, 2, "middle", 10.0)
    assert m.expired(9.0) == []
    assert m.expired(10.0) == [(("a", "b", 1, 3), "[…]middle[…]", 3, None)]


def test_more_half_texts_than_the_bound_go_out_oldest_first():
    m = MoParts(max_pending=2)
    for ref in range(3):
        m.add(("a", "b", ref, 2), 2, 1, f"t{ref}", float(ref))
    assert m.overflow() == [("a", "b", 0, 2)]


def test_valid_concat():
    assert valid_concat(1, 2, 2) and valid_concat(0, 255, 1)
    for bad in [(1, 2, 3), (1, 2, 0), (1, 256, 1), (1, 30_000_000, 1), (None, 2, 1), (1, True, 1)]:
        assert not valid_concat(*bad)
