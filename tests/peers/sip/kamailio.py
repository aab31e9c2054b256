"""Start the real Kamailio SIP MESSAGE peer (tests/peers/sip/kamailio-message.cfg) on free
loopback ports, each instance with its own control socket and log, and drive it.

Used by tests/integration/test_sip_message.py; ./run.sh in this folder does the same by hand."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CFG = HERE / "kamailio-message.cfg"
HOST = "127.0.0.1"
AUTH_USER, AUTH_PASS, AUTH_REALM = "authuser", "authpass", "textback.test"


def missing() -> str | None:
    """Why Kamailio cannot run here, or None."""
    for b in ("kamailio", "kamcmd"):
        if shutil.which(b) is None:
            return f"{b} is not installed (apt-get install -y kamailio; ./dev test installs it)"
    return None


def free_port(both: bool = True) -> int:
    """A loopback port free for UDP and (both=True) TCP."""
    for _ in range(50):
        t = socket.socket()
        t.bind((HOST, 0))
        port = t.getsockname()[1]
        try:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind((HOST, port))
            except OSError:
                continue
            finally:
                u.close()
        finally:
            t.close()
        return port
    raise RuntimeError("no free port")


class Kamailio:
    def __init__(self, *, auth: bool = False, tcp: bool = True, port: int | None = None):
        self.auth, self.tcp = auth, tcp
        self.host = HOST
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"kamailio-{self.port}-"))
        self.ctl = f"unix:{self.dir}/ctl.sock"
        self.log_path = self.dir / "kamailio.log"
        self.proc: subprocess.Popen | None = None

    def args(self) -> list[str]:
        a = ["-f", str(CFG), "-A", f"SIP_UDP=udp:{HOST}:{self.port}", "-A", f'CTL_SOCK="{self.ctl}"']
        if self.tcp:
            a += ["-A", f"SIP_TCP=tcp:{HOST}:{self.port}"]
        if self.auth:
            a += ["-A", "WITH_AUTH"]
        return a

    def start(self, timeout: float = 10.0) -> "Kamailio":
        # free_port() only tells what was free a moment ago: another test may take the port
        # before Kamailio binds it, so a port we picked is picked again when that happens
        for _ in range(5):
            try:
                return self._start(timeout)
            except RuntimeError as e:
                if self.fixed_port or "already in use" not in str(e):
                    raise
                self.port = free_port()
                self.dir.mkdir(exist_ok=True)
                self.log_path.unlink(missing_ok=True)
        return self._start(timeout)

    def _start(self, timeout: float) -> "Kamailio":
        chk = subprocess.run(["kamailio", "-c", *self.args()], capture_output=True, text=True)
        if chk.returncode != 0:
            raise RuntimeError(f"kamailio config check failed:\n{chk.stdout}{chk.stderr}")
        log = open(self.log_path, "ab")
        # -DD: stay in the foreground (children still fork); -E: log to stderr
        self.proc = subprocess.Popen(["kamailio", *self.args(), "-DD", "-E"], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited:\n{self.log()[-3000:]}")
            r = subprocess.run(["kamcmd", "-s", self.ctl, "core.version"], capture_output=True)
            if r.returncode == 0:
                return self
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"kamailio did not start:\n{self.log()[-3000:]}")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)     # its own session: main + children
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- observing -----------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def lines(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        return [ln for ln in self.log().splitlines() if rx.search(ln)]

    def wait_lines(self, pattern: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.lines(pattern)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def messages(self, callid: str) -> list[dict]:
        """The MESSAGE-IN lines for one Call-ID as dicts (from, to, ctype, callid, proto, body)."""
        out = []
        rx = re.compile(r"MESSAGE-IN from=(\S*) to=(\S*) ctype=(.*?) callid=(\S*) proto=(\S*) body=(.*)$")
        for ln in self.lines(re.escape(f"callid={callid} ")):
            m = rx.search(ln)
            if m:
                out.append(dict(zip(("from", "to", "ctype", "callid", "proto", "body"), m.groups())))
        return out

    # -- acting --------------------------------------------------------------------------
    def uac(self, method: str, ruri: str, headers: list[str], body: str = "",
            timeout: float = 10.0) -> str:
        """kamcmd tm.t_uac_wait_block: Kamailio sends a request and waits for the final answer;
        returns kamcmd's output (the answer's status line and headers)."""
        hdrs = "".join(h + "\r\n" for h in headers)
        cmd = ["kamcmd", "-s", self.ctl, "tm.t_uac_wait_block", method, ruri, ".", ".", hdrs]
        if body:
            cmd.append(body)
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
        return (r.stdout + r.stderr).decode("utf-8", "replace")
