"""The real service against the real SMSC (issue 10 findings 4, 5, 8, 10): late evidence
resolves an unknown text, send-test and doctor leave the service's replies alone and check
what real texts are checked for, texts without a receipt are shown, faults are named."""
from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time

from pbx_textback.config import loads
from pbx_textback.store import db as st
from tests.integration.test_service_smpp import FIX, run_service
from tests.service_toml import smpp_service_toml

CALLER = "+15125550177"          # the caller of 03-abandoned.ami


def cfg_text(tmp_path, smsc, extra="") -> str:
    return smpp_service_toml(tmp_path / "s.sqlite3", smsc.port, compliance='denylist = ["+1900*"]',
                             smpp="enquire_link_interval = 5\nreconnect_min = 0.1", extra=extra)


def setup(tmp_path, smsc, extra=""):
    text = cfg_text(tmp_path, smsc, extra)
    (tmp_path / "c.toml").write_text(text)
    return loads(text)


def the_text():
    return st.Message.select().where((st.Message.peer == CALLER) & (st.Message.kind == "missed-call")).first()


def cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


# ------------------------------------------------------------------ finding 4: unknown resolves
def test_gateway_frozen_then_dropped_delivers_and_its_receipt_resolves_the_text(tmp_path, smsc, caplog):
    """The gateway freezes with our submit unanswered, the connection drops (unknown), the
    gateway wakes and delivers it; its receipt, on the new bind, names an id we never learned:
    recipient, sender and the receipt's text: name the text. Delivered, never resent."""
    cfg = setup(tmp_path, smsc)
    smsc.hang(60_000)
    seen = {"dropped": False, "unknown": False}

    async def during(svc):
        loop = asyncio.get_running_loop()
        row = the_text()
        if row is not None and row.state == st.UNKNOWN and not seen["unknown"]:
            seen["unknown"] = True
            await loop.run_in_executor(None, smsc.hang, 0)      # the gateway wakes
        if not seen["dropped"] and smsc.log_events("submit_sm_held"):
            seen["dropped"] = True
            await loop.run_in_executor(None, smsc.drop)
    with caplog.at_level(logging.WARNING):
        asyncio.run(run_service(cfg, [FIX / "03-abandoned.ami"], timeout=20, during=during,
                                until=lambda svc: (r := the_text()) is not None and r.state == st.DELIVERED))
    row = the_text()
    assert seen == {"dropped": True, "unknown": True}
    assert row.state == st.DELIVERED, (row.state, row.error, row.note)
    assert row.note.startswith("resolved by late evidence: receipt DELIVRD")
    assert [m["destination_addr"] for m in smsc.messages()] == [CALLER[1:]]     # once
    assert f"message {row.id}: receipt DELIVRD" in caplog.text and "do not resend it" in caplog.text


def test_a_late_submit_sm_resp_resolves_the_unknown_text(tmp_path, smsc):
    cfg = setup(tmp_path, smsc, "response_timeout = 1")
    smsc.hang(60_000)
    seen = set()

    async def during(svc):
        row = the_text()
        if row is not None:
            if row.state == st.UNKNOWN and st.UNKNOWN not in seen:
                await asyncio.get_running_loop().run_in_executor(None, smsc.hang, 0)   # wakes
            seen.add(row.state)
    asyncio.run(run_service(cfg, [FIX / "03-abandoned.ami"], timeout=15, during=during,
                            until=lambda svc: (r := the_text()) is not None and r.state == st.DELIVERED))
    row = the_text()
    assert st.UNKNOWN in seen
    assert row.state == st.DELIVERED, (row.state, row.error, row.note)
    assert row.note.startswith("resolved by late evidence: late submit_sm_resp ESME_ROK")
    assert row.transport_id and len(smsc.messages()) == 1


def test_a_receipt_before_the_submit_sm_resp_is_not_lost(tmp_path, smsc):
    cfg = setup(tmp_path, smsc)
    smsc.dlr_first(True)
    asyncio.run(run_service(cfg, [FIX / "03-abandoned.ami"], timeout=10,
                            until=lambda svc: (r := the_text()) is not None and r.state == st.DELIVERED))
    row = the_text()
    assert row.state == st.DELIVERED, (row.state, row.note)
    assert row.transport_id == smsc.messages()[0]["message_id"].lower()


# ------------------------------------------------------------------ finding 8: no receipt
def test_a_text_without_a_receipt_becomes_no_receipt_shown_and_alerted(tmp_path, smsc_factory, caplog):
    smsc = smsc_factory(dlr_delay_ms=600_000)               # receipts that never come
    cfg = setup(tmp_path, smsc, "receipt_timeout_minutes = 0.02")

    async def during(svc):
        svc.watch.check()                                   # the housekeeping does it every 30 s
    with caplog.at_level(logging.WARNING):
        asyncio.run(run_service(cfg, [FIX / "03-abandoned.ami"], timeout=15, during=during,
                                until=lambda svc: (r := the_text()) is not None and r.state == "no-receipt"))
    assert the_text().state == "no-receipt"
    assert "ALERT 1 text(s) in the last 24 h got no delivery receipt" in caplog.text
    out = cli("explain", CALLER, "-c", str(tmp_path / "c.toml")).stdout
    assert "no-receipt" in out and "no delivery receipt from the gateway" in out, out


# ------------------------------------------------------------------ finding 5: send-test, doctor
def test_send_test_leaves_the_services_replies_alone(tmp_path, smsc):
    """The gateway spreads replies over every receiving bind of the account (as Jasmin): four
    STOPs sent while send-test is bound all reach the running service."""
    cfg = setup(tmp_path, smsc)
    stops = ["+15125550101", "+15125550102", "+15125550103", "+15125550104"]
    state = {"proc": None, "sent": False, "out": None}

    async def during(svc):
        if state["proc"] is None and smsc.health()["sessions"] == 1:
            state["proc"] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pbx_textback.cli", "send-test", "--to", "+15125550123",
                "--text", "Test from Acme", "-c", str(tmp_path / "c.toml"), "--wait", "8",
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        elif state["proc"] is not None and not state["sent"] and smsc.health()["sessions"] == 2:
            state["sent"] = True
            loop = asyncio.get_running_loop()
            for n in stops:
                await loop.run_in_executor(None, smsc.mo, n[1:], "15125550100", "STOP")
        if state["sent"] and state["out"] is None and state["proc"].returncode is not None:
            state["out"] = (await state["proc"].stdout.read()).decode()

    def until(svc):
        got = st.Message.select().where((st.Message.direction == "in") & (st.Message.body == "STOP")).count()
        return got == 4 and state["out"] is not None
    asyncio.run(run_service(cfg, [FIX / "01-answered.ami"], until, timeout=25, during=during))
    replies = st.Message.select().where(st.Message.direction == "in")
    assert sorted(m.peer for m in replies) == stops
    assert state["sent"] and "smpp: sent id" in state["out"], state["out"]
    assert "receipt: delivered" in state["out"], state["out"]    # recorded by the service
    test_row = st.Message.get(st.Message.kind == "test")
    assert (test_row.peer, test_row.state) == ("+15125550123", st.DELIVERED)
    assert [e["kind"] for e in smsc.log_events("bind")] == ["transceiver", "transmitter"]


def test_send_test_runs_the_checks_of_real_texts(tmp_path, smsc):
    setup(tmp_path, smsc)
    s = st.open_store(str(tmp_path / "s.sqlite3"))
    from pbx_textback.core.policy.consent import ConsentEvent
    with s.write():
        s.add_consent(ConsentEvent("opt-out", CALLER, time.time() - 60, source="STOP"))
    s.close()
    cases = {CALLER: "consent: opted out", "+19005550123": "denylist: +19005550123 is on the denylist",
             "+442079460000": "destination-country: GB is not an allowed country"}
    for to, why in cases.items():
        p = cli("send-test", "--to", to, "--text", "hi", "-c", str(tmp_path / "c.toml"), "--wait", "3")
        assert p.returncode != 0 and why in p.stderr, (to, p.stdout, p.stderr)
    assert smsc.messages() == [] and smsc.log_events("bind") == []


def test_doctor_binds_as_a_transmitter_only(tmp_path, smsc):
    setup(tmp_path, smsc)
    out = cli("doctor", "-c", str(tmp_path / "c.toml")).stdout
    assert "[ok  ] transport: smpp: bound" in out, out
    assert [e["kind"] for e in smsc.log_events("bind")] == ["transmitter"]


# ------------------------------------------------------------------ finding 10: fault names
def test_doctor_names_each_fault_and_returns_at_once(tmp_path, smsc_factory):
    refusing = smsc_factory(system_id="acme", password="other")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()                                             # accepts, never answers
    closed = smsc_factory(start=False)
    cases = [(refusing, "smpp: the gateway refused the bind with ESME_RBINDFAIL (0x0D)", "bind limit"),
             (closed, f"smpp: connection refused by 127.0.0.1:{closed.port}", "nothing listens"),
             (silent.getsockname()[1], "but no answer to the bind within 2s", "SMPP port")]
    try:
        for target, detail, fix in cases:
            port = target if isinstance(target, int) else target.port
            text = cfg_text(tmp_path, type("S", (), {"port": port}), "response_timeout = 2")
            (tmp_path / "c.toml").write_text(text)
            t0 = time.monotonic()
            out = cli("doctor", "-c", str(tmp_path / "c.toml")).stdout
            took = time.monotonic() - t0
            line = next(x for x in out.splitlines() if "transport:" in x)
            assert line.startswith("[FAIL]") and detail in line, out
            assert fix in out and "system_id and password" not in out, out
            assert took < 8, f"doctor took {took:.1f}s"
    finally:
        silent.close()
