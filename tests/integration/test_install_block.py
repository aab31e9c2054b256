"""Issue 11, "test it the way the admin does it": the README's install block, taken from the
README itself (the two cannot drift), pasted into bash as root, in a scratch root ($ROOT).

What differs from a real box, and why: every absolute path of the block is under $ROOT; the
unit's user comes from the sysusers file through `systemd-sysusers --root`, the directories
from the tmpfiles file through `systemd-tmpfiles --root`; `editor` makes the edits the
config's comments ask for (tests/install_host.py); systemd is not PID 1 here, so `systemctl
enable --now` is played by tests/install_host.py as systemd would (the unit's User, its
credentials directory, its runtime/state/configuration directories, Type=notify). Everything
else runs for real: the release tarball, pip, `doctor` as root first, then the service as the
unit's user against the loopback AMI server and the real SMSC, and a missed call texted.
"""
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from tests.ami_thread import ThreadedAmi

ROOT_DIR = Path(__file__).resolve().parents[2]
FIX = ROOT_DIR / "tests" / "fixtures" / "asterisk"
VERSION = re.search(r'^version = "([^"]+)"', (ROOT_DIR / "pyproject.toml").read_text(), re.M).group(1)
TOOLS = ("systemd-sysusers", "systemd-tmpfiles", "systemd-analyze", "systemctl", "setpriv")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the install block runs as root (CI does)"),
    pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"),
    pytest.mark.timeout(600),
]


def install_block() -> list[str]:
    """The indented block after the README's "Install on the PBX box" heading."""
    text = (ROOT_DIR / "README.md").read_text()
    section = text.split("## Install on the PBX box\n", 1)[1]
    m = re.search(r"((?:^    \S.*\n)+)", section, re.M)
    return [ln[4:] for ln in m.group(1).splitlines()]


def release_tarball(dest: Path) -> Path:
    """A release tarball of this tree: what `git archive` of a tag gives (tracked and new
    files of the work tree, under pbx-textback-VERSION/)."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT_DIR, capture_output=True, check=True).stdout.decode().split("\0")
    out = dest / f"pbx-textback-{VERSION}.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for n in filter(None, names):
            if (ROOT_DIR / n).exists():
                tar.add(ROOT_DIR / n, arcname=f"pbx-textback-{VERSION}/{n}", recursive=False)
    return out


def in_root(line: str, root: Path) -> str:
    return re.sub(r"(?<![\w.$/-])/(opt|etc|usr/lib|usr/local|var/lib|run)/", lambda m: f"{root}/{m.group(1)}/", line)


PRELUDE = r"""
set -euo pipefail
umask 022     # Debian's root shell
export PATH="$ROOT/usr/local/bin:$PATH"     # /usr/local/bin of the box
apt-get() {   # installs only what is missing (CI's machine has python3-venv already)
  local p; for p in "$@"; do case $p in -*|install) ;; *)
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || { command apt-get "$@"; return; } ;;
  esac; done
}
systemd-sysusers() { command systemd-sysusers --root="$ROOT" "$@"; }
systemd-tmpfiles() { command systemd-tmpfiles --root="$ROOT" "$@"; }
editor() { PYTHONPATH="$HOST_SRC" "$HOST_PY" -m tests.install_host edit "$@"; }
systemctl() { PYTHONPATH="$HOST_SRC" "$HOST_PY" -m tests.install_host systemctl "$@"; }
"""


@pytest.fixture
def scratch():
    """Outside pytest's tmp (0700, and other pytest sessions reset it): the unit's user must
    reach the files, as it reaches /opt and /etc on a real box."""
    d = Path(tempfile.mkdtemp(prefix="ptb-install-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_the_readme_install_block_gives_a_running_service_that_texts_a_missed_call(scratch, smsc_factory):
    tmp_path = scratch
    root = tmp_path / "root"
    for d in ("etc/systemd/system", "usr/lib/sysusers.d", "usr/lib/tmpfiles.d", "usr/local/bin", "var/lib",
              "run", "opt"):
        (root / d).mkdir(parents=True)                      # an installed Debian, with systemd's
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)  # units
    dl = tmp_path / "download"
    dl.mkdir()
    release_tarball(dl)
    smsc = smsc_factory(system_id="acme", password="smsc-pw", dlr_delay_ms=50)
    block = install_block()
    assert block[0].startswith("mkdir -p /opt/pbx-textback-src"), block[0]
    assert not any("example.invalid" in ln for ln in block)
    for ln in block:          # every path the block writes must land in the scratch root
        for path in re.findall(r"(?<![\w.$/-])(/[\w/.-]+)", ln):
            assert path == "/dev/null" or re.match(r"/(opt|etc|usr/lib|usr/local|var/lib|run)/", path), \
                f"{path} in `{ln}` would not be in the scratch root: teach in_root() about it"
    script = PRELUDE + "\n".join(in_root(ln, root) for ln in block) + "\n"
    with ThreadedAmi([FIX / "02-no-answer.ami"], username="textback", secret="ami-pw",
                     loop=True, pace=1.0) as ami:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}    # the admin's own shell
        env.update(ROOT=str(root), HOST_PY=sys.executable, HOST_SRC=str(ROOT_DIR),
                   AMI_PORT=str(ami.port), AMI_SECRET="ami-pw", LINE="+15125550110",
                   SMSC_PORT=str(smsc.port), SMSC_SYSTEM_ID="acme", SMSC_PASSWORD="smsc-pw")
        try:
            p = subprocess.run(["bash", "-c", script], cwd=dl, env=env, capture_output=True, text=True,
                               timeout=540)
            journal = (root / "journal.log").read_text() if (root / "journal.log").exists() else ""
            assert p.returncode == 0, f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}\njournal:\n{journal[-3000:]}"
            # doctor, as root, before the service ever ran: every check green
            assert "all checks passed" in p.stdout, p.stdout
            assert "[ok  ] transport: smpp: bound" in p.stdout and "[ok  ] ami login" in p.stdout
            # ... and it left the store to the unit's user
            store = root / "var/lib/pbx-textback/textback.sqlite3"
            uid = int(next(ln for ln in (root / "etc/passwd").read_text().splitlines()
                           if ln.startswith("pbx-textback:")).split(":")[2])
            assert store.stat().st_uid == uid
            # the service, as the unit's user, texts the missed call through the real SMSC
            t0 = time.time()
            while not smsc.messages() and time.time() - t0 < 60:
                time.sleep(0.2)
            got = smsc.messages()
            assert got and got[0]["destination_addr"].lstrip("+") == "17375550188", \
                (root / "journal.log").read_text()[-3000:]
            assert "Acme Dental" in got[0]["text"]
            # status, as root from a shell: green
            status = subprocess.run([str(root / "usr/local/bin/pbx-textback"), "status", "-c",
                                     str(root / "etc/pbx-textback/config.toml")],
                                    env=dict(os.environ, RUNTIME_DIRECTORY=str(root / "run/pbx-textback")),
                                    capture_output=True, text=True, timeout=60)
            assert status.returncode == 0, status.stdout + status.stderr
            assert "PBX: connected" in status.stdout and "transport smpp: bound" in status.stdout
            ps = subprocess.run(["ps", "-o", "uid=", "-p", (root / "run/install-host/pid").read_text()],
                                capture_output=True, text=True).stdout.strip()
            assert ps == str(uid), ps                                   # not root
            assert (root / "etc/systemd/system/multi-user.target.wants/pbx-textback.service").is_symlink()
        finally:
            stop = subprocess.run([sys.executable, "-m", "tests.install_host", "stop"], cwd=ROOT_DIR,
                                  env=dict(env, PYTHONPATH=str(ROOT_DIR)),
                                  capture_output=True, text=True, timeout=60)
        assert stop.stdout.strip() == "0", stop.stdout + stop.stderr
    journal = (root / "journal.log").read_text()
    assert "ERROR" not in journal and "Traceback" not in journal, journal[-3000:]

    # the installed unit: systemd's own checks, in the scratch root
    unit = root / "etc/systemd/system/pbx-textback.service"
    kill = root / "bin/kill"          # ExecReload= runs it; every box has it (procps), the scratch root not
    if not kill.exists():
        kill.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shutil.which("kill") or "/bin/kill", kill)
    v = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "pbx-textback.service"],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
    sec = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}", str(unit)],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout + sec.stderr)
    assert m and float(m.group(1)) <= 2.0, sec.stdout[-2000:] + sec.stderr[-2000:]
