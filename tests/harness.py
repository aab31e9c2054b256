"""The real service as a user runs it, for end-to-end and fault runs: `pbx-textback run -c FILE`
as a subprocess (the venv's console script), config.example.toml as shipped with only the PBX,
SMSC and store addresses changed (plus what a run names in `overrides`), a loopback AMI server
that logs the service in like Asterisk and plays one recorded missed call per distinct caller on
demand, the real test SMSC, and a tally read from the SMSC and the store afterwards.

Used by tests/integration/test_shipped_defaults.py, tests/integration/test_faults.py and
bench/faults.py. 127.0.0.1 only; every wait here is bounded.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pbx_textback.ami.replay_server import AmiReplayServer, rewrite_ids, trace_frames

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"
TRACE = ROOT / "tests" / "fixtures" / "asterisk" / "03-abandoned.ami"   # caller hangs up while ringing
TRACE_CALLER = b"+15125550177"
TRACE_DID = b"+15125550140"
LINE = "+15125550100"                 # the example config's one line
AMI_USER = "textback"                 # the example's [pbx.ami] username
AMI_SECRET = "harness-ami-secret"
_CHAN = re.compile(rb"(PJSIP/[A-Za-z0-9_]+)-([0-9a-f]{8})")
_SKIP = (b"Event: FullyBooted\r", b"Event: SuccessfulAuth\r")


def service_command() -> list[str]:
    """The console script installed next to this interpreter (the venv's), as systemd runs it."""
    exe = Path(sys.executable).with_name("pbx-textback")
    if not exe.exists():
        raise RuntimeError(f"{exe} missing: install the project into this venv (./dev test does)")
    return [str(exe)]


# ---------------------------------------------------------------------------------- the config
def _set(text: str, section: str, key: str, value: str) -> str:
    """Replace `key = ...` (commented out or not) inside [section] of the example's text; the
    line must be there exactly once, so a changed example fails loudly instead of drifting."""
    lines = text.split("\n")
    head = re.compile(r"^#?\s*\[\[?([^\]]+)\]\]?")
    cur, hits = None, []
    for i, ln in enumerate(lines):
        m = head.match(ln)
        if m and not re.match(rf"^#?\s*{re.escape(key)}\s*=", ln):
            cur = m.group(1).strip()
            continue
        if cur == section and re.match(rf"^#?\s*{re.escape(key)}\s*=", ln):
            hits.append(i)
    assert len(hits) == 1, f"config.example.toml: [{section}] {key} found {len(hits)} times"
    lines[hits[0]] = f"{key} = {value}"
    return "\n".join(lines)


def _uncomment_table(text: str, table: str) -> str:
    """`# [transport.smpp]` and its commented keys -> live TOML (values as the example has them)."""
    out, inside = [], False
    for ln in text.split("\n"):
        if ln.startswith(f"# [{table}]"):
            inside = True
            out.append(ln[2:])
            continue
        if inside and re.match(r"^# [a-z_]+ = ", ln):
            out.append(ln[2:])
            continue
        inside = False
        out.append(ln)
    return "\n".join(out)


def _flat(d: dict, pre: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{pre}{k}."))
        else:
            out[f"{pre}{k}"] = v
    return out


@dataclass
class Setup:
    config: Path
    env: dict
    store: Path


def shipped_config(tmp: Path, *, ami_port: int, smsc_port: int | None = None,
                   overrides: dict[tuple[str, str], str] | None = None, extra: str = "") -> Setup:
    """config.example.toml as shipped; changed: the AMI port and secret file, the store path, and
    with smsc_port the transport switched to the example's own [transport.smpp] block pointed at
    the test SMSC (its password read from ${CREDENTIALS_DIRECTORY} as the example says).
    `overrides` {(section, key): toml value} for runs that need more; checked key by key;
    `extra`: whole tables the example does not have (e.g. [pbx.esl]), appended."""
    tmp.mkdir(parents=True, exist_ok=True)
    shipped = EXAMPLE.read_text(encoding="utf-8")
    secret = tmp / "ami-secret"
    secret.write_text(AMI_SECRET + "\n")
    (tmp / "smpp-password").write_text("pw\n")
    store = tmp / "textback.sqlite3"
    changes = {("pbx.ami", "port"): str(ami_port),
               ("pbx.ami", "secret_file"): f'"{secret}"',
               ("store", "path"): f'"{store}"'}
    base = shipped
    if smsc_port is not None:
        base = _uncomment_table(shipped, "transport.smpp")
        changes.update({("transport", "type"): '"smpp"',
                        ("transport.smpp", "host"): '"127.0.0.1"',
                        ("transport.smpp", "port"): str(smsc_port)})
    changes.update(overrides or {})
    text = base
    for (section, key), value in changes.items():
        text = _set(text, section, key, value)
    text += ("\n" + extra) if extra else ""
    # what differs from the example is exactly what was named above
    want, got = _flat(tomllib.loads(base)), _flat(tomllib.loads(text))
    differ = {k for k in want.keys() | got.keys() if want.get(k) != got.get(k)}
    assert differ <= {f"{s}.{k}" for s, k in changes} | set(_flat(tomllib.loads(extra))), differ
    path = tmp / "config.toml"
    path.write_text(text, encoding="utf-8")
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(tmp), PYTHONUNBUFFERED="1")
    env.pop("JOURNAL_STREAM", None)
    return Setup(path, env, store)


# ---------------------------------------------------------------------------------- the calls
def caller_number(i: int, prefix: str = "+1512555") -> str:
    """Distinct valid NANP callers: prefix + 4 digits 1001..9999 (never ...0000: the SMSC's UNDELIV)."""
    return f"{prefix}{1001 + i % 8999:04d}"


_FRAMES: list[bytes] = []


def call_bytes(caller: str, seq: int, did: str = LINE) -> tuple[bytes, bytes]:
    """The recorded abandoned call with a new caller, DID and call ids: (bytes up to and
    including the caller's Hangup, the rest). seq > 0 makes the Uniqueids and channel names
    distinct from every other seq."""
    if not _FRAMES:
        _FRAMES.extend(f for f in trace_frames(TRACE.read_bytes()) if not f.startswith(_SKIP))
    new = caller.encode()
    assert len(new) == len(TRACE_CALLER) and len(did) == len(TRACE_DID), "same-length numbers only"
    last = max(i for i, f in enumerate(_FRAMES) if f.startswith(b"Event: Hangup\r"))
    chans: dict[bytes, bytes] = {}

    def chan(m):
        key = m.group(0)
        if key not in chans:
            chans[key] = m.group(1) + b"-%08x" % ((seq * 16 + len(chans)) & 0xFFFFFFFF)
        return chans[key]

    def fix(b: bytes) -> bytes:
        b = _CHAN.sub(chan, rewrite_ids(b, seq))
        return b.replace(TRACE_CALLER, new).replace(TRACE_DID, did.encode())
    return fix(b"".join(_FRAMES[:last + 1])), fix(b"".join(_FRAMES[last + 1:]))


def cut_call_bytes(caller: str, seq: int) -> bytes:
    """The first part of the call: up to its DialBegin (ext 100 starts ringing); the rest never comes."""
    head, _ = call_bytes(caller, seq)
    i = head.find(b"Event: DialBegin\r")
    assert i > 0
    end = head.find(b"\r\n\r\n", i) + 4
    return head[:end]


class CallFeeder(AmiReplayServer):
    """A booted Asterisk with no traces of its own: logs the client in (FullyBooted, Ping,
    an empty CoreShowChannels) and writes the calls the run hands it to the newest login."""

    def __init__(self):
        super().__init__([], username=AMI_USER, secret=AMI_SECRET)

    def _live(self):
        conns = [c for c in self._conns if c.authenticated and not c.closed.is_set()]
        return max(conns, key=lambda c: c.no) if conns else None

    async def wait_login(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._live() is not None:
                return True
            await asyncio.sleep(0.02)
        return False

    async def write(self, data: bytes) -> float | None:
        """Write to the logged-in client; the time the bytes were handed over, or None."""
        conn = self._live()
        if conn is None:
            return None
        async with conn.lock:
            if conn.closed.is_set():
                return None
            conn.writer.write(data)
            at = time.time()
        try:
            await conn.writer.drain()
        except ConnectionError:
            self._close(conn)
        return at

    def drop(self) -> None:
        """Close the client's connection like an Asterisk that went away."""
        self.close_connections()


# ---------------------------------------------------------------------------------- the service
class ServiceProc:
    """`pbx-textback run -c FILE` as a child; stderr lines kept with their arrival time."""

    def __init__(self, setup: Setup, *, faketime: str | None = None):
        cmd = service_command() + ["run", "-c", str(setup.config)]
        env = dict(setup.env)
        if faketime is not None:
            # libfaketime: the wall clock starts at the given time (or offset) and ticks in real
            # time; monotonic clocks (asyncio's timers) stay real
            cmd = ["faketime", "-f", faketime] + cmd
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        self.started = time.time()
        # its own process group: the faketime wrapper forks, and a signal must reach the service
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stderr:
            self.lines.append((time.time(), raw.decode("utf-8", "replace").rstrip("\n")))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Send sig and wait for the exit (SIGKILL after timeout); the exit code, None if killed by us."""
        self.send(sig)
        end = time.monotonic() + timeout
        while self.alive() and time.monotonic() < end:
            await asyncio.sleep(0.02)
        if self.alive():
            self.send(signal.SIGKILL)
            self.proc.wait()
            self._reader.join(2)
            return None
        self.send(signal.SIGKILL)            # nothing of the group may outlive the run
        self._reader.join(2)
        return self.proc.returncode

    def grep(self, pattern: str) -> list[tuple[float, str]]:
        r = re.compile(pattern)
        return [(t, ln) for t, ln in list(self.lines) if r.search(ln)]

    def tail(self, n: int = 30) -> str:
        return "\n".join(ln for _, ln in self.lines[-n:])


# ---------------------------------------------------------------------------------- reading
def iso_ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def e164(addr: str) -> str:
    return "+" + str(addr).lstrip("+")


def first_parts(messages: list[dict]) -> list[dict]:
    """One entry per text: a multi-part text counts once (its part 1)."""
    return [m for m in messages if not m.get("udh") or m["udh"].get("seq") == 1]


def store_rows(path: Path) -> tuple[list[dict], list[dict]]:
    """(outgoing messages, calls) as dicts, read with plain sqlite3 (no product code)."""
    if not path.exists():
        return [], []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        msgs = [dict(r) for r in db.execute("SELECT * FROM message WHERE direction = 'out' ORDER BY id")]
        calls = [dict(r) for r in db.execute(
            "SELECT c.*, (SELECT group_concat(action) FROM decision d WHERE d.call_id = c.id) AS actions "
            "FROM call c ORDER BY id")]
    finally:
        db.close()
    return msgs, calls


@dataclass
class Tally:
    """Per caller: how many missed-call texts reached the SMSC, and what the store says."""
    callers: int = 0
    texted_once: int = 0
    lost: list[str] = field(default_factory=list)          # texted 0 times, row not cancelled/expired
    duplicated: list[str] = field(default_factory=list)    # texted more than once
    wrong_unknown: list[str] = field(default_factory=list)  # `unknown` though the SMSC never got it
    unknown_at_smsc: list[str] = field(default_factory=list)  # `unknown` though the SMSC has it
    # `unknown`, not at the SMSC, written (written_at) just before the gateway process died: the
    # bytes died with it unread; the one case where a text may rightly be unknown and not there
    died_with_gateway: list[str] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)        # no call row: the service never read the call
    not_texted: Counter = field(default_factory=Counter)   # decided not to text / cancelled / expired: why
    lost_states: Counter = field(default_factory=Counter)  # what the store says of each lost caller
    states: Counter = field(default_factory=Counter)       # final states of the missed-call rows
    after_stop: list[str] = field(default_factory=list)    # texted although they had opted out

    def line(self) -> str:
        return (f"callers {self.callers}: texted once {self.texted_once}, LOST {len(self.lost)}, "
                f"DUPLICATED {len(self.duplicated)}, unknown-for-a-person "
                f"{len(self.wrong_unknown) + len(self.unknown_at_smsc)} (text never at the SMSC "
                f"{len(self.wrong_unknown)}, at the SMSC {len(self.unknown_at_smsc)}"
                + (f", written as the gateway died {len(self.died_with_gateway)}"
                   if self.died_with_gateway else "") + "), "
                f"unseen {len(self.unseen)}, not texted by decision {sum(self.not_texted.values())}"
                + (f", texted after STOP {len(self.after_stop)}" if self.after_stop else ""))

    def details(self) -> str:
        out = [f"    store states of the texts: {dict(self.states)}"]
        if self.lost:
            out.append(f"    lost callers' rows: {dict(self.lost_states)}; e.g. {self.lost[:5]}")
        if self.duplicated:
            out.append(f"    duplicated e.g. {self.duplicated[:5]}")
        if self.wrong_unknown or self.unknown_at_smsc:
            out.append(f"    unknown e.g. {(self.wrong_unknown + self.unknown_at_smsc)[:5]}")
        if self.not_texted:
            out.append(f"    not texted: {dict(self.not_texted)}")
        return "\n".join(out)


def tally(callers: list[str], smsc_messages: list[dict], store: Path,
          opted_out: set[str] = frozenset(), gateway_died: list[tuple[float, float]] = ()) -> Tally:
    """gateway_died: (stop asked, process gone) each time the SMSC process was stopped; what it
    had not read yet died with it."""
    msgs, calls = store_rows(store)
    rows_by_peer: dict[str, list[dict]] = {}
    for m in msgs:
        if m["kind"] == "missed-call":
            rows_by_peer.setdefault(m["peer"], []).append(m)
    called = {c["caller"]: c for c in calls}
    bodies = {m["body"][:20] for m in msgs if m["kind"] == "missed-call"}
    at_smsc: Counter = Counter()
    for m in first_parts(smsc_messages):
        if str(m.get("text", ""))[:20] in bodies:         # a missed-call text, not a confirmation
            at_smsc[e164(m["destination_addr"])] += 1
    t = Tally(callers=len(callers))
    for c in callers:
        n, rows = at_smsc[c], rows_by_peer.get(c, [])
        for r in rows:
            t.states[r["state"]] += 1
            if r["state"] == "unknown":
                w = r.get("written_at")
                if n:
                    t.unknown_at_smsc.append(c)
                elif w and any(a - 2.0 <= w <= b for a, b in gateway_died):
                    t.died_with_gateway.append(c)
                else:
                    t.wrong_unknown.append(c)
        if c in opted_out:
            if n:
                t.after_stop.append(c)
            continue
        if n == 1:
            t.texted_once += 1
        elif n > 1:
            t.duplicated.append(f"{c} x{n}")
        elif not rows:
            if c not in called:
                t.unseen.append(c)
            else:
                t.not_texted[f"decision {called[c]['actions'] or '-'} ({called[c]['reason']})"] += 1
        elif c in t.died_with_gateway:
            continue
        elif all(r["state"] in ("cancelled", "expired") for r in rows):
            for r in rows:
                t.not_texted[f"{r['state']}: {r['note'][:60]}"] += 1
        else:
            t.lost.append(c)
            for r in rows:
                t.lost_states[r["state"]] += 1
    return t
