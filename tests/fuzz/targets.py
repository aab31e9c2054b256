"""Fuzz targets: every parser of what comes off a socket or out of a file, as `run(bytes)`.

One table serves both the short CI run (tests/fuzz/test_*.py, hypothesis) and the long run
(bench/fuzz.py, >= 1M inputs per parser). A target returns normally on any input; anything it
raises is a crash. Each target catches only its parser's own documented error type
(`PduError`, `ConfigError`, `OSError` from reading the CDR) and turns the parsers' internal
safety nets into crashes too: an exception a tracker or the SIP parser swallows still loses
the event or the message, so `Swallowed` reports it.

Seeds are the recorded fixtures in tests/fixtures/ (cut into small windows of whole frames,
so a mutation lands in a frame that gets parsed) and a few wire samples built here.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"


class Swallowed(Exception):
    """A parser's catch-all caught an exception of its own: the input was lost, not handled."""


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    what: str                                    # module(s) under test
    owner: str = ""                              # a finding another room fixes, when known
    notes: tuple[str, ...] = field(default=())


# ---- mutations (the CI run draws the random source from hypothesis, bench/fuzz.py from random) ----

TOKENS = [b"\r\n", b"\n", b"\r\n\r\n", b"\n\n", b":", b": ", b";", b",", b"=", b'"', b"<", b">",
          b"\x00", b"\xff", b"\xc3", b"%", b"%0A", b"%ZZ", b"-1", b"0", b"99999999999999999999",
          b"1e999", b"nan", b"inf", b"\xc2\xb2", b"\\", b"[", b"]", b"{", b"}", b"=?utf-8?q?",
          b"Content-Length: ", b"Event: ", b"Event-Name: ", b"charset=", b"boundary=", b"--",
          b"\t", b" ", b"multipart/", b"\xf0\x9f\x9b\x91", b"STOP", b"9" * 300]


def mutate(rng, seeds: list[bytes]) -> bytes:
    """One input: random bytes now and then, else a seed with a few edits (bit flips, cuts,
    repeats, splices of another seed, hostile tokens, truncation). `rng` is a random.Random."""
    if rng.random() < 0.08 or not seeds:
        return rng.randbytes(rng.randint(0, 300))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.choice((1, 1, 2, 3, 5, 8))):
        op, n = rng.randrange(8), len(data)
        pos = rng.randint(0, n)
        if op == 0 and n:                                   # flip a bit
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:                                 # a random byte
            data[rng.randrange(n)] = rng.randrange(256)
        elif op == 2:                                       # cut a range
            del data[pos:pos + rng.randint(1, 64)]
        elif op == 3:                                       # a hostile token, maybe many
            data[pos:pos] = rng.choice(TOKENS) * rng.choice((1, 1, 1, 3, 50))
        elif op == 4 and n:                                 # repeat a range
            a = rng.randrange(n)
            data[pos:pos] = data[a:a + rng.randint(1, 40)] * rng.randint(2, 20)
        elif op == 5:                                       # splice in another seed
            other = rng.choice(seeds)
            a = rng.randint(0, len(other))
            data[pos:pos] = other[a:a + rng.randint(1, 400)]
        elif op == 6:                                       # random bytes
            data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 7 and n:                                 # truncate
            del data[rng.randint(0, n):]
    return bytes(data)


# ---- seeds ------------------------------------------------------------------------------------

def _windows(data: bytes, sep: bytes, size: int = 4, limit: int = 400) -> list[bytes]:
    """Runs of `size` whole frames (frames end with `sep`), at most `limit` of them."""
    frames = [f + sep for f in data.split(sep) if f.strip()]
    out = [b"".join(frames[i:i + size]) for i in range(0, len(frames), size)]
    return out[:limit]


def _files(pattern: str) -> list[Path]:
    return sorted(p for p in FIX.glob(pattern) if p.is_file())


def ami_seeds() -> list[bytes]:
    out: list[bytes] = []
    for p in _files("asterisk/*.ami"):
        out += _windows(p.read_bytes().replace(b"\r\n", b"\n"), b"\n\n", 6, 60)
    return out


def esl_seeds() -> list[bytes]:
    out: list[bytes] = []
    for p in _files("freeswitch/*.esl"):
        data = p.read_bytes()
        # whole frames: cut before each outer "Content-Length:"/"Content-Type:" block start
        starts = [m.start() for m in re.finditer(rb"(?m)^Content-(?:Length|Type): ", data)
                  if m.start() == 0 or data[m.start() - 2:m.start()] in (b"\n\n", b"}\n")]
        cuts = starts[::6] + [len(data)]
        out += [data[a:b] for a, b in zip(cuts, cuts[1:]) if b - a < 20000][:40]
    return out


def vmail_seeds() -> list[bytes]:
    return [p.read_bytes()[:8000] for p in _files("voicemail-email/**/*.eml")]


SIP_REQ = (b"MESSAGE sip:+15125550100@pbx.example.com SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
           b"Max-Forwards: 69\r\n"
           b'From: "Jane" <sip:%2B15125550123@carrier.example;user=phone>;tag=49583\r\n'
           b"To: <sip:+15125550100@pbx.example.com>\r\n"
           b"Call-ID: asd88asd77a@203.0.113.5\r\nCSeq: 1 MESSAGE\r\n"
           b"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 4\r\n\r\nSTOP")
SIP_CPIM = (b"MESSAGE sip:desk@127.0.0.1:5070 SIP/2.0\r\n"
            b"v: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKc1, SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKc0\r\n"
            b"f: sip:+15125550123@127.0.0.1\r\n ;tag=abc\r\nt: <sip:+15125550100@127.0.0.1>\r\n"
            b"i: compact-1\r\nCSeq: 7 MESSAGE\r\nc: message/cpim\r\nl: 61\r\n\r\n"
            b"From: <sip:a@b>\r\n\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nstop")
SIP_RESP = (b"SIP/2.0 401 Unauthorized\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport=5070;received=127.0.0.1\r\n"
            b"From: <sip:100@pbx>;tag=1\r\nTo: <sip:200@pbx>;tag=2\r\nCall-ID: x@y\r\n"
            b"CSeq: 1 MESSAGE\r\n"
            b'WWW-Authenticate: Digest realm="pbx", nonce="abc", qop="auth,auth-int", algorithm=SHA-256\r\n'
            b"Content-Length: 0\r\n\r\n")
SIP_OPTIONS = (b"OPTIONS sip:textback@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP [::1]:5062;branch=z9hG4bKo\r\n"
               b"From: <sip:k@127.0.0.1>;tag=o\r\nTo: <sip:textback@127.0.0.1>\r\nCall-ID: o1\r\n"
               b"CSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def sip_seeds() -> list[bytes]:
    return [SIP_REQ, SIP_CPIM, SIP_RESP, SIP_OPTIONS, b"\r\n\r\n" + SIP_REQ + SIP_OPTIONS]


def smpp_seeds() -> list[bytes]:
    from pbx_textback.smpp import pdu as P
    seq = P.Sequencer()

    def dsm(**kw) -> bytes:
        base = dict(source_addr="15125550123", destination_addr="15125550100", data_coding=0)
        base.update(kw)
        return P.make("deliver_sm", seq, **base).generate()

    return [
        dsm(short_message=b"STOP"),
        dsm(esm_class=0x40, short_message=P.concat_udh(7, 2, 1) + b"first half ")
        + dsm(esm_class=0x40, short_message=P.concat_udh(7, 2, 2) + b"second half"),
        dsm(short_message=b"part one ", sar_msg_ref_num=9, sar_total_segments=2, sar_segment_seqnum=1)
        + dsm(short_message=b"part two", sar_msg_ref_num=9, sar_total_segments=2, sar_segment_seqnum=2),
        dsm(esm_class=0x04, short_message=b"id:0a1b2c sub:001 dlvrd:001 submit date:2511261810 "
            b"done date:2511261811 stat:DELIVRD err:000 text:Sorry we missed"),
        dsm(esm_class=0x04, receipted_message_id="0A1B2C", message_state=5, short_message=b""),
        dsm(data_coding=8, short_message="Ça va? STOP".encode("utf-16-be")),
        P.response("submit_sm_resp", 3, message_id="0a1b2c"),
    ]


def cdr_seeds() -> list[bytes]:
    rows = [
        ["", "15125550123", "100", "from-trunk", '"JANE" <15125550123>', "PJSIP/trunk-00000001",
         "PJSIP/100-00000002", "Dial", "PJSIP/100,20", "2026-11-26 17:11:26", "",
         "2026-11-26 17:11:46", "20", "0", "NO ANSWER", "DOCUMENTATION", "1795734686.1", "did:+15125550100"],
        ["", "15125550124", "s", "from-trunk", '"" <15125550124>', "PJSIP/trunk-00000003", "",
         "VoiceMail", "100@default", "2026-11-26 17:12:00", "2026-11-26 17:12:01",
         "2026-11-26 17:12:30", "30", "29", "ANSWERED", "DOCUMENTATION", "1795734720.3", ""],
    ]
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL)
    w.writerows(rows)
    return [buf.getvalue().encode()]


def config_seeds() -> list[bytes]:
    text = (ROOT / "config.example.toml").read_bytes()
    # whole example plus each table on its own (smaller inputs mutate better)
    parts = re.split(rb"(?m)^(?=\[)", text)
    return [text] + [p for p in parts if p.strip()][:30]


AGI_HEADER = (b"agi_network: yes\nagi_network_script: callback\nagi_request: agi://127.0.0.1:4573/callback\n"
              b"agi_channel: PJSIP/100-00000012\nagi_language: en\nagi_type: PJSIP\n"
              b"agi_uniqueid: 1795734686.18\nagi_version: 22.0.0\nagi_callerid: 100\n"
              b"agi_calleridname: Front desk\nagi_callingpres: 0\nagi_dnid: *88\n"
              b"agi_context: from-internal\nagi_extension: *88\nagi_priority: 1\n"
              b"agi_arg_1: PJSIP/100\n\n")


def agi_seeds() -> list[bytes]:
    return [AGI_HEADER, AGI_HEADER.replace(b"callback", b"textagain")]


def reply_seeds() -> list[bytes]:
    import tomllib
    corpus = tomllib.loads((ROOT / "tests" / "unit" / "reply_corpus.toml").read_text("utf-8"))
    out: list[bytes] = []

    def walk(v):
        if isinstance(v, str):
            out.append(v.encode("utf-8"))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(corpus)
    return out[:500] or [b"STOP", b"stop please", b"Don't stop"]


# ---- runners ----------------------------------------------------------------------------------

def run_ami(data: bytes) -> None:
    from pbx_textback.core.pbx.amiframe import AmiFraming
    AmiFraming().feed(data)


class _LogWatch(logging.Handler):
    """Collects the log records of `logger` in which a parser's catch-all reports an exception
    of its own (a record with exc_info, or one whose message holds `marker`) while a target
    runs; raises Swallowed with the first at the end."""

    def __init__(self, logger: str, marker: str | None = None):
        super().__init__(logging.DEBUG)
        self.logger, self.marker, self.hits = logging.getLogger(logger), marker, []

    def emit(self, record):
        if record.exc_info:
            e = record.exc_info[1]
            tb = e.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else ""
            self.hits.append(f"{type(e).__name__}{where}: {e}"[:200])
        elif self.marker and self.marker in record.getMessage():
            self.hits.append(record.getMessage()[:200])

    def __enter__(self):
        self.hits = []
        self.logger.addHandler(self)
        self._old = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self._prop = self.logger.propagate
        self.logger.propagate = False
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self._old)
        self.logger.propagate = self._prop
        if self.hits and exc[0] is None:
            raise Swallowed(self.hits[0])


def run_esl_watched(data: bytes) -> None:
    from pbx_textback.core.pbx.eslframe import EslFraming
    with _LogWatch("pbx_textback.esl", "framing failed"):    # feed()'s catch-all: a bug
        f = EslFraming()
        f.feed(data)
        f.eof()


def _feed_tracker(tracker, events, each=None) -> None:
    """Header dicts into a tracker; an event its catch-all had to skip is a crash."""
    with _LogWatch("pbx_textback.tracker"):
        for ev in events:
            if each is not None:
                each(ev)
            tracker.feed(ev)
        tracker.flush()


def feed_asterisk_events(events) -> None:
    from pbx_textback.core.pbx.asterisk import AsteriskTracker
    _feed_tracker(AsteriskTracker(), events)


def feed_freeswitch_events(events) -> None:
    from pbx_textback.core.pbx.freeswitch import FreeswitchTracker, inbound_sms
    t = FreeswitchTracker()
    # inbound_sms: the service calls it on every event outside any guard
    _feed_tracker(t, [ev for ev in events if "Event-Name" in ev], lambda ev: inbound_sms(ev, t.s))


def run_asterisk_tracker(data: bytes) -> None:
    from pbx_textback.core.pbx.amiframe import AmiFraming
    feed_asterisk_events(AmiFraming().feed(data))


def run_freeswitch_tracker(data: bytes) -> None:
    from pbx_textback.core.pbx.eslframe import EslFraming
    feed_freeswitch_events(EslFraming().feed(data))


def _split_pdus(data: bytes) -> list[bytes]:
    """Consecutive PDUs by their command_length, as the connection's reader cuts them."""
    out, pos = [], 0
    while pos + 16 <= len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        if n < 16 or pos + n > len(data):
            out.append(data[pos:])
            break
        out.append(data[pos:pos + n])
        pos += n
    return out


def smpp_transport(**kw):
    from pbx_textback.smpp.transport import SmppSettings, SmppTransport
    return SmppTransport(SmppSettings(**kw), on_mo=lambda sms: True, on_dlr=lambda r: None)


def run_smpp(data: bytes, *, sweep: bool = True) -> None:
    """PDU parse (PduError is documented), then what the session does with a deliver_sm:
    receipt text parse or MO reassembly (in one transport across the PDUs of the input)."""
    from pbx_textback.smpp import pdu as P
    from pbx_textback.smpp.dlr import make_report
    t = smpp_transport(mo_reassembly_timeout=0.0 if sweep else 600.0)
    for raw in _split_pdus(data):
        try:
            p = P.parse(raw)
        except P.PduError:
            continue
        if getattr(p, "command", "") != "deliver_sm":
            continue
        if (p.esm_class or 0) & 0x24:
            text, _ = t.inbound.sm_text(p)
            make_report(receipted_message_id=getattr(p, "receipted_message_id", None),
                        message_state=getattr(p, "message_state", None),
                        network_error_code=getattr(p, "network_error_code", None), text=text)
        else:
            t.inbound.mo(p)
    if sweep:
        t.inbound.sweep()


def run_dlr_text(data: bytes) -> None:
    from pbx_textback.smpp.dlr import make_report, message_id_keys, parse_receipt
    text = data.decode("latin-1")
    parse_receipt(text)
    r = make_report(text=text, receipted_message_id=text[:12])
    if r is not None:
        message_id_keys(r.message_id)


def run_sip(data: bytes) -> None:
    """The sans-IO parser behind its safety net, the TCP framer, and the server side: every
    request with a usable Via (except ACK) gets exactly one answer."""
    from pbx_textback.sip import wire
    msg = wire._parse(data)                        # parse_message() hides its own exceptions
    wire.StreamFramer().feed(data)
    if msg is None or not msg.is_request:
        if msg is not None:
            wire.parse_challenge(msg.get("www-authenticate"))
        return
    srv = _SipAnswers()
    with _LogWatch("pbx_textback.sip", "answered 500"):
        srv.server.handle_request(msg, ("127.0.0.1", 5062), None)
    vias = msg.vias()
    if vias and wire.parse_via(vias[0]) is not None and msg.method != "ACK" and len(srv.answers) != 1:
        raise AssertionError(f"{msg.method} got {len(srv.answers)} answers")


def _sip_transport_class():
    from pbx_textback.sip.message import SipMessageTransport

    class Answers(SipMessageTransport):
        """The real transport's request handling; answers collected instead of sent."""

        def __init__(self):
            from pbx_textback.sip.message import SipSettings
            super().__init__(SipSettings(proxy_host="127.0.0.1"), lambda sms: True,
                             clock=lambda: 1_800_000_000.0)
            self.answers: list[bytes] = []

        def reply_raw(self, data, req, top, addr, stream):
            self.answers.append(data)
    return Answers


class _LazySip:
    cls = None


def _SipAnswers():
    if _LazySip.cls is None:
        _LazySip.cls = _sip_transport_class()
    return _LazySip.cls()


def run_vmail(data: bytes) -> None:
    from pbx_textback.core.pbx.vmail import VoicemailFact, parse_voicemail
    res = parse_voicemail(data)
    if res is not None and not isinstance(res, VoicemailFact):
        raise AssertionError(f"parse_voicemail returned {type(res).__name__}")


def run_config(data: bytes) -> None:
    from pbx_textback.config import ConfigError, loads
    try:
        loads(data.decode("utf-8", "replace"))
    except ConfigError:
        pass


_CDR_DIR = tempfile.mkdtemp(prefix="ptb-fuzz-cdr-")


def run_cdr(data: bytes) -> None:
    """Master.csv bytes -> ami.cdr.read_rows (OSError documented) -> core.pbx.cdr.recover."""
    from pbx_textback.ami.cdr import read_rows
    from pbx_textback.core.pbx.cdr import recover
    path = os.path.join(_CDR_DIR, f"Master-{os.getpid()}.csv")
    with open(path, "wb") as fh:
        fh.write(data)
    try:
        rows = read_rows(NS(source="csv", path=path), 0.0, "America/Chicago")
    except OSError:
        return
    recover(rows, trunk_endpoints={"trunk"}, tz="America/Chicago")


def recover_rows(rows: list[dict]) -> None:
    from pbx_textback.core.pbx.cdr import recover
    recover(rows, trunk_endpoints={"trunk"}, tz="America/Chicago")


def run_agi(data: bytes) -> None:
    from pbx_textback.ami.fastagi import _agi_endpoint, parse_agi_header
    headers = parse_agi_header(data)
    _agi_endpoint(headers)


def run_replies(data: bytes) -> None:
    from pbx_textback.core.policy.replies import classify_reply
    r = classify_reply(data.decode("utf-8", "replace"))
    if r.intent not in ("stop", "start", "help", "review", "message"):
        raise AssertionError(f"intent {r.intent!r}")


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("ami-framing", run_ami, ami_seeds, "core/pbx/amiframe.py"),
    Target("esl-framing", run_esl_watched, esl_seeds, "core/pbx/eslframe.py", owner="finding 23 (freeswitch)"),
    Target("asterisk-tracker", run_asterisk_tracker, ami_seeds, "core/pbx/asterisk.py (via AMI framing)"),
    Target("freeswitch-tracker", run_freeswitch_tracker, esl_seeds,
           "core/pbx/freeswitch.py (via ESL framing) + inbound_sms", owner="finding 23 (freeswitch)"),
    Target("smpp-pdu", run_smpp, smpp_seeds, "smpp/pdu.py parse + deliver_sm reassembly + dlr",
           owner="finding 21 (smpp)"),
    Target("dlr-text", run_dlr_text, lambda: [s[s.find(b"id:"):] for s in smpp_seeds() if b"id:" in s],
           "smpp/dlr.py"),
    Target("sip", run_sip, sip_seeds, "sip/message.py parse, TCP framer, request answers"),
    Target("vmail", run_vmail, vmail_seeds, "core/pbx/vmail.py"),
    Target("config", run_config, config_seeds, "config.py loads()", owner="finding 25 (clitruth)"),
    Target("cdr", run_cdr, cdr_seeds, "ami/cdr.py read_rows (csv) + core/pbx/cdr.py recover"),
    Target("fastagi-header", run_agi, agi_seeds, "ami/fastagi.py parse_agi_header + endpoint"),
    Target("replies", run_replies, reply_seeds, "core/policy/replies.py classify_reply"),
]}
