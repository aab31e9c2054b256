"""The asyncio side of the FreeSWITCH adapter: starts the gevent child
(`python -m pbx_textback.esl`), restarts it with backoff when it dies, hands its events to a
sync callback in stream order, and sends it api/bgapi commands.

After every (re)connect it reconciles: `show channels as json`, whose rows go to `on_event`
as `CHANNEL_RECONCILE` events (with `_reconcile: "1"`), then one `CHANNEL_RECONCILE_DONE`
listing the channel uuids; the FreeSWITCH tracker adopts the rows and ends the calls whose
channels went away while the socket was down. The rows are handed on at the point of the
stream where the reply arrived, so they stay in order with the events around them.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import random
import sys
from typing import Any, Callable

from ..core.pbx.eslframe import strings_only
from ..core.pbx.freeswitch import RECONCILE_DONE, RECONCILE_KEY, RECONCILE_ROW
from .events import DEFAULT_EVENTS, PASSWORD_ENV

log = logging.getLogger("pbx_textback.esl")


class EslError(Exception):
    """FreeSWITCH answered -ERR (or the command was refused before it left)."""


class EslNotConnected(EslError, ConnectionError):
    """Nothing reached FreeSWITCH: not connected, or the connection failed at the write."""


class EslWriteCancelled(EslError):
    """The caller's before_write said no: nothing was written."""


class EslTimeout(EslError, TimeoutError):
    """Written, no answer in time: the command may have run."""


class EslAnswerLost(EslError):
    """Written, then the connection (or the child) died before the answer: it may have run."""


_CHILD_ERRORS = {"not-connected": EslNotConnected, "timeout": EslTimeout, "lost": EslAnswerLost}


class EslChild:
    def __init__(self, host: str, port: int, password: str, *,
                 on_event: Callable[[dict], Any],
                 on_state: Callable[[str, str], Any] | None = None,
                 fmt: str = "json", events: str = DEFAULT_EVENTS,
                 restart_min: float = 0.5, restart_max: float = 30.0,
                 reconnect_min: float = 0.5, reconnect_max: float = 4.0,
                 auth_retry: float = 30.0, connect_timeout: float = 5.0,
                 reconcile: bool = True, python: str | None = None,
                 child_argv: list[str] | None = None):
        self.host, self.port, self._password = host, int(port), password
        self.on_event, self.on_state = on_event, on_state
        self.fmt, self.events = fmt, events
        self.restart_min, self.restart_max = restart_min, restart_max
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.auth_retry, self.connect_timeout = auth_retry, connect_timeout
        self.auto_reconcile = reconcile
        self.python = python or sys.executable
        self.child_argv = child_argv        # tests: a different command line
        self.state = "disconnected"
        self.state_detail = "not started"
        self.starts = 0                      # child processes started
        self.connects = 0                    # "connected" states seen
        self.reconciled = 0                  # reconcile snapshots handed on
        self._proc: asyncio.subprocess.Process | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._reconcile_ids: set[int] = set()
        self._stopping = False
        self._stop_evt: asyncio.Event | None = None

    # -- public ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the child until `stop()`; restart it with backoff whenever it exits."""
        self._stop_evt = asyncio.Event()
        failures = 0
        while not self._stopping:
            rc = await self._run_child()
            if self._stopping:
                break
            delay = min(self.restart_max, self.restart_min * (2 ** failures))
            delay *= random.uniform(0.8, 1.2)
            failures = failures + 1 if self.connects == 0 or rc else 0
            log.warning("ESL child exited (rc %s); restarting in %.1f s", rc, delay)
            self._set_state("disconnected", f"ESL child exited (rc {rc}); restart in {delay:.1f} s")
            try:
                await asyncio.wait_for(self._stop_evt.wait(), delay)
            except asyncio.TimeoutError:
                pass
        self._set_state("disconnected", "stopped")

    async def stop(self) -> None:
        self._stopping = True
        if self._stop_evt is not None:
            self._stop_evt.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()          # the child says `exit` and ends
                await asyncio.wait_for(proc.wait(), 3.0)
            except (asyncio.TimeoutError, ProcessLookupError):
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            except (BrokenPipeError, ConnectionResetError):
                pass

    async def api(self, cmd: str, timeout: float = 5.0, before_write=None) -> str:
        """`api <cmd>` through the child; the body of FreeSWITCH's answer. Raises
        EslNotConnected / EslWriteCancelled (nothing written), EslTimeout / EslAnswerLost (written,
        no answer: it may have run), EslError (a `-ERR` answer). `before_write()`, if given, is
        called after the connection checks and right before the command is written, with no
        await in between; False cancels the command."""
        ok, body = await self._request("api", cmd, timeout, before_write=before_write)
        if not ok:
            raise EslError(body)
        return body

    async def bgapi(self, cmd: str, timeout: float = 5.0) -> str:
        """`bgapi <cmd>`; the Job-UUID (the result comes later as a BACKGROUND_JOB event)."""
        ok, body = await self._request("bgapi", cmd, timeout)
        if not ok:
            raise EslError(body)
        return body

    async def reconcile(self, timeout: float = 10.0) -> int:
        """Ask for `show channels as json`; its rows go to on_event in stream order.
        Returns the number of rows."""
        rid = self._new_id()
        self._reconcile_ids.add(rid)
        try:
            ok, body = await self._request("api", "show channels as json", timeout, rid=rid)
        finally:
            self._reconcile_ids.discard(rid)
        if not ok:
            raise EslError(body)
        return len(_rows(body))

    # -- the child ---------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        if self.child_argv is not None:
            return list(self.child_argv)
        return [self.python, "-m", "pbx_textback.esl", "--host", self.host,
                "--port", str(self.port), "--format", self.fmt, "--events", self.events,
                "--reconnect-min", str(self.reconnect_min),
                "--reconnect-max", str(self.reconnect_max),
                "--auth-retry", str(self.auth_retry),
                "--connect-timeout", str(self.connect_timeout)]

    async def _run_child(self) -> int | None:
        env = dict(os.environ)
        env[PASSWORD_ENV] = self._password
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=None, env=env,
                limit=16 * 1024 * 1024)
        except OSError as e:
            log.error("cannot start the ESL child: %s", e)
            return -1
        self._proc = proc
        self.starts += 1
        log.info("ESL child started (pid %s)", proc.pid)
        try:
            assert proc.stdout is not None
            while True:
                try:
                    line = await proc.stdout.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    log.error("ESL child: a line over the limit: dropped")
                    continue
                if not line:
                    break
                try:
                    await self._line(line)
                except Exception as e:       # one bad line costs that line, never the adapter
                    log.error("ESL child line dropped: %s: %s", type(e).__name__, e)
        finally:
            for fut in self._pending.values():
                if not fut.done():       # it may have written the command before it died
                    fut.set_exception(EslAnswerLost("the ESL child exited before the answer"))
            self._pending.clear()
            if proc.returncode is None:
                try:
                    if proc.stdin is not None:
                        proc.stdin.close()
                    await asyncio.wait_for(asyncio.shield(proc.wait()), 2.0)
                except (asyncio.TimeoutError, asyncio.CancelledError, OSError):
                    try:
                        proc.kill()
                    except ProcessLookupError:
                        pass
            rc = await proc.wait()
            self._proc = None
        return rc

    async def _line(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            log.error("ESL child wrote a line that is not JSON: dropped")
            return
        if not isinstance(msg, dict):
            log.error("ESL child wrote a line that is not an object: dropped")
            return
        t = msg.get("type")
        if t == "event":
            ev = msg.get("event")
            if isinstance(ev, dict):
                # an event-json body comes as FreeSWITCH wrote it: its values made strings
                # here, as the framing made them (a list hint only when there may be lists)
                strings_only(ev, line.decode("utf-8", "replace") if b"[" in line else "")
                await self._deliver(ev)
        elif t == "state":
            st, detail = str(msg.get("state", "")), str(msg.get("detail", ""))
            self._set_state(st, detail)
            if st == "connected":
                self.connects += 1
                if self.auto_reconcile:
                    asyncio.get_running_loop().create_task(self._auto_reconcile())
        elif t == "reply":
            rid = msg.get("id")
            if rid in self._reconcile_ids and msg.get("ok"):
                # hand the snapshot on HERE, in order with the events around it
                rows = _rows(str(msg.get("body", "")))
                for row in rows:
                    ev = dict(row)
                    ev["Event-Name"] = RECONCILE_ROW
                    ev[RECONCILE_KEY] = "1"
                    await self._deliver(ev)
                await self._deliver({"Event-Name": RECONCILE_DONE, RECONCILE_KEY: "1",
                                     "Channel-UUIDs": ",".join(str(r.get("uuid", ""))
                                                               for r in rows)})
                self.reconciled += 1
            fut = self._pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result((bool(msg.get("ok")), str(msg.get("body", "")),
                                str(msg.get("error") or "")))
            elif fut is None and rid is not None:
                # the answer to a command we stopped waiting for: log what became of it
                log.warning("ESL: late answer to command %s (%s): %s", rid,
                            "ok" if msg.get("ok") else "error", str(msg.get("body", ""))[:120])

    async def _deliver(self, ev: dict) -> None:
        try:
            r = self.on_event(ev)
            if inspect.isawaitable(r):
                await r
        except Exception as e:
            log.error("ESL event handler raised %s on %s event (Unique-ID %s); event skipped",
                      type(e).__name__, ev.get("Event-Name", "?"), ev.get("Unique-ID", "-"))

    async def _auto_reconcile(self) -> None:
        try:
            n = await self.reconcile()
            log.info("ESL: reconciled %d channel(s) up after connect", n)
        except (EslError, asyncio.TimeoutError) as e:
            log.warning("ESL: show channels after connect failed (%s): calls already up are "
                        "not tracked", e or type(e).__name__)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def _request(self, cmd: str, args: str, timeout: float, rid: int | None = None,
                       before_write=None):
        proc = self._proc
        if proc is None or proc.stdin is None or self.state != "connected":
            raise EslNotConnected(f"not connected to FreeSWITCH ({self.state})")
        if "\n" in args or "\r" in args:
            raise ValueError("an ESL command must be one line")
        rid = rid if rid is not None else self._new_id()
        fut = asyncio.get_running_loop().create_future()
        line = json.dumps({"id": rid, "cmd": cmd, "args": args, "timeout": timeout}).encode()
        if before_write is not None and not before_write():
            raise EslWriteCancelled("held at the last look: not written")
        self._pending[rid] = fut
        try:
            proc.stdin.write(line + b"\n")
            await proc.stdin.drain()
            # the child times the command itself and answers "timeout" first; this is for a
            # child that hangs
            ok, body, error = await asyncio.wait_for(fut, timeout + 2.0)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise EslNotConnected("the ESL child is gone") from e
        except asyncio.TimeoutError as e:
            raise EslTimeout(f"no answer from the ESL child within {timeout + 2.0:g} s") from e
        finally:
            self._pending.pop(rid, None)
        if error in _CHILD_ERRORS:
            raise _CHILD_ERRORS[error](body)
        return ok, body

    def _set_state(self, state: str, detail: str = "") -> None:
        changed = state != self.state
        self.state, self.state_detail = state, detail
        if changed or state == "auth-failed":
            if self.on_state is not None:
                try:
                    self.on_state(state, detail)
                except Exception as e:
                    log.error("on_state(%r) raised %s", state, type(e).__name__)


def _rows(body: str) -> list[dict]:
    """The rows of `show channels as json` (`{"row_count": N, "rows": [{...}, ...]}`), each a
    dict of strings; anything else in the answer is no row (`{"rows": 5}` once stopped the
    whole service)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return []
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        if rows is not None:
            log.warning("ESL: `show channels as json` answered rows of type %s: ignored",
                        type(rows).__name__)
        return []
    return [{str(k): _text(v) for k, v in r.items()} for r in rows if isinstance(r, dict)]


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    try:
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    except (ValueError, RecursionError):
        return ""
