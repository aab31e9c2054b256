"""A caller's reply that reaches FreeSWITCH as a SIP MESSAGE (recorded) lands in the store once."""
from pathlib import Path

from pbx_textback.config import loads
from pbx_textback.core.pbx.eslframe import parse_stream
from pbx_textback.core.pbx.freeswitch import inbound_sms
from pbx_textback.service import Service
from pbx_textback.store import db as st

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch" / "sms-sip-message.esl"


def test_recv_message_is_the_one_inbound_text():
    events = [f for f in parse_stream(TRACE.read_bytes()) if "Event-Name" in f]
    got = [x for x in (inbound_sms(e) for e in events) if x]
    assert got == [("+15125550123", "+15125550100", "Hi, do you do emergency callouts?")]


def test_the_service_stores_it_as_a_reply(tmp_path):
    cfg = loads(f'[pbx]\ntype = "freeswitch"\n[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    svc = Service(cfg)
    for ev in parse_stream(TRACE.read_bytes()):
        if "Event-Name" in ev:
            svc.on_event(ev)
    (m,) = list(st.Message.select())
    assert (m.direction, m.peer, m.line, m.body) == ("in", "+15125550123", "+15125550100",
                                                     "Hi, do you do emergency callouts?")
    assert m.note.startswith("message") and m.transport == "freeswitch"
    svc.store.close()
