"""A loopback FreeSWITCH event socket that plays recorded ESL traces
(tests/fixtures/freeswitch/*.esl: the exact bytes FreeSWITCH sent on one connection).

Used by the integration tests and `pbx-textback demo --pbx freeswitch`. Like FreeSWITCH:
`Content-Type: auth/request` on connect; `auth <password>` -> `+OK accepted`, or
`-ERR invalid` and the connection closed; anything before auth -> `-ERR command not found`
(FreeSWITCH answers so); `event plain|json ...` -> `+OK event listener enabled plain|json`,
then the traces play; `api <cmd>` -> an `api/response` (canned replies by command; `show
channels as json` lists the channels created and not yet destroyed in what was played); `bgapi` -> `+OK Job-UUID: ...`,
then a BACKGROUND_JOB event (to a connection subscribed to it) carrying the answer `api` would give;
`exit` -> `+OK bye`, a disconnect notice, close.

What it plays: each trace's frames after the recorded `+OK event listener enabled` reply,
without the recorded `+OK bye` and disconnect notice, byte for byte, and like FreeSWITCH
only the events the connection subscribed to (`event plain CHANNEL_CREATE ... CUSTOM a::b`:
names, then after `CUSTOM` the subclasses; `ALL` is everything; `event` commands add up). The
traces were recorded with `event plain ALL`. A plain subscription gets the plain traces, a
json one the json traces (`*.json.esl`), unless `traces` mixes them on purpose. One server-wide cursor: a new connection goes on with the next trace.
`close_after` closes the socket once, after that many recorded frames of a connection (sent
or filtered out: a FreeSWITCH restart in the middle of a call); `close_after_each` after each
trace. `api_replies` answers by the whole command or by its first word (`"chat": "Sent"`);
`api_hold` lists first words whose api commands are read and never answered (FreeSWITCH
busy or going down) until the connection closes.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from urllib.parse import unquote

log = logging.getLogger("pbx_textback.esl.replay")

_HDR_END = re.compile(rb"\n\n")
_CL = re.compile(rb"^Content-Length: (\d+)$", re.M)


def split_frames(data: bytes) -> list[bytes]:
    """The outer frames of a recorded stream, byte for byte (header block + body)."""
    out, pos = [], 0
    while pos < len(data):
        m = _HDR_END.search(data, pos)
        if m is None:
            break
        head = data[pos:m.end()]
        cl = _CL.search(head)
        end = m.end() + (int(cl.group(1)) if cl else 0)
        out.append(data[pos:end])
        pos = end
    return out


def trace_frames(data: bytes) -> list[bytes]:
    """The event frames of a trace: after the `+OK event listener enabled` reply, without
    the trailing `+OK bye` reply and the disconnect notice."""
    frames = split_frames(data)
    start = next((i + 1 for i, f in enumerate(frames)
                  if b"Reply-Text: +OK event listener enabled" in f), 0)
    frames = frames[start:]
    while frames and (b"Content-Type: command/reply" in frames[-1].split(b"\n\n", 1)[0]
                      or b"text/disconnect-notice" in frames[-1].split(b"\n\n", 1)[0]):
        frames.pop()
    return frames


def rewrite_events(data: bytes, change) -> bytes:
    """A recorded stream with each event frame's body passed through `change(body) -> body`
    and its Content-Length made right again (tests, benchmarks: same traffic, other values)."""
    out = []
    for fr in split_frames(data):
        head, sep, body = fr.partition(b"\n\n")
        if b"Content-Type: text/event-" in head:
            body = change(body)
            head = b"\n".join(b"Content-Length: %d" % len(body)
                               if ln.startswith(b"Content-Length:") else ln
                               for ln in head.split(b"\n"))
        out.append(head + sep + body)
    return b"".join(out)


_TIMES = re.compile(rb'((?:^|")(?:Event-Date-Timestamp|Caller-Channel-[A-Za-z-]+-Time)'
                    rb'(?:: |":"))(\d{13,19})', re.M)


def shift_times(data: bytes, seconds: float) -> bytes:
    """The stream as if it happened `seconds` later: every microsecond timestamp moved (plain
    and json; a zero, i.e. "never", stays zero)."""
    us = int(seconds * 1_000_000)
    return rewrite_events(data, lambda b: _TIMES.sub(
        lambda m: m.group(1) + str(int(m.group(2)) + us).encode(), b))


def _reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def background_job(fmt: str, job: str, cmdline: str, answer: str) -> bytes:
    """The BACKGROUND_JOB event that carries a bgapi command's answer (`+OK <uuid>`, `-ERR
    NO_ANSWER`) in its body, plain (URL-encoded values, inner Content-Length) or json (`_body`)."""
    from urllib.parse import quote
    name, _, arg = cmdline.partition(" ")
    headers = {"Job-UUID": job, "Job-Command": name, "Job-Command-Arg": arg,
               "Event-Name": "BACKGROUND_JOB", "Core-UUID": "3150d247-a4e5-43ca-9e0c-23f8f87ad02e",
               "Event-Calling-Function": "api_exec"}
    if fmt == "json":
        inner = json.dumps({**headers, "Content-Length": str(len(answer.encode())), "_body": answer}, separators=(",", ":")).encode()
        ctype = b"text/event-json"
    else:
        body = answer.encode()
        inner = ("".join(f"{k}: {quote(v, safe='/+')}\n" for k, v in headers.items())
                 + f"Content-Length: {len(body)}\n\n").encode() + body
        ctype = b"text/event-plain"
    return b"Content-Length: %d\nContent-Type: %s\n\n" % (len(inner), ctype) + inner


def _api(body: str) -> bytes:
    b = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(b) + b


_PLAIN_ID = re.compile(rb"^Unique-ID: (\S+)$", re.M)
_PLAIN_NAME = re.compile(rb"^Event-Name: (\w+)$", re.M)
_PLAIN_CHAN = re.compile(rb"^Channel-Name: (\S+)$", re.M)
_JSON_ID = re.compile(rb'"Unique-ID":"([^"]+)"')
_JSON_NAME = re.compile(rb'"Event-Name":"(\w+)"')
_JSON_CHAN = re.compile(rb'"Channel-Name":"([^"]+)"')
_PLAIN_SUB = re.compile(rb"^Event-Subclass: (\S+)$", re.M)
_JSON_SUB = re.compile(rb'"Event-Subclass":"([^"]+)"')


class Subscription:
    """What one connection asked for with `event <fmt> ...`, as mod_event_socket reads it."""

    def __init__(self):
        self.all = False
        self.names: set[str] = set()
        self.subclasses: set[str] = set()

    def add(self, words: list[str]) -> None:
        custom = False
        for w in words:
            if custom:
                self.subclasses.add(w)
            elif w == "ALL":
                self.all = True
            else:
                self.names.add(w)
                custom = custom or w == "CUSTOM"

    def wants(self, frame: bytes) -> bool:
        head, _, body = frame.partition(b"\n\n")
        if b"text/event-" not in head:
            return True
        if self.all:
            return True
        name, _, _ = _frame_channel(frame)
        if name not in self.names:
            return False
        if name != "CUSTOM":
            return True
        m = (_JSON_SUB if b"text/event-json" in head else _PLAIN_SUB).search(body)
        sub = unquote(m.group(1).decode("utf-8", "replace")) if m else ""
        return not sub or sub in self.subclasses


def _frame_channel(frame: bytes) -> tuple[str, str, str]:
    """(Event-Name, Unique-ID, Channel-Name) of an event frame, without parsing it all."""
    head, _, body = frame.partition(b"\n\n")
    if b"text/event-json" in head:
        rx = (_JSON_NAME, _JSON_ID, _JSON_CHAN)
    else:
        rx = (_PLAIN_NAME, _PLAIN_ID, _PLAIN_CHAN)
    out = []
    for r in rx:
        m = r.search(body)
        out.append(m.group(1).decode("utf-8", "replace") if m else "")
    return out[0], out[1], out[2]


_DISCONNECT = (b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
               b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n")


class EslReplayServer:
    def __init__(self, traces: list, *, password: str = "ClueCon", host: str = "127.0.0.1",
                 port: int = 0, pace: float = 0.0, loop: bool = False,
                 close_after: int | None = None, close_after_each: bool = False,
                 api_replies: dict[str, str] | None = None, api_hold=(), chunk: int = 0):
        self.traces = [Path(t) for t in traces]
        self.password, self.host, self.port = password, host, port
        self.pace, self.loop = float(pace), loop
        self.close_after, self.close_after_each = close_after, close_after_each
        self.api_replies = dict(api_replies or {})
        self.api_hold = set(api_hold)
        self.held: list[str] = []           # api commands read and never answered
        self._live: dict[str, str] = {}     # channels up in what was played (uuid -> name)
        self.chunk = chunk
        raw = [(p, p.read_bytes()) for p in self.traces]
        self._plain = [trace_frames(d) for p, d in raw if not p.name.endswith(".json.esl")]
        self._json = [trace_frames(d) for p, d in raw if p.name.endswith(".json.esl")]
        self._cursor = {"plain": 0, "json": 0}
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self.idle = asyncio.Event()
        self.connections = 0
        self.auths = 0
        self.failed_auths = 0
        self.subscriptions = 0
        self.frames_sent = 0
        self.commands: list[str] = []
        self._jobs = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("ESL replay server on %s:%s, %d trace(s)", self.host, self.port,
                 len(self.traces))
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._server = None

    async def wait_idle(self) -> None:
        await self.idle.wait()

    def close_connections(self) -> None:
        for w in list(self._writers):
            w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        authed = False
        player: asyncio.Task | None = None
        sub = Subscription()
        fmt = "plain"
        lock = asyncio.Lock()

        async def send(data: bytes, chunk: int = 0) -> None:
            async with lock:            # whole frames only: replies never land mid-frame
                if not chunk:
                    writer.write(data)
                    await writer.drain()
                    return
                for k in range(0, len(data), chunk):
                    writer.write(data[k:k + chunk])
                    await writer.drain()
                    await asyncio.sleep(0)

        try:
            await send(b"Content-Type: auth/request\n\n")
            while True:
                try:
                    raw = await reader.readuntil(b"\n\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    break
                cmd = raw.decode("utf-8", "replace").strip()
                self.commands.append(cmd if not cmd.startswith("auth ") else "auth ***")
                if cmd.startswith("auth "):
                    if cmd[5:] == self.password:
                        authed = True
                        self.auths += 1
                        await send(_reply("+OK accepted"))
                    else:
                        self.failed_auths += 1
                        await send(_reply("-ERR invalid"))
                        await send(_DISCONNECT)
                        break
                elif not authed:
                    await send(_reply("-ERR command not found"))
                elif cmd.startswith("event "):
                    words = cmd.split()[1:]
                    fmt = words[0] if words else "plain"
                    fmt = "json" if fmt == "json" else "plain"
                    sub.add(words[1:])
                    self.subscriptions += 1
                    await send(_reply(f"+OK event listener enabled {fmt}"))
                    if player is None:
                        player = asyncio.create_task(self._play(send, writer, fmt, sub))
                        self._tasks.add(player)
                elif cmd.startswith("api ") and cmd[4:].split(" ", 1)[0] in self.api_hold:
                    self.held.append(cmd[4:])      # read, never answered
                elif cmd.startswith("api "):
                    async with lock:     # answered at this point of the stream
                        writer.write(_api(self._api(cmd[4:].strip())))
                    await writer.drain()
                elif cmd.startswith("bgapi "):
                    self._jobs += 1
                    job = f"00000000-0000-4000-8000-{self._jobs:012d}"
                    await send(f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}"
                               f"\nJob-UUID: {job}\n\n".encode())
                    # then, as FreeSWITCH does, the command's answer as a BACKGROUND_JOB event
                    job_event = background_job(fmt, job, cmd[6:].strip(), self._api(cmd[6:].strip()))
                    if sub.wants(job_event):
                        await send(job_event)
                elif cmd == "exit":
                    await send(_reply("+OK bye"))
                    await send(_DISCONNECT)
                    break
                else:
                    await send(_reply("-ERR command not found"))
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            if player is not None:
                player.cancel()
            self._writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass
            self._tasks.discard(task)

    def _api(self, cmd: str) -> str:
        if cmd in self.api_replies:
            return self.api_replies[cmd]
        if cmd.split(" ", 1)[0] in self.api_replies:
            return self.api_replies[cmd.split(" ", 1)[0]]
        if cmd == "show channels as json":
            # like FreeSWITCH: the channels up now, i.e. created and not destroyed in what
            # was played so far
            if not self._live:
                return '{"row_count":0}'
            rows = [{"uuid": u, "name": n, "call_uuid": u} for u, n in self._live.items()]
            return json.dumps({"row_count": len(rows), "rows": rows})
        return "-ERR command not found\n"

    def _track(self, frame: bytes) -> None:
        name, uid, chan = _frame_channel(frame)
        if not uid:
            return
        if name == "CHANNEL_DESTROY":
            self._live.pop(uid, None)
        elif name in ("CHANNEL_CREATE", "CHANNEL_OUTGOING", "CHANNEL_ORIGINATE"):
            self._live.setdefault(uid, chan)

    async def _play(self, send, writer, fmt: str, sub: Subscription) -> None:
        traces = self._json if fmt == "json" else self._plain
        if not traces:                 # only the other format recorded: play that
            fmt = "plain" if fmt == "json" else "json"
            traces = self._json if fmt == "json" else self._plain
        sent_here = 0
        try:
            while True:
                i = self._cursor[fmt]
                if i >= len(traces):
                    self.idle.set()
                    if not self.loop or not traces:
                        return
                    self._cursor[fmt] = i = 0
                self._cursor[fmt] = i + 1
                if self.pace > 0 and i > 0:
                    await asyncio.sleep(self.pace)
                frames = traces[i]
                for n, fr in enumerate(frames):
                    if self.close_after is not None and sent_here >= self.close_after:
                        # FreeSWITCH restarts (once): the rest of this trace is lost, the
                        # next connection goes on with the next trace
                        self.close_after = None
                        self._live.clear()       # a restart ends every channel
                        writer.transport.abort()
                        return
                    if sub.wants(fr):
                        await send(fr, self.chunk if n % 7 == 3 else 0)
                        self.frames_sent += 1
                    self._track(fr)          # channels are up whether we were told or not
                    sent_here += 1
                if self._cursor[fmt] >= len(traces) and not self.loop:
                    self.idle.set()
                if self.close_after_each:
                    writer.close()
                    return
        except (asyncio.CancelledError, ConnectionError):
            pass
