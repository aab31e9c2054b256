"""`run` and `demo`: one asyncio loop with the PBX source, the tracker, the pipeline and the
outbox worker. Library callbacks only enqueue; one consumer per source keeps events in order.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import time
from dataclasses import replace

import peewee as pw

from .core.pbx.asterisk import DEFAULT_MARKERS, AsteriskSettings, AsteriskTracker
from .core.model import INBOUND, OUTBOUND
from . import heap
from .outbox import LogTransport, OutboxWorker
from .pipeline import Pipeline
from .sdnotify import Notifier
from .status import HEARTBEAT_S, Publisher
from .store.db import check_writable, open_store
from .store.spool import CallSpool

log = logging.getLogger("pbx_textback")

ALIVE_KEY = "service_alive_at"     # Setting: when the service last ran (CDR recovery starts there)
CDR_SLACK_S = 2.0                  # CDR times are whole seconds
PURGE_RETRY_S = 3600.0             # a retention purge that failed: tried again after this
HOUSEKEEPING_S = 30.0              # between housekeeping's rounds
UNRECORDED_MAX = 10_000            # calls kept in memory while the store refuses to write them


def asterisk_settings(cfg) -> AsteriskSettings:
    base = AsteriskSettings()
    return replace(
        base,
        trunk_contexts=base.trunk_contexts + tuple(cfg.pbx.ami.trunk_contexts),
        trunk_endpoints=tuple(cfg.pbx.ami.trunk_endpoints),
        markers=DEFAULT_MARKERS + cfg.pbx.after_hours_markers,
        freepbx_timeconditions=cfg.pbx.freepbx_timeconditions,
        internal_max_digits=cfg.policy.internal_max_digits)


def freeswitch_settings(cfg):
    from .core.pbx.freeswitch import DEFAULT_MARKERS as FS_MARKERS, FsTrackerSettings
    return FsTrackerSettings(inbound_contexts=tuple(cfg.pbx.esl.inbound_contexts),
                             after_hours_markers=FS_MARKERS + cfg.pbx.after_hours_markers)


class Service:
    def __init__(self, cfg, *, on_verdict=None, clock=time.time, status_dir=None):
        heap.hold_mmap_threshold()                # before the store's caches and the first calls
        self.cfg = cfg
        self.status = Publisher(status_dir)       # what `pbx-textback status` reads
        self.clock = clock
        from . import senders
        from .config import box_id
        self.store = open_store(cfg.store.path, cfg.store.dsn, box_id(cfg))
        self.store.accounts = senders.accounts(cfg)
        from pbx_textback.admin.reload import Reloader, apply_to_service, with_page     # the admin page's values on top
        self.cfg = cfg = with_page(cfg, self.store)
        self.reloader = Reloader(cfg, self.store, lambda c: apply_to_service(self, c))
        self.pipeline = Pipeline(cfg, self.store, clock=clock)
        self.transport = LogTransport()      # the real ones are built in run(): "pbx" needs the source
        self.watch = None
        self.worker = OutboxWorker(self.store, self.transport, clock=clock,
                                   max_age_s=cfg.policy.max_age_minutes * 60,
                                   gate_facts=self.pipeline.gate_facts, gate_clear=self.pipeline.gate_clear,
                                   after_sent=self.pipeline.after_sent)
        self.on_verdict = on_verdict
        self.pbx_state = "starting"
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        if cfg.pbx.type == "freeswitch":
            from .core.pbx.freeswitch import FreeswitchTracker
            self.tracker = FreeswitchTracker(freeswitch_settings(cfg))
        else:     # "mail" feeds no events: the tracker just stays empty
            self.tracker = AsteriskTracker(asterisk_settings(cfg))
        self.smtp = None
        self.features = None
        self.web = None                          # the front-desk inbox (web/app.py)
        self.hooks = None                        # webhooks (hooks/worker.py), when endpoints are set
        if cfg.hooks.endpoint:
            from .hooks.worker import HookService
            self.hooks = HookService(cfg, self.store, clock=clock)
        self.web_port: int | None = None
        self._gap_since: float | None = None     # events may be lost from here (disconnected)
        self._connected_once = False
        # the store's own record of when this box's service last ran: before that, it saw
        # nothing (one record per box: another box's service running says nothing of ours;
        # the record without a box is from before boxes)
        alive = self.store.setting(self._alive_key()) or self.store.setting(ALIVE_KEY)
        self._last_alive: float | None = float(alive) if alive else None
        self._last_gap: float | None = None
        self._parked: dict = {}                  # call_id -> record closed in a gap, for the CDR
        self._recovery: asyncio.Task | None = None
        self._first_seen: dict[str, float] = {}  # call id -> when this service saw it (no PBX time)
        self.calls_decided = 0                   # so far (the heap's quiet trim)
        # call_id -> a call the store refused to write (locked past its busy timeout, the disk
        # full, PostgreSQL away): decided again by housekeeping until the store takes it, and
        # kept on disk meanwhile (a stop or a crash must not lose it)
        self._unrecorded: dict = {}
        self.spool = CallSpool.beside(cfg.store.path)

    # The PBX adapters call this for every event, in order.
    def on_event(self, ev: dict) -> None:
        # ~45 events per call: what only FreeSWITCH's events carry (Event-Name) is asked once
        name = ev.get("Event-Name")
        if name is not None:
            if name == "BACKGROUND_JOB" and getattr(self, "desk", None) is not None:
                self.desk.on_job(ev)          # a call back's `bgapi originate` answered
            if self.features is not None and ev.get("Event-Subclass") == "textback::feature":
                asyncio.get_running_loop().create_task(self.features.handle_esl_event(ev))
            if name == "RECV_MESSAGE" and self.cfg.pbx.type == "freeswitch":
                from .core.pbx.freeswitch import inbound_sms
                sms = inbound_sms(ev, self.tracker.s)
                if sms is not None:      # a caller's reply routed through the PBX
                    self.pipeline.on_inbound(*sms, now=self.clock(), transport="freeswitch")
        if "Timestamp" not in ev:
            # ~45 events a call, all of a call it has seen but the first: asked here, not in a call
            key = ev.get("Linkedid") or ev.get("Uniqueid")
            if key and key not in self._first_seen:
                self._note_seen(key)
        for rec in self.tracker.feed(ev):
            self._take(self._stamp(rec))

    def flush_calls(self) -> None:
        """Decide the calls the tracker still holds on what was seen (the demo's --once end,
        where no later event comes to release them)."""
        for rec in self.tracker.flush():
            self._take(self._stamp(rec))

    def _take(self, rec) -> None:
        """A call the tracker closed. One whose end fell in a gap waits for the CDR, which
        tells how it ended, when a CDR source is set; any other is decided now."""
        if rec.recovered and rec.pbx == "asterisk" and self.cfg.pbx.cdr.source:
            self._parked[rec.call_id] = rec
            if self._recovery is None or self._recovery.done():
                self._start_recovery(self._last_gap if self._last_gap is not None else self.clock())
            return
        self._decide(rec)

    def _decide(self, rec):
        self.calls_decided += 1
        if self.features is not None and rec.direction != INBOUND:
            number = self.features.called_back(rec.call_id)
            if number:      # our own *88 originate: we know whom it called
                rec = replace(rec, direction=OUTBOUND, called=rec.called or number,
                              notes=rec.notes + (f"call back by the feature code to {number}",))
        if self._unrecorded:
            # calls before it wait for the store: this one goes behind them (their order is the
            # history its decision reads), without waiting out the busy timeout once more
            # (_record_unrecorded empties the dict before it decides them again)
            n = len(self._unrecorded)
            return self._keep(rec, f"behind {n} call{'s' * (n != 1)} the store refused")
        try:
            verdict, queued = self.pipeline.record_call(rec)
        except (pw.OperationalError, pw.InterfaceError) as e:
            return self._keep(rec, f"the store: {e}")
        except Exception:
            log.exception("could not record call %s: it stays in the log only", rec.call_id)
            return None
        if queued is not None:       # due now, the only text due: started as written
            self.worker.offer(queued)
        elif verdict.decision.action == "text":
            self.worker.wake()
        if self.on_verdict:
            self.on_verdict(verdict)
        return verdict

    def _keep(self, rec, why: str) -> None:
        """A call the store cannot take now: kept for housekeeping to decide (bounded)."""
        if len(self._unrecorded) >= UNRECORDED_MAX:
            log.error("could not record call %s (%s): %d calls wait for the store already; "
                      "it stays in the log only", rec.call_id, why, len(self._unrecorded))
            return None
        self._unrecorded[rec.call_id] = rec
        failed = self.spool.add(rec) if self.spool is not None else "a store in memory keeps no file"
        log.error("could not record call %s (%s): kept, tried again in %d s%s", rec.call_id, why, HOUSEKEEPING_S,
                  f"; not on disk ({failed}): lost if the service stops first" if failed
                  else f" (on disk until then: {self.spool.path})")
        return None

    def _take_spooled(self) -> None:
        """At start: the calls the store refused before the last stop (or crash), decided
        now, before any new call; one the store holds already (recorded, then the file not
        yet rewritten) is not decided twice."""
        if self.spool is None:
            return
        kept = self.spool.load()
        if not kept:
            return
        try:
            waiting = [rec for rec in kept if not self.store.has_call(rec.call_id)]
        except (pw.OperationalError, pw.InterfaceError):
            waiting = kept          # the store refuses again: all wait (one it holds is then a duplicate: skipped)
        done = len(kept) - len(waiting)
        log.warning("%d call(s) the store refused before the last stop were kept in %s: %d to "
                    "record now%s", len(kept), self.spool.path, len(waiting),
                    f", {done} recorded already" if done else "")
        self._unrecorded.update((rec.call_id, rec) for rec in waiting)
        self._record_unrecorded()
        if not waiting:
            self.spool.keep_only(())

    # Asterisk stamps events only with `timestampevents = yes`: without it a call has no time
    # (explain said "time unknown"). Keep the time this service first saw each call and give
    # it to a record that has none.
    def _note_seen(self, key: str) -> None:
        """The first event without its own Timestamp of call `key` (on_event asks that)."""
        now = self.clock()
        self._first_seen[key] = now
        if len(self._first_seen) > 10000:       # calls the tracker never closed: forget after a day
            for k in [k for k, t in self._first_seen.items() if t < now - 86400]:
                del self._first_seen[k]

    def _stamp(self, rec):
        if rec.started_at is not None:
            return rec
        now = self.clock()
        first = self._first_seen.pop(rec.call_id, now)
        return replace(rec, started_at=first, ended_at=rec.ended_at if rec.ended_at is not None else now)

    def on_voicemail(self, fact) -> None:
        """A voicemail notification mail: mark the matching call, or (no event socket) make
        it a missed call of its own."""
        from .core.model import CallRecord
        from .pipeline import mask
        now = self.clock()
        peer = self.pipeline.e164(fact.caller) if fact.caller else ""
        if peer:
            found = self.store.note_voicemail(
                peer, now - self.cfg.smtp.match_minutes * 60,
                f"voicemail e-mail: message left in box {fact.mailbox or '?'}")
            if found:
                log.info("voicemail mail from %s matched call %s", mask(peer), found)
                return
        if self.cfg.pbx.type != "mail":
            log.info("voicemail mail from %s matches no recent call: no text from mail alone "
                     "while the PBX's events are watched", mask(peer) if peer else "an unknown caller")
            return
        lines = self.cfg.smtp.mailbox_lines
        called = lines.get(fact.mailbox) or fact.called or (self.cfg.line[0].number if len(self.cfg.line) == 1 else "")
        key = fact.msg_id or fact.message_id_header or f"{fact.caller}-{now:.0f}"
        rec = CallRecord("mail", f"vm-{key}", fact.caller, called, "inbound", caller_name=fact.caller_name,
                         withheld=not fact.caller, voicemail=True, voicemail_left=True,
                         notes=(f"from a voicemail e-mail (box {fact.mailbox or '?'}): no event socket",))
        verdict = self.pipeline.on_record(rec, now=now)
        if verdict.decision.action == "text":
            self.worker.wake()
        if self.on_verdict:
            self.on_verdict(verdict)

    def queue_manual(self, *, peer: str, line: str, kind: str = "manual", body: str, note: str = "") -> int:
        """A text a person asked for (*89, the inbox): written to the outbox; the gate applies."""
        now = self.clock()
        with self.store.write():
            mid = self.store.add_message(direction="out", kind=kind, line=line, peer=peer, body=body,
                                         state="pending", due_at=now, created_at=now, note=note)
        self.worker.wake()
        return mid

    async def _start_web(self) -> None:
        """The inbox, in this loop, once someone can sign in to it."""
        from .config import web_listen
        from .store.web import has_users
        if not self.cfg.web.enabled:
            return
        from .store.api import has_tokens
        if not has_users(self.store) and not has_tokens(self.store):
            log.info("web inbox off: no user yet (`pbx-textback user add NAME --role admin`)")
            return
        from .web.app import Inbox
        self.web = Inbox(self.cfg, self.store, clock=self.clock, send=lambda peer, line, body, by: (
            self.queue_manual(peer=peer, line=line, kind="agent", body=body, note=f"by {by}")))
        host, port = web_listen(self.cfg.web.listen)
        try:
            self.web_port = await self.web.start(host, port)
        except OSError as e:       # the inbox's port taken must not stop the texting
            from .web.tls import not_served
            log.error("web inbox not served: %s", not_served(e, self.cfg.web.listen))
            self.web = None
            return
        log.info("web inbox on %s://%s:%d/", self.web.scheme, host, self.web_port)
        from .web.ownership import on_arrival, on_reached
        self.pipeline.on_arrival = lambda peer, line, queue, now: on_arrival(self.cfg, self.store, peer, line,
                                                                              queue, now)
        self.pipeline.on_reached = lambda peer, endpoint, now: on_reached(self.store, peer, endpoint, now)

    def _start_desk(self, source) -> list:
        """Desk phones through this PBX connection: the inbox's Call back, replies pushed."""
        from .deskphone import DeskPhones
        fs = self.cfg.pbx.type == "freeswitch"
        self.desk = DeskPhones(self.cfg, self.store, clock=self.clock,
                               send_action=source.send_action if source is not None and not fs else None,
                               esl_api=source.api if source is not None and fs else None,
                               esl_bgapi=source.bgapi if source is not None and fs else None)
        if self.web is not None:
            self.web.deskphones = self.desk
        from . import queued_callbacks          # call backs other boxes' inboxes asked of this PBX
        return [asyncio.create_task(self.desk.run(), name="deskphones"),
                asyncio.create_task(queued_callbacks.run(self.desk), name="queued call backs")]

    async def _start_features(self, source) -> None:
        from .ami.fastagi import FeatureCodes
        f = self.cfg.features
        if self.cfg.pbx.type == "asterisk":
            originate = lambda action: source.send_action(action, timeout=45)  # noqa: E731  answered when the phone picks up
            esl_api = None
        else:
            originate = None
            # `api originate` answers when the desk phone picks up (or gives up ringing)
            esl_api = (lambda cmd: source.api(cmd, timeout=45)) if hasattr(source, "api") else None  # noqa: E731
        from .core.policy import consent
        self.features = FeatureCodes(
            self.store, originate=originate, queue_text=self.queue_manual, clock=self.clock,
            callback_window_hours=f.callback_window_hours, esl_api=esl_api,
            textagain_body=f"{self.cfg.business.name}: sorry we missed your call. Reply here or call "
                           f"us back. Reply STOP to opt out.",
            is_opted_out=lambda peer: consent.is_opted_out(self.store.consent_standing(peer), peer))
        if self.cfg.pbx.type != "asterisk":
            # FreeSWITCH has no AGI: the dialplan fires textback::feature events on the event
            # socket (on_event); a FastAGI listener here would be an open port for nothing
            log.info("feature codes (*88 call back, *89 text again) from the dialplan's "
                     "CUSTOM textback::feature events")
            return
        port = await self.features.start(f.host, f.port)
        log.info("feature codes (*88 call back, *89 text again) on FastAGI %s:%d", f.host, port)

    def _start_recovery(self, since: float) -> None:
        self._recovery = asyncio.get_running_loop().create_task(self._recover_from_cdr(since))

    async def _recover_from_cdr(self, since: float) -> None:
        """Calls that ended while we saw no events (from `since` on), from the PBX's stored
        CDR, and the calls the tracker closed in that gap. A call that ended before `since`
        was seen live, or is older than what this store has watched: never recovered."""
        from .ami.cdr import read_rows, zone_of
        from .core.pbx.cdr import recover
        c = self.cfg.pbx.cdr
        await asyncio.sleep(c.settle_seconds)
        waiting = dict(self._parked)
        tz, conf = zone_of(c)
        # a call that ended in the gap may have begun long before it: read with a margin
        start = since - 3600
        for rec in waiting.values():
            if rec.started_at is not None:
                start = min(start, rec.started_at - 60)
        start = max(start, self.clock() - 86400)
        try:
            rows = await asyncio.get_running_loop().run_in_executor(None, read_rows, c, start, tz, conf)
        except (OSError, sqlite3.Error) as e:
            log.error("cannot read the CDR (%s %s) to recover calls of the gap: %s", c.source, c.path, e)
            rows = []
        unmatched = sum(1 for r in rows if not (r.get("uniqueid") or r.get("linkedid")))
        if unmatched:
            log.warning("CDR: %d row(s) carry no uniqueid, so no call can be recovered from them: "
                        "set loguniqueid=yes in the [csv] section of cdr.conf, then "
                        "`asterisk -rx 'module reload cdr_csv'`", unmatched)
        trunks = set(getattr(self.tracker, "_trunks", ())) | set(self.cfg.pbx.ami.trunk_endpoints)
        live = set(getattr(self.tracker, "calls", {}))
        n = texted = 0
        for rec in recover(rows, trunk_endpoints=trunks, tz=tz,
                           internal_max_digits=self.cfg.policy.internal_max_digits):
            seen = waiting.pop(rec.call_id, None)
            if seen is not None:
                self._parked.pop(rec.call_id, None)
                rec = replace(rec, notes=seen.notes + rec.notes)
            elif rec.call_id in live or self.store.has_call(rec.call_id):
                continue
            elif rec.ended_at is not None and rec.ended_at < since - CDR_SLACK_S:
                continue
            n += 1
            verdict = self._decide(rec)
            texted += verdict is not None and verdict.decision.action == "text"
        for call_id, rec in waiting.items():        # no CDR row: what the events showed decides
            self._parked.pop(call_id, None)
            self._decide(replace(rec, notes=rec.notes + ("no CDR row found for it",)))
        log.info("CDR: %d call(s) of the gap recovered, %d texted%s", n, texted,
                 f"; {len(waiting)} closed in the gap had no CDR row" if waiting else "")
        if self._parked:                            # closed while this read ran: read again
            self._start_recovery(since)

    def _smtp_settings(self):
        from .smtp.listener import SmtpSettings
        m = self.cfg.smtp
        return SmtpSettings(listen_host=m.listen_host, listen_port=m.listen_port,
                            relay_host=m.relay_host, relay_port=m.relay_port,
                            relay_security=m.relay_security, relay_username=m.relay_username or None,
                            relay_password=m.password or None)

    def on_state(self, state: str, detail: str = "") -> None:
        if state == "disconnected" and self._gap_since is None and self._connected_once:
            self._gap_since = self.clock()
        if state == "connected" and self.cfg.pbx.cdr.source:
            since = self._gap_since
            if not self._connected_once:
                # the service itself was down: the gap starts when the store last saw it
                # alive; a new or reset store saw nothing before now, so nothing is recovered
                since = self._last_alive
                if since is None:
                    log.info("CDR: this store has no record of an earlier run: calls from "
                             "before now are not recovered")
            if since is not None:
                self._last_gap = since
                self._start_recovery(since)
            self._gap_since = None
        if state == "connected":
            self._connected_once = True
        if state != self.pbx_state:
            self.pbx_state = state
            self._pbx_detail = detail
            level = logging.ERROR if state == "auth-failed" else logging.INFO
            log.log(level, "PBX connection %s%s", state, f": {detail}" if detail else "")
            # the PBX's state goes in STATUS=, never in our exit code: a PBX that is down at
            # boot must not make systemd restart us in a loop
            self.notifier.status(f"PBX {state}{': ' + detail if detail else ''}")
            self._publish()

    def _source(self, host=None, port=None):
        if self.cfg.pbx.type == "freeswitch":
            from .esl.events import DEFAULT_PASSWORD
            from .esl.parent import EslChild
            e = self.cfg.pbx.esl
            if e.password == DEFAULT_PASSWORD:
                log.warning("pbx.esl.password is FreeSWITCH's default (%s): anyone who reaches "
                            "the event socket controls the PBX; `pbx-textback doctor` says how "
                            "to change it", DEFAULT_PASSWORD)
            return EslChild(host or e.host, port or e.port, e.password,
                            on_event=self.on_event, on_state=self.on_state)
        from .ami.client import AmiSource
        from .core.pbx.asterisk import SERVICE_AMI_EVENTS
        a = self.cfg.pbx.ami
        return AmiSource(host or a.host, port or a.port, a.username, a.secret,
                         on_event=self.on_event, on_state=self.on_state,
                         ping_interval=a.ping_interval, wanted=SERVICE_AMI_EVENTS, wanted_vars=self.tracker.read_vars)

    async def run(self, *, host=None, port=None, extra_tasks=()) -> int:
        """Until stopped: 0. A task that dies (the store, the outbox, the PBX source) stops the
        service with 1 and its reason in the log: never ready and then quietly gone."""
        loop = asyncio.get_running_loop()
        # a store the service cannot write fails here, before READY=1 (StoreError)
        check_writable(self.store, self.cfg.store.path if not self.cfg.store.dsn else "", self.clock())
        self._pbx_addr = f"{host or self._pbx_host()}:{port or self._pbx_port()}"
        for sig, handler in ((signal.SIGINT, self._stop.set), (signal.SIGTERM, self._stop.set),
                             (signal.SIGHUP, self.reloader.reload_file)):   # reload: the file again
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError):
                pass
        source = self._source(host, port) if self.cfg.pbx.type != "mail" else None
        from . import senders
        self.transport, self.watch = senders.build(self.cfg, store=self.store, pipeline=self.pipeline,
                                                   source=source, clock=self.clock)
        self.worker.transport = self.transport
        from .store.checkpoint import Checkpointer     # WAL flushes off the event loop
        self.checkpointer = Checkpointer(self.cfg.store.path if not self.cfg.store.dsn else "").start(self.store)
        await self.transport.start()
        self._take_spooled()
        self._mark_alive()
        with self.store.write():      # confirmations owed from before a crash go out now
            owed = self.pipeline.queue_confirmations(self.clock())
        if owed:
            log.warning("%d opt-out/opt-in confirmation(s) were still owed: queued", owed)
        tasks = [asyncio.create_task(self.worker.run(), name="outbox")]
        if source is not None:
            tasks.append(asyncio.create_task(source.run(), name="pbx"))
        if self.cfg.features.enabled and source is not None:
            await self._start_features(source)
        if self.cfg.smtp.enabled:
            from .smtp.listener import VoicemailListener
            from .voicemail_audio import keeper
            self.smtp = VoicemailListener(self._smtp_settings(), self.on_voicemail, on_recording=keeper(self))
            smtp_port = await self.smtp.start()
            log.info("voicemail e-mail listener on %s:%d", self.cfg.smtp.listen_host, smtp_port)
        await self._start_web()
        from pbx_textback.reporting import observe
        self.observers = await observe.start(self)       # /metrics, e-mail to staff (off by default)
        side = [asyncio.create_task(t) for t in extra_tasks] + self._start_desk(source)
        side.append(asyncio.create_task(self.notifier.watchdog(), name="watchdog"))
        hooks_task = asyncio.create_task(self.hooks.run(), name="webhooks") if self.hooks else None
        side.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        side.append(asyncio.create_task(self._heartbeat(), name="status"))
        side.append(asyncio.create_task(self.reloader.watch(), name="settings"))
        self.status.attach()
        self.notifier.ready(f"PBX {self.pbx_state}")
        log.info("pbx-textback running: %s at %s, store %s, transport %s, %d line(s)%s",
                 self.cfg.pbx.type, self._pbx_addr,
                 self.cfg.store.dsn and "postgresql" or self.cfg.store.path, self.transport.name,
                 len(self.cfg.line), " (every inbound number)" if self.cfg.every_inbound_number else "")
        stopper = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait(tasks + [stopper], return_when=asyncio.FIRST_COMPLETED)
        code = 0
        for t in done:
            if t is not stopper and not t.cancelled():
                code = 1
                e = t.exception()
                log.error("the %s task stopped%s: pbx-textback exits so that systemd restarts it",
                          t.get_name(), f": {type(e).__name__}: {e}" if e else " by itself")
        self.notifier.stopping()
        self._record_unrecorded()                # a last try; their texts then wait in the store
        if self._unrecorded:
            off_disk = [c for c in self._unrecorded if self.spool is None or c not in self.spool]
            log.error("stopping with %d call(s) the store refused, not recorded: %s (%s)",
                      len(self._unrecorded), ", ".join(list(self._unrecorded)[:10]),
                      f"kept in {self.spool.path}: the next start records them" if not off_disk else
                      f"{len(off_disk)} not on disk: " + ("the next start reads them from the PBX's CDR"
                                                          if self.cfg.pbx.cdr.source else "lost"))
        self.worker.stop()
        if source is not None:
            await source.stop()
        if self.smtp is not None:
            await self.smtp.stop()
        if self.features is not None:
            await self.features.stop()
        if self.web is not None:
            await self.web.stop()
        if hooks_task is not None:           # in-flight deliveries go back to the queue
            self.hooks.stop()
            await asyncio.gather(hooks_task, return_exceptions=True)
        await self.observers.stop()
        await self.transport.stop()
        await self.worker.close()        # results recorded; claimed texts never written -> pending
        for t in tasks + side + [stopper] + ([self._recovery] if self._recovery else []):
            t.cancel()
        await asyncio.gather(*tasks, *side, stopper, return_exceptions=True)
        self._mark_alive()
        self.status.close()
        self.checkpointer.stop()
        self.store.close()
        log.info("pbx-textback stopped" + (" after an error (exit 1)" if code else ""))
        return code

    def stop(self) -> None:
        self._stop.set()

    def _alive_key(self) -> str:
        return f"{ALIVE_KEY}:{self.store.box}" if self.store.box else ALIVE_KEY

    def _mark_alive(self) -> None:
        """When the service last ran: the next start's CDR recovery begins there. Not moved on
        while calls the store refused wait (so a crash leaves them to that recovery), nor
        tried then: the store that refused them would hold the loop its busy timeout."""
        if self._unrecorded:
            return
        try:
            self.store.set_setting(self._alive_key(), f"{self.clock():.3f}", self.clock())
        except Exception as e:          # the store's trouble shows elsewhere; keep running
            log.warning("could not record that the service is alive: %s", e)
    # ---- what `pbx-textback status` reads (status.py) ----
    def _transport_states(self) -> dict:
        router = getattr(self.transport, "inner", self.transport)     # Watched(Router(...))
        kinds = getattr(router, "transports", None) or {self.transport.name: self.transport}
        out = {}
        for kind, t in kinds.items():
            inner = getattr(t, "t", t)           # SmppSender wraps the SmppTransport
            out[kind] = "log" if kind == "log" else str(getattr(inner, "state", "ready"))
        return out

    def _publish(self) -> None:
        self.status.write({"pbx": {"type": self.cfg.pbx.type, "address": getattr(self, "_pbx_addr", ""),
                                   "state": self.pbx_state, "detail": getattr(self, "_pbx_detail", "")},
                           "transports": self._transport_states()})

    async def _heartbeat(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(HEARTBEAT_S)

    async def _housekeeping(self) -> None:
        """Every HOUSEKEEPING_S (30 s): is the SMSC down too long, calls left open without an
        end, the store's mark that we are alive; once a quiet spell follows calls (and after a
        purge): the heap's free pages back to the system (heap.QuietTrim); once a day: retention
        (a purge that fails is logged and tried again after PURGE_RETRY_S)."""
        last_purge = 0.0
        trim = heap.QuietTrim()
        while True:
            if self.watch is not None:
                self.watch.check()
            if isinstance(self.tracker, AsteriskTracker):
                for rec in self.tracker.expire(self.clock()):
                    self._take(rec)
            self._record_unrecorded()           # first: the alive mark waits for these
            self._mark_alive()
            days = self.cfg.compliance.retention_days
            purged = False
            if days and self.clock() - last_purge > 86400:
                last_purge = self.clock()
                try:
                    n = await self._purge(self.clock() - days * 86400)
                except Exception as e:
                    # (the store locked by another program past its busy timeout, a full disk):
                    # the slices done stay done; housekeeping goes on, the rest waits for a retry
                    log.error("retention: purge stopped (%s: %s); what it deleted stays deleted, "
                              "the rest is tried again in %d min", type(e).__name__, e, PURGE_RETRY_S // 60)
                    last_purge = self.clock() - 86400 + PURGE_RETRY_S
                else:
                    log.info("retention: purged %s older than %d days", n, days)
                    purged = True
            trim.round(self.calls_decided, force=purged)
            await asyncio.sleep(HOUSEKEEPING_S)

    def _record_unrecorded(self) -> None:
        """The calls the store refused, decided again in the order they came; at the first
        the store still refuses, the rest wait for the next round. A store still locked is
        seen in a tenth of a second, not after the busy timeout's 5 s on the event loop."""
        if not self._unrecorded:
            return
        if not self.store.takes_writes():
            n = len(self._unrecorded)
            log.warning("%d call%s still wait%s for the store (it is locked); tried again in %d s",
                        n, "s" * (n != 1), "" if n != 1 else "s", HOUSEKEEPING_S)
            return
        # each is decided with the dict empty (a refusal puts it back with the rest, and stops)
        waiting, self._unrecorded = list(self._unrecorded.items()), {}
        try:
            for i, (call_id, rec) in enumerate(waiting):
                verdict = self._decide(rec)
                if call_id in self._unrecorded:
                    self._unrecorded.update(waiting[i + 1:])
                    return
                if verdict is not None:
                    log.info("call %s recorded now (the store had refused it)", call_id)
        finally:
            if self.spool is not None:
                self.spool.keep_only(self._unrecorded.values())

    async def _purge(self, before: float) -> dict:
        """Retention's purge a slice at a time (store/purge.py), the calls that come meanwhile
        taken between slices: a big store's first purge is minutes of deletes, none in one go."""
        from .store import purge
        return await purge.run(self.store, before)

    def _pbx_host(self):
        if self.cfg.pbx.type == "mail":
            return "-"
        return self.cfg.pbx.esl.host if self.cfg.pbx.type == "freeswitch" else self.cfg.pbx.ami.host

    def _pbx_port(self):
        if self.cfg.pbx.type == "mail":
            return "-"
        return self.cfg.pbx.esl.port if self.cfg.pbx.type == "freeswitch" else self.cfg.pbx.ami.port
