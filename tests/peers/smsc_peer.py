"""Start the real test SMSC (tests/peers/smsc/smsc.js, node-smpp) on free loopback ports.

Used by tests/integration/conftest.py and bench/smpp_bench.py. `npm ci` runs once into a work
dir under /tmp keyed by the lockfile's hash (never into the repo)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SRC = Path(__file__).resolve().parent / "smsc"
HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """n distinct free ports (all held open while picking, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def node_missing() -> str | None:
    """The reason the SMSC cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (the test SMSC is node-smpp; CI installs node)"
    return None


def install() -> Path:
    """npm ci into /tmp/pbx-textback-smsc-<hash>; returns the work dir (its node_modules).
    smsc.js itself runs from this checkout, so two checkouts sharing the dir never swap it."""
    lock = (SRC / "package-lock.json").read_bytes()
    work = Path(os.environ.get("SMSC_WORKDIR")
                or f"{tempfile.gettempdir()}/pbx-textback-smsc-{hashlib.sha256(lock).hexdigest()[:12]}")
    work.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(SRC / name, work / name)
    if not (work / "node_modules" / "smpp").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to install the test SMSC (npm ci)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=work, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    return work


class _PortTaken(RuntimeError):
    pass


class Smsc:
    """One node smsc.js process. `port`/`control_port` are fixed at creation, so a test can
    point a client at an SMSC that is not running yet and `start()` it later."""

    def __init__(self, workdir: Path, port: int | None = None, control_port: int | None = None,
                 dlr_delay_ms: int = 200, system_id: str = "", password: str = ""):
        self.workdir = workdir
        self.host = HOST
        self._auto_ports = port is None and control_port is None
        picked = free_ports(2)
        self.port = port or picked[0]
        self.control_port = control_port or picked[1]
        self._env = dict(os.environ, SMSC_HOST=HOST, DLR_DELAY_MS=str(dlr_delay_ms),
                         SMSC_SYSTEM_ID=system_id, SMSC_PASSWORD=password)
        self.log_path = Path(tempfile.mkstemp(prefix=f"smsc-{self.port}-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    # -- process -------------------------------------------------------------------------
    @property
    def control_url(self) -> str:
        return f"http://{HOST}:{self.control_port}"

    def start(self, timeout: float = 10.0) -> "Smsc":
        for attempt in range(3):
            try:
                return self._start(timeout)
            except _PortTaken:
                if not self._auto_ports or attempt == 2:
                    raise
                self.port, self.control_port = free_ports(2)   # raced with another process
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> "Smsc":
        env = dict(self._env, SMSC_PORT=str(self.port), CONTROL_PORT=str(self.control_port))
        log = open(self.log_path, "ab")
        env["NODE_PATH"] = str(self.workdir / "node_modules")
        self.proc = subprocess.Popen(["node", str(SRC / "smsc.js")], env=env,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.log_path.read_text()
                self.proc = None
                if "EADDRINUSE" in out:
                    self.log_path.write_text("")
                    raise _PortTaken(out)
                raise RuntimeError(f"SMSC exited: {out}")
            try:
                self._req("GET", "/health", timeout=0.5)
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise RuntimeError(f"SMSC did not answer /health: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)

    # -- control API ---------------------------------------------------------------------
    def _req(self, method: str, path: str, body: dict | None = None, timeout: float = 5.0):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(self.control_url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:       # /mo answers 409 when nobody is bound
            return {"http_status": e.code, **json.loads(e.read() or b"{}")}

    def health(self) -> dict:
        return self._req("GET", "/health")

    def stats(self) -> dict:
        return self._req("GET", "/stats")

    def messages(self) -> list[dict]:
        """Every submit_sm the SMSC accepted: message_id, destination_addr, data_coding,
        esm_class, text (decoded by node-smpp, per part), udh {ref,total,seq} or None, ..."""
        return self._req("GET", "/messages")

    def mo(self, from_: str, to: str, text: str, data_coding: int | None = None,
           sar: dict | None = None) -> dict:
        """One MO deliver_sm to the next receiving bind (round-robin over the account's binds).
        sar: {"ref", "total", "seq"} sends the SAR TLVs."""
        body = {"from": from_, "to": to, "text": text}
        if data_coding is not None:
            body["data_coding"] = data_coding
        if sar is not None:
            body["sar"] = sar
        return self._req("POST", "/mo", body)

    def hang(self, ms: int) -> dict:
        """Answer no submit_sm for ms, then answer (and deliver) the held ones."""
        return self._req("POST", "/hang", {"ms": ms})

    def dlr_mode(self, mode: str) -> dict:
        """Receipts as "deliver_sm" (default) or "data_sm"."""
        return self._req("POST", "/dlr-mode", {"mode": mode})

    def dlr_first(self, on: bool) -> dict:
        """Send each receipt before its submit_sm_resp."""
        return self._req("POST", "/dlr-first", {"on": on})

    def quota(self, tps: int) -> dict:
        """Answer 0x58 to submits beyond tps accepted per second; 0 = off."""
        return self._req("POST", "/quota", {"tps": tps})

    def throttle(self, count: int, status: int = 0x58) -> dict:
        return self._req("POST", "/throttle", {"count": count, "status": status})

    def drop(self) -> dict:
        return self._req("POST", "/drop")

    def unbind(self) -> dict:
        return self._req("POST", "/unbind")

    def reset(self) -> dict:
        return self._req("POST", "/reset")

    def log_events(self, ev: str | None = None) -> list[dict]:
        """The SMSC's JSON log lines (e.g. ev="mo_resp" carries the deliver_sm_resp status)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if ev is None or rec.get("ev") == ev:
                out.append(rec)
        return out

    def wait_for(self, pred, timeout: float = 5.0, interval: float = 0.02):
        """Poll pred() (sync) until truthy; returns its value or raises AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pred}")
            time.sleep(interval)
