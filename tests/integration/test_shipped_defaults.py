"""The example config AS SHIPPED, end to end, on the real clock (issue 10, "make it hard to ship
again"): `pbx-textback run -c FILE` as a subprocess with config.example.toml, only the PBX port
and secret file, the store path and (for the SMPP runs) the transport switched to the example's
own [transport.smpp] block pointed at the real test SMSC. The PBX is a loopback AMI server
playing a recorded missed call (ext 100 rings, the caller hangs up) with the caller rewritten.

Quiet hours stay on (08:00-20:00 in the caller's zone). To be at a chosen instant without faking
time inside Python, the service runs under libfaketime: its wall clock starts at that instant and
ticks in real time; monotonic clocks stay real. A twin runs without faketime at all, picking
callers whose zone is inside / outside the window right now.
"""
from __future__ import annotations

import asyncio
import shutil
import signal
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from phonenumbers.timezone import time_zones_for_number

from tests.harness import (CallFeeder, ServiceProc, call_bytes, e164, iso_ts, shipped_config,
                           store_rows)

needs_faketime = pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime missing "
                                    "(apt-get install faketime; tests/peers/needs-apt.txt)")

NY_CALLER = "+12125550177"            # America/New_York: one hour ahead of the business (Chicago)
NY = ZoneInfo("America/New_York")
DAY = (2026, 12, 2)                   # a Wednesday (the example line has no Wednesday hours: after-hours)
ONE_SECOND = 1.0                      # "texts a real missed call within a second"
HELD_SLACK = 1.5                      # a held text: after the window opens, within the outbox's poll


def at(zone: ZoneInfo, hh: int, mm: int, ss: int = 0) -> float:
    return datetime(*DAY, hh, mm, ss, tzinfo=zone).timestamp()


async def _ready(feeder: CallFeeder, svc: ServiceProc, smsc, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert svc.alive(), f"the service exited:\n{svc.tail()}"
        bound = smsc is None or await asyncio.to_thread(smsc.log_events, "bind")
        if bound and await feeder.wait_login(0.05):
            await asyncio.sleep(0.3)           # the login's reconcile (CoreShowChannels) settles
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"service not logged in / bound within {timeout} s:\n{svc.tail()}")


async def _play(feeder: CallFeeder, caller: str, seq: int) -> float:
    head, tail = call_bytes(caller, seq)
    end = await feeder.write(head)         # the caller's Hangup: the call is over
    assert end is not None
    await feeder.write(tail)
    return end


def _arrivals(smsc, svc: ServiceProc, number: str) -> list[tuple[float, str]]:
    """(when, text) of each text to `number`: when the SMSC received it (its own clock), or,
    with the log transport, when the service wrote its `TEXT to` line (the line is the text)."""
    if smsc is not None:
        return [(iso_ts(m["received"]), m["text"]) for m in smsc.messages()
                if e164(m["destination_addr"]) == number]
    masked = number[:-4]
    return [(t, ln) for t, ln in svc.grep(r"TEXT to ") if masked in ln]


def _check_text(text: str) -> None:
    """What the caller reads: the example's templates name the business and say how to stop."""
    assert "Acme Dental" in text and "Reply STOP to opt out." in text, text


async def _wait_arrival(smsc, svc, number: str, until: float) -> list[tuple[float, str]]:
    while time.time() < until:
        got = await asyncio.to_thread(_arrivals, smsc, svc, number)
        if got:
            return got
        await asyncio.sleep(0.05)
    return await asyncio.to_thread(_arrivals, smsc, svc, number)


async def _one_call_at(tmp_path, smsc, local_at: float, lead: float):
    """Run the shipped service whose wall clock reads `local_at` `lead` seconds after launch
    (libfaketime offset, whole seconds: the service's clock = real clock + offset) and play one
    missed call from NY_CALLER as soon as it is up: (feeder, service, call end, offset)."""
    feeder = CallFeeder()
    port = await feeder.start()
    setup = shipped_config(tmp_path, ami_port=port, smsc_port=smsc.port if smsc else None)
    offset = round(local_at - (time.time() + lead))
    svc = ServiceProc(setup, faketime=f"{offset:+d}")
    try:
        await _ready(feeder, svc, smsc)
        end = await _play(feeder, NY_CALLER, 1)
        return feeder, svc, end, offset
    except BaseException:
        await svc.stop(signal.SIGKILL)
        await feeder.stop()
        raise


@needs_faketime
@pytest.mark.parametrize("transport", ["smpp", "log"])
def test_inside_quiet_hours_window_the_text_goes_within_a_second(tmp_path, smsc_factory, transport):
    smsc = smsc_factory() if transport == "smpp" else None

    async def main():
        # 12:00 in the caller's zone, well inside 08:00-20:00
        feeder, svc, end, _ = await _one_call_at(tmp_path, smsc, at(NY, 12, 0), lead=5)
        try:
            got = await _wait_arrival(smsc, svc, NY_CALLER, end + 5)
        finally:
            await svc.stop()
            await feeder.stop()
        assert got, f"no text to {NY_CALLER} within 5 s of the call's end at noon:\n{svc.tail()}"
        assert len(got) == 1
        _check_text(got[0][1])
        assert got[0][0] - end < ONE_SECOND, f"text took {got[0][0] - end:.2f} s after the call's end"
    asyncio.run(main())


@needs_faketime
@pytest.mark.parametrize("transport", ["smpp", "log"])
def test_before_the_window_opens_the_text_is_held_then_goes_when_it_opens(tmp_path, smsc_factory, transport):
    smsc = smsc_factory() if transport == "smpp" else None
    lead = 20.0            # the service's clock reads 08:00:00 in the caller's zone this long after launch

    async def main():
        opening = at(NY, 8, 0)
        feeder, svc, end, offset = await _one_call_at(tmp_path, smsc, opening, lead=lead)
        open_real = opening - offset           # the real instant the caller's window opens
        try:
            assert end < open_real - 1, "the service took too long to start to test a held text"
            early = await _wait_arrival(smsc, svc, NY_CALLER, open_real - 0.3)
            assert not early, (f"text sent {open_real - early[0][0]:.1f} s before 08:00 in the "
                               "caller's zone (quiet hours)")
            got = await _wait_arrival(smsc, svc, NY_CALLER, open_real + 5)
            msgs, _ = store_rows(tmp_path / "textback.sqlite3")
        finally:
            await svc.stop()
            await feeder.stop()
        assert got, (f"the held text did not go within 5 s of 08:00 in the caller's zone; store: "
                     f"{[(m['state'], m['note']) for m in msgs]}\n{svc.tail()}")
        assert len(got) == 1
        _check_text(got[0][1])
        assert got[0][0] >= open_real - 0.01, f"sent {open_real - got[0][0]:.2f} s before the window opened"
        assert got[0][0] - open_real < HELD_SLACK, f"sent {got[0][0] - open_real:.2f} s after the window opened"
    asyncio.run(main())


# ---------------------------------------------------------------------------------- no faketime
CANDIDATES = ["+12125550", "+15125550", "+13035550", "+14155550", "+19075550", "+18085550"]


def _zone_of(prefix: str) -> ZoneInfo | None:
    zones = time_zones_for_number(phonenumbers.parse(prefix + "177"))
    return ZoneInfo(zones[0]) if len(zones) == 1 else None    # 907 spans Adak and Anchorage


def _next_opening(zone: ZoneInfo, now: float) -> float:
    local = datetime.fromtimestamp(now, zone)
    day = local.date() if local.hour < 8 else local.date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, 8, 0, tzinfo=zone).timestamp()


def _pick(now: float) -> tuple[str | None, str | None]:
    """A caller prefix whose zone is inside 08:00-20:00 now, and one outside (None when no zone
    is); never within 3 minutes of a boundary, so the answer cannot flip during the test."""
    inside = outside = None
    for p in CANDIDATES:
        z = _zone_of(p)
        if z is None:
            continue
        lt = datetime.fromtimestamp(now, z)
        minutes = lt.hour * 60 + lt.minute
        if min(abs(minutes - 8 * 60), abs(minutes - 20 * 60)) < 3:
            continue
        if 8 * 60 <= minutes < 20 * 60:
            inside = inside or p
        else:
            outside = outside or p
    return inside, outside


def test_real_clock_caller_inside_window_texted_at_once_outside_held_until_it_opens(tmp_path, smsc):
    inside, outside = _pick(time.time())
    assert inside or outside

    async def main():
        feeder = CallFeeder()
        port = await feeder.start()
        setup = shipped_config(tmp_path, ami_port=port, smsc_port=smsc.port)
        svc = ServiceProc(setup)
        try:
            await _ready(feeder, svc, smsc)
            ends = {}
            for seq, p in enumerate(x for x in (inside, outside) if x):
                ends[p + "177"] = await _play(feeder, p + "177", seq + 1)
            got_in = await _wait_arrival(smsc, svc, inside + "177", max(ends.values()) + 3) if inside else None
            await asyncio.sleep(0 if inside else 3)
            got_out = _arrivals(smsc, svc, outside + "177") if outside else None
            msgs, _ = store_rows(setup.store)
        finally:
            await svc.stop()
            await feeder.stop()
        if inside:
            n = inside + "177"
            assert got_in, f"no text to {n} ({_zone_of(inside).key}, inside the window now):\n{svc.tail()}"
            assert len(got_in) == 1
            _check_text(got_in[0][1])
            assert got_in[0][0] - ends[n] < ONE_SECOND, f"took {got_in[0][0] - ends[n]:.2f} s"
        if outside:
            n = outside + "177"
            assert not got_out, f"{n} texted outside 08:00-20:00 in {_zone_of(outside).key}"
            rows = [m for m in msgs if m["peer"] == n and m["kind"] == "missed-call"]
            assert [m["state"] for m in rows] == ["pending"], rows
            want = _next_opening(_zone_of(outside), ends[n])
            assert abs(rows[0]["due_at"] - want) < 1, (
                f"held until {datetime.fromtimestamp(rows[0]['due_at'], _zone_of(outside))}, "
                f"want {datetime.fromtimestamp(want, _zone_of(outside))}")
    asyncio.run(main())
