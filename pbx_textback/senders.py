"""The transports the outbox sends through, built from the config, one per kind, routed per
line; their delivery receipts go to the store and callers' replies to the pipeline.

Also the admin's alarm: when texting fails (bind refused, SMSC down for minutes, a run of
permanent errors) one ERROR line in the log and one e-mail through the local MTA.
"""
from __future__ import annotations

import asyncio
import logging
import smtplib
import time
from email.message import EmailMessage

from .outbox import LogTransport, SendResult, capacity_of

log = logging.getLogger("pbx_textback.transport")


class SmppSender:
    """The outbox's face of SmppTransport: one outbox row -> one submit (all its parts)."""
    name = "smpp"

    def __init__(self, settings, *, on_dlr=None, on_mo=None, on_state=None, on_late=None,
                 send_only=False):
        from .smpp import SmppTransport
        from .smpp.dlr import normalize_message_id
        self._norm = normalize_message_id     # per text: not an import statement each time
        self.t = SmppTransport(settings, on_dlr=on_dlr, on_mo=on_mo, on_state=on_state,
                               on_late=on_late, send_only=send_only)

    async def start(self):
        await self.t.start()

    async def stop(self):
        await self.t.stop()

    @property
    def capacity(self) -> int:
        return 2 * self.t.settings.window   # the window full, and as many ready behind it

    async def send(self, msg, last_look=None) -> SendResult:
        """last_look: the outbox's gate, called right before the submit_sm is written."""
        r = await self.t.submit(str(msg.id), msg.peer, msg.body, msg.line, last_look)
        ids = ",".join(map(self._norm, r.message_ids))   # receipts match on these
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
        return sum(capacity_of(t) for t in self.transports.values())

    async def send(self, msg, last_look=None) -> SendResult:
        kind = self.by_line.get(msg.line) or self.default
        res = await self.transports[kind].send(msg, last_look)
        # the outbox records which one carried it (made directly: dataclasses.replace costs 5x)
        return SendResult(res.status, res.transport_id, res.error, res.retry_after, kind)


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

    def __init__(self, alerter: Alerter, *, after_s: float, clock=time.time, store=None,
                 receipt_after_s: float = 0.0):
        self.alerter, self.after_s, self.clock = alerter, after_s, clock
        self.store, self.receipt_after_s = store, receipt_after_s
        self.down_since: float | None = None
        self.failures = 0
        self.no_receipt = 0

    def on_state(self, state: str, detail: str = "") -> None:
        if state == "bind-failed":       # the detail names the status and what to check
            self.alerter.alert("SMSC bind refused", f"SMPP: {detail}")
        if state == "bound":
            self.down_since = None
        elif self.down_since is None:
            self.down_since = self.clock()

    def check(self) -> None:
        if self.down_since is not None and self.clock() - self.down_since > self.after_s:
            self.alerter.alert("SMSC down", f"no SMSC connection for {(self.clock() - self.down_since) / 60:.0f} "
                               "minutes: texts wait in the outbox")
        if self.store is not None and self.receipt_after_s:
            self.check_receipts()

    def check_receipts(self) -> list[int]:
        """Texts the gateway accepted but never confirmed: state no-receipt, counted, and an
        alert (they may not have reached the phones)."""
        from .store.db import NO_RECEIPT
        now = self.clock()
        ids = self.store.mark_no_receipt(now - self.receipt_after_s, now)
        if ids:
            self.no_receipt += len(ids)
            log.warning("%d text(s) got no delivery receipt within %.0f min: state no-receipt "
                        "(messages %s)", len(ids), self.receipt_after_s / 60,
                        ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else ""))
            total = self.store.count_state(NO_RECEIPT, now - 86400)
            self.alerter.alert("texts without receipt", f"{total} text(s) in the last 24 h got "
                               f"no delivery receipt within {self.receipt_after_s / 60:.0f} min: "
                               "they may not have reached the phones; see `pbx-textback explain`")
        return ids

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
        return capacity_of(self.inner)

    async def send(self, msg, last_look=None) -> SendResult:
        res = await self.inner.send(msg, last_look)
        self.watch.on_result(res)
        return res


def accounts(cfg) -> dict[str, str]:
    """Transport kind -> the account a text goes out through, as the store records it: a
    gateway's message ids are unique only within one account."""
    out = {"log": "log", "sip": "sip", "pbx": "pbx"}
    s = cfg.transport.smpp
    if s is not None:
        out["smpp"] = f"{s.system_id}@{s.host}:{s.port}"
    return out


def build(cfg, *, store, pipeline, source=None, clock=time.time):
    """The outbox's transport for this config, with receipts and replies wired."""
    from .smpp.dlr import message_id_keys, normalize_message_id
    alerter = Alerter(cfg.transport.alert_email, cfg.transport.alert_mta, clock=clock)
    kinds = {cfg.transport.type} | {ln.transport for ln in cfg.line if ln.transport}
    smpp = cfg.transport.smpp
    receipts = "smpp" in kinds and smpp is not None and smpp.registered_delivery
    watch = Watch(alerter, after_s=cfg.transport.alert_after_minutes * 60, clock=clock, store=store,
                  receipt_after_s=smpp.receipt_timeout_minutes * 60 if receipts else 0.0)
    made = {}

    def on_dlr(rep):
        ref = getattr(rep, "msg_ref", None)
        msg_id = int(ref) if ref and str(ref).isdigit() else None
        n = store.apply_dlr(lambda: message_id_keys(rep.message_id), rep.state, rep.error or "", clock(), msg_id)
        if n:
            return
        # an id we never learned (the submit_sm_resp was lost, or comes after the receipt):
        # the receipt itself says which text it is
        stat = rep.fields.get("stat", rep.state) if getattr(rep, "fields", None) else rep.state
        hit = store.resolve_unknown(now=clock(), state=rep.state if rep.final else "sent",
                                    evidence=f"receipt {stat} id {rep.message_id}",
                                    peer=rep.handset, sender=getattr(rep, "sender", ""),
                                    text=(rep.fields or {}).get("text", ""),
                                    transport_id=normalize_message_id(rep.message_id),
                                    error=rep.error or "")
        if hit is not None:
            log.warning("message %s: receipt %s (id %s) resolves it: it reached the gateway%s; "
                        "do not resend it", hit, stat, rep.message_id,
                        " and the phone" if rep.state == "delivered" else "")
        else:
            log.warning("delivery receipt for unknown message id %s (%s)", rep.message_id, rep.state)

    def on_late(msg_ref, status, message_id):
        from .smpp import pdu as P
        if not str(msg_ref).isdigit():
            return
        ok = status == P.ESME_ROK
        hit = store.resolve_unknown(now=clock(), msg_id=int(msg_ref), state="sent" if ok else "failed",
                                    evidence=f"late submit_sm_resp {P.status_name(status)}",
                                    transport_id=normalize_message_id(message_id) if ok else "",
                                    error="" if ok else f"late answer {P.status_name(status)}: "
                                                        "the gateway did not take it")
        if hit is not None:
            log.warning("message %s: late submit_sm_resp %s resolves it: %s", hit,
                        P.status_name(status), "the gateway took it; do not resend it" if ok else
                        "the gateway did not take it (`pbx-textback resend %s` to try again)" % hit)

    def on_mo(sms) -> bool:
        return pipeline.on_inbound(sms.source, sms.dest, sms.text, now=clock(),
                                   transport=getattr(sms, "transport", "smpp"),
                                   transport_id=getattr(sms, "message_id", ""))

    for kind in kinds:
        if kind == "log":
            made[kind] = LogTransport()
        elif kind == "smpp":
            made[kind] = SmppSender(cfg.transport.smpp, on_dlr=on_dlr, on_mo=on_mo, on_state=watch.on_state,
                                    on_late=on_late)
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
