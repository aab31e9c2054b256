"""`systemctl reload` and the admin page on a running service: the real `pbx-textback run` as a
child, logged in to a loopback AMI server, missed calls played from the recorded trace.

SIGHUP re-reads the file: the next call gets the new template and hours, on the same AMI
connection. A bad file keeps the running config and says why in one line. A template saved on
the admin page (over HTTP, as an admin) takes effect without any reload, and `explain` names
the page change that wrote the text."""
import asyncio
import re
import signal
import sqlite3
import subprocess
import time

import aiohttp

from tests.harness import CallFeeder, ServiceProc, call_bytes, service_command, shipped_config
from tests.peers.smsc_peer import free_port

LINE = "+15125550100"
PW = "reload test password"
V2 = "{{ business.name }} v2: sorry we missed you. Reply STOP to opt out."
V3 = "{{ business.name }} v3 from the page: sorry we missed you. Reply STOP to opt out."


def bodies(store, peer) -> list[tuple[str, str]]:
    """(body, the decision's hours check) of the texts to peer, read with plain sqlite3."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
        return db.execute("SELECT m.body, d.checks FROM message m JOIN decision d ON d.call_id = m.call_id "
                          "WHERE m.peer = ? AND m.kind = 'missed-call'", (peer,)).fetchall()


async def wait_text(store, peer, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = await asyncio.to_thread(bodies, store, peer)
        if got:
            return got[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no text to {peer} within {timeout} s")


async def wait_log(svc, pattern, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if svc.grep(pattern):
            return svc.grep(pattern)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log line {pattern!r} within {timeout} s:\n{svc.tail()}")


def test_reload_keeps_the_pbx_connection_and_page_edits_need_no_reload(tmp_path):
    asyncio.run(_scenario(tmp_path))


async def _scenario(tmp_path):
    feeder = CallFeeder()
    port = await feeder.start()
    web_port = free_port()
    setup = shipped_config(tmp_path, ami_port=port, extra=f'[web]\nlisten = "127.0.0.1:{web_port}"\n')
    (tmp_path / "pw").write_text(PW + "\n")
    subprocess.run(service_command() + ["user", "add", "ada", "--role", "admin", "--password-file",
                                        str(tmp_path / "pw"), "-c", str(setup.config)],
                   env=setup.env, check=True, capture_output=True)
    svc = ServiceProc(setup)
    seq = iter(range(1, 100))

    async def call(caller):
        head, tail = call_bytes(caller, next(seq))
        assert await feeder.write(head + tail) is not None
        return await wait_text(setup.store, caller)
    try:
        assert await feeder.wait_login(30), svc.tail()
        await wait_log(svc, r"web inbox on http")
        first, _ = await call("+15125551001")
        assert "v2" not in first

        # the file changes: a new template for every reason, open around the clock; SIGHUP
        text = setup.config.read_text()
        text = text.replace('template = "Hi, this is {{ business.name }}. Sorry we missed your call. Reply STOP '
                            'to opt out."', f'template = "{V2}"')
        text = re.sub(r'(?m)^after-hours = .*$', f'after-hours = "{V2}"', text)
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            text = re.sub(rf'(?m)^{day} = .*$', f'{day} = ["00:00-24:00"]', text)
        text = re.sub(r'(?m)^holidays = .*$', 'holidays = []', text)
        setup.config.write_text(text)
        svc.send(signal.SIGHUP)
        await wait_log(svc, r"config reloaded from .*config\.toml")
        body, checks = await call("+15125551002")
        assert body == "Acme Dental v2: sorry we missed you. Reply STOP to opt out."
        assert "inside 00:00-24:00" in checks

        # a bad file: the running config stays, one line says why
        setup.config.write_text(text.replace('name = "Acme Dental"', 'name = 42'))
        svc.send(signal.SIGHUP)
        refused = await wait_log(svc, r"reload refused, the running config stays")
        assert len(refused) == 1 and "business.name" in refused[0][1] and "expected a string" in refused[0][1]
        body, _ = await call("+15125551003")
        assert body == "Acme Dental v2: sorry we missed you. Reply STOP to opt out."
        assert svc.alive()

        # the admin page saves a template: the next call uses it, no reload
        setup.config.write_text(text)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:   # an IP address
            base = f"http://127.0.0.1:{web_port}"
            r = await http.post(base + "/login", data={"name": "ada", "password": PW}, allow_redirects=False)
            assert r.status == 303
            page = await (await http.get(f"{base}/admin/lines/{LINE}")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            r = await http.post(f"{base}/admin/lines/{LINE}", allow_redirects=False,
                                data={"csrf": csrf, "part": "templates", f"line[{LINE}].template": V3})
            assert r.status == 303, await r.text()
        await wait_log(svc, r"page settings applied")
        body, _ = await call("+15125551004")
        assert body == "Acme Dental v3 from the page: sorry we missed you. Reply STOP to opt out."

        # one AMI connection from start to end: neither the reloads nor the page dropped it
        assert feeder.connections == 1 and feeder.logins == 1
        assert not svc.grep(r"PBX connection disconnected")

        out = subprocess.run(service_command() + ["explain", "+15125551004", "-c", str(setup.config)],
                             env=setup.env, capture_output=True, text=True, check=True).stdout
        assert re.search(r"decision: text \(template [0-9a-f]{12}: set on the admin page by ada at .*"
                         rf"line\[\{LINE}\]\.template\)", out), out
        out = subprocess.run(service_command() + ["explain", "+15125551002", "-c", str(setup.config)],
                             env=setup.env, capture_output=True, text=True, check=True).stdout
        assert re.search(r"decision: text \(template [0-9a-f]{12}: the config file\)", out), out
        code = await svc.stop()
        assert code == 0, svc.tail()
    finally:
        if svc.alive():
            print(svc.tail(40))
            await svc.stop(signal.SIGKILL)
        await feeder.stop()


def test_the_unit_reloads_with_sighup():
    from pathlib import Path
    unit = (Path(__file__).resolve().parents[2] / "systemd" / "pbx-textback.service").read_text()
    assert re.search(r"(?m)^ExecReload=/bin/kill -HUP \$MAINPID$", unit)
