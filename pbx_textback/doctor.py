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

from .core.pbx.amiframe import AmiFraming, first

# What the service reads and why (ami/manager_custom.conf explains each).
NEEDED_READ = {"call": "Newchannel, Dial*, Bridge*, Hangup, queue events",
               "dialplan": "Newexten/VarSet: after-hours route, presentation, VMSTATUS",
               "user": "the TextbackOutcome UserEvent of our dialplan snippet",
               "agent": "AgentConnect / QueueCallerAbandon",
               "system": "FullyBooted and Shutdown: reconnect and reconcile"}
NEEDED_WRITE = {"originate": ("Originate", "callbacks that ring the desk phone first"),
                "message": ("MessageSend", "texts through the PBX's SIP MESSAGE"),
                "reporting": ("CoreShowChannels", "calls still up after a reconnect are picked up")}


def relied_on(cfg) -> set[str]:
    """The write classes this config cannot do without (the others only warn)."""
    used = {"reporting"}                  # CoreShowChannels after every (re)connect
    if cfg.features.enabled:
        used.add("originate")
    if "pbx" in {cfg.transport.type} | {ln.transport for ln in cfg.line if ln.transport}:
        used.add("message")
    return used


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
        needed = relied_on(cfg)
        for cls, (action, why) in NEEDED_WRITE.items():
            ok = action.lower() in actions
            out.append(Result(f"ami write {cls}", ok or cls not in needed,
                              f"{action}: {'allowed' if ok else 'not allowed'} "
                              f"({why}{'' if ok else ' will not work'})",
                              [] if ok else [f"add '{cls}' to `write =` of [{a.username}] (see ami/manager_custom.conf), "
                                             "then `asterisk -rx 'manager reload'` (the service logs in again by itself)"],
                              warn=not ok))
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


def check_refused_calls(cfg) -> Result | None:
    """Calls the store refused that wait on disk for the service's next start (store/spool.py)."""
    from .store.spool import CallSpool
    waiting = CallSpool.waiting_beside(cfg.store.path)
    if waiting is None:
        return None
    return Result("refused calls", True, f"{waiting[0]} call(s) the store refused wait in {waiting[1]}", [
        "the service records them when it next starts (or at its next round, if it runs); "
        "`journalctl -u pbx-textback` says why the store refused them"], warn=True)


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
    """One bind as a transmitter, then unbind: the gateway says at once whether it takes us.
    Never a receiving bind: the gateway would hand it some of the running service's replies."""
    from dataclasses import replace

    from .smpp import probe_bind
    fault = await probe_bind(replace(s, response_timeout=min(s.response_timeout, 10.0)))
    if fault is None:
        return Result("transport", True, f"smpp: bound to {s.host}:{s.port} as "
                      f"{s.system_id or '(no system_id)'} (transmitter)")
    return Result("transport", False, f"smpp: {fault}", [fault.fix])


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


def check_cdr_csv_conf(cfg) -> Result:
    """What CDR recovery needs of cdr_csv: a uniqueid in each row (loguniqueid=yes: without it
    recovery matches nothing) and the zone its times are in (usegmtime)."""
    import csv
    from .ami.cdr import zone_of
    from .core.pbx.cdr import LOCAL, csv_row
    c = cfg.pbx.cdr
    zone, conf = zone_of(c)
    where = "this box's local zone" if zone == LOCAL else zone
    fix_uid = [f"in {c.cdr_conf}: [csv] loguniqueid=yes (keep loguserfield=yes), then "
               "`asterisk -rx 'module reload cdr_csv'`"]
    if conf is None:
        return Result("cdr", True, f"{c.cdr_conf} not readable here: cannot check that cdr_csv logs "
                      f"the uniqueid; CDR times read in {where}", warn=True,
                      fix=["run doctor as root on the PBX box", "with [csv] usegmtime=yes set "
                           "pbx.cdr.timezone = \"UTC\""])
    if not conf.loguniqueid:
        return Result("cdr", False, f"{c.cdr_conf}: cdr_csv does not log the uniqueid, so CDR "
                      "recovery matches no call (and would say nothing)", fix_uid)
    try:
        with open(c.path, newline="", encoding="utf-8", errors="replace") as fh:
            last = None
            for last in csv.reader(fh):
                pass
    except OSError as e:
        return Result("cdr", False, f"cannot read {c.path}: {e.strerror}",
                      [f"let the service user read {c.path} (e.g. add it to the asterisk group)"])
    if last is not None and not csv_row(last, conf).get("uniqueid"):
        return Result("cdr", False, f"{c.path}: its last row has no uniqueid column", fix_uid)
    return Result("cdr", True, f"{c.path}: cdr_csv logs the uniqueid; times in {where}"
                  + (" ([csv] usegmtime=yes)" if conf.usegmtime and not c.timezone else ""))


def run_doctor(cfg, *, manager_confs: list[str] | None = None) -> list[Result]:
    results = [Result("config", True, f"{cfg.source}: valid")]
    if cfg.pbx.type == "asterisk":
        results += check_ami(cfg, manager_confs)
    else:
        results.append(check_esl(cfg))
    if cfg.pbx.cdr.source:
        results.append(check_cdr(cfg))
        if cfg.pbx.cdr.source == "csv":
            results.append(check_cdr_csv_conf(cfg))
    results.append(check_store(cfg))
    refused = check_refused_calls(cfg)
    if refused is not None:
        results.append(refused)
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


# ---- the CDR the config reads after a gap ([pbx.cdr]) --------------------------------------
SERVICE_USER = "pbx-textback"


def readable_by_service(path: str) -> str | None:
    """Why the service's user cannot read `path`, or None. Doctor runs as root, who reads
    everything: judge by the user's own uid and groups and each directory's x bit."""
    import grp
    import pwd
    import stat
    if os.geteuid() != 0:
        return None if os.access(path, os.R_OK) else f"{path} is not readable by {os.getuid()}"
    try:
        u = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None                      # no service user on this box: nothing to judge
    gids = {u.pw_gid} | {g.gr_gid for g in grp.getgrall() if SERVICE_USER in g.gr_mem}
    parts = os.path.abspath(path).split("/")
    for i in range(1, len(parts) + 1):
        p = "/".join(parts[:i]) or "/"
        try:
            st = os.stat(p)
        except OSError as e:
            return f"{p}: {e.strerror}"
        need = stat.S_IROTH if i == len(parts) else stat.S_IXOTH
        shift = 6 if st.st_uid == u.pw_uid else 3 if st.st_gid in gids else 0
        if not st.st_mode & (need << shift):
            try:
                group = grp.getgrgid(st.st_gid).gr_name
            except KeyError:
                group = str(st.st_gid)
            return f"{p} ({stat.filemode(st.st_mode)}, group {group}) is closed to the {SERVICE_USER} user:{group}"
    return None


def check_cdr(cfg) -> Result:
    from .ami.cdr import columns
    from .core.pbx.cdr import normalize
    c = cfg.pbx.cdr
    name = f"cdr {c.source}"
    where = c.dsn.split("@")[-1] if c.source == "mysql" else c.path
    if c.source != "mysql":
        closed = readable_by_service(c.path)
        if closed:
            why, _, group = closed.rpartition(":")
            return Result(name, False, f"the service cannot read the CDR: {why}",
                          [f"`usermod -aG {group} {SERVICE_USER}` (or make it readable to that "
                           f"group), then `systemctl restart {SERVICE_USER}`"])
    try:
        cols = columns(c)
    except OSError as e:
        fix = {"csv": "enable cdr_csv (cdr.conf [csv], modules.conf) or correct pbx.cdr.path",
               "sqlite": "load cdr_sqlite3_custom or correct pbx.cdr.path / pbx.cdr.table",
               "mysql": "check pbx.cdr.dsn, the password file and the read-only user's GRANT "
                        "SELECT (README: the CDR)"}[c.source]
        return Result(name, False, f"cannot read {where}: {getattr(e, 'strerror', None) or e}", [fix])
    if not cols:
        return Result(name, True, f"{where}: readable, no calls recorded yet (columns not checked)", warn=True)
    have = set(normalize({k: "" for k in cols}))
    missing = [k for k in CDR_NEEDS if k not in have]
    if missing:
        fix = ["in /etc/asterisk/cdr.conf [csv]: loguniqueid = yes, then "
               "`asterisk -rx 'module reload cdr_csv.so'`"] if c.source == "csv" else \
              [f"the CDR table must have the columns {', '.join(missing)} (FreePBX's asteriskcdrdb.cdr has them)"]
        return Result(name, False, f"{where}: recovery needs the column(s) {', '.join(missing)}", fix)
    return Result(name, True, f"{where}: readable by the service, the columns recovery needs are there")


# what core/pbx/cdr.recover reads from every row (start is `calldate` in asteriskcdrdb)
CDR_NEEDS = ("start", "src", "dst", "channel", "dstchannel", "lastapp", "disposition", "uniqueid")
