"""A receipt whose text this process did not submit (sent before a restart, or long ago) is
matched by the gateway's id in one UPDATE (store/fast.py dlr_by_gateway_id). What the admin
sees must be what the read-then-write gave: the text delivered or failed with the receipt's
error, a failed text left failed as it was (one failed part fails the text), a non-final
receipt noted, another account's text with the same id untouched, a part of a long text found
by its part id. On SQLite and PostgreSQL."""
from pbx_textback.store import db as st

ACCOUNT = "acme@gw:2775"


def sent(s, peer: str, transport_id: str, now: float, account: str = ACCOUNT) -> int:
    with s.write():
        mid = s.add_message(direction="out", kind="missed-call", line="+15125550100", peer=peer,
                            body="Hi", state=st.SENDING, due_at=now, created_at=now)
    s.accounts = {"smpp": account}
    s.mark_sent(mid, now=now, transport="smpp", transport_id=transport_id)
    s.accounts = {"smpp": ACCOUNT}
    return mid


def test_receipts_by_the_gateways_id(store_factory):
    s = store_factory()
    s.accounts = {"smpp": ACCOUNT}
    ok = sent(s, "+15125550001", "1a2b", 100.0)
    bad = sent(s, "+15125550002", "1a2c", 100.0)
    other = sent(s, "+15125550003", "1a2d", 100.0, account="other@gw:2775")
    ours_too = sent(s, "+15125550004", "1a2d", 100.0)
    long_text = sent(s, "+15125550005", "77,78,79", 100.0)
    assert s.apply_dlr(("1a2b",), "delivered", "", 101.0) == 1
    assert s.apply_dlr(("1a2c",), "undeliverable", "UNDELIV err:001", 102.0) == 1
    assert s.apply_dlr(("1a2c",), "delivered", "", 103.0) == 1           # named, yet it stays failed
    assert s.apply_dlr(("1a2d",), "delivered", "", 104.0) == 1           # this account's only
    assert s.apply_dlr(("78",), "delivered", "", 105.0) == 1             # one part of three
    assert s.apply_dlr(("9999",), "delivered", "", 106.0) == 0           # no such text
    assert s.apply_dlr(("1a2b",), "enroute", "", 107.0) == 1             # not final: a note
    got = {i: st.Message.get_by_id(i) for i in (ok, bad, other, ours_too, long_text)}
    assert (got[ok].state, got[ok].error, got[ok].note, got[ok].updated_at) == (
        st.DELIVERED, "", "receipt: enroute", 107.0)
    assert (got[bad].state, got[bad].error, got[bad].updated_at) == (
        st.FAILED, "receipt undeliverable: UNDELIV err:001", 102.0)
    assert (got[other].state, got[ours_too].state) == (st.SENT, st.DELIVERED)
    assert got[long_text].state == st.DELIVERED
