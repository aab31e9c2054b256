"""A loopback AMI server that logs a client in the way Asterisk 22 does and then plays recorded
AMI traces (tests/fixtures/asterisk/*.ami: the exact bytes Asterisk sent on one connection).

Used by `pbx-textback demo` and by the integration tests. What it does like Asterisk:
banner `Asterisk Call Manager/11.0.0`; `Login` answered `Success` / `Authentication accepted`
or `Error` / `Authentication failed` and then the connection is closed; any other action
before login gets `Authentication Required`; `Ping` -> `Ping: Pong` + `Timestamp`;
`CoreShowChannels` -> the EventList start / rows / `CoreShowChannelsComplete` sequence;
`Logoff` -> `Goodbye` and close; with no trace (left) to play, `FullyBooted` after login; `Originate` (Async) -> queued + `OriginateResponse`;
`MessageSend` -> `Message successfully sent`; anything else -> `Invalid/unknown command`.
`originate_traces` ({number or "*": recorded Originate trace}, tests/fixtures/asterisk/originate/):
an Originate to that number is answered the way the recording shows: queued, then every event
Asterisk sent after it, with the recorded ActionID, number and desk-phone channel replaced by
the ones the client sent (see `originate_frames`).
Write classes (`write_classes`, None = all): like Asterisk, a session keeps the classes it had
at login (`manager reload` reaches new sessions only); `MessageSend` / `Originate` without
`message` / `originate` get `Permission denied`, and `ListCommands` lists what the session may send.

What it plays: each trace from its first `Event:` frame on (the recorded banner and login reply
are this server's own job; the recorded `Response: Goodbye` at the end is dropped), byte for byte.
Traces are played from one server-wide cursor: a new connection goes on with the next trace,
as a real PBX goes on with new calls while a client is away.

Options: `pace` seconds between traces (with `close_after_each`: before the close); `speed` > 0 paces frames within a trace by the trace's
own clock (`Timestamp` header, else CEL `EventTime`) divided by `speed`; `chunking` splits
the stream into random small TCP writes (across and inside frames, inside UTF-8 sequences);
`close_after_each` closes the connection after each trace (an Asterisk restart);
`loop` starts again after the last trace, with every Uniqueid/Linkedid-type value rewritten
per loop so the calls stay distinct. `stall()` turns every open connection half-open (nothing
read, nothing answered, nothing sent) to exercise the client's ping watchdog.
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("pbx_textback.ami.replay")

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_FRAME = re.compile(rb".*?\r?\n\r?\n", re.S)
_IDLINE = re.compile(rb"^([A-Za-z]*(?:uniqueid|linkedid)): (\d+)\.(\d+)(\r?)$", re.I | re.M)
_TS = re.compile(rb"^Timestamp: (\d+(?:\.\d+)?)\r?$", re.M)
_EVTIME = re.compile(rb"^EventTime: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\r?$", re.M)
LOOP_SEQ_OFFSET = 1_000_000          # loop n adds n * this to the sequence part of Uniqueids


# Actions ListCommands knows, with the classes Asterisk 22 registers them under.
ACTIONS = {
    "Ping": ("Keepalive command.", ()),
    "Logoff": ("Logoff Manager.", ()),
    "ListCommands": ("List available manager commands.", ()),
    "CoreShowChannels": ("List currently active channels.", ("system", "reporting")),
    "Originate": ("Originate a call.", ("originate",)),
    "MessageSend": ("Send an out of call message to an endpoint.", ("message",)),
    "Command": ("Execute Asterisk CLI Command.", ("command",)),
    "Reload": ("Send a reload event.", ("system", "config")),
    "Hangup": ("Hangup channel.", ("system", "call")),
}


def trace_frames(data: bytes) -> list[bytes]:
    """The frames of a recorded trace that the server plays: from the first `Event:` frame on,
    byte for byte, without the trailing `Response: Goodbye`."""
    frames = [m.group(0) for m in _FRAME.finditer(data)]
    start = next((i for i, f in enumerate(frames) if f.startswith(b"Event:")), len(frames))
    frames = frames[start:]
    while frames and frames[-1].startswith(b"Response: Goodbye"):
        frames.pop()
    return frames


_QUEUED = re.compile(rb"^Response: Success\r?\nActionID: ([^\r\n]+)\r?\nMessage: Originate successfully queued", re.M)


def originate_frames(data: bytes) -> tuple[list[bytes], dict[bytes, bytes]]:
    """A recorded Originate trace: the frames Asterisk sent after its `Originate successfully
    queued` answer (without the Logoff's Goodbye), and the recorded values a replay replaces:
    {b"ActionID": .., b"Exten": .., b"Channel": ..} as the recorded Originate had them."""
    frames = [m.group(0) for m in _FRAME.finditer(data)]
    at = next(i for i, f in enumerate(frames) if _QUEUED.match(f))
    recorded = {b"ActionID": _QUEUED.match(frames[at]).group(1)}
    after = [f for f in frames[at + 1:] if not f.startswith(b"Response: Goodbye")]
    final = next(f for f in after if f.startswith(b"Event: OriginateResponse"))
    for key in (b"Exten", b"Channel"):
        recorded[key] = re.search(rb"^" + key + rb": ([^\r\n]+)", final, re.M).group(1)
    recorded[b"Channel"] = re.sub(rb"-[0-9a-f]{8}$", b"", recorded[b"Channel"])   # PJSIP/100-00000002
    return after, recorded


def replay_originate(frames: list[bytes], recorded: dict[bytes, bytes], action: dict) -> bytes:
    """The recorded frames as they would be for this Originate: its ActionID on the
    OriginateResponse, its number and its desk-phone channel wherever the recording had them."""
    new = {k: _get(action, k.decode()).encode() for k in recorded}
    out = []
    for f in frames:
        f = f.replace(b"ActionID: " + recorded[b"ActionID"], b"ActionID: " + new[b"ActionID"])
        f = f.replace(recorded[b"Exten"], new[b"Exten"])
        f = re.sub(re.escape(recorded[b"Channel"]) + rb"(?=-[0-9a-f]{8}|\r?\n)",
                   lambda m: new[b"Channel"], f)
        out.append(f)
    return b"".join(out)


def rewrite_ids(frame: bytes, loop_no: int) -> bytes:
    if loop_no == 0:
        return frame
    return _IDLINE.sub(lambda m: b"%s: %s.%d%s" % (
        m.group(1), m.group(2), int(m.group(3)) + loop_no * LOOP_SEQ_OFFSET, m.group(4)), frame)


def frame_time(frame: bytes) -> float | None:
    m = _TS.search(frame)
    if m:
        return float(m.group(1))
    m = _EVTIME.search(frame)
    if m:
        s = m.group(1).decode()
        fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in s else "%Y-%m-%d %H:%M:%S"
        return datetime.strptime(s, fmt).replace(tzinfo=timezone.utc).timestamp()
    return None


def parse_action(data: bytes) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        k, sep, v = line.partition(":")
        if not sep:
            continue
        k, v = k.strip(), v[1:] if v.startswith(" ") else v
        old = out.get(k)
        out[k] = v if old is None else (old + [v] if isinstance(old, list) else [old, v])
    return out


def _get(action: dict, key: str) -> str:
    for k, v in action.items():
        if k.lower() == key.lower():
            return v[0] if isinstance(v, list) else v
    return ""


_WRITE_CLASS = {"messagesend": "message", "originate": "originate"}


def _frame(*pairs: tuple[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode("utf-8") + b"\r\n"


class _Conn:
    def __init__(self, no: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.no = no
        self.reader, self.writer = reader, writer
        self.lock = asyncio.Lock()           # whole frames only: responses never land mid-frame
        self.authenticated = False
        self.stalled = False
        self.closed = asyncio.Event()
        self.player: asyncio.Task | None = None
        self.write: set[str] | None = None    # the write classes fixed at login (None: all)


class AmiReplayServer:
    def __init__(self, traces: list[Path], *, username: str = "textback",
                 secret: str = "textback-secret", host: str = "127.0.0.1", port: int = 0,
                 pace: float = 0.0, chunking: bool = False, loop: bool = False,
                 close_after_each: bool = False, speed: float = 0.0,
                 channels: list[dict] | None = None, seed: int | None = None,
                 max_chunk: int = 96, max_delay: float = 5.0,
                 write_classes=("originate", "message", "reporting"), before_trace=None,
                 originate_traces: dict | None = None):
        self.traces = [Path(t) for t in traces]
        self.before_trace = before_trace   # async fn(i) awaited before trace i > 0: a test's "go"
        self.username, self.secret = username, secret
        self.host, self.port = host, port
        self.pace, self.speed = float(pace), float(speed)
        self.chunking, self.loop, self.close_after_each = chunking, loop, close_after_each
        self.channels = list(channels or [])      # rows CoreShowChannels answers with
        # manager.conf's `write =` (as shipped; None = all): change it = a `manager reload`
        self.write_classes = None if write_classes is None else set(write_classes)
        self.max_chunk, self.max_delay = max_chunk, max_delay
        self._rng = random.Random(seed)
        self._frames = [trace_frames(p.read_bytes()) for p in self.traces]
        self._originate = {k: originate_frames(Path(p).read_bytes()) for k, p in (originate_traces or {}).items()}
        self._cursor = 0
        self._loop_no = 0
        self._played_any = False
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_Conn] = set()
        self._handlers: set[asyncio.Task] = set()
        self.idle = asyncio.Event()    # set once every trace was sent (each pass, when looping)
        self.connections = 0           # TCP connections accepted
        self.logins = 0                # successful logins
        self.failed_logins = 0
        self.traces_sent = 0
        self.actions: list[dict] = []  # every action received, in order (tests look at these)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> int:
        self._started = time.monotonic()
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("AMI replay server on %s:%s, %d trace(s)", self.host, self.port, len(self.traces))
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self._conns):
            self._close(c, abort=True)
        for t in list(self._handlers):
            t.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                pass
            self._server = None

    async def wait_idle(self) -> None:
        """Until every trace was sent (on whatever connections)."""
        await self.idle.wait()

    def stall(self) -> None:
        """Make every open connection half-open: stop reading, answering and playing."""
        for c in self._conns:
            c.stalled = True

    def close_connections(self) -> None:
        """Close every open connection (as an Asterisk that dies would)."""
        for c in list(self._conns):
            self._close(c)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # -- one connection ------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        self.connections += 1
        conn = _Conn(self.connections, reader, writer)
        self._conns.add(conn)
        try:
            writer.write(BANNER)
            while not conn.closed.is_set():
                try:
                    data = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    break
                action = parse_action(data)
                self.actions.append(action)
                if conn.stalled:
                    await conn.closed.wait()       # half-open: read nothing more, answer nothing
                    break
                if not await self._answer(conn, action):
                    break
        except asyncio.CancelledError:
            pass
        finally:
            self._close(conn)
            if conn.player is not None:
                conn.player.cancel()
            self._handlers.discard(task)

    async def _send(self, conn: _Conn, data: bytes) -> None:
        async with conn.lock:
            if conn.closed.is_set() or conn.stalled:
                return
            conn.writer.write(data)
        try:
            await conn.writer.drain()
        except ConnectionError:
            self._close(conn)

    async def _answer(self, conn: _Conn, action: dict) -> bool:
        """Answer one action; False closes the connection."""
        name = _get(action, "Action").lower()
        aid = _get(action, "ActionID")
        idh = (("ActionID", aid),) if aid else ()
        if name == "login":
            if _get(action, "Username") == self.username and _get(action, "Secret") == self.secret:
                conn.authenticated = True
                conn.write = None if self.write_classes is None else set(self.write_classes)
                self.logins += 1
                await self._send(conn, _frame(("Response", "Success"), *idh,
                                              ("Message", "Authentication accepted")))
                self._start_player(conn)
                return True
            self.failed_logins += 1
            await self._send(conn, _frame(("Response", "Error"), *idh,
                                          ("Message", "Authentication failed")))
            return False
        if not conn.authenticated:
            await self._send(conn, _frame(("Response", "Error"), *idh,
                                          ("Message", "Authentication Required")))
            return True
        need = _WRITE_CLASS.get(name)
        if need and conn.write is not None and need not in conn.write and "all" not in conn.write:
            await self._send(conn, _frame(("Response", "Error"), *idh, ("Message", "Permission denied")))
            return True
        if name == "ping":
            await self._send(conn, _frame(("Response", "Success"), *idh, ("Ping", "Pong"),
                                          ("Timestamp", f"{time.time():.6f}")))
        elif name == "coreshowchannels":
            out = [_frame(("Response", "Success"), *idh, ("EventList", "start"),
                          ("Message", "Channels will follow"))]
            for row in self.channels:
                out.append(_frame(("Event", "CoreShowChannel"), *idh,
                                  *((k, str(v)) for k, v in row.items() if k != "Event")))
            out.append(_frame(("Event", "CoreShowChannelsComplete"), *idh,
                              ("EventList", "Complete"), ("ListItems", str(len(self.channels)))))
            await self._send(conn, b"".join(out))
        elif name == "logoff":
            await self._send(conn, _frame(("Response", "Goodbye"), *idh,
                                          ("Message", "Thanks for all the fish.")))
            return False
        elif name == "originate":
            recorded = self._originate.get(_get(action, "Exten")) or self._originate.get("*")
            if recorded is not None:
                await self._send(conn, _frame(("Response", "Success"), *idh,
                                              ("Message", "Originate successfully queued")))
                await self._send(conn, replay_originate(*recorded, action))
            elif _get(action, "Async").lower() in ("true", "yes", "1", "on", "y", "t"):
                await self._send(conn, _frame(("Response", "Success"), *idh,
                                              ("Message", "Originate successfully queued")))
                await self._send(conn, _frame(
                    ("Event", "OriginateResponse"), ("Privilege", "call,all"), *idh,
                    ("Response", "Success"), ("Channel", _get(action, "Channel")),
                    ("Context", _get(action, "Context")), ("Exten", _get(action, "Exten")),
                    ("Application", ""), ("Data", ""), ("Reason", "4"),
                    ("Uniqueid", "<null>"), ("CallerIDNum", "<unknown>"),
                    ("CallerIDName", "<unknown>")))
            else:
                await self._send(conn, _frame(("Response", "Success"), *idh,
                                              ("Message", "Originate successfully queued")))
        elif name == "listcommands":
            # as Asterisk's action_listcommands: one "Action: synopsis (Priv: classes)" line per
            # action this session's write classes allow (any one of its classes), <none> always
            lines = [f"{act}: {syn} (Priv: {','.join(priv) or '<none>'})"
                     for act, (syn, priv) in ACTIONS.items()
                     if not priv or conn.write is None or "all" in conn.write or conn.write & set(priv)]
            await self._send(conn, _frame(("Response", "Success"), *idh,
                                          *(tuple(x.split(": ", 1)) for x in lines)))
        elif name == "messagesend":
            await self._send(conn, _frame(("Response", "Success"), *idh,
                                          ("Message", "Message successfully sent")))
        else:
            await self._send(conn, _frame(("Response", "Error"), *idh,
                                          ("Message", "Invalid/unknown command")))
        return True

    def _close(self, conn: _Conn, abort: bool = False) -> None:
        if conn.closed.is_set():
            return
        conn.closed.set()
        self._conns.discard(conn)
        try:
            if abort:
                conn.writer.transport.abort()
            else:
                conn.writer.close()
        except Exception:       # already gone
            pass

    # -- playing -------------------------------------------------------------------------

    def _start_player(self, conn: _Conn) -> None:
        # one player at a time: the newest logged-in connection gets the rest of the calls
        for other in self._conns:
            if other is not conn and other.player is not None:
                other.player.cancel()
                other.player = None
        if self._cursor >= len(self._frames) and not (self.loop and self._frames):
            # nothing (left) to play: be a booted Asterisk, which sends FullyBooted on login
            conn.player = asyncio.create_task(self._send(conn, _frame(
                ("Event", "FullyBooted"), ("Privilege", "system,all"),
                ("Uptime", str(int(time.monotonic() - self._started))),
                ("LastReload", str(int(time.monotonic() - self._started))),
                ("Status", "Fully Booted"))))
            return
        conn.player = asyncio.create_task(self._play(conn), name=f"ami-replay-{conn.no}")

    async def _play(self, conn: _Conn) -> None:
        try:
            while not conn.closed.is_set():
                if self._cursor >= len(self._frames):
                    self.idle.set()
                    if not self.loop or not self._frames:
                        return
                    self._cursor = 0
                    self._loop_no += 1
                i = self._cursor
                self._cursor += 1
                if self._played_any and self.before_trace is not None:
                    await self.before_trace(i)
                if self._played_any and self.pace > 0:
                    await asyncio.sleep(self.pace)
                self._played_any = True
                frames = [rewrite_ids(f, self._loop_no) for f in self._frames[i]]
                await self._write_trace(conn, frames)
                self.traces_sent += 1
                if self._cursor >= len(self._frames) and not self.loop:
                    self.idle.set()
                if self.close_after_each:
                    await asyncio.sleep(self.pace)     # the client may still act meanwhile
                    self._close(conn)
                    return
        except asyncio.CancelledError:
            pass
        except ConnectionError:
            self._close(conn)

    async def _write_trace(self, conn: _Conn, frames: list[bytes]) -> None:
        if not self.chunking and self.speed <= 0:
            await self._send(conn, b"".join(frames))       # one write, atomic
            return
        last_t: float | None = None
        i = 0
        while i < len(frames):
            if self.speed > 0:
                t = frame_time(frames[i])
                if t is not None:
                    if last_t is not None and t > last_t:
                        await asyncio.sleep(min(self.max_delay, (t - last_t) / self.speed))
                    last_t = t
                batch = [frames[i]]
            else:
                batch = frames[i:i + self._rng.randint(1, 4)]
            i += len(batch)
            data = b"".join(batch)
            if not self.chunking:
                await self._send(conn, data)
                continue
            await self._write_chunked(conn, data)

    async def _write_chunked(self, conn: _Conn, data: bytes) -> None:
        async with conn.lock:
            pos = 0
            while pos < len(data):
                if conn.stalled:
                    await conn.closed.wait()
                if conn.closed.is_set():
                    raise ConnectionError("closed")
                n = self._rng.randint(1, self.max_chunk)
                conn.writer.write(data[pos:pos + n])
                pos += n
                await conn.writer.drain()
                await asyncio.sleep(0)          # let the client read this piece on its own
