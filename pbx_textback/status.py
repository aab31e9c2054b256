"""What `pbx-textback status` shows: the running service publishes its live state in a file,
the command adds what the store knows.

Where: `$RUNTIME_DIRECTORY/status.json`, i.e. /run/pbx-textback/status.json under the unit
(RuntimeDirectory=pbx-textback). A file there rather than a row in the store because it is
per box (one PostgreSQL store may serve several PBX boxes), it costs no database write per
heartbeat, and systemd removes it when the service stops, so after a crash it cannot claim a
PBX connection that is gone. Paused or not and the texts waiting come from the store itself,
which stays true while the service is down.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

DEFAULT_DIR = "/run/pbx-textback"
FILE = "status.json"
STALE_S = 30.0          # the service rewrites the file every HEARTBEAT_S seconds
HEARTBEAT_S = 5.0

log = logging.getLogger("pbx_textback.status")


def status_file(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("RUNTIME_DIRECTORY") or DEFAULT_DIR) / FILE


def publish_dir(env=None) -> Path | None:
    """Where `run` publishes: the unit's runtime directory, else /run/pbx-textback when it
    exists (a service started by hand on a box that has the unit); else nowhere."""
    env = os.environ if env is None else env
    if env.get("RUNTIME_DIRECTORY"):
        return Path(env["RUNTIME_DIRECTORY"])
    d = Path(DEFAULT_DIR)
    return d if d.is_dir() and os.access(d, os.W_OK) else None


class _LastError(logging.Handler):
    def __init__(self, publisher: "Publisher"):
        super().__init__(logging.ERROR)
        self.publisher = publisher

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.publisher.last_error = {"at": record.created, "message": record.getMessage()}
        except Exception:      # a log call must never break the service
            pass


class Publisher:
    """Writes the service's live state atomically; a no-op without a directory."""

    def __init__(self, directory: Path | None):
        self.path = Path(directory) / FILE if directory else None
        self.last_error: dict | None = None
        self.started_at = time.time()
        self._handler = _LastError(self)

    def attach(self) -> None:
        logging.getLogger("pbx_textback").addHandler(self._handler)

    def write(self, state: dict) -> None:
        if self.path is None:
            return
        data = dict(state, pid=os.getpid(), started_at=self.started_at, updated_at=time.time(),
                    last_error=self.last_error)
        tmp = self.path.with_name(FILE + ".tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as e:
            log.warning("cannot write %s (%s): `pbx-textback status` will not see this service",
                        self.path, e.strerror)
            self.path = None

    def close(self) -> None:
        logging.getLogger("pbx_textback").removeHandler(self._handler)
        if self.path is not None:
            try:
                self.path.unlink()
            except OSError:
                pass


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except PermissionError:
        return True
    except (OSError, ValueError, TypeError):
        return False


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


OK_TRANSPORT = {"bound", "ready", "log"}


def render(live: dict | None, path: Path, *, paused: tuple[str, float] | None,
           waiting: int, oldest: float | None, unknown: int, now: float,
           refused: tuple[int, Path] | None = None) -> tuple[str, int]:
    """The lines `status` prints and its exit code (0: running and connected)."""
    lines, healthy = [], True
    running = live is not None and _alive(live.get("pid")) and now - live.get("updated_at", 0) < STALE_S
    if live is None:
        lines.append(f"service: NOT RUNNING (no {path}; `systemctl status pbx-textback` says why)")
        healthy = False
    elif not running:
        lines.append(f"service: NOT RUNNING (pid {live.get('pid')} last wrote {path} "
                     f"{_age(now - live.get('updated_at', 0))} ago)")
        healthy = False
    else:
        lines.append(f"service: running (pid {live['pid']}, up {_age(now - live['started_at'])})")
    if running:
        pbx = live.get("pbx", {})
        state = pbx.get("state", "?")
        lines.append(f"PBX: {state} ({pbx.get('type', '?')} {pbx.get('address', '')})"
                     + (f": {pbx['detail']}" if pbx.get("detail") and state != "connected" else ""))
        healthy &= state == "connected" or pbx.get("type") == "mail"
        for kind, tstate in sorted(live.get("transports", {}).items()):
            what = {"smpp": "SMSC", "sip": "SIP trunk", "pbx": "texts through the PBX",
                    "log": "log only (texts are written to the log, not sent)"}.get(kind, kind)
            lines.append(f"transport {kind}: {tstate}" + (f" — {what}" if kind == "log" else f" ({what})"))
            healthy &= tstate in OK_TRANSPORT
    if paused:
        lines.append(f"texting: PAUSED since {time.strftime('%Y-%m-%d %H:%M', time.localtime(paused[1]))} "
                     "(`pbx-textback resume` sends what waits)")
    else:
        lines.append("texting: active")
    lines.append(f"texts waiting: {waiting}" + (f", the oldest for {_age(now - oldest)}" if oldest else ""))
    if unknown:
        lines.append(f"texts of unknown fate: {unknown} (`pbx-textback explain NUMBER`; resent only by hand)")
    if refused and refused[0]:       # (store/spool.py) the store refuses writes: not healthy
        lines.append(f"calls the store refused: {refused[0]}, kept in {refused[1]} ("
                     + ("the service records them once the store takes writes)" if running
                        else "the next start records them)"))
        healthy = False
    err = live.get("last_error") if running else None
    if err:
        lines.append(f"last error: {time.strftime('%H:%M:%S', time.localtime(err['at']))} {err['message']}")
    else:
        lines.append("last error: none" + ("" if running else " known (the service is not running)"))
    return "\n".join(lines), 0 if healthy else 1
