"""The transports the outbox sends through, built from the config, one per kind, routed per
line; their delivery receipts go to the store and callers' replies to the pipeline.

Also the admin's alarm: when texting fails (bind refused, SMSC down for minutes, a run of
permanent errors) one ERROR line in the log and one e-mail through the local MTA.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import replace
import smtplib
import time
from email.message import EmailMessage

from .outbox import DEFAULT_CAPACITY, LogTransport, SendResult

log = logging.getLogger("pbx_textback.transport")


class SmppSender:
    """The outbox's face of SmppTransport: one outbox row -> one submit (all its parts)."""
    name = "smpp"

    def __init__(self, settings, *, on_dlr=None, on_mo=None, on_state=None):
        from .smpp import SmppTransport
        self.t = SmppTransport(settings, on_dlr=on_dlr, on_mo=on_mo, on_state=on_state)

    async def start(self):
        await self.t.start()

    async def stop(self):
        await self.t.stop()

    @property
    def capacity(self) -> int:
        return self.t.settings.window       # keep the SMSC's window full, no fuller

    async def send(self, msg, last_look=None) -> SendResult:
        from .smpp.dlr import normalize_message_id
        if "last_look" in inspect.signature(self.t.submit).parameters:
            r = await self.t.submit(str(msg.id), msg.peer, msg.body, msg.line, last_look=last_look)
        else:
            # a transport from before the sending contract: never leave a text waiting in it
            # for a bind; look right before handing it over
            if self.t.state != "bound":
                return SendResult("retry", error=f"SMSC not bound ({self.t.state})")
            if last_look is not None and not last_look():
                return SendResult("retry")
            r = await self.t.submit(str(msg.id), msg.peer, msg.body, msg.line)
        ids = ",".join(normalize_message_id(i) for i in r.message_ids)   # receipts match on these
        if r.status == "retry":
            return SendResult("retry", ids, r.error or "", r.retry_after or 0.0)
        return SendResult(r.status, ids, r.error or "")


class Router:
    """One transport per kind; a row goes out through its line's transport."""

    def __init__(self, transports: dict, by_line: dict[str, str], default: str):
        self.transports, self.by_line, self.default = transports, by_line, default
        self.name = default

    async def start(self):
        for t in self.transports.values():
            await t.start()

    async def stop(self):
        for t in self.transports.values():
            await t.stop()

    @property
    def capacity(self) -> int:
        return sum(getattr(t, "capacity", 0) or DEFAULT_CAPACITY for t in self.transports.values())

    async def send(self, msg, last_look=None) -> SendResult:
        kind = self.by_line.get(msg.line) or self.default
        res = await self.transports[kind].send(msg, last_look)
        return replace(res, via=kind)      # the outbox records which one carried it


class Alerter:
    """Tells the admin once per problem and hour: ERROR in the log, mail through the local MTA."""

    def __init__(self, email: str, mta: str, *, clock=time.time, every_s: float = 3600.0):
        self.email, self.clock, self.every_s = email, clock, every_s
        host, _, port = mta.partition(":")
        self.mta = (host or "127.0.0.1", int(port or 25))
        self._last: dict[str, float] = {}
        self.sent: list[str] = []

    def alert(self, key: str, text: str) -> None:
        now = self.clock()
        if now - self._last.get(key, -1e18) < self.every_s:
            return
        self._last[key] = now
        log.error("ALERT %s", text)
        if self.email:
            loop = asyncio.get_running_loop()
            loop.run_in_executor(None, self._mail, key, text)

    def _mail(self, key: str, text: str) -> None:
        m = EmailMessage()
        m["From"] = "pbx-textback@localhost"
        m["To"] = self.email
        m["Subject"] = f"pbx-textback: {key}"
        m.set_content(text + "\n\nRun `pbx-textback doctor` on the PBX box for the fix.\n")
        try:
            with smtplib.SMTP(*self.mta, timeout=20) as s:
                s.send_message(m)
            self.sent.append(key)
        except (OSError, smtplib.SMTPException) as e:
            log.error("could not mail the alert to %s through %s:%d: %s", self.email, *self.mta, e)


class Watch:
    """Turns transport states and results into alerts: a refused bind at once, the SMSC down
    longer than `after_s`, five permanent failures in a row."""

    def __init__(self, alerter: Alerter, *, after_s: float, clock=time.time):
        self.alerter, self.after_s, self.clock = alerter, after_s, clock
        self.down_since: float | None = None
        self.failures = 0

    def on_state(self, state: str, detail: str = "") -> None:
        if state == "bind-failed":
            self.alerter.alert("SMSC bind refused", f"the SMSC refused our bind: {detail}. Check "
                               "system_id and password in [transport.smpp].")
        if state == "bound":
            self.down_since = None
        elif self.down_since is None:
            self.down_since = self.clock()

    def check(self) -> None:
        if self.down_since is not None and self.clock() - self.down_since > self.after_s:
            self.alerter.alert("SMSC down", f"no SMSC connection for {(self.clock() - self.down_since) / 60:.0f} "
                               "minutes: texts wait in the outbox")

    def on_result(self, res: SendResult) -> None:
        if res.status == "failed":
            self.failures += 1
            if self.failures >= 5:
                self.alerter.alert("texts failing", f"{self.failures} texts in a row failed; last: {res.error}")
        elif res.status == "sent":
            self.failures = 0


class Watched:
    """Wraps a transport so every result reaches the watch."""

    def __init__(self, inner, watch: Watch):
        self.inner, self.watch = inner, watch
        self.name = inner.name

    async def start(self):
        await self.inner.start()

    async def stop(self):
        await self.inner.stop()

    @property
    def capacity(self) -> int:
        return getattr(self.inner, "capacity", 0) or DEFAULT_CAPACITY

    async def send(self, msg, last_look=None) -> SendResult:
        res = await self.inner.send(msg, last_look)
        self.watch.on_result(res)
        return res


def build(cfg, *, store, pipeline, source=None, clock=time.time):
    """The outbox's transport for this config, with receipts and replies wired."""
    from .smpp.dlr import message_id_keys
    alerter = Alerter(cfg.transport.alert_email, cfg.transport.alert_mta, clock=clock)
    watch = Watch(alerter, after_s=cfg.transport.alert_after_minutes * 60, clock=clock)
    kinds = {cfg.transport.type} | {ln.transport for ln in cfg.line if ln.transport}
    made = {}

    def on_dlr(rep):
        ref = getattr(rep, "msg_ref", None)
        msg_id = int(ref) if ref and str(ref).isdigit() else None
        n = store.apply_dlr(message_id_keys(rep.message_id), rep.state, rep.error or "", clock(), msg_id)
        if not n:
            log.warning("delivery receipt for unknown message id %s (%s)", rep.message_id, rep.state)

    def on_mo(sms) -> bool:
        return pipeline.on_inbound(sms.source, sms.dest, sms.text, now=clock(),
                                   transport=getattr(sms, "transport", "smpp"),
                                   transport_id=getattr(sms, "message_id", ""))

    for kind in kinds:
        if kind == "log":
            made[kind] = LogTransport()
        elif kind == "smpp":
            made[kind] = SmppSender(cfg.transport.smpp, on_dlr=on_dlr, on_mo=on_mo, on_state=watch.on_state)
        elif kind == "sip":
            from .sip.message import SipMessageTransport
            made[kind] = SipMessageTransport(cfg.transport.sip, on_inbound=on_mo)
        elif kind == "pbx":
            p = cfg.transport.pbx
            if cfg.pbx.type == "freeswitch":
                from .sip.via_pbx import EslChatTransport
                made[kind] = EslChatTransport(source.api, p.to_template, p.from_template)
            else:
                from .sip.via_pbx import AmiMessageTransport
                made[kind] = AmiMessageTransport(source.send_action, p.endpoint_template, p.from_template)
    by_line = {ln.number: ln.transport for ln in cfg.line if ln.transport}
    router = Router(made, by_line, cfg.transport.type)
    return Watched(router, watch), watch
