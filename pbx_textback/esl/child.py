"""The FreeSWITCH event-socket child: greenswitch (gevent) in its own process.

`pbx-textback esl` / `python -m pbx_textback.esl` — started, watched and restarted by
`run` (pbx_textback.esl.parent.EslChild); gevent never enters the asyncio process.

JSON lines on stdout, one object a line:
  {"type": "state", "state": "connecting|connected|shutting-down|disconnected|auth-failed",
   "detail": "..."}
  {"type": "event", "event": {...headers...}}
    (an event-json body goes in as FreeSWITCH sent it, when that is safe: see _raw_line;
    the parent makes its values strings as the framing does)
  {"type": "reply", "id": ..., "ok": true|false, "body": "..."}
Commands on stdin, one JSON object a line:
  {"id": 1, "cmd": "api", "args": "show channels as json"}      ("bgapi" too)
stdin closed = the parent is gone: the child says `exit` to FreeSWITCH and ends.

greenswitch 0.0.19 (LIBRARY-NOTES): it cannot read `event json`, it URL-decodes event
bodies before splitting them into lines (header injection), a socket closed in the middle of
a body makes it spin forever, `send()` has no timeout and a dead connection cannot be
restarted. So `_Inbound` hands every event body to our own ESL framing, raises on EOF, and
we build a new connection (and subscribe again) for every reconnect, with backoff. greenswitch
still does the connection, `auth`, and matching replies to commands.

The password comes from the environment (PBX_TEXTBACK_ESL_PASSWORD), never from argv
(argv shows in `ps`).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys

import gevent
import gevent.event
import gevent.socket as gsocket
from gevent.fileobject import FileObjectPosix
from greenswitch.esl import InboundESL, NotConnectedError

from ..core.pbx.eslframe import CT_JSON, CT_PLAIN, EslFraming
from .events import DEFAULT_EVENTS, PASSWORD_ENV

log = logging.getLogger("pbx_textback.esl")



SHUTTING_DOWN = "FreeSWITCH is shutting down"


class EslClosed(ConnectionError):
    pass


class NotWritten(NotConnectedError):
    """The command never left: not connected, or the write itself failed."""


class _Result(gevent.event.AsyncResult):
    """A command's pending reply, with the callback that writes it out in stream order."""

    def __init__(self, cb=None):
        super().__init__()
        self.textback_cb = cb


def _raw_line(body: bytes) -> str | None:
    """The event line with an event-json body as FreeSWITCH sent it (the framing parsed and
    accepted it): re-encoding the parsed event cost as much as parsing it, and the parent
    parses the same text either way. None (write it re-encoded) unless that text is plainly
    safe inside one line: strict UTF-8, a bare object, no line break, and nesting too
    shallow to reach the parent's recursion limit (at most 64 brackets of any kind)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.startswith("{") or "\n" in text or "\r" in text \
            or text.count("[") + text.count("{") > 64:
        return None
    return '{"type":"event","event":' + text + "}\n"


class _Inbound(InboundESL):
    """greenswitch's InboundESL with our framing for event bodies and EOF that raises."""

    def __init__(self, host, port, password, timeout=5, on_event=None):
        super().__init__(host, port, password, timeout=timeout)
        self.on_event = on_event
        self.framing = EslFraming()
        self.closed_reason = ""

    @staticmethod
    def _read_socket(sock, length):
        # greenswitch's own reader loops forever on EOF: ours raises (LIBRARY-NOTES)
        return _Inbound._read_bytes(sock, length).decode("utf-8", errors="replace")

    @staticmethod
    def _read_bytes(sock, length) -> bytes:
        data = b""
        while len(data) < length:
            more = sock.read(length - len(data)) or b""
            if not more:
                raise EslClosed(f"socket closed {len(data)} bytes into a {length}-byte body")
            data += more
        return data

    def handle_event(self, event):
        try:
            self._handle(event)
        except EslClosed as e:
            self._dead(str(e))
        except (OSError, ValueError) as e:
            self._dead(f"{type(e).__name__}: {e}")

    def _handle(self, event):
        h = event.headers
        ctype = h.get("Content-Type", "")
        if ctype in (CT_PLAIN, CT_JSON):
            length = int(h.get("Content-Length") or 0)
            body = self._read_bytes(self.sock_file, length)
            head = f"Content-Length: {length}\nContent-Type: {ctype}\n\n".encode()
            frames = self.framing.feed(head + body)
            raw = body if ctype == CT_JSON and len(frames) == 1 else None
            for frame in frames:
                if self.on_event is not None and "Event-Name" in frame:
                    self.on_event(frame, raw)
            return
        if ctype == "text/disconnect-notice":
            length = int(h.get("Content-Length") or 0)
            if length:
                self._read_bytes(self.sock_file, length)
            if h.get("Content-Disposition") != "linger":
                self._dead("FreeSWITCH sent a disconnect notice")
            return
        if ctype in ("command/reply", "api/response"):
            if not self._commands_sent:
                if ctype == "api/response":
                    self._read_bytes(self.sock_file, int(h.get("Content-Length") or 0))
                log.warning("ESL: a %s nobody asked for: ignored", ctype)
                return
            pending = self._commands_sent[0]
            super().handle_event(event)
            cb = getattr(pending, "textback_cb", None)
            if cb is not None:
                cb(event)        # the reply goes out in stream order with the events
            return
        if ctype in ("auth/request", "text/rude-rejection"):
            super().handle_event(event)
            return
        if "Content-Length" in h:   # log/data or something new: read it and drop it
            self._read_bytes(self.sock_file, int(h.get("Content-Length") or 0))

    def _dead(self, reason: str) -> None:
        if not self.closed_reason:
            self.closed_reason = reason
        self.connected = False
        self._run = False
        self._auth_request_event.set()
        for r in list(self._commands_sent):
            if not r.ready():
                r.set_exception(NotConnectedError(reason))
        self._commands_sent.clear()
        try:
            self.sock.close()
        except OSError:
            pass

    def request(self, data: str, timeout: float, cb=None):
        """Send one command; the reply event. Raises NotWritten (nothing sent), or after the
        write gevent.Timeout / NotConnectedError (the connection died before the answer)."""
        if not self.connected:
            raise NotWritten(self.closed_reason or "not connected")
        res = _Result(cb)
        self._commands_sent.append(res)
        try:
            self.sock.sendall((data + "\n\n").encode("utf-8"))
        except OSError as e:
            # FreeSWITCH reads a command only up to its blank line: a failed write ran nothing
            self._dead(f"write failed: {e}")
            raise NotWritten(f"write failed: {e}") from e
        return res.get(timeout=timeout)

    def send(self, data):           # greenswitch's authenticate() calls this
        return self.request(data, timeout=self.timeout)

    def close(self) -> None:
        self._run = False
        self.connected = False
        for g in (self._receive_events_greenlet, self._process_events_greenlet):
            if g is not None:
                g.kill(block=False)
        try:
            self.sock.close()
        except (OSError, AttributeError):
            pass


class Child:
    def __init__(self, host: str, port: int, password: str, *, fmt: str = "json",
                 events: str = DEFAULT_EVENTS, out=None, reconnect_min: float = 0.5,
                 reconnect_max: float = 4.0, auth_retry: float = 30.0,
                 connect_timeout: float = 5.0, command_timeout: float = 10.0):
        self.host, self.port, self.password = host, int(port), password
        self.fmt, self.events = fmt, events
        self.out = out or sys.stdout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.auth_retry = auth_retry
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.conn: _Inbound | None = None
        self.state = ""
        self.going_down = False          # FreeSWITCH sent SHUTDOWN on this connection
        self._stop = gevent.event.Event()

    # -- output ---------------------------------------------------------------------------------

    def _write(self, obj: dict) -> None:
        self._write_line(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")

    def _write_line(self, line: str) -> None:
        try:
            self.out.write(line)
            self.out.flush()
        except (BrokenPipeError, ValueError):
            self._stop.set()         # the parent is gone

    def _state(self, state: str, detail: str = "") -> None:
        if state != self.state or state != "connected":
            level = logging.ERROR if state == "auth-failed" else logging.INFO
            log.log(level, "ESL %s:%s %s%s", self.host, self.port, state,
                    f": {detail}" if detail else "")
        self.state = state
        self._write({"type": "state", "state": state, "detail": detail})

    def _event(self, frame: dict, raw: bytes | None = None) -> None:
        line = _raw_line(raw) if raw is not None else None
        if line is None:
            self._write({"type": "event", "event": frame})
        else:
            self._write_line(line)
        if frame.get("Event-Name") == "SHUTDOWN":
            # commands are refused as not connected (nothing written) until we reconnect
            self.going_down = True
            if self.state == "connected":
                self._state("shutting-down", SHUTTING_DOWN)

    # -- the connection loop ------------------------------------------------------------------

    def run(self) -> int:
        reader = gevent.spawn(self._read_commands)
        failures = 0
        try:
            while not self._stop.is_set():
                self._state("connecting", f"{self.host}:{self.port}")
                outcome, detail = self._session()
                if self._stop.is_set():
                    break
                if outcome == "auth-failed":
                    failures = 0
                    delay = self.auth_retry * random.uniform(0.9, 1.1)
                    self._state("auth-failed", f"{detail}; retry in {delay:.1f} s")
                else:
                    if outcome == "ended":
                        failures = 0
                    delay = min(self.reconnect_max, self.reconnect_min * (2 ** failures))
                    delay *= random.uniform(0.8, 1.2)
                    failures += 1
                    self._state("disconnected", f"{detail}; retry in {delay:.1f} s")
                self._stop.wait(delay)
        finally:
            if self.conn is not None:
                try:
                    if self.conn.connected:
                        self.conn.request("exit", timeout=1.0)
                except Exception:
                    pass
                self.conn.close()
            reader.kill(block=False)
        return 0

    def _session(self) -> tuple[str, str]:
        self.going_down = False
        conn = _Inbound(self.host, self.port, self.password, timeout=self.connect_timeout,
                        on_event=self._event)
        self.conn = conn
        try:
            try:
                with gevent.Timeout(self.connect_timeout + 1, NotConnectedError(
                        "no auth/request from the server")):
                    conn.connect()
            except ValueError:
                return "auth-failed", "FreeSWITCH rejected the event-socket password"
            except (NotConnectedError, OSError, gsocket.error) as e:
                return "failed", f"connect failed: {e or type(e).__name__}"
            try:
                reply = conn.request(f"event {self.fmt} {self.events}",
                                     timeout=self.command_timeout)
            except (NotConnectedError, OSError, gevent.Timeout) as e:
                return "failed", f"subscribe failed: {e or type(e).__name__}"
            text = reply.headers.get("Reply-Text", "")
            if not text.startswith("+OK"):
                return "failed", f"subscribe refused: {text}"
            if self.going_down:           # SHUTDOWN came with the first events
                self._state("shutting-down", SHUTTING_DOWN)
            else:
                self._state("connected", f"{self.host}:{self.port}, event {self.fmt}")
            while conn.connected and not self._stop.is_set():
                g = conn._receive_events_greenlet
                if g is None or g.dead:
                    conn.connected = False
                    break
                self._stop.wait(0.2)
            return "ended", conn.closed_reason or "FreeSWITCH closed the connection"
        finally:
            if self._stop.is_set() and conn.connected:
                try:
                    conn.request("exit", timeout=1.0)
                except Exception:
                    pass
            conn.close()

    # -- commands from the parent --------------------------------------------------------------

    def _read_commands(self) -> None:
        f = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
        try:
            while True:
                line = f.readline()
                if not line:
                    break
                line = line.strip()
                if line:
                    gevent.spawn(self._command, line)
        finally:
            self._stop.set()           # stdin closed: the parent is gone or wants us to stop

    def _command(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
            rid = msg.get("id")
            cmd = str(msg.get("cmd", ""))
            args = str(msg.get("args", ""))
            timeout = float(msg.get("timeout") or self.command_timeout)
        except (ValueError, AttributeError, TypeError):
            log.error("ESL child: a command line that is not JSON: ignored")
            return
        # the caller's own deadline (a `chat` waits for the far end's answer: up to 32 s)
        timeout = min(max(timeout, 0.1), 600.0) if timeout == timeout else self.command_timeout
        if cmd not in ("api", "bgapi"):
            self._write({"type": "reply", "id": rid, "ok": False,
                         "body": f"unknown command {cmd!r}"})
            return
        if "\n" in args or "\r" in args or not args.strip():
            self._write({"type": "reply", "id": rid, "ok": False,
                         "body": "arguments must be one non-empty line"})
            return
        conn = self.conn
        if conn is None or not conn.connected or self.state != "connected":
            self._write({"type": "reply", "id": rid, "ok": False, "body": "not connected",
                         "error": "not-connected"})
            return
        done = []

        def reply(event):
            done.append(True)
            h = event.headers
            if h.get("Content-Type") == "api/response":
                body = getattr(event, "data", "") or ""
                ok = not body.startswith("-ERR")
            else:
                body = h.get("Reply-Text", "")
                ok = body.startswith("+OK")
                if cmd == "bgapi" and ok:
                    body = h.get("Job-UUID") or body.split("Job-UUID:", 1)[-1].strip()
            self._write({"type": "reply", "id": rid, "ok": ok, "body": body})

        # what became of a command that got no answer: never written -> "not-connected";
        # written -> "timeout" or "lost", it may have run (the parent must not say "refused")
        try:
            conn.request(f"{cmd} {args}", timeout=timeout, cb=reply)
        except NotWritten as e:
            self._write({"type": "reply", "id": rid, "ok": False,
                         "body": f"not connected: {e}", "error": "not-connected"})
        except gevent.Timeout:
            if not done:
                self._write({"type": "reply", "id": rid, "ok": False, "error": "timeout",
                             "body": f"no answer from FreeSWITCH within {timeout:g} s"})
        except (NotConnectedError, OSError) as e:
            if not done:
                self._write({"type": "reply", "id": rid, "ok": False, "error": "lost",
                             "body": f"connection lost before the answer: {e}"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pbx-textback esl",
                                description="FreeSWITCH event-socket child (JSON lines)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8021)
    p.add_argument("--format", choices=["json", "plain"], default="json")
    p.add_argument("--events", default=DEFAULT_EVENTS)
    p.add_argument("--reconnect-min", type=float, default=0.5)
    p.add_argument("--reconnect-max", type=float, default=4.0)
    p.add_argument("--auth-retry", type=float, default=30.0)
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, a.log_level.upper(), 20),
                        format="esl-child %(levelname)s %(name)s: %(message)s")
    logging.getLogger().handlers[0].addFilter(_quiet_greenswitch)
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        log.error("ESL child: no password in %s", PASSWORD_ENV)
    child = Child(a.host, a.port, password, fmt=a.format, events=a.events,
                  reconnect_min=a.reconnect_min, reconnect_max=a.reconnect_max,
                  auth_retry=a.auth_retry, connect_timeout=a.connect_timeout)
    return child.run()


def _quiet_greenswitch(record: logging.LogRecord) -> bool:
    # greenswitch logs whole events (caller PII) on handler errors; we run no handlers, but
    # keep its root-logger chatter out of the journal anyway
    return record.name != "root" or record.levelno >= logging.ERROR


if __name__ == "__main__":
    sys.exit(main())
