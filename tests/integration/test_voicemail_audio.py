"""A voicemail e-mail that carries the recording: a real SMTP client (smtplib) sends the PBX's
notification with its WAV attachment to the service's listener; the caller's timeline in the
inbox shows the voicemail with its length and a player whose source is the recording, served
as audio/wav to a signed-in user only."""
import asyncio
import base64
import io
import math
import re
import smtplib
import struct
import time
import wave
from pathlib import Path

from aiohttp import ClientSession, CookieJar
from aiosmtpd.smtp import SMTP

from pbx_textback.config import loads
from pbx_textback.service import Service
from pbx_textback.store import db as st
from pbx_textback.store import web as sw
from pbx_textback.web.passwords import hash_password
from tests.peers.smsc_peer import free_ports

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "voicemail-email"
PW = "correct horse battery"
CALLER = "+15125550199"


def recorded_wav(seconds: float = 3.0, rate: int = 8000) -> bytes:
    """What app_voicemail attaches with format=wav: 8 kHz, 16-bit, mono (a 440 Hz tone here)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return out.getvalue()


def voicemail_mail(wav: bytes) -> bytes:
    """Asterisk's default notification (the fixture's byte layout) carrying this recording,
    base64 in 72-character lines as app_voicemail writes it, CRLF as on the wire."""
    raw = (FIX / "asterisk-default-attach.eml").read_bytes()
    head, sep, rest = raw.partition(b'filename="msg0000.wav"\n\n')
    b64 = base64.b64encode(wav)
    lines = b"\n".join(b64[i:i + 72] for i in range(0, len(b64), 72))
    tail = rest[rest.index(b"\n\n------voicemail_"):]
    return (head + sep + lines + tail).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Mailbox:
    def __init__(self):
        self.got = []

    async def handle_DATA(self, server, session, envelope):
        self.got.append(envelope.original_content)
        return "250 OK"


def test_a_voicemail_with_its_recording_plays_in_the_inbox_for_a_signed_in_user_only(tmp_path):
    listen, relay, web_port = free_ports(3)
    cfg = loads(f"""
[business]
name = "Acme"
[compliance]
quiet_hours = ""
[pbx]
type = "mail"
[store]
path = "{tmp_path / 's.sqlite3'}"
[smtp]
enabled = true
listen_port = {listen}
relay_port = {relay}
mailbox_lines = {{ "600" = "+15125550100" }}
[web]
listen = "127.0.0.1:{web_port}"
[[line]]
number = "+15125550100"
""")
    store = st.open_store(cfg.store.path)
    sw.add_user(store, "maria", "agent", hash_password(PW), "101", time.time())
    store.close()
    wav = recorded_wav(3.0)
    mail = voicemail_mail(wav)
    box = Mailbox()
    out = {}

    async def main():
        loop = asyncio.get_running_loop()
        staff = await loop.create_server(lambda: SMTP(box), "127.0.0.1", relay)
        svc = Service(cfg)

        async def client():
            await asyncio.sleep(0.5)

            def send():
                with smtplib.SMTP("127.0.0.1", listen, timeout=10) as c:
                    c.sendmail("pbx@localhost", ["frontdesk@acme.example"], mail)
            await loop.run_in_executor(None, send)
            base = f"http://127.0.0.1:{web_port}"
            try:
                async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as s:
                    await s.post(base + "/login", data={"name": "maria", "password": PW})
                    page = await (await s.get(f"{base}/c/{CALLER}")).text()
                    src = re.search(r'<audio controls preload="none" src="([^"]+)"', page)
                    out["page"], out["src"] = page, src and src.group(1)
                    if src:
                        r = await s.get(base + src.group(1))
                        out["type"], out["audio"] = r.headers["Content-Type"], await r.read()
                async with ClientSession() as anon:
                    r = await anon.get(base + (out["src"] or "/vm/1"), allow_redirects=False)
                    out["anon"] = (r.status, r.headers.get("Location"))
            finally:
                svc.stop()
        await svc.run(extra_tasks=[client()])
        staff.close()
    asyncio.run(main())
    assert box.got == [mail]                                   # relayed untouched, recording and all
    assert "Voicemail" in out["page"] and "0:03 long, box 600" in out["page"], out["page"][-3000:]
    assert out["src"] and out["type"] == "audio/wav" and out["audio"] == wav
    assert out["anon"] == (303, "/login")                      # signed out: the sign-in page, no audio
