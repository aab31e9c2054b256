"""E-mail to staff through a real SMTP server on loopback (aiosmtpd): the replayed day of
tests/report_day.py, the mail for replies nobody answered, and the daily summary."""
import asyncio
import email
import time

import pytest
from aiosmtpd.controller import Controller

from pbx_textback.reporting import staffmail
from pbx_textback.config import loads
from pbx_textback.store.db import open_store
from tests.peers.smsc_peer import free_port
from tests.report_day import CFG, A, D, E, T0, play_day


class Inbox:
    def __init__(self):
        self.mails = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def mta():
    box = Inbox()
    c = Controller(box, hostname="127.0.0.1", port=free_port())
    c.start()
    yield c.port, box
    c.stop()


def config(port: int, extra: str = "") -> object:
    return loads(CFG + f"""
[mail]
to = ["desk@acme.example", "owner@acme.example"]
mta = "127.0.0.1:{port}"
unseen_reply_minutes = 30
daily_summary_at = "18:00"
{extra}""")


def send_due(cfg, store, now):
    for subject, body in staffmail.due(cfg, store, now):
        staffmail.send(cfg, subject, body)


def test_unanswered_reply_mail_and_the_days_summary(tmp_path, mta):
    port, box = mta
    h = play_day({"path": str(tmp_path / "m.sqlite3"), "dsn": ""})
    cfg = config(port)
    # the first look on a store mails nothing from before (a new install is not flooded)
    send_due(cfg, h.store, T0 - 3600)
    assert box.mails == []
    # 10:33:20 Chicago: A's reply (10:05) was answered at 10:12, E's (10:06:40) is not 30 min old yet
    send_due(cfg, h.store, T0 + 2000)
    assert box.mails == []
    # 11:03:21: E's reply waits 56 min (maria answers at 13:06:40), D's (10:33:20) 30 min
    send_due(cfg, h.store, T0 + 2000 + 1801)
    (rcpt, msg), = box.mails
    assert rcpt == ["desk@acme.example", "owner@acme.example"]
    assert msg["Subject"] == "Acme Dental: 2 unanswered replies"
    text = msg.get_payload()
    assert D in text and "line +15125550100" in text and E in text and "line +15125550120" in text
    assert A not in text and "what time" not in text                 # no caller's words in a mail
    send_due(cfg, h.store, T0 + 2000 + 3600)          # mailed once, not at every look
    assert len(box.mails) == 1
    # B's reply at 17:50 is answered at 18:20 (before 30 min): no mail for it. 18:00 brings the summary
    send_due(cfg, h.store, T0 + 8 * 3600)
    assert [m["Subject"] for _, m in box.mails[1:]] == ["Acme Dental: the day's numbers (2027-01-15)"]
    summary = box.mails[1][1].get_payload()
    # the day until 18:00: the report's hand-counted numbers less what came after (B's 17:50
    # reply counts; I at 21:00 does not exist yet): 7 missed of 10 inbound, 6 callers
    assert "Missed calls: 7 of 10 inbound, 6 callers" in summary
    assert "Reply rate: 60.0 %" in summary
    send_due(cfg, h.store, T0 + 9 * 3600)
    send_due(cfg, h.store, T0 + 11 * 3600)
    assert len(box.mails) == 2                          # one summary a day, none twice
    # a restart keeps what was mailed: a new store handle, same marks
    h.store.close()
    again = open_store(str(tmp_path / "m.sqlite3"))
    send_due(cfg, again, T0 + 12 * 3600)
    assert len(box.mails) == 2
    again.close()


def test_the_service_loop_mails_through_the_mta_on_the_real_clock(tmp_path, mta):
    """The shipped loop (staffmail.run) with the real clock: a reply left waiting gets a mail."""
    port, box = mta
    store = open_store(str(tmp_path / "n.sqlite3"))
    cfg = loads(CFG + f'[mail]\nto = ["desk@acme.example"]\nmta = "127.0.0.1:{port}"\n'
                      'unseen_reply_minutes = 0.02\ndaily_summary_at = ""\n')
    from pbx_textback.pipeline import Pipeline
    pipe = Pipeline(cfg, store)
    staffmail.due(cfg, store, time.time())               # the first look marks the start
    assert pipe.on_inbound("+15125550199", "+15125550100", "are you open today?")

    async def main():
        task = asyncio.create_task(staffmail.run(cfg, store, time.time))
        while not box.mails and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        task.cancel()
    staffmail.TICK_S, old = 0.2, staffmail.TICK_S
    deadline = time.monotonic() + 15
    try:
        asyncio.run(main())
    finally:
        staffmail.TICK_S = old
    assert len(box.mails) == 1 and "+15125550199" in box.mails[0][1].get_payload()
    store.close()
