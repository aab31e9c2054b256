"""The demo says what it does and does what it says (issue 11 findings 4, 5 and the smaller
items): texts really sent on either PBX, one line per call, a prompt stop after --once, its
store kept where `explain` finds it, and the same demo from a real non-editable install."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def demo(tmp_path, *args, python=sys.executable, cwd=ROOT, extra_env=None):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), **(extra_env or {}))
    t0 = time.monotonic()
    p = subprocess.run([python, "-m", "pbx_textback.cli", "demo", "--once", "--pace", "0", *args],
                       capture_output=True, text=True, timeout=180, env=env, cwd=cwd)
    return p, time.monotonic() - t0


def summary(out: str) -> tuple[int, int, int]:
    m = re.search(r"^demo: (\d+) calls, (\d+) missed, (\d+) texts sent \(to the log\)$", out, re.M)
    assert m, out
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@pytest.mark.parametrize("pbx", ["asterisk", "freeswitch"])
def test_the_demo_sends_what_it_says(tmp_path, pbx):
    p, _ = demo(tmp_path, "--pbx", pbx)
    assert p.returncode == 0, p.stderr[-3000:]
    calls, missed, sent = summary(p.stdout)
    queued = p.stdout.count(" queued\n")
    text_lines = re.findall(r"TEXT to (\+\d+) from line", p.stderr)
    assert sent > 0 and sent == queued == len(text_lines), (sent, queued, len(text_lines))
    assert "expired" not in p.stderr and "expired" not in p.stdout
    assert calls == 13 and missed >= sent


@pytest.mark.parametrize("pbx", ["asterisk", "freeswitch"])
def test_the_demo_logs_each_call_once_and_stops_promptly(tmp_path, pbx):
    p, took = demo(tmp_path, "--pbx", pbx)
    assert p.returncode == 0
    for caller in set(re.findall(r"^call from (\+\d+) ", p.stdout, re.M)):
        verdicts = re.findall(rf"^call from {re.escape(caller)} .*$", p.stdout, re.M)
        texts = [x for x in p.stderr.splitlines() if f"TEXT to {caller}" in x]
        # one verdict line per call of this caller (some call twice), one TEXT line per text
        assert len(texts) <= len(verdicts)
    assert "pbx_textback.calls" not in p.stderr          # the verdict line says it once
    assert took < 12, f"demo --once took {took:.1f} s"   # it used to idle 10 s after the last call


def test_the_demo_keeps_its_store_where_explain_finds_it(tmp_path):
    p, _ = demo(tmp_path)
    assert p.returncode == 0
    cmd = re.search(r"^\s+pbx-textback (explain \S+ -c \S+)$", p.stdout, re.M)
    assert cmd, p.stdout
    args = cmd.group(1).split()
    e = subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert e.returncode == 0, e.stderr
    assert "verdict: missed:" in e.stdout and "sent via log" in e.stdout
    assert Path(args[-1]).parent == tmp_path / "state" / "pbx-textback-demo"


def test_the_readme_demo_explain_command_works(tmp_path):
    """The README's own explain line, with its ~ pointed at this test's state dir."""
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"^\s+\.venv/bin/pbx-textback (explain .*)$", readme, re.M).group(1)
    p, _ = demo(tmp_path)
    assert p.returncode == 0
    args = line.replace("~/.local/state", str(tmp_path / "state")).split()
    e = subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert e.returncode == 0 and "verdict: missed: no-answer" in e.stdout, e.stderr


@pytest.mark.timeout(600)
def test_an_installed_package_runs_its_demo(tmp_path):
    """pip install . (not -e) into a new venv, run from outside the checkout."""
    wheels = tmp_path / "wheels"
    b = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                       capture_output=True, text=True, timeout=300)
    assert b.returncode == 0, b.stderr[-2000:]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    wheel = next(wheels.glob("pbx_textback-*.whl"))
    i = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert i.returncode == 0, i.stderr[-2000:]
    # the dependencies come from this test run's environment, appended after the new venv's own
    # site-packages (a plain path: the checkout's editable hook is not loaded)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "zz_test_deps.pth").write_text("\n".join(deps) + "\n")
    where = subprocess.run([str(py), "-c", "import pbx_textback, sys; print(pbx_textback.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert where.stdout.startswith(site), where.stdout + where.stderr
    for pbx in ("asterisk", "freeswitch"):
        p, _ = demo(tmp_path, "--pbx", pbx, python=str(py), cwd=tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
        assert summary(p.stdout)[2] > 0
    # without its traces the demo is an error like any other: exit 2 and the fix
    shutil.rmtree(Path(site) / "pbx_textback" / "demo_traces")
    p, _ = demo(tmp_path, python=str(py), cwd=tmp_path)
    assert p.returncode == 2 and "no recorded asterisk traces found" in p.stderr, p.stderr[-2000:]


def test_pyproject_lists_only_package_data_that_exists():
    import tomllib
    from glob import glob
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for pkg, patterns in data.items():
        for pat in patterns:
            assert glob(str(ROOT / pkg.replace(".", "/") / pat)), pat


def test_first_dev_run_says_what_it_is_doing(tmp_path):
    """`./dev demo` on a fresh checkout: a line before the minute of setting up, not silence.
    A python3 that fails at once stands in for the slow venv creation."""
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "python3").write_text("#!/bin/sh\nexit 3\n")
    (stub / "python3").chmod(0o755)
    env = dict(os.environ, VENV=str(tmp_path / "venv"), PATH=f"{stub}:{os.environ['PATH']}")
    p = subprocess.run([str(ROOT / "dev"), "demo"], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode != 0
    assert "dev: first run: creating" in p.stderr


def test_dev_bench_runs_each_benchmark_once():
    p = subprocess.run([str(ROOT / "dev"), "bench", "--list"], capture_output=True, text=True, timeout=30)
    listed = p.stdout.split()
    assert p.returncode == 0 and "bench/ingest.py" in listed
    assert len(listed) == len(set(listed))
    # bench/ingest.py runs the ESL ingest itself (its default --pbx all): not a second time
    assert "ingest_esl.py" in (ROOT / "bench" / "ingest.py").read_text()
    assert "bench/ingest_esl.py" not in listed


def test_one_log_line_per_voicemail_mail(caplog):
    from tests.integration.test_smtp_listener import FIX, SAMPLES, crlf, harness, send
    caplog.set_level(logging.INFO)

    async def main():
        async with harness() as (port, staff, facts, _):
            data = crlf((FIX / SAMPLES[0]).read_bytes())
            assert await asyncio.to_thread(send, port, data, ["staff@example.com", "boss@example.com"]) == (250, "ok")
    asyncio.run(asyncio.wait_for(main(), 15))
    per_mail = [r for r in caplog.records if r.levelno >= logging.INFO and r.name != "asyncio"
                and "listener on" not in r.getMessage() and "connections still open" not in r.getMessage()]
    assert len(per_mail) == 1, [f"{r.name}: {r.getMessage()}" for r in per_mail]
    assert "boss@example.com" not in caplog.text


def test_the_readme_demo_serves_the_inbox_its_login_signs_in_and_callers_reply(tmp_path):
    """`./dev demo` (the README's command runs `pbx-textback demo`): the printed URL answers, the
    printed demo login signs in, and the demo's callers' replies show up in the inbox live."""
    import signal
    import urllib.error
    import urllib.parse
    import urllib.request
    from http.cookiejar import CookieJar
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^\s+\./dev demo$", readme, re.M) and "sign in as demo" in readme
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    p = subprocess.Popen([sys.executable, "-m", "pbx_textback.cli", "demo", "--pace", "0.2"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        found = None
        for _ in range(40):
            line = p.stdout.readline()
            found = re.match(r"^demo: the inbox is at (http://127\.0\.0\.1:\d+/)  sign in as (\S+) / (\S+)$", line)
            if found:
                break
        assert found, "the demo printed no inbox URL and login"
        url, name, password = found.groups()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        first = opener.open(url, timeout=10)
        assert first.url.endswith("/login") and "password" in first.read().decode()   # signed out: the login
        wrong = urllib.parse.urlencode({"name": name, "password": password + "x"}).encode()
        try:
            opener.open(url + "login", data=wrong, timeout=10)
            raise AssertionError("a wrong password signed in")
        except urllib.error.HTTPError as e:
            assert e.code == 401
        good = urllib.parse.urlencode({"name": name, "password": password}).encode()
        inbox = opener.open(url + "login", data=good, timeout=10)
        assert inbox.url == url and "Needs reply" in inbox.read().decode()
        deadline, page = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            page = opener.open(url + "?view=open", timeout=10).read().decode()
            if re.search(r"· [1-9]\d* repl(y|ies)", page):
                break
            time.sleep(0.5)
        assert re.search(r"· [1-9]\d* repl(y|ies)", page), "no demo caller replied within a minute"
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(30)
    assert p.returncode == 0
