"""From a replayed real missed call to a real SMSC and back: the text is submitted, its
delivery receipt matched, the caller's replies stored and STOP/HELP answered exactly once."""
import asyncio
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from aiosmtpd.smtp import SMTP

from pbx_textback.ami.replay_server import AmiReplayServer
from pbx_textback.config import loads
from pbx_textback.service import Service
from pbx_textback.store import db as st
from tests.service_toml import smpp_service_toml

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"
MISSED = ["02-no-answer.ami", "03-abandoned.ami", "04-busy.ami", "05-ringgroup-voicemail.ami"]
CALLERS = {"+17375550188", "+15125550177", "+12145550142", "+15125550199"}


def cfg_for(tmp_path, smsc, ami_port, extra=""):
    return loads(smpp_service_toml(tmp_path / "s.sqlite3", smsc.port, ami_port=ami_port,
                                   smpp="enquire_link_interval = 5", extra=extra))


async def run_service(cfg, traces, until, timeout=30.0, during=None):
    server = AmiReplayServer(traces, username="t", secret="s")
    port = await server.start()
    cfg = replace(cfg, pbx=replace(cfg.pbx, ami=replace(cfg.pbx.ami, port=port)))
    svc = Service(cfg)

    async def stopper():
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.1)
            if during:
                await during(svc)
            if until(svc):
                break
        svc.stop()
    await svc.run(extra_tasks=[stopper()])
    await server.stop()
    return svc


def messages(path):
    st.open_store(str(path))
    return list(st.Message.select().order_by(st.Message.id))


def test_missed_calls_are_texted_through_the_smsc_and_receipts_matched(tmp_path, smsc):
    cfg = cfg_for(tmp_path, smsc, 0)
    done = lambda svc: st.Message.select().where(st.Message.state == st.DELIVERED).count() >= 4  # noqa: E731
    asyncio.run(run_service(cfg, [FIX / f for f in MISSED], done))
    got = smsc.messages()
    assert {"+" + m["destination_addr"].lstrip("+") for m in got} == CALLERS
    assert all(m["text"].startswith("Hi, this is Acme Dental.") for m in got)
    assert len(got) == 4                                   # one text per missed call, no duplicate
    rows = messages(tmp_path / "s.sqlite3")
    assert {m.state for m in rows} == {st.DELIVERED}
    assert all(m.transport == "smpp" and m.transport_id for m in rows)


def test_replies_stop_twice_and_help_are_stored_and_answered_once(tmp_path, smsc):
    cfg = cfg_for(tmp_path, smsc, 0)
    sent_mo = []

    async def during(svc):
        delivered = st.Message.select().where(st.Message.state == st.DELIVERED).count()
        if delivered >= 1 and not sent_mo:
            sent_mo.append(1)
            loop = asyncio.get_running_loop()
            for text in ("Stop!", "STOP", "help"):
                await loop.run_in_executor(None, smsc.mo, "15125550177", "15125550140", text)

    def until(svc):
        return st.Message.select().where((st.Message.kind.in_(["confirmation", "help"]))
                                         & (st.Message.state == st.DELIVERED)).count() >= 2

    asyncio.run(run_service(cfg, [FIX / "03-abandoned.ami"], until, during=during))
    rows = messages(tmp_path / "s.sqlite3")
    replies = [m for m in rows if m.direction == "in"]
    assert [m.body for m in replies] == ["Stop!", "STOP", "help"]
    assert replies[0].note.startswith("stop") and replies[2].note.startswith("help")
    assert replies[0].call_id is not None                 # linked to the missed call
    confirmations = [m for m in rows if m.kind == "confirmation"]
    assert len(confirmations) == 1 and "Acme Dental" in confirmations[0].body
    assert "START" in confirmations[0].body
    helps = [m for m in rows if m.kind == "help"]
    assert len(helps) == 1 and "+15125550100" in helps[0].body and "STOP" in helps[0].body
    at_smsc = [m for m in smsc.messages() if m["destination_addr"].lstrip("+") == "15125550177"]
    assert len(at_smsc) == 3                               # the text, one confirmation, one HELP answer
    events = [c.kind for c in st.Consent.select().order_by(st.Consent.id)]
    assert events.count("opt-out") == 2 and events.count("confirmation") == 1


def test_an_opted_out_caller_is_not_texted_again(tmp_path, smsc):
    cfg = cfg_for(tmp_path, smsc, 0)
    s = st.open_store(str(tmp_path / "s.sqlite3"))
    from pbx_textback.core.policy.consent import ConsentEvent
    with s.write():
        s.add_consent(ConsentEvent("opt-out", "+15125550177", time.time() - 3600, source="STOP"))
    s.close()
    asyncio.run(run_service(cfg, [FIX / "03-abandoned.ami"],
                                  lambda svc: st.Call.select().count() >= 1))
    assert smsc.messages() == []
    dec = st.DecisionRow.get()
    assert "opted out" in dec.checks and dec.action == "skip"


def test_send_test_reports_submit_and_receipt(tmp_path, smsc):
    """Without the service running nobody takes the receipt (send-test binds as a transmitter
    only): it says so and where it will show. With the service: test_service_smpp_evidence."""
    cfgf = tmp_path / "c.toml"
    cfgf.write_text(f"""
[business]
name = "Acme"
[store]
path = "{tmp_path / 's.sqlite3'}"
[transport]
type = "smpp"
[transport.smpp]
port = {smsc.port}
""")
    p = subprocess.run([sys.executable, "-m", "pbx_textback.cli", "send-test", "--to", "+15125550123",
                        "--text", "Test from Acme €", "-c", str(cfgf), "--wait", "2"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "smpp: sent id" in p.stdout
    assert "receipt: none within 2 s (the running service records it: `pbx-textback explain " \
           "+15125550123`, message 1)" in p.stdout
    assert [m["text"] for m in smsc.messages()] == ["Test from Acme €"]
    row = messages(tmp_path / "s.sqlite3")[0]
    assert (row.kind, row.state, row.transport_id) == ("test", st.SENT, smsc.messages()[0]["message_id"].lower())


class Mta:
    def __init__(self):
        self.got = []

    async def handle_DATA(self, server, session, envelope):
        self.got.append(envelope.content.decode())
        return "250 OK"


def test_bind_refused_alerts_the_admin_by_log_and_mail(tmp_path, smsc_factory, caplog):
    smsc = smsc_factory(system_id="acme", password="right")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    mta_port = s.getsockname()[1]
    s.close()
    cfg = cfg_for(tmp_path, smsc, 0)
    cfg = replace(cfg, transport=replace(cfg.transport, smpp=replace(cfg.transport.smpp, password="wrong"),
                                         alert_email="admin@acme.example", alert_mta=f"127.0.0.1:{mta_port}"))
    mta = Mta()

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(mta), "127.0.0.1", mta_port)
        svc = Service(cfg)

        async def stopper():
            for _ in range(100):
                await asyncio.sleep(0.1)
                if mta.got:
                    break
            svc.stop()
        srv = AmiReplayServer([], username="t", secret="s")
        port = await srv.start()
        svc.cfg = replace(svc.cfg, pbx=replace(svc.cfg.pbx, ami=replace(svc.cfg.pbx.ami, port=port)))
        await svc.run(extra_tasks=[stopper()])
        await srv.stop()
        server.close()
    asyncio.run(main())
    assert mta.got and "SMSC bind refused" in mta.got[0]
    assert "ALERT" in caplog.text and "pw" not in caplog.text.replace("password", "")
