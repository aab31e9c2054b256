"""Desk-phone feature codes: a FastAGI server on panoramisk 1.4's `fast_agi.Application`, and
the same features for FreeSWITCH's CUSTOM `textback::feature` event.

    *88  AGI(agi://127.0.0.1:4573/callback,PJSIP/100)   call back the oldest missed caller
                                                        still waiting: ring PJSIP/100, then
                                                        the caller (AMI Originate, Async)
    *89  AGI(agi://127.0.0.1:4573/textagain,PJSIP/100)  text the last missed caller again

Every name shared with the dialplan lives in `core.pbx.dialplan_vars`. Every answer goes back on
the AGI channel as `TEXTBACK_RESULT` (calling | queued | none | failed) + `TEXTBACK_REASON`,
and every refusal is one log line.

panoramisk's sharp edges handled here (LIBRARY-NOTES):
- its `Application.handler` reads the AGI header with `while b'\\n\\n' not in buffer: buffer +=
  await reader.read(100)`: on EOF `read()` returns b'' at once, forever, and the loop never
  yields again. `_GuardedApplication.handler` reads the header with `readuntil` (EOF ->
  IncompleteReadError), a size limit and a timeout, and decodes it with errors='replace';
- a plain-function route is wrapped with `asyncio.coroutine` (gone in 3.11): routes are async;
- routes match `agi_network_script` exactly: values go as AGI arguments (`agi_arg_N`);
- `Request.send_command` raises ValueError when the peer closed (it parses b'' as a code):
  `_Agi.command` turns that, a `HANGUP` line and a timeout into `AgiGone`.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections import OrderedDict
from typing import Any, Awaitable, Callable

from panoramisk import fast_agi

from ..core.pbx import dialplan_vars as dv
from ..core.pbx import originate as og
from ..store import callbacks as cbs
from ..store import deskphones as sd
from ..store.db import Store

log = logging.getLogger("pbx_textback.fastagi")

_AST_ENDPOINT = re.compile(r"^[A-Za-z0-9_]{1,20}/[A-Za-z0-9_.@+-]{1,80}$")
_FS_ENDPOINT = re.compile(r"^user/[A-Za-z0-9_.+-]{1,80}@[A-Za-z0-9_.-]{1,120}$")
_CHAN_SUFFIX = re.compile(r"-[0-9a-fA-F]{6,}(;\d)?$")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.:-]")


class AgiGone(Exception):
    """The AGI peer hung up, closed the socket, or stopped answering."""


def parse_agi_header(raw: bytes, encoding: str = "utf-8") -> "OrderedDict[str, str]":
    """`agi_x: value` lines up to the blank line, as Asterisk's setup_env writes them."""
    text = raw.decode(encoding, errors="replace")
    out: OrderedDict[str, str] = OrderedDict()
    for line in text.split("\n"):
        line = line.rstrip("\r")
        key, sep, value = line.partition(": ")
        if sep and key:
            out[key] = value
    return out


class _GuardedApplication(fast_agi.Application):
    """panoramisk's Application with a header read that cannot freeze the loop."""

    header_timeout = 5.0          # Asterisk writes the whole header at once
    max_header = 16384            # the StreamReader limit start() passes

    def __init__(self, **kw):
        super().__init__(**kw)
        self.active = 0

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        peer = writer.get_extra_info("peername")
        self.active += 1
        try:
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\n\n"), self.header_timeout)
            except asyncio.IncompleteReadError:
                log.warning("FastAGI: %r closed in the middle of the AGI header", peer)
                return
            except asyncio.LimitOverrunError:
                log.warning("FastAGI: %r sent over %d bytes without ending the AGI header",
                            peer, self.max_header)
                return
            except asyncio.TimeoutError:
                log.warning("FastAGI: %r sent no complete AGI header within %.0f s",
                            peer, self.header_timeout)
                return
            except (ConnectionError, OSError) as e:
                log.warning("FastAGI: %r: %s while reading the AGI header", peer, e)
                return
            headers = parse_agi_header(raw, self.default_encoding)
            script = headers.get("agi_network_script")
            route = self._route.get(script) if script is not None else None
            if route is None:
                log.error("FastAGI: %r asked for %s: no such script (have: %s)", peer,
                          repr(script) if script is not None else "no agi_network_script",
                          ", ".join(self._route))
                return
            request = fast_agi.Request(app=self, headers=headers, reader=reader, writer=writer,
                                       encoding=self.default_encoding)
            try:
                await route(request)
            except AgiGone as e:
                log.info("FastAGI %s: the channel went away (%s)", script, e)
            except Exception:
                log.exception("FastAGI %s: the handler failed", script)
        finally:
            self.active -= 1
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


class _Agi:
    """AGI commands on one request, each answered or AgiGone."""

    def __init__(self, request: fast_agi.Request, timeout: float = 10.0):
        self.request = request
        self.timeout = timeout
        self.gone = False

    async def command(self, line: str) -> dict:
        if self.gone:
            raise AgiGone("already gone")
        if "\n" in line or "\r" in line:
            raise ValueError("newline in an AGI command")
        try:
            res = await asyncio.wait_for(self.request.send_command(line), self.timeout)
        except asyncio.TimeoutError:
            self.gone = True
            raise AgiGone(f"no answer to {line.split()[0]} within {self.timeout:.0f} s") from None
        except (ValueError, ConnectionError, OSError) as e:   # b'' parsed as a code: EOF
            self.gone = True
            raise AgiGone(f"connection closed ({type(e).__name__})") from None
        if res.get("error") == "AGIResultHangup":
            self.gone = True
            raise AgiGone("HANGUP")
        if res.get("status_code") != 200:
            log.warning("FastAGI: %s answered %s", line.split()[0], res.get("status_code"))
        return res

    async def set_var(self, name: str, value: str) -> None:
        await self.command(f'SET VARIABLE {name} "{_quote(value)}"')

    async def verbose(self, text: str) -> None:
        await self.command(f'VERBOSE "{_quote(text)}" 1')

    async def answer(self, result: str, reason: str = "", number: str = "") -> None:
        await self.set_var(dv.VAR_RESULT, result)
        await self.set_var(dv.VAR_REASON, reason)
        if number:
            await self.set_var(dv.VAR_NUMBER, number)
        await self.verbose(f"textback: {result}{' ' + reason if reason else ''}")


def _quote(value: str) -> str:
    return value.replace("\\", "").replace('"', "").replace("\n", " ").replace("\r", " ")


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _agi_endpoint(headers: dict) -> str:
    """The desk phone to ring: agi_arg_1 (PJSIP/100), else the AGI channel's own name."""
    ep = (headers.get(dv.AGI_ARG_ENDPOINT) or "").strip()
    if not ep:
        ep = _CHAN_SUFFIX.sub("", headers.get("agi_channel", "").strip())
    return ep if _AST_ENDPOINT.match(ep) else ""


def _originate_ok(res: Any) -> tuple[bool, str]:
    """AmiSource.send_action's answer to an Async Originate: [Response, OriginateResponse]."""
    frames = res if isinstance(res, list) else [res]
    frames = [f for f in frames if isinstance(f, dict)]
    final = [f for f in frames if f.get("Event") == "OriginateResponse"]
    f = final[-1] if final else (frames[-1] if frames else {})
    ok = str(f.get("Response", "")).lower() == "success"
    detail = f.get("Reason") or f.get("Message") or f.get("Response") or ""
    return ok, str(detail)


class FeatureCodes:
    """The *88 / *89 feature codes (FastAGI for Asterisk, ESL events for FreeSWITCH).

    originate: an async callable taking an AMI action dict (AmiSource.send_action).
    queue_text: `queue_text(peer=, line=, kind="manual", body=) -> message id` (sync or async);
        compliance gates (opt-out, quiet hours) apply when the outbox sends it.
    clock: `clock() -> float` (epoch seconds).
    esl_api: for FreeSWITCH, an async callable taking an API command line (bgapi originate).
    is_opted_out: optional `is_opted_out(peer) -> bool`, refuses *89 up front.
    dial_number: the caller's number as the PBX dials it from `dial_context` (default: as
        stored, E.164).
    """

    def __init__(self, store: Store, *, originate: Callable[[dict], Awaitable],
                 queue_text: Callable[..., int], clock: Callable[[], float],
                 callback_window_hours: float = 24, dial_context: str = "from-internal",
                 dial_number: Callable[[str], str] | None = None, ring_timeout_s: int = 30,
                 originate_delay_s: float = 0.5, textagain_body: str = (
                     "Sorry we missed your call. Reply here or call us back."),
                 retext_guard_s: float = 300, is_opted_out: Callable[[str], bool] | None = None,
                 esl_api: Callable[[str], Awaitable] | None = None,
                 fs_context: str = "default", fs_originate_delay_s: float = 2.0):
        self.store = store
        self._originate = originate
        self._queue_text = queue_text
        self._clock = clock
        self.window_s = callback_window_hours * 3600
        self.dial_context = dial_context
        self._dial_number = dial_number or (lambda n: n)
        self.ring_timeout_s = ring_timeout_s
        self.originate_delay_s = originate_delay_s
        self.textagain_body = textagain_body
        self.retext_guard_s = retext_guard_s
        self._is_opted_out = is_opted_out
        self._esl_api = esl_api
        self.fs_context = fs_context
        self.fs_originate_delay_s = fs_originate_delay_s
        self._server: asyncio.base_events.Server | None = None
        self._app: _GuardedApplication | None = None
        self._tasks: set[asyncio.Task] = set()
        # the calls we originated: their call id (the channel id we gave) -> the number called
        self._calling: OrderedDict[str, str] = OrderedDict()

    # ---- server ---------------------------------------------------------------------------
    async def start(self, host: str = dv.AGI_HOST, port: int = dv.AGI_PORT) -> int:
        """Listen for FastAGI; returns the bound port (pass port=0 for any free one)."""
        app = _GuardedApplication(loop=asyncio.get_running_loop())
        app.add_route(dv.AGI_CALLBACK, self._agi_callback)
        app.add_route(dv.AGI_TEXTAGAIN, self._agi_textagain)
        self._app = app
        self._server = await asyncio.start_server(app.handler, host, port,
                                                  limit=_GuardedApplication.max_header)
        bound = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI feature codes listening on %s:%d (%s, %s)", host, bound,
                 dv.AGI_CALLBACK, dv.AGI_TEXTAGAIN)
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for the originates started so far (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ---- the features, PBX-neutral ----------------------------------------------------------
    def _claim_callback(self, endpoint: str, feature: str):
        return cbs.claim_oldest_waiting(self.store, endpoint=endpoint, now=self._clock(),
                                        window_s=self.window_s, feature=feature)

    async def _text_again(self, who: str) -> tuple[str, str, str]:
        """(result, reason, number) for *89."""
        now = self._clock()
        call = cbs.last_missed(self.store, now=now, window_s=self.window_s)
        if call is None:
            log.info("%s from %s: refused, %s", dv.FEATURE_TEXTAGAIN, who, dv.REASON_NOBODY)
            return dv.RESULT_NONE, dv.REASON_NOBODY, ""
        if self._is_opted_out is not None and self._is_opted_out(call.caller):
            log.info("%s from %s: refused for call %s, %s", dv.FEATURE_TEXTAGAIN, who,
                     call.call_id, dv.REASON_OPTED_OUT)
            return dv.RESULT_NONE, dv.REASON_OPTED_OUT, ""
        if cbs.manual_text_since(call.caller, now - self.retext_guard_s):
            log.info("%s from %s: refused for call %s, %s (within %.0f s)", dv.FEATURE_TEXTAGAIN,
                     who, call.call_id, dv.REASON_JUST_TEXTED, self.retext_guard_s)
            return dv.RESULT_NONE, dv.REASON_JUST_TEXTED, ""
        body = cbs.last_text_body(call) or self.textagain_body
        res = self._queue_text(peer=call.caller, line=call.line, kind="manual", body=body)
        if inspect.isawaitable(res):
            res = await res
        log.info("%s from %s: text %s queued for call %s", dv.FEATURE_TEXTAGAIN, who, res,
                 call.call_id)
        return dv.RESULT_QUEUED, "", _digits(call.caller)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_originate(self, cb_id: int, call_id: str, send: Callable[[], Awaitable],
                             delay: float, check: Callable[[Any], tuple[bool, str]]) -> None:
        try:
            await asyncio.sleep(delay)
            try:
                res = await send()
            except asyncio.CancelledError:
                raise
            except Exception as e:                       # not connected, lost, timeout
                ok, detail = False, f"{type(e).__name__}: {e}"
            else:
                ok, detail = check(res)
                if ok and check is _fs_ok:       # +OK <uuid>: the call the timeline follows
                    sd.note_channel(self.store, cb_id, og.fs_result(res)[2])
            cbs.finish_callback(self.store, cb_id, cbs.CONNECTED if ok else cbs.FAILED,
                                now=self._clock(), detail="" if ok else detail)
            if ok:
                log.info("%s: call back of call %s connected", dv.FEATURE_CALLBACK, call_id)
            else:
                log.warning("%s: call back of call %s failed (%s); the caller is waiting again",
                            dv.FEATURE_CALLBACK, call_id, detail)
        except asyncio.CancelledError:
            cbs.finish_callback(self.store, cb_id, cbs.FAILED, now=self._clock(),
                                detail="service stopped before the originate")
            raise

    def called_back(self, call_id: str) -> str:
        """The number a call we originated (*88) went to, by the call's id; "" if not ours."""
        return self._calling.get(call_id, "")

    def _remember_calling(self, channel_id: str, number: str) -> None:
        self._calling[channel_id] = number
        while len(self._calling) > 1000:
            self._calling.popitem(last=False)

    def originate_action(self, endpoint: str, call, channel_id: str = "") -> dict:
        """The Originate for a call back. `ChannelId` (Asterisk 12+) sets the originated
        channel's Uniqueid, which becomes the call's Linkedid: the service knows the call it
        made, and whom it called, when the tracker decides it."""
        number = call.caller
        channel_id = channel_id or f"textback-cb-{_SAFE_ID.sub('', call.call_id)}-{self._clock():.0f}"
        self._remember_calling(channel_id, number)
        return og.ami_originate(endpoint, self.dial_context, number, ring_seconds=self.ring_timeout_s,
                                exten=self._dial_number(number), extra={
                                    "ChannelId": channel_id,
                                    "Variable": f"{dv.VAR_CALLBACK}={_SAFE_ID.sub('', call.call_id)}"})

    def fs_originate_command(self, endpoint: str, call) -> str:
        return og.fs_originate(endpoint, self.fs_context, call.caller, ring_seconds=self.ring_timeout_s,
                               exten=self._dial_number(call.caller),
                               extra_vars=(f"{dv.FS_VAR_CALLBACK}={_SAFE_ID.sub('', call.call_id)}",))

    # ---- Asterisk: FastAGI routes ------------------------------------------------------------
    async def _agi_callback(self, request: fast_agi.Request) -> None:
        agi = _Agi(request)
        endpoint = _agi_endpoint(request.headers)
        if not endpoint:
            log.info("%s: refused, %s (agi_arg_1 %r)", dv.FEATURE_CALLBACK, dv.REASON_BAD_ENDPOINT,
                     request.headers.get(dv.AGI_ARG_ENDPOINT, "")[:40])
            await agi.answer(dv.RESULT_NONE, dv.REASON_BAD_ENDPOINT)
            return
        try:
            claimed = self._claim_callback(endpoint, dv.FEATURE_CALLBACK)
        except Exception:
            log.exception("%s from %s: the store failed", dv.FEATURE_CALLBACK, endpoint)
            await agi.answer(dv.RESULT_FAILED, dv.REASON_ERROR)
            return
        if claimed is None:
            log.info("%s from %s: refused, %s", dv.FEATURE_CALLBACK, endpoint, dv.REASON_NOBODY)
            await agi.answer(dv.RESULT_NONE, dv.REASON_NOBODY)
            return
        call, cb = claimed
        log.info("%s from %s: calling back call %s", dv.FEATURE_CALLBACK, endpoint, call.call_id)
        action = self.originate_action(endpoint, call)
        sd.note_channel(self.store, cb.id, action["ChannelId"])     # its result on the timeline
        try:
            digits = _digits(call.caller)
            await agi.answer(dv.RESULT_CALLING, "", digits)
            await agi.command(f'SAY DIGITS {digits} ""')
            await agi.command('STREAM FILE beep ""')
            await agi.command("HANGUP")          # the phone must be free before we ring it
        finally:
            # claimed = pressed: ring the phone even when it hung up during the digits
            self._spawn(self._run_originate(cb.id, call.call_id,
                                            lambda: self._originate(action),
                                            self.originate_delay_s, _originate_ok))

    async def _agi_textagain(self, request: fast_agi.Request) -> None:
        agi = _Agi(request)
        who = _agi_endpoint(request.headers) or "an unknown phone"
        try:
            result, reason, number = await self._text_again(who)
        except Exception:
            log.exception("%s from %s: failed", dv.FEATURE_TEXTAGAIN, who)
            result, reason, number = dv.RESULT_FAILED, dv.REASON_ERROR, ""
        await agi.answer(result, reason, number)

    # ---- FreeSWITCH: CUSTOM textback::feature events -----------------------------------------
    async def handle_esl_event(self, ev: dict) -> str | None:
        """Act on one ESL event (header dict). Returns the TEXTBACK_RESULT-style outcome for a
        `textback::feature` event, None for any other event."""
        if ev.get("Event-Subclass") != dv.FS_FEATURE_SUBCLASS:
            return None
        feature = ev.get(dv.FS_H_FEATURE, "")
        endpoint = ev.get(dv.FS_H_ENDPOINT, "").strip()
        who = endpoint if _FS_ENDPOINT.match(endpoint) else ""
        if feature == dv.FS_FEATURE_TEXTAGAIN:
            try:
                return (await self._text_again(who or "an unknown phone"))[0]
            except Exception:
                log.exception("%s (FreeSWITCH): failed", dv.FEATURE_TEXTAGAIN)
                return dv.RESULT_FAILED
        if feature != dv.FS_FEATURE_CALLBACK:
            log.warning("FreeSWITCH %s: unknown %s %r", dv.FS_FEATURE_SUBCLASS, dv.FS_H_FEATURE,
                        feature[:40])
            return dv.RESULT_NONE
        if not who or self._esl_api is None:
            log.info("%s (FreeSWITCH): refused, %s", dv.FEATURE_CALLBACK,
                     dv.REASON_BAD_ENDPOINT if not who else "no ESL command channel")
            return dv.RESULT_NONE
        try:
            claimed = self._claim_callback(who, dv.FEATURE_CALLBACK)
        except Exception:
            log.exception("%s from %s: the store failed", dv.FEATURE_CALLBACK, who)
            return dv.RESULT_FAILED
        if claimed is None:
            log.info("%s from %s: refused, %s", dv.FEATURE_CALLBACK, who, dv.REASON_NOBODY)
            return dv.RESULT_NONE
        call, cb = claimed
        log.info("%s from %s: calling back call %s", dv.FEATURE_CALLBACK, who, call.call_id)
        cmd = self.fs_originate_command(who, call)
        api = self._esl_api
        self._spawn(self._run_originate(cb.id, call.call_id, lambda: api(cmd),
                                        self.fs_originate_delay_s, _fs_ok))
        return dv.RESULT_CALLING


def _fs_ok(res: Any) -> tuple[bool, str]:
    """`originate` answers `+OK <uuid>` or `-ERR <CAUSE>` (as text or in a reply dict's body)."""
    text = res.get("body", res.get("Reply-Text", "")) if isinstance(res, dict) else str(res or "")
    text = str(text).strip()
    return text.startswith("+OK"), text[:200]
