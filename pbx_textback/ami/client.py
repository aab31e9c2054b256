"""The Asterisk AMI source: panoramisk 1.4's `Manager`, with its sharp edges filed off.

What this module adds on top of panoramisk (each item is a reproduced sharp edge, see
LIBRARY-NOTES and the comments below):

- reading: our own framing (`core.pbx.amiframe`) on raw bytes instead of panoramisk's
  per-read `decode(errors='ignore')`, so a UTF-8 caller name split across TCP reads survives;
  header values exactly as Asterisk sent them (panoramisk's parser drops an empty last header
  and URL-unquotes `Result`);
- one sync `'*'` callback that only `put_nowait`s; one consumer task hands events (and state
  changes) to the caller in stream order; an exception there is logged without the event's
  content and never stops the consumer;
- our own connect loop with exponential backoff (panoramisk retries at a fixed interval and
  forever, with no hook for a failed login);
- a failed login is detected (`Response: Error` to `Login`), reported once as an ERROR that says
  what to fix, and retried slowly;
- a ping watchdog: a Ping without a Pong in time aborts the transport (half-open TCP);
- after every login + FullyBooted: `CoreShowChannels`, each row handed on with `_reconcile: "1"`;
- actions pending when a connection drops fail at once with `AmiConnectionLost` and are never
  re-sent (panoramisk re-sends them on the next FullyBooted: a second text, a second callback);
- `Originate` always goes with `Async: true`; CR/LF in an action value is refused (panoramisk
  writes values verbatim, so a reply text with a newline would inject headers).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
import traceback
from typing import Any, Callable

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from ..core.pbx.amiframe import AmiFraming
from ..core.pbx.asterisk import RECONCILE_KEY

log = logging.getLogger("pbx_textback.ami")

Event = dict[str, "str | list[str]"]

STATES = ("connecting", "connected", "auth-failed", "disconnected")


class AmiError(Exception):
    """An AMI action could not be carried out."""


class AmiNotConnected(AmiError, ConnectionError):
    """No logged-in AMI connection right now."""


class AmiConnectionLost(AmiError, ConnectionError):
    """The connection dropped after the action was written, before its answer: the PBX may or
    may not have carried it out (an outbox row in this state is 'unknown')."""


def message_to_dict(msg) -> Event:
    """A panoramisk Message as a plain dict of the headers as Asterisk sent them (a repeated
    header is a list). panoramisk's Message also holds a spurious `content` key (its
    constructor passes `content=` on to the dict): we use the frame we parsed instead."""
    frame = getattr(msg, "__dict__", {}).get("_frame")
    src = frame if frame is not None else msg
    return {k: (list(v) if isinstance(v, list) else v) for k, v in src.items()}


def _first(ev, key: str) -> str:
    v = ev.get(key, "")
    return v[0] if isinstance(v, list) else v


# --------------------------------------------------------------------------- panoramisk glue

CONSUME_SLICE = 64          # events handled before the consumer yields to the rest of the loop


class _Protocol(AMIProtocol):
    """AMIProtocol reading through our framing. Everything else (responses, futures, event
    dispatch) stays panoramisk's."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self.framing = AmiFraming()
        self.reads = 0
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()
        self.reconcile_id: str | None = None
        self.on_reconcile: Callable[[Message], None] | None = None
        # the events no action waits for go straight to this (the frames, plain dicts), all
        # of one read in one list, in order: the round trip through panoramisk's
        # case-insensitive Message and its pattern dispatch back to a dict was most of the
        # cost of an event, and one queue item per event the next biggest
        self.on_events: Callable[[list], None] | None = None

    def data_received(self, data: bytes) -> None:
        # panoramisk: `data.decode(encoding, 'ignore')` per read, then split on CRLFCRLF and
        # `strip()` each message -> UTF-8 split across reads loses characters, and an empty
        # last header ("Extra: ") is dropped. We frame raw bytes instead.
        self.reads += 1
        fast = self.on_events
        batch: list = []
        for frame in self.framing.feed(data):
            if self.version is None and self.framing.banner:
                self.version = self.framing.banner.partition("/")[2].strip()
            if fast is not None and not self.responses and self.reconcile_id is None:
                name = frame.get("Event")
                # no action is waiting, so no response can claim it; Shutdown stays panoramisk's
                if name.__class__ is str and name.lower() != "shutdown":
                    batch.append(frame)
                    continue
            if batch:                   # the events before this frame first: stream order
                self._hand_on(batch)
                batch = []
            msg = Message(frame)
            msg._frame = frame
            try:
                self.handle_message(msg)
            except Exception:
                # panoramisk would let this escape data_received: asyncio then drops the
                # connection and the rest of this read. Log and go on with the next frame.
                log.exception("AMI: could not handle a %s frame",
                              _first(frame, "Event") or _first(frame, "Response") or "?")
        if batch:
            self._hand_on(batch)

    def _hand_on(self, batch: list) -> None:
        try:
            self.on_events(batch)
        except Exception:
            log.exception("AMI: could not hand on %d event(s)", len(batch))

    def handle_message(self, message):
        if (self.reconcile_id is not None and "event" in message
                and message.action_id == self.reconcile_id and self.on_reconcile is not None):
            self.on_reconcile(message)          # in stream order, before the action completes
        return super().handle_message(message)

    def send(self, data, as_list=False):
        if self.closed:
            raise AmiNotConnected("AMI connection closed")
        return super().send(data, as_list=as_list)

    def close(self):
        # panoramisk moves unanswered actions to `awaiting_actions` and re-sends them on the
        # next FullyBooted (and silently forgets Login/Ping, whose futures then never resolve).
        # We fail them all now instead: the caller decides whether to retry.
        pending = {id(a): a for a in self.responses.values()}.values()
        self.responses.clear()
        super().close()
        for action in pending:
            fut = action.future
            if not fut.done():
                fut.set_exception(AmiConnectionLost(
                    f"AMI connection lost before the answer to {action.get('Action', '?')}"))
                fut.exception()   # mark retrieved: nobody may be waiting (e.g. a timed-out ping)

    def connection_lost(self, exc):
        super().connection_lost(exc)
        if not self.lost.done():
            self.lost.set_result(exc)


class _Manager(Manager):
    """panoramisk's Manager minus its own reconnect, ping and action re-sending."""

    def ping(self):                                 # its ping ignores the reply: ours watches
        self.pinger = None

    def login(self, future):
        self.authenticated_future = None
        if future.cancelled() or future.exception() is not None:
            self.authenticated = False
            return False
        self.authenticated = bool(future.result().success)
        return self.authenticated

    def send_awaiting_actions(self, *_):            # registered on FullyBooted by __init__
        self.awaiting_actions.clear()

    def connection_lost(self, exc):                 # AmiSource owns the reconnect loop
        self._connected = False
        self.authenticated = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.awaiting_actions.clear()


# --------------------------------------------------------------------------------- the source

class AmiSource:
    """Connects to AMI, logs in, keeps the connection, reconnects with backoff until `stop()`.

    `on_event(dict)` gets every event in stream order as a plain dict of the headers exactly as
    Asterisk sent them (a repeated header is a list). After every login + FullyBooted, the rows
    of `CoreShowChannels` follow with `_reconcile: "1"` (a channel that is up and whose earlier
    events were lost), then the `CoreShowChannelsComplete` with `_reconcile: "1"` (the snapshot
    is complete). `on_state(state, detail)` is called on every state change, in order with the
    events (same consumer): connecting | connected | auth-failed | disconnected.
    """

    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 on_event: Callable[[Event], Any],
                 on_state: Callable[[str, str], Any] | None = None,
                 ping_interval: float = 20.0, ping_timeout: float = 5.0,
                 reconnect_min: float = 0.5, reconnect_max: float = 4.0,
                 events: str = "on",
                 auth_retry: float = 45.0, connect_timeout: float = 10.0,
                 login_timeout: float = 10.0, fully_booted_timeout: float = 30.0,
                 wanted: "frozenset[str] | None" = None,
                 wanted_vars: "frozenset[str] | None" = None):
        # wanted: the only event names on_event needs (None: every event); the framing skips
        # the rest unread. Responses and events an action waits for always come.
        # wanted_vars: the VarSets read whole; the others come short (AmiFraming).
        self.wanted, self.wanted_vars = wanted, wanted_vars
        for name, value in (("username", username), ("secret", secret), ("events", events)):
            if "\r" in str(value) or "\n" in str(value):
                raise ValueError(f"AMI {name} must not contain a line break")
        self.host, self.port = host, int(port)
        self.username, self._secret, self.events = username, secret, events
        self.on_event, self.on_state = on_event, on_state
        self.ping_interval, self.ping_timeout = float(ping_interval), float(ping_timeout)
        self.reconnect_min, self.reconnect_max = float(reconnect_min), float(reconnect_max)
        self.auth_retry = float(auth_retry)
        self.connect_timeout, self.login_timeout = float(connect_timeout), float(login_timeout)
        self.fully_booted_timeout = float(fully_booted_timeout)
        self._state = "disconnected"
        self._state_detail = "not started"
        self._manager: _Manager | None = None
        self._protocol: _Protocol | None = None
        self._queue: asyncio.Queue | None = None
        self._stop_evt: asyncio.Event | None = None
        self._booted: asyncio.Event | None = None
        self._login_fut: asyncio.Future | None = None
        self._stopping = False
        self._reconcile_seq = 0
        self.attempts = 0            # connection attempts so far (for tests and `doctor`)
        self.sessions = 0            # logins that succeeded
        self.version: str | None = None

    # -- public -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def state_detail(self) -> str:
        return self._state_detail

    async def run(self) -> None:
        """Run until `stop()` (or cancellation). Never raises because the PBX misbehaves."""
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._stop_evt = asyncio.Event()
        if self._stopping:
            return
        # panoramisk: create the Manager inside the running loop (it captures it).
        self._manager = _Manager(loop=loop, host=self.host, port=self.port,
                                 username=self.username, secret=self._secret,
                                 events=self.events, encoding="utf8",
                                 protocol_factory=_Protocol, ping_delay=3600,
                                 log=logging.getLogger("pbx_textback.ami.panoramisk"))
        self._manager.register_event("*", self._on_message)
        consumer = asyncio.create_task(self._consume(), name="ami-consumer")
        failures = 0
        auth_failures = 0
        try:
            while not self._stopping:
                if self._state != "auth-failed":     # auth-failed stays until a login works
                    self._set_state("connecting", f"{self.host}:{self.port}")
                session = asyncio.create_task(self._session(), name="ami-session")
                stopper = asyncio.create_task(self._stop_evt.wait())
                try:
                    await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopper.cancel()
                    if not session.done():       # stop() during connect: don't wait for it
                        session.cancel()
                        await asyncio.gather(session, return_exceptions=True)
                if self._stopping:
                    break
                if session.exception() is not None:      # a bug of ours: log it, keep going
                    e = session.exception()
                    log.error("AMI session failed: %s", "".join(
                        traceback.format_exception(type(e), e, e.__traceback__)).rstrip())
                    outcome, detail = "failed", f"internal error ({type(e).__name__})"
                else:
                    outcome, detail = session.result()
                if outcome == "auth-failed":
                    auth_failures += 1
                    failures = 0
                    delay = self.auth_retry * random.uniform(0.9, 1.1)
                    if auth_failures == 1:
                        log.error("AMI login to %s:%s as %r rejected (%s): fix the [%s] user's "
                                  "secret (and its permit/deny) in the PBX's manager.conf "
                                  "(FreePBX: manager_custom.conf), or the AMI username/secret "
                                  "in the pbx-textback config; retrying every %.0f s",
                                  self.host, self.port, self.username, detail, self.username,
                                  self.auth_retry)
                    else:
                        log.debug("AMI login still rejected; retry in %.0f s", delay)
                    self._set_state("auth-failed", detail)
                else:
                    auth_failures = 0
                    if outcome == "ended":          # was connected: start the backoff afresh
                        failures = 0
                    # capped low: the PBX is on this box, one connect attempt costs it nothing,
                    # and a call that starts while we wait is a call we only see half of
                    delay = min(self.reconnect_max, self.reconnect_min * (2 ** failures))
                    delay *= random.uniform(0.8, 1.2)
                    failures += 1
                    # retries every few seconds: one line a minute in the journal, not fifteen
                    log.log(logging.WARNING if failures <= 1 else
                            logging.INFO if failures % 15 == 0 else logging.DEBUG,
                            "AMI %s:%s: %s; reconnecting in %.1f s",
                            self.host, self.port, detail, delay)
                    self._set_state("disconnected", f"{detail}; retry in {delay:.1f} s")
                try:
                    await asyncio.wait_for(self._stop_evt.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._close_transport()
            self._set_state("disconnected", "stopped")
            self._queue.put_nowait(_STOP)
            try:
                await asyncio.wait_for(asyncio.shield(consumer), 5.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                consumer.cancel()

    async def stop(self) -> None:
        """Log off (if connected), close, and let `run()` return after the events already read
        were handed on."""
        self._stopping = True
        proto = self._protocol
        if proto is not None and not proto.closed and self._manager and self._manager.authenticated:
            try:
                await self.send_action({"Action": "Logoff"}, timeout=1.0)
            except (AmiError, ConnectionError, asyncio.TimeoutError):
                pass
        self._close_transport()
        if self._stop_evt is not None:
            self._stop_evt.set()

    def relogin(self, why: str) -> bool:
        """Drop this session so the reconnect logs in again. Asterisk fixes a session's
        permissions at login: a write class added with `manager reload` reaches new sessions
        only. False when not logged in (nothing to drop)."""
        proto, mgr = self._protocol, self._manager
        if proto is None or proto.closed or mgr is None or not mgr.authenticated:
            return False
        log.warning("AMI: logging in again to pick up the AMI user's current permissions (%s)", why)
        proto.transport.abort()
        return True

    async def send_action(self, action: dict, timeout: float = 5.0) -> list[Event] | Event:
        """Send one action on the logged-in connection and return its answer as a dict, or a
        list of dicts for an action whose answer is a list (the response then each event).

        Raises AmiNotConnected (not logged in), AmiConnectionLost (dropped before the answer:
        the PBX may have done it), asyncio.TimeoutError, ValueError (bad action).
        `Originate` always goes with `Async: true`; its answer then is [Response,
        OriginateResponse], which arrives when the originated channel answers or fails, so
        give it a timeout longer than the Originate's own `Timeout`.
        """
        proto, mgr = self._protocol, self._manager
        if proto is None or mgr is None or proto.closed or not mgr.authenticated:
            raise AmiNotConnected(f"not logged in to AMI at {self.host}:{self.port} ({self._state})")
        act = _check_action(action)
        fut = mgr.send_action(act)
        try:
            res = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            # the action stays in panoramisk's table until a late answer: forget it
            for k, a in list(proto.responses.items()):
                if a.future is fut:
                    proto.responses.pop(k, None)
            raise
        if isinstance(res, list):
            return [message_to_dict(m) for m in res]
        return message_to_dict(res)

    # -- one connection -----------------------------------------------------------------

    async def _session(self) -> tuple[str, str]:
        """One connection from connect to close. Returns (outcome, detail); outcome is
        'failed' (never got to connected), 'auth-failed', or 'ended' (was logged in)."""
        loop = asyncio.get_running_loop()
        mgr = self._manager
        assert mgr is not None
        self.attempts += 1
        try:
            transport, proto = await asyncio.wait_for(
                loop.create_connection(_Protocol, self.host, self.port), self.connect_timeout)
        except asyncio.TimeoutError:
            return "failed", f"no TCP answer within {self.connect_timeout:.0f} s"
        except OSError as e:
            return "failed", f"cannot connect ({e.strerror or e})"
        self._booted = booted = asyncio.Event()
        proto.on_reconcile = self._on_reconcile_row
        proto.on_events = self._on_frames
        proto.framing.wanted, proto.framing.wanted_vars = self.wanted, self.wanted_vars
        done = loop.create_future()
        done.set_result((transport, proto))
        mgr.connection_made(done)                  # panoramisk wires the protocol, sends Login
        self._protocol = proto
        login = self._login_fut = mgr.authenticated_future
        watchdog: asyncio.Task | None = None
        try:
            finished, _ = await asyncio.wait({login, proto.lost}, timeout=self.login_timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            if login not in finished or login.cancelled() or login.exception() is not None:
                if not proto.framing.banner:
                    why = "no AMI banner: is this the AMI port (manager.conf [general] port)?"
                elif proto.lost.done():
                    why = "connection closed before the login reply"
                else:
                    why = f"no login reply within {self.login_timeout:.0f} s"
                return "failed", why
            resp = login.result()
            if not resp.success:
                msg = _first(resp, "Message") or _first(resp, "Response") or "rejected"
                return "auth-failed", msg
            self.sessions += 1
            self.version = proto.version
            log.info("AMI logged in to %s:%s as %s (Asterisk Call Manager/%s)",
                     self.host, self.port, self.username, proto.version or "?")
            watchdog = asyncio.create_task(self._watchdog(proto), name="ami-watchdog")
            # FullyBooted comes right after the login reply when Asterisk is up, or later as
            # an ordinary event while it is still booting (20-restart-part2).
            boot = asyncio.create_task(booted.wait())
            finished, _ = await asyncio.wait({boot, proto.lost}, timeout=self.fully_booted_timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            boot.cancel()
            if not booted.is_set():
                if proto.lost.done():
                    return "ended", "connection closed before FullyBooted"
                log.warning("AMI: no FullyBooted %.0f s after login (does the AMI user have "
                            "read = system?); going on without it", self.fully_booted_timeout)
            # (the stream may already have ended too: a short session still was connected)
            self._set_state("connected", f"{self.host}:{self.port}")
            if not proto.lost.done():
                await self._reconcile(proto)
            await proto.lost
            return "ended", _lost_reason(proto.lost.result())
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if not proto.closed:
                proto.transport.abort()
                proto.connection_lost(None)

    async def _watchdog(self, proto: _Protocol) -> None:
        while not proto.closed:
            await asyncio.sleep(self.ping_interval)
            if proto.closed:
                return
            try:
                await self.send_action({"Action": "Ping"}, timeout=self.ping_timeout)
            except asyncio.TimeoutError:
                log.warning("AMI: no answer to Ping within %.1f s: the connection is dead "
                            "(half-open); dropping it to reconnect", self.ping_timeout)
                proto.transport.abort()             # -> connection_lost -> the session ends
                return
            except (AmiError, ConnectionError):
                return

    async def _reconcile(self, proto: _Protocol) -> None:
        """Channels still up after a (re)connect: their earlier events were lost."""
        self._reconcile_seq += 1
        aid = f"textback-reconcile-{self._reconcile_seq}"
        proto.reconcile_id = aid
        try:
            res = await self.send_action({"Action": "CoreShowChannels", "ActionID": aid},
                                         timeout=max(10.0, self.ping_timeout))
        except (AmiError, ConnectionError, asyncio.TimeoutError) as e:
            log.warning("AMI: CoreShowChannels after connect failed (%s): calls already up "
                        "are not tracked", type(e).__name__)
            return
        finally:
            proto.reconcile_id = None
        if isinstance(res, dict):               # a plain Response: Error (permission denied)
            log.warning("AMI: CoreShowChannels refused (%s): give the AMI user read = call "
                        "(and reporting on older Asterisk)", _first(res, "Message"))
            return
        rows = sum(1 for m in res if _first(m, "Event") == "CoreShowChannel")
        log.info("AMI: reconciled %d channel(s) still up", rows)

    # -- panoramisk callbacks (sync, inside data_received: only enqueue) ------------------

    def _on_message(self, manager, message) -> None:
        self._on_frame(message_to_dict(message))

    def _on_frame(self, ev: dict) -> None:
        """An event, as a dict of its own (a fresh frame or a copy), in stream order."""
        try:
            booted = _first(ev, "Event") == "FullyBooted" and self._booted is not None
            if booted:
                self._booted.set()
            self._queue.put_nowait(ev)
            login = self._login_fut
            if (booted and login is not None and login.done() and not login.cancelled()
                    and login.exception() is None and login.result().success):
                # "connected" goes into the queue right behind FullyBooted, in stream order
                self._set_state("connected", f"{self.host}:{self.port}")
        except Exception:       # never let anything escape into panoramisk's read loop
            log.exception("AMI: could not enqueue an event")

    def _on_frames(self, frames: list) -> None:
        """Events of one read, fresh dicts in stream order: one queue item (see _consume).
        A FullyBooted ends its item, so "connected" can follow it in order (_on_frame)."""
        try:
            start = 0
            for i, ev in enumerate(frames):
                if ev.get("Event") == "FullyBooted":
                    if i > start:
                        self._queue.put_nowait(frames[start:i])
                    self._on_frame(ev)
                    start = i + 1
            if start < len(frames):
                self._queue.put_nowait(frames[start:] if start else frames)
        except Exception:       # never let anything escape into panoramisk's read loop
            log.exception("AMI: could not enqueue events")

    def _on_reconcile_row(self, message) -> None:
        try:
            ev = message_to_dict(message)
            ev[RECONCILE_KEY] = "1"
            self._queue.put_nowait(ev)
        except Exception:
            log.exception("AMI: could not enqueue a CoreShowChannel row")

    # -- consumer ---------------------------------------------------------------------------

    async def _consume(self) -> None:
        q = self._queue
        done = 0
        while True:
            item = await q.get()
            if item is _STOP:
                return
            if isinstance(item, _StateChange):
                done += 1
                if self.on_state is None:
                    continue
                try:
                    r = self.on_state(item.state, item.detail)
                    if inspect.isawaitable(r):
                        await r
                except Exception as e:
                    log.error("on_state(%r) raised %s", item.state, type(e).__name__)
                continue
            for ev in (item if item.__class__ is list else (item,)):    # a read's events, or one
                done += 1
                if done % CONSUME_SLICE == 0:
                    # a full queue (or a big read) never makes this wait: let the outbox (and
                    # everything else on the loop) take its turn, or a burst of events starves
                    # the texts it queues
                    await asyncio.sleep(0)
                try:
                    r = self.on_event(ev)
                    if r is not None and inspect.isawaitable(r):
                        await r
                except Exception as e:
                    # name the event and where it failed, not its content (caller numbers)
                    where = "".join(traceback.format_tb(e.__traceback__)[-3:]).rstrip()
                    log.error("event handler raised %s on %s event (Uniqueid %s); event skipped\n%s",
                              type(e).__name__, _first(ev, "Event") or "?",
                              _first(ev, "Uniqueid") or "-", where)

    # -- helpers ------------------------------------------------------------------------------

    def _set_state(self, state: str, detail: str = "") -> None:
        if state == self._state and detail == self._state_detail:
            return
        changed = state != self._state
        self._state, self._state_detail = state, detail
        if changed and self._queue is not None:
            self._queue.put_nowait(_StateChange(state, detail))

    def _close_transport(self) -> None:
        proto = self._protocol
        if proto is not None and not proto.closed:
            proto.transport.close()


def _check_action(action: dict) -> dict:
    if not isinstance(action, dict):
        raise ValueError("an AMI action is a dict of headers")
    out: dict = {}
    name = None
    for k, v in action.items():
        if not isinstance(k, str) or not k or any(c in k for c in ":\r\n "):
            raise ValueError(f"bad AMI header name {k!r}")
        vals = v if isinstance(v, (list, tuple)) else [v]
        for x in vals:
            if "\r" in str(x) or "\n" in str(x):
                raise ValueError(f"AMI header {k} contains a line break (header injection)")
        if k.lower() == "action":
            name = str(v)
        out[k] = [str(x) for x in v] if isinstance(v, (list, tuple)) else str(v)
    if not name:
        raise ValueError("an AMI action needs an 'Action' header")
    if name.lower() == "originate":
        # without Async: true the "successfully queued" reply makes panoramisk raise KeyError
        # and drop the connection; with Async: false it would block Asterisk's session thread
        out = {k: v for k, v in out.items() if k.lower() != "async"}
        out["Async"] = "true"
    return out


def _lost_reason(exc) -> str:
    if isinstance(exc, Message):            # panoramisk passes the Shutdown event itself
        return "Asterisk is shutting down" + (" (restart)" if _first(exc, "Restart") == "True" else "")
    if exc is None:
        return "connection closed"
    return f"connection lost ({exc})"


class _StateChange:
    __slots__ = ("state", "detail")

    def __init__(self, state: str, detail: str):
        self.state, self.detail = state, detail


_STOP = object()
