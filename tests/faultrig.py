"""Fault runs for bench/faults.py (long) and tests/integration/test_faults.py (short): the real
service (`pbx-textback run`, config.example.toml with only addresses changed, quiet hours and the
hourly SMS-pumping cap off so that the faults are what is measured; the shipped-defaults test
keeps those on), the loopback AMI server and the real test SMSC, through kills, outages,
throttling, AMI drops and a second bind on the same account. Each scenario gets a fresh store,
SMSC and PBX, distinct callers, and ends with a tally per caller (tests/harness.py: Tally).

Every wait is bounded; 127.0.0.1 only.
"""
from __future__ import annotations

import asyncio
import itertools
import random
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import (LINE, CallFeeder, ServiceProc, Tally, call_bytes, caller_number,
                           cut_call_bytes, e164, first_parts, service_command, shipped_config,
                           store_rows, tally)

OVERRIDES = {("compliance", "quiet_hours"): '""', ("compliance", "global_hourly_cap"): "0"}
_callers = itertools.count()


def next_caller() -> str:
    return caller_number(next(_callers))


@dataclass
class Result:
    name: str
    tally: Tally
    seconds: float
    notes: list[str] = field(default_factory=list)


class Rig:
    """One scenario's world: a CallFeeder (the PBX), one SMSC, the service as a child process."""

    def __init__(self, tmp: Path, smsc, rng: random.Random):
        self.tmp, self.smsc, self.rng = tmp, smsc, rng
        self.feeder = CallFeeder()
        self.svc: ServiceProc | None = None
        self.setup = None
        self.callers: list[str] = []
        self.seq = itertools.count(1)
        self.smsc_earlier: list[dict] = []       # what the SMSC had before a restart or /reset
        self.smsc_up = True
        self.smsc_died: list[tuple[float, float]] = []   # (stop asked, process gone) of the SMSC
        self.kills = self.terms = 0
        self.notes: list[str] = []

    async def __aenter__(self):
        port = await self.feeder.start()
        self.setup = shipped_config(self.tmp, ami_port=port, smsc_port=self.smsc.port, overrides=OVERRIDES)
        return self

    async def __aexit__(self, *exc):
        if self.svc is not None:
            await self.svc.stop(signal.SIGKILL)
        await self.feeder.stop()

    # -- the service ---------------------------------------------------------------------------
    def spawn(self) -> ServiceProc:
        self.svc = ServiceProc(self.setup)
        return self.svc

    async def up(self, timeout: float = 60.0) -> None:
        """Start the service and wait until it is logged in to the PBX (and bound, SMSC up)."""
        binds = len(self.smsc.log_events("bind"))
        svc = self.spawn()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not svc.alive():
                raise RuntimeError(f"the service exited at start:\n{svc.tail()}")
            logged = await self.feeder.wait_login(0.05)
            if logged and (not self.smsc_up or len(self.smsc.log_events("bind")) > binds):
                await asyncio.sleep(0.2)
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"service not ready within {timeout} s:\n{svc.tail()}")

    async def down(self, sig: int) -> None:
        if self.svc is None:
            return
        if sig == signal.SIGKILL:
            self.kills += 1
        else:
            self.terms += 1
        t = time.monotonic()
        code = await self.svc.stop(sig, timeout=30)
        if sig == signal.SIGTERM and code != 0:
            self.notes.append(f"SIGTERM: exit {code} (not a clean stop within 30 s)")
        elif sig == signal.SIGTERM and time.monotonic() - t > 5:
            self.notes.append(f"SIGTERM: took {time.monotonic() - t:.1f} s to stop")
        self.svc = None

    # -- the PBX -------------------------------------------------------------------------------
    async def call(self, caller: str | None = None, login_timeout: float = 90.0) -> str:
        """One missed call from a new caller, once a client is logged in."""
        caller = caller or next_caller()
        head, tail = call_bytes(caller, next(self.seq))
        end = time.monotonic() + login_timeout
        while True:           # a connection that dies between the check and the write: again
            if not await self.feeder.wait_login(max(0.0, end - time.monotonic())):
                raise RuntimeError("no PBX client logged in: cannot play a call")
            if await self.feeder.write(head + tail) is not None:
                break
        self.callers.append(caller)
        return caller

    async def decided(self, timeout: float = 30.0) -> None:
        """Until the store has a call row for every caller played so far (bounded)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            _, calls = await asyncio.to_thread(store_rows, self.setup.store)
            if {c["caller"] for c in calls} >= set(self.callers):
                return
            await asyncio.sleep(0.1)
        self.notes.append(f"calls not all decided within {timeout:.0f} s")

    # -- the SMSC ------------------------------------------------------------------------------
    def smsc_messages(self) -> list[dict]:
        return self.smsc_earlier + (self.smsc.messages() if self.smsc_up else [])

    def smsc_stop(self) -> None:
        self.smsc_earlier += self.smsc.messages()
        asked = time.time()
        self.smsc.stop()
        self.smsc_died.append((asked, time.time()))
        self.smsc_up = False

    def smsc_start(self) -> None:
        self.smsc.start()
        self.smsc_up = True

    def smsc_reset(self) -> None:
        self.smsc_earlier += self.smsc.messages()
        self.smsc.reset()

    def control(self, path: str, body: dict) -> bool:
        """A control endpoint of the SMSC; False (noted) when this SMSC does not have it."""
        r = self.smsc._req("POST", path, body)
        if isinstance(r, dict) and r.get("http_status") == 404:
            self.notes.append(f"SMSC has no {path}: that fault was not applied")
            return False
        return True

    # -- the end -------------------------------------------------------------------------------
    async def settle(self, timeout: float) -> None:
        """Until the store holds no pending/sending text and the SMSC count is steady for 1.5 s."""
        end = time.monotonic() + timeout
        last, steady = -1, 0.0
        while time.monotonic() < end:
            msgs, _ = await asyncio.to_thread(store_rows, self.setup.store)
            busy = sum(m["state"] in ("pending", "sending") for m in msgs)
            n = len(await asyncio.to_thread(self.smsc_messages))
            steady = steady + 0.25 if (n == last and not busy) else 0.0
            last = n
            if steady >= 1.5:
                return
            await asyncio.sleep(0.25)
        self.notes.append(f"not settled within {timeout:.0f} s (texts still pending or sending)")

    async def finish(self, name: str, t0: float, settle: float, opted_out=frozenset(),
                     pbx_login: bool = True) -> Result:
        if self.svc is None:
            await self.up()
        elif pbx_login and not await self.feeder.wait_login(60):   # the last start is through
            self.notes.append("the service did not log in to the PBX within 60 s of its last start")
        await asyncio.sleep(0.5)
        await self.settle(settle)
        await self.down(signal.SIGTERM)
        t = tally(self.callers, self.smsc_messages(), self.setup.store, opted_out, self.smsc_died)
        return Result(name, t, time.monotonic() - t0, self.notes)


# ---------------------------------------------------------------------------------- scenarios
async def kills(rig: Rig, calls: int, n_kills: int, rate: float, settle: float) -> Result:
    """SIGKILL at random moments while missed calls stream in: during start-up (a quarter of the
    kills) or up to 3 s after the login, i.e. while calls are decided and texts claimed, written
    and answered; the service is started again at once."""
    t0 = time.monotonic()
    feed_done = asyncio.Event()

    async def feed():
        for _ in range(calls):
            await rig.call()
            await asyncio.sleep(rig.rng.expovariate(rate))
        feed_done.set()

    feeder = asyncio.create_task(feed())
    try:
        while rig.kills < n_kills and not (feeder.done() and feeder.exception()):
            svc = rig.spawn()
            if rig.rng.random() < 0.25:
                await asyncio.sleep(rig.rng.uniform(0.0, 1.5))
            else:
                await rig.feeder.wait_login(60)
                await asyncio.sleep(rig.rng.uniform(0.0, 3.0))
            if not svc.alive():
                raise RuntimeError(f"the service died by itself:\n{svc.tail()}")
            await rig.down(signal.SIGKILL)
        rig.spawn()
        await asyncio.wait_for(asyncio.shield(feeder), 600)
    finally:
        feeder.cancel()
    return await rig.finish(f"SIGKILL x{rig.kills} over {calls} calls", t0, settle)


async def term_during_outage(rig: Rig, calls: int, settle: float, sig=signal.SIGTERM) -> Result:
    """The gateway is down (connection refused); missed calls come in; the service is stopped
    (SIGTERM, or SIGKILL); the gateway comes back; the service starts again."""
    t0 = time.monotonic()
    rig.smsc_stop()
    await rig.up()
    for _ in range(calls):
        await rig.call()
    await rig.decided()
    await asyncio.sleep(1.0)
    await rig.down(sig)
    rig.smsc_start()
    await rig.up()
    return await rig.finish(f"{signal.Signals(sig).name} during a gateway outage, {calls} calls", t0, settle)


async def term_during_throttled_burst(rig: Rig, calls: int, settle: float) -> Result:
    """Every submit answered ESME_RTHROTTLED while a burst of calls comes in; SIGTERM mid-burst;
    the throttling ends; the service starts again."""
    t0 = time.monotonic()
    await rig.up()
    rig.smsc.throttle(10_000)
    for _ in range(calls):
        await rig.call()
    await rig.decided()
    await asyncio.sleep(0.5)
    await rig.down(signal.SIGTERM)
    rig.smsc_reset()                       # throttling over (messages kept by the rig)
    await rig.up()
    return await rig.finish(f"SIGTERM during a throttled burst of {calls}", t0, settle)


async def ami_cuts(rig: Rig, cuts: int, settle: float) -> Result:
    """The AMI connection drops while a call rings and the rest of that call never arrives
    (the reconnect's CoreShowChannels lists no channel); a normal call follows each drop. The
    cut callers are reported apart: with no CDR in the example config nothing says whether
    they were missed, so the check is that none is texted twice and the service goes on."""
    t0 = time.monotonic()
    await rig.up()
    cut = []
    for _ in range(cuts):
        c = next_caller()
        cut.append(c)
        await rig.feeder.write(cut_call_bytes(c, next(rig.seq)))
        await asyncio.sleep(0.2)
        rig.feeder.drop()
        await rig.call()
    res = await rig.finish(f"AMI dropped mid-call x{cuts} (+{cuts} whole calls)", t0, settle)
    at = {}
    for m in rig.smsc_messages():
        to = "+" + str(m["destination_addr"]).lstrip("+")
        at[to] = at.get(to, 0) + 1
    twice = [c for c in cut if at.get(c, 0) > 1]
    res.tally.duplicated += [f"{c} (cut call) x{at[c]}" for c in twice]
    res.notes.append(f"cut calls: {sum(1 for c in cut if at.get(c))} of {cuts} texted, "
                     f"{len(twice)} more than once")
    return res


async def gateway_fault(rig: Rig, calls: int, rate: float, settle: float, fault: str,
                        hang_s: float = 40.0) -> Result:
    """Calls stream in while the gateway misbehaves one way for a while:
    outage: the SMSC process is gone for 4 s; hang: it answers no submit_sm for hang_s (POST
    /hang; longer than the example's 30 s response_timeout, so texts become unknown and the
    late answers and receipts are the evidence);
    throttle: the next 30 submits answered ESME_RTHROTTLED; quota: at most 3 submits a second
    (POST /quota); dlr-first: every receipt before its submit_sm_resp (POST /dlr-first)."""
    t0 = time.monotonic()
    await rig.up()
    applied = True
    for i in range(calls):
        if i == calls // 4:
            if fault == "outage":
                rig.smsc_stop()
                asyncio.get_running_loop().call_later(4.0, rig.smsc_start)
            elif fault == "hang":
                applied = rig.control("/hang", {"ms": int(hang_s * 1000)})
            elif fault == "throttle":
                rig.smsc.throttle(30)
            elif fault == "quota":
                applied = rig.control("/quota", {"tps": 3})
            elif fault == "dlr-first":
                applied = rig.control("/dlr-first", {"on": True})
        await rig.call(login_timeout=90)
        await asyncio.sleep(rig.rng.expovariate(rate))
    if fault == "outage":
        end = time.monotonic() + 10
        while not rig.smsc_up and time.monotonic() < end:
            await asyncio.sleep(0.1)
    res = await rig.finish(f"gateway {fault}, {calls} calls" + ("" if applied else " (fault NOT applied)"),
                           t0, settle)
    if fault == "quota" and applied:
        rig.control("/quota", {"tps": 0})
    return res


async def two_binds(rig: Rig, calls: int, stops: int, settle: float, second: bool = True) -> Result:
    """`pbx-textback send-test` binds on the service's account while the service runs; callers
    text STOP meanwhile (the gateway may hand an MO to either bind) and then call: none of them
    may get a missed-call text."""
    t0 = time.monotonic()
    await rig.up()
    binds = len(rig.smsc.log_events("bind"))
    test = await asyncio.create_subprocess_exec(
        *service_command(), "send-test", "-c", str(rig.setup.config), "--to", next_caller(),
        "--text", "harness send-test", "--wait", "8", env=rig.setup.env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL) if second else None
    try:
        end = time.monotonic() + 30
        while second and len(rig.smsc.log_events("bind")) <= binds and time.monotonic() < end:
            await asyncio.sleep(0.05)
        stoppers = [next_caller() for _ in range(stops)]
        for c in stoppers:
            rig.smsc.mo(c.lstrip("+"), LINE.lstrip("+"), "STOP")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        for c in stoppers:
            await rig.call(c)
        for _ in range(calls):
            await rig.call()
    finally:
        try:
            if test is not None:
                await asyncio.wait_for(test.wait(), 30)
        except asyncio.TimeoutError:
            test.kill()
            await test.wait()
    return await rig.finish(f"two binds on one account: {stops} STOPs then calls, +{calls} calls",
                            t0, settle, opted_out=set(stoppers))


FS = Path(__file__).resolve().parent / "fixtures" / "freeswitch"
FS_MISSED = {"03-abandoned.esl": "+15125550125", "02-no-answer.esl": "+15125550124",
             "04-busy.esl": "+15125550126", "05-voicemail.esl": "+15125550127",
             "07-queue-abandon.esl": "+15125550129", "09-after-hours.esl": "+15125550131"}


_DIDS = re.compile(rb"1512555010[1-9]")     # the recorded DIDs (ext 100's, the ring group's, ...)
_US = re.compile(rb"^([A-Za-z-]+(?:Time|Timestamp)): (1[0-9]{15})$", re.M)


def _recent(trace: bytes) -> bytes:
    """The recorded microsecond times moved so the call happens now (same digit count, so every
    Content-Length stays right): the service dates a FreeSWITCH call by its events."""
    first = int(_US.search(trace).group(2))
    delta = int(time.time() * 1e6) - first
    return _US.sub(lambda m: b"%s: %d" % (m.group(1), int(m.group(2)) + delta), trace)


async def esl_cut(rig: Rig, cut_after: int, settle: float) -> Result:
    """FreeSWITCH: the event socket closes `cut_after` events into the first missed call and the
    rest of that call never arrives (the loopback ESL server goes on with the next recorded call
    on the new connection); five more missed calls follow. The example config with
    pbx.type = "freeswitch" and a [pbx.esl] table; the recorded calls' DIDs rewritten to its line."""
    from pbx_textback.esl.replay_server import EslReplayServer
    t0 = time.monotonic()
    traces = []
    for name in FS_MISSED:
        p = rig.tmp / name
        p.write_bytes(_recent(_DIDS.sub(LINE[1:].encode(), (FS / name).read_bytes())))
        traces.append(p)
    esl = EslReplayServer(traces, password="harness-esl", close_after=cut_after)
    port = await esl.start()
    rig.setup = shipped_config(rig.tmp, ami_port=rig.feeder.port, smsc_port=rig.smsc.port,
                               overrides={**OVERRIDES, ("pbx", "type"): '"freeswitch"'},
                               extra=f'[pbx.esl]\nport = {port}\npassword = "harness-esl"\n')
    cut, *rest = FS_MISSED.values()
    rig.callers = list(rest)
    try:
        rig.spawn()
        end = time.monotonic() + 90
        while esl.idle.is_set() is False and time.monotonic() < end:
            await asyncio.sleep(0.1)
        if not esl.idle.is_set():
            rig.notes.append("the ESL server did not play every call within 90 s")
        res = await rig.finish(f"ESL dropped mid-call ({cut_after} events in), +{len(rest)} calls", t0, settle,
                               pbx_login=False)
    finally:
        await esl.stop()
    n = sum(1 for m in first_parts(rig.smsc_messages()) if e164(m["destination_addr"]) == cut)
    if n > 1:
        res.tally.duplicated.append(f"{cut} (cut call) x{n}")
    res.notes.append(f"cut call: texted {n} time(s); ESL connections {esl.connections}")
    return res


def report(results: list[Result]) -> str:
    out = []
    total = Tally()
    for r in results:
        out.append(f"{r.name}  ({r.seconds:.0f} s)\n  {r.tally.line()}\n{r.tally.details()}")
        out += [f"    note: {n}" for n in r.notes]
        total.callers += r.tally.callers
        total.texted_once += r.tally.texted_once
        for k in ("lost", "duplicated", "wrong_unknown", "unknown_at_smsc", "died_with_gateway", "unseen",
                  "after_stop"):
            getattr(total, k).extend(getattr(r.tally, k))
        total.not_texted.update(r.tally.not_texted)
    out.append(f"TOTAL  {total.line()}")
    return "\n".join(out)


async def run_plan(plan: list[tuple], *, seed: int, dlr_delay_ms: int = 200, log=print,
                   smsc_dir: Path | None = None) -> list[Result]:
    """plan: [(scenario function, kwargs)]; each in a fresh temp dir with a fresh SMSC (from
    smsc_dir as it is, else tests/peers/smsc installed)."""
    import tempfile
    from tests.peers import smsc_peer
    work = smsc_dir or smsc_peer.install()
    results = []
    for i, (fn, kw) in enumerate(plan):
        rng = random.Random(seed * 1000 + i)
        with tempfile.TemporaryDirectory(prefix="pbx-faults-") as d:
            smsc = smsc_peer.Smsc(work, dlr_delay_ms=dlr_delay_ms).start()
            try:
                async with Rig(Path(d), smsc, rng) as rig:
                    res = await fn(rig, **kw)
            finally:
                smsc.close()
        log(report([res]).rsplit("\nTOTAL", 1)[0])
        results.append(res)
    return results
