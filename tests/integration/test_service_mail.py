"""The service with only voicemail e-mail (no event socket): a real SMTP client sends the PBX's
voicemail notification to the service's listener, a real SMTP server plays the staff mailbox;
the mail is relayed untouched and the caller is texted."""
import asyncio
import smtplib
from pathlib import Path

from aiosmtpd.smtp import SMTP

from pbx_textback.config import loads
from pbx_textback.service import Service
from pbx_textback.store import db as st
from tests.peers.smsc_peer import free_ports

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "voicemail-email"




class Mailbox:
    def __init__(self):
        self.got = []

    async def handle_DATA(self, server, session, envelope):
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def test_voicemail_mail_alone_texts_the_caller_and_reaches_the_staff(tmp_path):
    listen, relay = free_ports(2)
    cfg = loads(f"""
[business]
name = "Acme"
[compliance]
quiet_hours = ""                 # this test sends at any hour
[pbx]
type = "mail"
[store]
path = "{tmp_path / 's.sqlite3'}"
[smtp]
enabled = true
listen_port = {listen}
relay_port = {relay}
mailbox_lines = {{ "600" = "+15125550100" }}
[[line]]
number = "+15125550100"
""")
    raw = (FIX / "asterisk-default-attach.eml").read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    box = Mailbox()
    seen = []

    async def main():
        loop = asyncio.get_running_loop()
        staff = await loop.create_server(lambda: SMTP(box), "127.0.0.1", relay)
        svc = Service(cfg, on_verdict=seen.append)

        async def client():
            await asyncio.sleep(0.5)

            def send():
                with smtplib.SMTP("127.0.0.1", listen, timeout=10) as c:
                    c.sendmail("pbx@localhost", ["frontdesk@acme.example"], raw)
            await loop.run_in_executor(None, send)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if seen and svc.store.next_due() is None:
                    break
            svc.stop()
        await svc.run(extra_tasks=[client()])
        staff.close()
    asyncio.run(main())
    assert box.got and box.got[0][1] == ["frontdesk@acme.example"]
    assert box.got[0][2] == raw                           # relayed byte for byte
    (v,) = seen
    assert v.outcome.reason == "voicemail" and v.call.voicemail_left is True
    assert v.decision.action == "text" and v.decision.to == "+15125550199"
    st.open_store(str(tmp_path / "s.sqlite3"))
    assert st.Message.get().state == st.SENT
