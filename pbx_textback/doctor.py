"""`pbx-textback doctor`: check each piece the service needs and print the fix for what fails.

Talks to the PBX with plain sockets and our own framing (no reconnect loops): a check must
answer within seconds and say exactly what to change.
"""
from __future__ import annotations

import asyncio
import configparser
import glob
import os
import re
import socket
from dataclasses import dataclass, field

from .core.amiframe import AmiFraming, first

# What the service reads and why (ami/manager_custom.conf explains each).
NEEDED_READ = {"call": "Newchannel, Dial*, Bridge*, Hangup, queue events",
               "dialplan": "Newexten/VarSet: after-hours route, presentation, VMSTATUS",
               "user": "the TextbackOutcome UserEvent of our dialplan snippet",
               "agent": "AgentConnect / QueueCallerAbandon",
               "system": "FullyBooted and Shutdown: reconnect and reconcile"}
NEEDED_WRITE = {"originate": ("Originate", "callbacks that ring the desk phone first"),
                "message": ("MessageSend", "texts through the PBX's SIP MESSAGE")}


@dataclass
class Result:
    name: str
    ok: bool
    detail: str
    fix: list[str] = field(default_factory=list)
    warn: bool = False


async def _ami_session(host: str, port: int, username: str, secret: str, timeout: float = 5.0):
    """Log in, list the actions this user may send, log off. Returns (frames, error)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return None, f"cannot connect to {host}:{port}: {getattr(e, 'strerror', None) or e or 'timeout'}"
    framing = AmiFraming()
    frames: list[dict] = []

    async def until(pred):
        while True:
            for fr in frames:
                if pred(fr):
                    return fr
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                return None
            frames.extend(framing.feed(data))

    try:
        writer.write((f"Action: Login\r\nActionID: doctor-login\r\nUsername: {username}\r\n"
                      f"Secret: {secret}\r\nEvents: off\r\n\r\n").encode())
        login = await until(lambda f: first(f, "ActionID") == "doctor-login")
        if login is None:
            return frames, "the connection closed during login"
        if first(login, "Response") != "Success":
            return frames, f"login refused: {first(login, 'Message') or first(login, 'Response')}"
        writer.write(b"Action: ListCommands\r\nActionID: doctor-list\r\n\r\n")
        listing = await until(lambda f: first(f, "ActionID") == "doctor-list")
        writer.write(b"Action: Logoff\r\nActionID: doctor-bye\r\n\r\n")
        await writer.drain()
        return [login, listing] if listing else [login], None
    except asyncio.TimeoutError:
        return frames, f"no answer from {host}:{port} within {timeout:g} s (is it AMI?)"
    except OSError as e:
        return frames, f"connection error: {e}"
    finally:
        writer.close()


def manager_conf_perms(username: str, paths: list[str]) -> tuple[set[str], set[str], str] | None:
    """read/write classes of the user in Asterisk's manager*.conf files, where readable."""
    for path in paths:
        cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=(";", "#"),
                                       inline_comment_prefixes=(";",))
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = re.sub(r"^\s*#include.*$", "", fh.read(), flags=re.M)
                text = re.sub(r"^(\[[^\]]+\])\(.*\)", r"\1", text, flags=re.M)   # [user](template)
                cp.read_string(text.replace("=>", "="))
        except (OSError, configparser.Error):
            continue
        if cp.has_section(username):
            sec = cp[username]
            split = lambda v: {x.strip().lower() for x in v.split(",") if x.strip()}  # noqa: E731
            return split(sec.get("read", "")), split(sec.get("write", "")), path
    return None


def check_ami(cfg, manager_confs: list[str] | None = None) -> list[Result]:
    a = cfg.pbx.ami
    out = []
    frames, err = asyncio.run(_ami_session(a.host, a.port, a.username, a.secret))
    if err:
        fix = []
        if "connect" in err:
            fix = [f"is Asterisk running? `asterisk -rx 'manager show settings'` should say Enabled: Yes "
                   f"and the port {a.port}", "in manager.conf [general]: enabled = yes, port = "
                   f"{a.port}, bindaddr = 127.0.0.1; then `asterisk -rx 'manager reload'`"]
        elif "refused" in err:
            fix = [f"add the user from ami/manager_custom.conf as [{a.username}] with the same secret as "
                   "pbx.ami.secret in the config", "FreePBX: /etc/asterisk/manager_custom.conf, then "
                   "`fwconsole reload`; plain Asterisk: manager.conf, then `asterisk -rx 'manager reload'`",
                   "check `permit=` lets 127.0.0.1 in"]
        out.append(Result("ami login", False, err, fix))
        return out
    out.append(Result("ami login", True, f"logged in to {a.host}:{a.port} as {a.username}"))
    listing = frames[1] if len(frames) > 1 else {}
    if first(listing, "Response") != "Success":
        out.append(Result("ami write classes", True, "cannot verify: ListCommands answered "
                          f"'{first(listing, 'Message') or first(listing, 'Response') or 'nothing'}'", warn=True))
    else:
        # ListCommands lists only the actions this user may send
        actions = {k.lower() for k in listing if k not in ("Response", "ActionID", "Message")}
        for cls, (action, why) in NEEDED_WRITE.items():
            ok = action.lower() in actions
            out.append(Result(f"ami write {cls}", True, f"{action}: {'allowed' if ok else 'not allowed'} "
                              f"({why}{'' if ok else ' will not work'})",
                              [] if ok else [f"add '{cls}' to `write =` of [{a.username}]"], warn=not ok))
    perms = manager_conf_perms(a.username, manager_confs if manager_confs is not None else
                               sorted(glob.glob("/etc/asterisk/manager*.conf")))
    if perms is None:
        out.append(Result("ami read classes", True, "manager.conf not readable here: cannot verify "
                          "the read classes (run doctor as root on the PBX box)", warn=True))
        return out
    read, _, path = perms
    missing = [c for c in NEEDED_READ if c not in read and "all" not in read]
    out.append(Result("ami read classes", not missing,
                      f"{path}: read = {','.join(sorted(read)) or '(none)'}",
                      [f"add '{c}' to `read =` of [{a.username}] in {path} ({NEEDED_READ[c]})"
                       for c in missing]))
    return out


def check_store(cfg) -> Result:
    from .store.db import open_store
    try:
        s = open_store(cfg.store.path, cfg.store.dsn)
        s.set_setting("doctor", "ok", 0.0)
        s.close()
        return Result("store", True, "postgresql" if cfg.store.dsn else cfg.store.path)
    except Exception as e:
        where = "the PostgreSQL DSN in store.dsn" if cfg.store.dsn else \
            f"{os.path.dirname(cfg.store.path)} must exist and be writable by the service user"
        return Result("store", False, f"cannot open the store: {e}", [where])


def check_transport(cfg) -> Result:
    kind = cfg.transport.type
    if kind == "log":
        return Result("transport", True, "log: texts are written to the log, not sent", warn=True,
                      fix=["set [transport] to smpp or sip to text callers for real"])
    if kind == "smpp":
        return asyncio.run(_check_smpp(cfg.transport.smpp))
    if kind == "sip":
        t = cfg.transport.sip
        return Result("transport", True, f"sip: MESSAGE to {t.proxy_host}:{t.proxy_port} over {t.transport} "
                      "(check it with `pbx-textback send-test`)", warn=True)
    return Result("transport", True, f"{kind}: through the PBX (check it with `pbx-textback send-test` "
                  "after `run`)", warn=True)


async def _check_smpp(s) -> Result:
    """Bind for real, then unbind: the SMSC says whether our credentials are good."""
    from .smpp import SmppTransport
    states = []
    t = SmppTransport(s, on_state=lambda st, detail="": states.append((st, detail)))
    await t.start()
    try:
        await t.wait_bound(10)
        return Result("transport", True, f"smpp: bound to {s.host}:{s.port} as {s.system_id or '(no system_id)'}")
    except asyncio.TimeoutError:
        last = next((f"{st}: {d}" for st, d in reversed(states) if d), t.state)
        fix = ["check system_id and password in [transport.smpp] with the provider"] if "bind" in last else \
              [f"can this box reach {s.host}:{s.port}? (`nc -vz {s.host} {s.port}`, the firewall, the "
               "provider's IP allow-list)"]
        return Result("transport", False, f"smpp: not bound to {s.host}:{s.port} within 10 s ({last})", fix)
    finally:
        await t.stop(grace=0.5)


def check_smtp(cfg) -> Result:
    m = cfg.smtp
    try:
        with socket.create_connection((m.listen_host, m.listen_port), timeout=3) as c:
            banner = c.recv(200).decode("latin-1", "replace")
        if banner.startswith("220"):
            return Result("smtp listener", True, f"{m.listen_host}:{m.listen_port} answers: {banner.strip()[:60]}")
        return Result("smtp listener", False, f"{m.listen_host}:{m.listen_port} answers but is not SMTP",
                      [f"another program has port {m.listen_port}: change [smtp] listen_port"])
    except OSError:
        r = check_port_free("smtp listener", m.listen_host, m.listen_port)
        if r.ok:
            r.detail += " (the service is not running: it will listen there)"
        return r


def check_port_free(name: str, host: str, port: int) -> Result:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return Result(name, True, f"{host}:{port} is free for the service")
    except OSError as e:
        return Result(name, False, f"{host}:{port}: {e.strerror}",
                      [f"another program listens on {port} (`ss -ltnp 'sport = :{port}'`): "
                       "stop it or change the port"], warn=True)
    finally:
        s.close()


def run_doctor(cfg, *, manager_confs: list[str] | None = None) -> list[Result]:
    results = [Result("config", True, f"{cfg.source}: valid")]
    if cfg.pbx.type == "asterisk":
        results += check_ami(cfg, manager_confs)
    else:
        results.append(check_esl(cfg))
    results.append(check_store(cfg))
    results.append(check_transport(cfg))
    if cfg.smtp.enabled:
        results.append(check_smtp(cfg))
    return results


def check_esl(cfg) -> Result:
    from .esl.events import DEFAULT_EVENTS, DEFAULT_PASSWORD
    e = cfg.pbx.esl

    async def probe():
        reader, writer = await asyncio.wait_for(asyncio.open_connection(e.host, e.port), 5)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
            if b"auth/request" not in head:
                return "no auth/request greeting (is it FreeSWITCH's event socket?)"
            writer.write(f"auth {e.password}\n\n".encode())
            reply = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
            if b"+OK" not in reply:
                return "authentication refused"
            writer.write(f"event plain {DEFAULT_EVENTS}\n\n".encode())   # what the service asks
            reply = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
            return None if b"+OK" in reply else "event subscription refused"
        finally:
            writer.close()
    try:
        err = asyncio.run(probe())
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as ex:
        err = f"cannot talk to {e.host}:{e.port}: {getattr(ex, 'strerror', None) or ex or 'timeout'}"
    if err is None and e.password == DEFAULT_PASSWORD:
        # FreeSWITCH ships with it; whoever reaches the socket can run any command (originate,
        # system) as the PBX
        return Result("esl", True, f"authenticated at {e.host}:{e.port} with FreeSWITCH's default "
                      f"password {DEFAULT_PASSWORD}: anyone who reaches the event socket controls "
                      "the PBX", ["set a long random password in event_socket.conf.xml and in "
                                  "pbx.esl.password, keep listen-ip 127.0.0.1, then "
                                  "`fs_cli -x 'reload mod_event_socket'`"], warn=True)
    if err is None:
        return Result("esl", True, f"authenticated and subscribed at {e.host}:{e.port}")
    return Result("esl", False, err, ["see esl/event_socket.conf.xml: listen-ip 127.0.0.1, the "
                                      "password in pbx.esl.password, then `fs_cli -x 'reload mod_event_socket'`"])


def report(results: list[Result]) -> tuple[str, int]:
    lines = []
    for r in results:
        mark = "ok  " if r.ok and not r.warn else ("warn" if r.ok else "FAIL")
        lines.append(f"[{mark}] {r.name}: {r.detail}")
        for f in r.fix:
            lines.append(f"       fix: {f}")
    failed = sum(not r.ok for r in results)
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines), (1 if failed else 0)
