"""Calls the store refused (locked past its busy timeout, PostgreSQL away), kept in a file
beside it until the store takes them, so that a stop or a crash meanwhile loses none.

One JSON line per call (CallRecord.to_dict), appended and flushed to disk when the store
refuses the call; written anew with what still waits after each try; removed when nothing
waits. The file holds callers' numbers, like the store: it is made readable by its owner only.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..core.model import CallRecord

log = logging.getLogger("pbx_textback.store")

NAME = "refused-calls.jsonl"


class CallSpool:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.ids: set[str] = set()     # the calls in the file now

    def __contains__(self, call_id: str) -> bool:
        return call_id in self.ids

    @classmethod
    def beside(cls, store_path: str) -> "CallSpool | None":
        """The spool in the store's directory (with PostgreSQL, the configured SQLite path's,
        the service's state directory); none for a store in memory."""
        if not store_path or store_path == ":memory:":
            return None
        return cls(Path(store_path).parent / NAME)

    def add(self, rec: CallRecord) -> str:
        """Append one call, on disk before this returns (once: a call in the file already
        stays as it is). "" when kept, else why not."""
        if rec.call_id in self.ids:
            return ""
        try:
            _write(self.path, os.O_APPEND, [rec])
        except OSError as e:
            return f"{e.strerror or e} ({self.path})"
        self.ids.add(rec.call_id)
        return ""

    def keep_only(self, recs) -> None:
        """What still waits, in order, replaces the file (atomically); no call: no file."""
        recs = list(recs)
        try:
            if not recs:
                self.path.unlink(missing_ok=True)
                self.ids = set()
                return
            tmp = self.path.with_name(self.path.name + ".new")
            _write(tmp, os.O_TRUNC, recs)
            os.replace(tmp, self.path)
            self.ids = {r.call_id for r in recs}
        except OSError as e:
            log.error("could not update %s (%s): it may list calls already recorded; the next "
                      "start skips those", self.path, e.strerror or e)

    @classmethod
    def waiting_beside(cls, store_path: str) -> "tuple[int, Path] | None":
        """How many calls wait in the spool beside a store, and where (None: no file), for
        `status` and `doctor`."""
        spool = cls.beside(store_path)
        if spool is None or not spool.path.exists():
            return None
        return len(spool.load()), spool.path

    def load(self) -> list[CallRecord]:
        """The calls kept, in order, each once. A line that does not read as a call (a crash
        in the middle of writing it) is skipped with one error."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            log.error("cannot read %s, the calls the store refused before the last stop: %s",
                      self.path, e.strerror or e)
            return []
        out: dict[str, CallRecord] = {}
        bad = 0
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                d = json.loads(raw)
                rec = CallRecord.from_dict(d) if isinstance(d, dict) else None
            except (ValueError, TypeError, AttributeError):
                rec = None
            if rec is None or not rec.call_id or not all(
                    isinstance(getattr(rec, k), str) for k in ("pbx", "call_id", "caller", "called", "direction")):
                bad += 1
                continue
            out.setdefault(rec.call_id, rec)
        self.ids = set(out)
        if bad:
            log.error("%s: %d line(s) that are no call skipped (a write cut short by a crash?)",
                      self.path, bad)
        return list(out.values())


def _write(path: Path, mode: int, recs) -> None:
    """The calls as JSON lines, written (mode: O_APPEND or O_TRUNC) and on disk on return;
    a new file is its owner's only."""
    data = "".join(json.dumps(r.to_dict(), separators=(",", ":")) + "\n" for r in recs).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
