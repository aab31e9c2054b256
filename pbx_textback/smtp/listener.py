"""The voicemail e-mail listener: an aiosmtpd server inside our own asyncio loop.

For every message the PBX's mailer hands us (see smtp/README.md for the PBX side):
1. parse it (`core.pbx.vmail.parse_voicemail`, in a worker thread: a voicemail with its WAV can be
   megabytes) and, for a voicemail notification, call `on_voicemail(fact)` at once — a sync
   callback that should only enqueue. If it raises, that is logged and the mail is still relayed.
2. relay the message untouched (the same bytes, the same envelope sender and recipients) to the
   configured smarthost (default: the local MTA at 127.0.0.1:25), and only then answer:
   250 when the smarthost accepted it; `451 4.3.0` when it is down, unreachable, refuses the
   login/TLS, or answers 4xx (the PBX's MTA keeps the mail and retries: no mail is lost);
   the smarthost's own 5xx when it refuses the message permanently.

Facts are delivered even when the relay fails: the voicemail *was* left, and waiting for the
MTA's retry (minutes to hours) would delay the text back. The retry brings the same mail again,
so facts are de-duplicated by the mail's Message-ID (or, without one, the SHA-256 of its bytes)
for `dedupe_ttl_s`; a key is remembered only once the callback returned, so a callback that
raised gets another chance on the retry. The memory is per process: after a restart a retried
mail reports its fact again (the fact carries `message_id_header` for a durable check).

Never an open door: bound to 127.0.0.1 by default, no AUTH, no STARTTLS (loopback only).
Mail-loop guard: more than `max_hops` `Received:` headers -> 554 5.4.6 (an MTA that hands
its relayed mail back to us, see README); a relay target equal to our own address is refused
at start. SMTP smuggling guard: a lone `.` line next to a bare CR or LF is refused (550 5.6.0),
because relaying it verbatim could end the DATA early at a smarthost that accepts bare LF.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import smtplib
import ssl
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from ..core.pbx.vmail import VoicemailFact, parse_voicemail
from ..pipeline import mask

log = logging.getLogger("pbx_textback.smtp")
# aiosmtpd logs every SMTP command at INFO on "mail.log" (about ten lines per mail, the
# recipients' addresses included): this module logs one line per mail instead.
logging.getLogger("mail.log").setLevel(logging.WARNING)

RELAY_SECURITY = ("none", "starttls", "tls")


@dataclass(frozen=True)
class SmtpSettings:
    """The `[smtp]` section (the lead maps TOML onto it)."""
    listen_host: str = "127.0.0.1"          # explicit: aiosmtpd's Controller would pick ::1
    listen_port: int = 8025                 # 0: any free port (tests)
    hostname: str = "localhost"             # our name in the 220 banner / EHLO reply
    max_message_bytes: int = 25 * 1024 * 1024   # bigger -> 552 (aiosmtpd, also SIZE=)
    session_timeout_s: float = 300.0        # idle client connection
    relay_host: str = "127.0.0.1"           # the smarthost / local MTA (see README: not the
    relay_port: int = 25                    #  same MTA port that hands mail to us: a loop)
    relay_security: str = "none"            # none | starttls | tls (implicit TLS, port 465)
    relay_tls_verify: bool = True           # verify the smarthost's certificate and name
    relay_ca_file: str | None = None        # extra CA bundle for a private smarthost
    relay_username: str | None = None       # AUTH when set (only over TLS unless none is chosen)
    relay_password: str | None = field(default=None, repr=False)
    relay_timeout_s: float = 60.0           # per socket operation with the smarthost
    relay_helo: str | None = None           # EHLO name towards the smarthost (default hostname)
    relay_workers: int = 4                  # relays (and parses) in flight at once
    dedupe_ttl_s: float = 7 * 86400.0       # longer than an MTA's queue lifetime (Postfix: 5 d)
    dedupe_max: int = 10000
    max_hops: int = 50                      # Received: headers before we call it a loop

    def __post_init__(self):
        if self.relay_security not in RELAY_SECURITY:
            raise ValueError(f"smtp.relay_security must be one of {', '.join(RELAY_SECURITY)}")
        if self.max_message_bytes <= 0 or self.relay_workers <= 0:
            raise ValueError("smtp.max_message_bytes and smtp.relay_workers must be positive")


@dataclass(frozen=True)
class RelayResult:
    code: int
    text: str                               # the full reply line we give our client
    refused: dict = field(default_factory=dict)   # recipient -> (code, text), refused for good


# ---- the relay -------------------------------------------------------------------------------
# Why smtplib in a thread rather than an asyncio SMTP client of our own: smtplib is the stdlib's
# well-worn client (EHLO/HELO fallback, STARTTLS, implicit TLS, AUTH PLAIN/LOGIN/CRAM-MD5,
# SMTPUTF8, reply parsing); a voicemail arrives a few times a minute at most, so one blocking
# transaction per message in a small bounded pool costs nothing, and writing our own async
# client would mean re-doing (and re-testing) all of that. The DATA phase is done by hand below
# so the bytes reach the smarthost exactly as we received them.

_LONE_DOT = re.compile(rb"(\A|\r\n|\n|\r)\.(\r\n|\n|\r)")


def smuggling_risk(data: bytes) -> bool:
    """A lone `.` line delimited on either side by a bare CR or LF (RFC 5321 smuggling)."""
    for m in _LONE_DOT.finditer(data):
        if m.group(1) not in (b"", b"\r\n") or m.group(2) != b"\r\n":
            return True
    return False


def dot_stuff(data: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency, at the start of CRLF-delimited lines only (as aiosmtpd
    un-stuffs), so what the smarthost stores is byte for byte what we received."""
    return re.sub(rb"(\A|\r\n)\.", rb"\1..", data)


def _reply(code: int, msg: bytes | str) -> str:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
    return " ".join(text.split())[:300]


def _tls_context(s: SmtpSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=s.relay_ca_file)
    if not s.relay_tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _temp(why: str) -> RelayResult:
    return RelayResult(451, f"451 4.3.0 Relay unavailable, try again later ({why})")


def relay_sync(s: SmtpSettings, mail_from: str, rcpt_tos: list[str], data: bytes,
               mail_options: list[str], smtputf8: bool) -> RelayResult:
    """One SMTP transaction with the smarthost. Blocking: run it in a worker thread."""
    helo = s.relay_helo or s.hostname
    try:
        if s.relay_security == "tls":
            conn = smtplib.SMTP_SSL(s.relay_host, s.relay_port, local_hostname=helo,
                                    timeout=s.relay_timeout_s, context=_tls_context(s))
        else:
            conn = smtplib.SMTP(s.relay_host, s.relay_port, local_hostname=helo,
                                timeout=s.relay_timeout_s)
    except (OSError, smtplib.SMTPException) as e:
        return _temp(f"connect: {type(e).__name__}")
    try:
        # Session-level trouble (greeting, TLS, login) is ours to fix, never a reason to bounce
        # the voicemail: all of it answers 451 so the mail waits in the PBX's queue.
        try:
            conn.ehlo_or_helo_if_needed()
            if s.relay_security == "starttls":
                conn.starttls(context=_tls_context(s))
                conn.ehlo()
            if s.relay_username:
                conn.login(s.relay_username, s.relay_password or "")
        except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
            return _temp(f"session: {type(e).__name__}")

        opts: list[str] = []
        if conn.does_esmtp:
            if conn.has_extn("size"):
                opts.append(f"SIZE={len(data)}")
            if any(o.upper() == "BODY=8BITMIME" for o in mail_options) and conn.has_extn("8bitmime"):
                opts.append("BODY=8BITMIME")
        needs_utf8 = smtputf8 or not all(a.isascii() for a in [mail_from, *rcpt_tos])
        if needs_utf8:
            if not conn.has_extn("smtputf8"):
                return RelayResult(553, "553 5.6.7 The relay does not support SMTPUTF8")
            opts.append("SMTPUTF8")
            conn.command_encoding = "utf-8"

        code, msg = conn.mail(mail_from, opts)
        if code != 250:
            return _final(conn, code, msg, "MAIL")
        refused: dict[str, tuple[int, str]] = {}
        accepted: list[str] = []
        for rcpt in rcpt_tos:
            code, msg = conn.rcpt(rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                refused[rcpt] = (code, _reply(code, msg))
        if any(400 <= c < 500 for c, _ in refused.values()):
            # Nothing sent yet: defer the whole message, so the retry brings no duplicates.
            conn.rset()
            return _temp("a recipient was deferred by the relay")
        if not accepted:
            code, text = next(iter(refused.values()))
            conn.rset()
            return RelayResult(code if 500 <= code < 600 else 554,
                               f"{code if 500 <= code < 600 else 554} {text}", refused)

        code, msg = conn.docmd("DATA")
        if code != 354:
            return _final(conn, code, msg, "DATA")
        conn.send(dot_stuff(data) + b".\r\n")
        code, msg = conn.getreply()
        if code == 250:
            return RelayResult(250, "250 2.0.0 OK: relayed", refused)
        return _final(conn, code, msg, "end of DATA")
    except (OSError, smtplib.SMTPException) as e:
        # Connection lost mid-transaction. If it was after the final dot, the smarthost may
        # have the mail already: the retry can then deliver it twice, never zero times.
        return _temp(f"transaction: {type(e).__name__}")
    finally:
        try:
            conn.quit()
        except Exception:        # noqa: BLE001
            conn.close()


def _final(conn, code: int, msg: bytes, stage: str) -> RelayResult:
    try:
        conn.rset()
    except Exception:            # noqa: BLE001
        pass
    if 500 <= code < 600:
        return RelayResult(code, f"{code} {_reply(code, msg)}")
    return _temp(f"{stage} answered {code}")


# ---- de-duplication --------------------------------------------------------------------------
class _Seen:
    def __init__(self, ttl: float, max_items: int, clock=time.monotonic):
        self.ttl, self.max, self.clock = ttl, max_items, clock
        self._d: OrderedDict[str, float] = OrderedDict()

    def _expire(self) -> None:
        now = self.clock()
        while self._d and (len(self._d) > self.max or next(iter(self._d.values())) < now - self.ttl):
            self._d.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        self._expire()
        return key in self._d

    def add(self, key: str) -> None:
        self._d[key] = self.clock()
        self._d.move_to_end(key)
        self._expire()


def dedupe_key(fact: VoicemailFact, data: bytes) -> str:
    if fact.message_id_header:
        return "mid:" + fact.message_id_header.strip()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _count_hops(data: bytes) -> int:
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    return len(re.findall(rb"(?im)^received:", head))


# ---- the aiosmtpd handler and the server ----------------------------------------------------
class _Handler:
    def __init__(self, owner: "VoicemailListener"):
        self.owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            return await self.owner._handle(envelope)
        except Exception as e:   # noqa: BLE001 - aiosmtpd would answer 500 and the MTA bounce
            log.error("mail from %s: internal error %s; answered 451", session.peer,
                      type(e).__name__)
            return "451 4.3.0 Internal error, try again later"


class _TrackedSMTP(SMTP):
    """aiosmtpd's SMTP that keeps itself in a set while connected, so stop() can close it."""

    def __init__(self, live: set, *args, **kw):
        super().__init__(*args, **kw)
        self._live = live

    def connection_made(self, transport):
        self._live.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc):
        self._live.discard(self)
        super().connection_lost(exc)


class VoicemailListener:
    def __init__(self, settings: SmtpSettings, on_voicemail: Callable[[VoicemailFact], None],
                 on_recording: Callable | None = None):
        """on_recording(fact, Recording): the mail's attached recording, after on_voicemail."""
        self.settings = settings
        self.on_voicemail = on_voicemail
        self.on_recording = on_recording
        self._server: asyncio.base_events.Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._protocols: set[_TrackedSMTP] = set()
        self._seen = _Seen(settings.dedupe_ttl_s, settings.dedupe_max)
        self.port: int | None = None

    async def start(self) -> int:
        s = self.settings
        loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(max_workers=s.relay_workers,
                                        thread_name_prefix="smtp-relay")
        handler = _Handler(self)

        def factory() -> SMTP:
            return _TrackedSMTP(self._protocols, handler, data_size_limit=s.max_message_bytes,
                                enable_SMTPUTF8=True, decode_data=False, hostname=s.hostname,
                                timeout=s.session_timeout_s, loop=loop)

        self._server = await loop.create_server(factory, s.listen_host, s.listen_port)
        self.port = self._server.sockets[0].getsockname()[1]
        if s.relay_host == s.listen_host and s.relay_port == self.port:
            await self.stop()
            raise ValueError("smtp.relay_host/relay_port point at the listener itself (mail loop)")
        log.info("voicemail mail listener on %s:%d, relaying to %s:%d (%s)", s.listen_host,
                 self.port, s.relay_host, s.relay_port, s.relay_security)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for proto in list(self._protocols):
                if proto.transport is not None:
                    proto.transport.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5)
            except asyncio.TimeoutError:
                log.warning("voicemail mail listener: connections still open at stop")
            self._server = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _recording(self, fact: VoicemailFact, data: bytes) -> str:
        """The attached recording to on_recording (parsed in a worker: it may be megabytes)."""
        from ..core.pbx.vmail_audio import recording
        if self.on_recording is None:
            return ""
        rec = await asyncio.get_running_loop().run_in_executor(self._pool, recording, data)
        if rec is None:
            return ""
        if rec.too_big:
            return " (recording larger than the limit: not kept)"
        try:
            self.on_recording(fact, rec)
        except Exception as e:   # noqa: BLE001 - the mail is relayed whatever happens here
            return f" (recording not kept: {type(e).__name__})"
        return f" (recording kept, {len(rec.audio)} bytes)"

    # -- one message --
    async def _handle(self, env: Envelope) -> str:
        s = self.settings
        loop = asyncio.get_running_loop()
        data: bytes = env.original_content or b""
        rcpts = list(env.rcpt_tos)
        head = f"mail from <{env.mail_from}> to {len(rcpts)} rcpt, {len(data)} bytes"
        if _count_hops(data) > s.max_hops:
            log.warning("%s: more than %d Received headers, mail loop? answered 554",
                        head, s.max_hops)
            return "554 5.4.6 Too many hops (mail loop?)"
        if smuggling_risk(data):
            log.warning("%s: lone '.' line next to a bare CR/LF, refused (550)", head)
            return "550 5.6.0 Bare CR/LF around a lone '.' line: not relayed"

        fact = await loop.run_in_executor(self._pool, parse_voicemail, data)
        what = "not a voicemail notification"
        if fact is not None:
            what = (f"voicemail {fact.pbx} mailbox {fact.mailbox or '?'} from "
                    f"{mask(fact.caller) if fact.caller else 'anonymous'}")
            key = dedupe_key(fact, data)
            if key in self._seen:
                what += " (already reported)"
            else:
                try:
                    self.on_voicemail(fact)
                    self._seen.add(key)
                except Exception as e:   # noqa: BLE001
                    what += f" (fact callback failed: {type(e).__name__})"
                else:
                    what += await self._recording(fact, data)

        res = await loop.run_in_executor(
            self._pool, relay_sync, s, env.mail_from, rcpts, data,
            list(env.mail_options or []), bool(getattr(env, "smtp_utf8", False)))
        outcome = {2: "relayed", 4: "relay deferred (451)", 5: f"relay refused ({res.code})"}.get(
            res.code // 100, str(res.code))
        extra = f"; {len(res.refused)} rcpt refused by the relay" if res.refused else ""
        level = logging.INFO if res.code == 250 and not res.refused else logging.WARNING
        log.log(level, "%s: %s%s; %s", head, outcome, extra, what)
        return res.text
