"""What the admin and systemd do on the PBX box, for the test that runs the README's install
block in a scratch root ($ROOT) on a machine where systemd is not PID 1.

  python -m tests.install_host edit FILE...        the admin's edits, as the config's comments say
  python -m tests.install_host systemctl ARGS...   `systemctl daemon-reload|enable --now UNIT`
  python -m tests.install_host stop                SIGTERM to the service; prints its exit code

`systemctl enable --now` does what systemd would: enables the unit (real `systemctl --root`),
then starts its ExecStart as the unit's User (uid from $ROOT/etc/passwd, via setpriv), with
the unit's credentials directory (LoadCredential=, files readable by that user only), its
runtime/state/configuration directories in the environment, a notify socket and the
watchdog; it returns once the service sent READY=1, or fails as `systemctl start` does when
the service exits first. The service's stderr is the "journal": $ROOT/journal.log.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("ROOT", "/nonexistent"))
RUN = ROOT / "run" / "install-host"


# ---- the admin's edits ---------------------------------------------------------------------
def edit(files: list[str]) -> int:
    for f in map(Path, files):
        if f.name == "config.toml":
            f.write_text(edit_config(f.read_text()))
        elif f.name == "ami-secret":
            f.write_text(os.environ["AMI_SECRET"] + "\n")
        elif f.name == "smpp-password":
            f.write_text(os.environ["SMSC_PASSWORD"] + "\n")
    return 0


def edit_config(text: str) -> str:
    """The PBX and the SMSC of this box, the line its calls come in on, the SMPP transport.
    Quiet hours off so the test texts at any hour of the day. The box's paths live under
    $ROOT (the only change a real admin would not make)."""
    out, section = [], ""
    for line in text.splitlines():
        bare = line.lstrip("# ").rstrip()
        m = re.match(r"^\[+([\w.]+)\]+", bare)
        if m:       # a commented-out table stays commented, except [transport.smpp]
            commented = line.startswith("#") and m.group(1) != "transport.smpp"
            section = ("#" if commented else "") + m.group(1)
        if section == "transport.smpp" and line.startswith("#"):
            line = bare                                  # uncomment [transport.smpp]
        key = line.split("=", 1)[0].strip() if "=" in line and not line.startswith("#") else ""
        if section == "pbx.ami" and key == "port":
            line = f"port = {os.environ['AMI_PORT']}"
        elif section == "line" and key == "number":
            line = f'number = "{os.environ["LINE"]}"'
        elif section == "compliance" and key == "quiet_hours":
            line = 'quiet_hours = ""'
        elif section == "transport" and key == "type":
            line = 'type = "smpp"'
        elif section == "transport.smpp" and key == "host":
            line = 'host = "127.0.0.1"'
        elif section == "transport.smpp" and key == "port":
            line = f"port = {os.environ['SMSC_PORT']}"
        elif section == "transport.smpp" and key == "system_id":
            line = f'system_id = "{os.environ["SMSC_SYSTEM_ID"]}"'
        out.append(line)
    return re.sub(r'"/(etc|var/lib)/pbx-textback/', lambda m: f'"{ROOT}/{m.group(1)}/pbx-textback/',
                  "\n".join(out) + "\n")


# ---- systemd -------------------------------------------------------------------------------
def unit_settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def passwd_entry(user: str) -> tuple[int, int, str]:
    for line in (ROOT / "etc" / "passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3]), f[5]
    raise SystemExit(f"systemctl: user {user} does not exist in {ROOT}/etc/passwd")


def systemctl(args: list[str]) -> int:
    if args[:1] == ["daemon-reload"]:
        return 0
    if args[:1] != ["enable"]:
        raise SystemExit(f"systemctl {' '.join(args)}: not played by this test")
    now = "--now" in args
    unit = next(a for a in args[1:] if not a.startswith("-"))
    unit = unit if unit.endswith(".service") else unit + ".service"
    subprocess.run(["systemctl", f"--root={ROOT}", "enable", unit], check=True)
    return start(unit) if now else 0


def start(unit: str) -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    ready = RUN / "ready"
    ready.unlink(missing_ok=True)
    subprocess.Popen([sys.executable, "-m", "tests.install_host", "manage", unit], cwd=Path(__file__).parents[1],
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=open(ROOT / "journal.log", "a"))
    t0 = time.time()
    while time.time() - t0 < 90:
        if ready.exists():
            state = ready.read_text()
            if state == "READY":
                return 0
            print(f"Job for {unit} failed because the control process exited with error code "
                  f"({state}).\nSee \"journalctl -xeu {unit}\" for details.", file=sys.stderr)
            print((ROOT / "journal.log").read_text()[-3000:], file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"Job for {unit} timed out.", file=sys.stderr)
    return 1


def manage(unit: str) -> int:
    """The service manager for one unit: set it up, start it, relay its notifications."""
    s = unit_settings(ROOT / "etc" / "systemd" / "system" / unit)
    uid, gid, home = passwd_entry(s["User"][0])
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "USER": s["User"][0], "LOGNAME": s["User"][0], "HOME": home, "INVOCATION_ID": "install-test"}
    for e in s.get("Environment", []):
        k, v = e.split("=", 1)
        env[k] = v
    creds = ROOT / "run" / "credentials" / unit
    shutil.rmtree(creds, ignore_errors=True)
    creds.mkdir(parents=True)
    for spec in s.get("LoadCredential", []):
        cid, src = spec.split(":", 1)
        src_in_root = ROOT / src.lstrip("/")
        if not src_in_root.is_file():
            (RUN / "ready").write_text(f"status=243/CREDENTIALS: {src} missing")
            return 1
        shutil.copy(src_in_root, creds / cid)
        os.chown(creds / cid, uid, gid)
        os.chmod(creds / cid, 0o400)
    os.chown(creds, uid, gid)
    os.chmod(creds, 0o500)
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    for key, var, base in (("RuntimeDirectory", "RUNTIME_DIRECTORY", "run"),
                           ("StateDirectory", "STATE_DIRECTORY", "var/lib"),
                           ("ConfigurationDirectory", "CONFIGURATION_DIRECTORY", "etc")):
        if key in s:
            d = ROOT / base / s[key][0]
            d.mkdir(parents=True, exist_ok=True)
            if key != "ConfigurationDirectory":        # systemd owns the others to User=
                os.chown(d, uid, gid)
            mode = s.get(key + "Mode")
            if mode:
                os.chmod(d, int(mode[0], 8))
            env[var] = str(d)
    sock_path = RUN / "notify"
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    os.chmod(sock_path, 0o666)
    env["NOTIFY_SOCKET"] = str(sock_path)
    if "WatchdogSec" in s:
        env["WATCHDOG_USEC"] = str(int(float(s["WatchdogSec"][0]) * 1_000_000))
    argv = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), s["ExecStart"][0]).split()
    argv[0] = str(ROOT / argv[0].lstrip("/"))
    umask = int(s.get("UMask", ["0022"])[0], 8)
    proc = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv],
                            env=env, cwd="/", stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(umask))
    (RUN / "pid").write_text(str(proc.pid))
    sock.settimeout(0.5)
    said_ready = False
    while proc.poll() is None:
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            continue
        with open(RUN / "notifications", "a") as fh:
            fh.write(msg.replace("\n", " ") + "\n")
        if "READY=1" in msg and not said_ready:
            said_ready = True
            (RUN / "ready").write_text("READY")
    if not said_ready:
        (RUN / "ready").write_text(f"status={proc.returncode}")
    (RUN / "exit").write_text(str(proc.returncode))
    return 0


def stop() -> int:
    pid = int((RUN / "pid").read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    t0 = time.time()
    while not (RUN / "exit").exists() and time.time() - t0 < 30:
        time.sleep(0.1)
    print((RUN / "exit").read_text() if (RUN / "exit").exists() else "still running")
    return 0


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"edit": lambda: edit(rest), "systemctl": lambda: systemctl(rest),
              "manage": lambda: manage(rest[0]), "stop": stop}[cmd]())
