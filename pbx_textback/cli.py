"""pbx-textback command line. Errors go to stderr and exit 2; --json prints JSON on stdout
(one object per call for replay, one document for the others)."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from . import __version__
from .config import SERVICE_ERROR, ConfigError, default_config, load
from .store.db import StoreError

DEFAULT_CONFIG = "/etc/pbx-textback/config.toml"


class CliError(Exception):
    pass


# ---- logging ------------------------------------------------------------------------------------
class _JsonFormatter(logging.Formatter):
    def format(self, r: logging.LogRecord) -> str:
        d = {"level": r.levelname.lower(), "logger": r.name, "msg": r.getMessage()}
        if r.exc_info:
            d["exc"] = self.formatException(r.exc_info)
        return json.dumps(d, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        # journald stamps the time itself; the <N> prefix sets the priority
        handler.setFormatter(_JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


class _JournalFormatter(logging.Formatter):
    PRIO = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}

    def format(self, r):
        return f"<{self.PRIO.get(r.levelname, 6)}>{r.name}: {super().format(r)}"


# ---- config -------------------------------------------------------------------------------------
def _config(path: str | None, *, required: bool = False, secrets: bool = False):
    """secrets: the command connects (doctor, send-test) and needs the secret files read;
    the others work from a shell that cannot read them."""
    if path:
        return load(path, secrets=secrets)
    if Path(DEFAULT_CONFIG).exists():
        return load(DEFAULT_CONFIG, secrets=secrets)
    if required:
        raise CliError(f"no config: pass -c FILE (or create {DEFAULT_CONFIG})")
    return default_config()


def _store(cfg):
    from . import senders
    from .config import box_id
    from .store.db import open_store
    store = open_store(cfg.store.path, cfg.store.dsn, box_id(cfg))
    store.accounts = senders.accounts(cfg)
    return store


def _parse_at(s: str) -> float:
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--at: '{s}' is not an ISO-8601 time (e.g. 2026-11-26T17:30:00-06:00)") from None
    if dt.tzinfo is None:
        raise CliError("--at needs a UTC offset or Z (e.g. 2026-11-26T17:30:00-06:00)")
    return dt.timestamp()


# ---- commands -----------------------------------------------------------------------------------
def cmd_check_config(a) -> int:
    cfg = load(a.config, for_service=True)
    print(f"{a.config}: OK — {len(cfg.line)} line(s), pbx {cfg.pbx.type}, transport "
          f"{cfg.transport.type}, store {'postgresql' if cfg.store.dsn else cfg.store.path}")
    for w in cfg.warnings:
        print(f"warning: {w}")
    return 0


from .core.times import iso as _iso  # noqa: E402  (one format for every command)


_TIME_KEYS = ("at", "since", "started_at", "ended_at", "created_at", "updated_at", "due_at",
              "written_at", "sent_at", "set_at", "until", "decided_at")


def _iso_times(obj, tz: str | None = None):
    """Epoch-second fields of store dicts as ISO-8601 (export, explain --json)."""
    if isinstance(obj, dict):
        return {k: (_iso(v, tz) if k in _TIME_KEYS and isinstance(v, (int, float))
                    and not isinstance(v, bool) else _iso_times(v, tz)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_iso_times(v, tz) for v in obj]
    return obj


def replay_records(data: bytes, pbx: str, cfg):
    if pbx == "asterisk":
        from .core.pbx.asterisk import records_from_stream
        from .service import asterisk_settings
        return records_from_stream(data, asterisk_settings(cfg))
    from .core.pbx.freeswitch import records_from_stream
    from .service import freeswitch_settings
    return records_from_stream(data, freeswitch_settings(cfg))


def stream_kind(data: bytes) -> str | None:
    """asterisk | freeswitch | None: what a recorded event stream looks like from its first
    events (AMI: "Event: X" lines; ESL: "Content-Type: text/event-plain" or "Event-Name: X")."""
    head = data[:65536]
    ami = head.count(b"\nEvent: ") + head.startswith(b"Event: ") + head.count(b"Asterisk Call Manager")
    esl = (head.count(b"Content-Type: text/event-") + head.count(b"Event-Name: ")
           + head.count(b"Event-Name%3A") + head.count(b"Content-Type: auth/request"))
    if ami == esl:
        return None
    return "asterisk" if ami > esl else "freeswitch"


def cmd_replay(a) -> int:
    cfg = _config(a.config)
    try:
        data = Path(a.file).read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {a.file}: {e.strerror}") from None
    kind = stream_kind(data)
    if kind is None:
        raise CliError(f"{a.file}: not a recorded AMI or ESL event stream (no events found)")
    if kind != a.pbx:
        other = {"asterisk": "an AMI (Asterisk)", "freeswitch": "an ESL (FreeSWITCH)"}[kind]
        raise CliError(f"{a.file} looks like {other} stream, not {a.pbx}: try --pbx {kind}")
    at = _parse_at(a.at) if a.at else None
    from .replay import command as replaycmd      # the calls, then each text's fate on the trace's clock
    return replaycmd.run(replay_records(data, a.pbx, cfg), cfg, at=at, as_json=a.json, human_call=_human)


def cmd_whatif(a) -> int:
    from pbx_textback.replay import whatif
    cfg = _config(a.config, required=True)
    try:
        since = whatif.parse_since(a.since, time.time())
    except whatif.WhatifError as e:
        raise CliError(str(e)) from None
    return whatif.run(cfg, store_path=a.store or cfg.store.path, dsn="" if a.store else cfg.store.dsn,
                      since=since, as_json=a.json, examples=a.examples, label=a.config)


def _human(v) -> str:
    c, o, d = v.call, v.outcome, v.decision
    head = (f"{c.call_id}  {v.extra.get('caller') or c.caller or 'anonymous'} -> "
            f"{v.extra.get('called') or c.called or '?'}  {c.direction}  ")
    if not o.missed:
        return head + f"not missed: {o.reason} ({o.why})"
    line = head + f"MISSED {o.reason} ({o.why})"
    if d.action == "text":
        return line + f"\n    text: {d.body}"
    return line + "\n    no text: " + "; ".join(f"{ch.name}: {ch.detail}" for ch in d.failed)


def cmd_explain(a) -> int:
    cfg = _config(a.config, required=True)
    from .core.numbers import to_e164
    from .core.policy.consent import standing
    store = _store(cfg)
    key = a.key
    calls = store.calls_for(key)
    e164 = to_e164(key, cfg.business.country)
    if not calls and e164:
        calls = store.calls_for(e164)
    paused = store.setting("paused") == "1"
    overrides = {c["called"]: store.hours_override_until(c["called"]) for c in calls if c.get("called")}
    peer = (e164 or calls[0]["caller"]) if calls else e164     # the number asked about
    consent_state = standing(store.consent_history(peer), peer) if peer else None
    msgs = store.messages_to(peer) if peer else []
    replies = [m for m in msgs if m["direction"] == "in"]
    shared = len(store.boxes()) > 1        # several PBX boxes: say which one took each call
    from pbx_textback.admin.cli import name_templates
    name_templates(store, cfg, calls)      # which template (file, page change) wrote each text
    store.close()
    in_calls = {m["id"] for c in calls for m in c["messages"]}
    by_call_id = any(c["call_id"] == key for c in calls)
    others = [m for m in msgs if m["direction"] == "out" and m["id"] not in in_calls and not by_call_id]
    if not calls and not msgs:
        raise CliError(f"no call from, to or with id {key} in the store, and no message to or from it")
    if a.json:    # one JSON document: the calls (with their checks and messages), consent,
        # replies and the texts that belong to no call (confirmations, HELP answers, resends)
        doc = {"number": peer, "paused": paused, "consent": consent_state.__dict__ if consent_state else None,
               "replies": replies, "calls": calls, "other_texts": others}
        print(json.dumps(_iso_times(doc, cfg.business.timezone), ensure_ascii=False, indent=2, default=str))
        return 0
    if paused:
        print("automated texting is PAUSED (`pbx-textback resume`): due texts wait")
    if consent_state is not None:
        print(f"consent of {peer}: {consent_state.status}"
              + (f" ({consent_state.source})" if consent_state.source else ""))
    for m in replies:
        print(f"reply {m['id']}: {m['body']!r} -> {m['note']}")
    for c in calls:
        when = _iso(c["started_at"], cfg.business.timezone) or "time unknown"
        box = f"box {c['box']}, " if shared and c.get("box") else ""
        print(f"call {c['call_id']} ({box}{c['pbx']}, {when}) {c['caller']} -> {c['called']} {c['direction']}")
        mode, until = overrides.get(c["called"], ("auto", None))
        if mode != "auto":
            print(f"  hours override now: {mode} until "
                  + (_iso(until, cfg.business.timezone) if until else "changed by hand (`hours set LINE auto`)"))
        verdict = f"missed: {c['reason']}" if c["missed"] else f"not missed: {c['reason']}"
        print(f"  verdict: {verdict} — {c['why']}")
        for n in c["notes"]:
            print(f"  note: {n}")
        print(f"  decision: {c['decision']}" + (f" (template {c['template']}: {c['template_from']})"
                                                 if c.get("template") else ""))
        for ch in c["checks"]:
            print(f"    [{'ok' if ch['ok'] else 'NO'}] {ch['name']}: {ch['detail']}")
        for m in c["messages"]:
            _print_message(m, "  ", shared)
    if others:     # confirmations, HELP answers, manual texts and resends belong to no call
        print(f"texts to {peer} outside any call:")
        for m in others:
            _print_message(m, "  ", shared)
    return 0


def _print_message(m: dict, indent: str, shared: bool = False) -> None:
    ref = f" of #{m['ref']}" if m.get("ref") and m["kind"] in ("resend", "follow-up") else ""
    print(f"{indent}message {m['id']} ({m['kind']}{ref}) from {m['line'] or '?'}"
          + (f" on box {m['box']}" if shared and m.get("box") else "") + f": {m['state']}"
          + (f" via {m['transport']} {m['transport_id']}" if m["transport"] else "")
          + (f" (account {m['account']})" if m.get("account") not in (None, "", m["transport"]) else "")
          + (f" — {m['error']}" if m["error"] else "")
          + (f" — {m['note']}" if m.get("note") else "") + f"\n{indent}  {m['body']}")


def cmd_resend(a) -> int:
    """The admin's choice to send a text again: a new row of kind `resend`, never silent."""
    cfg = _config(a.config, required=True)
    store = _store(cfg)
    try:
        new = store.resend(a.id, time.time())
    except ValueError as e:
        raise CliError(str(e)) from None
    finally:
        store.close()
    logging.getLogger("pbx_textback.outbox").info("text #%d resent by hand as #%d", a.id, new)
    print(f"text #{a.id} queued again as #{new} (kind resend); the running service sends it "
          "when every check allows (opt-out, quiet hours)")
    return 0


def cmd_number(a) -> int:
    from .core.numbers import number_info
    cfg = _config(a.config) if a.config else None
    region = a.region or (cfg.business.country if cfg else "US")
    allowed = cfg.allowed_countries if cfg else None
    info = number_info(a.raw, region, allowed_countries=allowed)
    d = info.to_dict()
    if a.json:
        print(json.dumps(d, ensure_ascii=False))
    else:
        for k, v in d.items():
            print(f"{k}: {_plain(v)}")
    return 0


def _plain(v) -> str:
    """A value as a person reads it: yes/no, '-' for nothing, lists comma-separated."""
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(_plain(x) for x in v) or "-"
    return str(v)


def cmd_sms_info(a) -> int:
    from .core.text.sms import sms_info, split_text
    info = sms_info(a.text)
    if a.json:
        print(json.dumps(info.to_dict(), ensure_ascii=False))
        return 0
    print(f"{info.encoding}, {info.units} units, {info.segments} segment(s)")
    if info.ucs2_chars:
        print("UCS-2 because of: " + " ".join(repr(ch) for ch in info.ucs2_chars))
    _, parts = split_text(a.text)
    for i, p in enumerate(parts, 1):
        print(f"  part {i}: {p}")
    return 0


def _line_named(cfg, key: str):
    """A configured line by its number (as the PBX shows it or E.164) or its name."""
    from .core.policy.decide import find_line
    by_name = [ln for ln in cfg.line if ln.name and ln.name.casefold() == key.casefold()]
    if len(by_name) == 1:
        return by_name[0]
    line = find_line(cfg, key)
    if line is None or not line.configured:
        names = ", ".join(f"{ln.number}" + (f" ({ln.name})" if ln.name else "") for ln in cfg.line)
        raise CliError(f"{key} is not a configured line (lines: {names or 'none'})")
    return next(ln for ln in cfg.line if ln.number == line.number)


def cmd_hours(a) -> int:
    from .core.policy.hours import override_end, state_at, week_lines
    cfg = _config(a.config, required=True)
    store = _store(cfg)
    now = time.time()
    log = logging.getLogger("pbx_textback")
    try:
        if a.action == "set":
            ln = _line_named(cfg, a.line)
            tz = ln.timezone or cfg.business.timezone
            until = None
            if a.until:
                until = _parse_at(a.until)
                if until <= now:
                    raise CliError(f"--until {a.until} is in the past")
            elif a.mode != "auto":
                until = override_end(ln.hours, tz, now)
            ends = f"until {_iso(until, tz)}" if until else ""
            store.set_hours_override(ln.number, a.mode, now, until)
            log.info("hours override for line %s set to %s %s", ln.number, a.mode, ends)
            print(f"line {ln.number}{' (' + ln.name + ')' if ln.name else ''}: hours {a.mode}"
                  + (f" {ends}" if a.mode != "auto" else " (the line's own hours)"))
        else:
            if store.setting("paused") == "1":
                print("automated texting is PAUSED (`pbx-textback resume`): due texts wait")
            else:
                print("automated texting: running")
            for ln in cfg.line:
                tz = ln.timezone or cfg.business.timezone
                mode, until = store.hours_override_until(ln.number, now)
                state, why = state_at(ln.hours, tz, now, mode, until)
                print(f"\n{ln.number} {ln.name}: {state} now ({why})  [{tz}]")
                print("  override: " + ("none" if mode == "auto" else
                      f"{mode} until " + (_iso(until, tz) if until else "changed by hand")))
                for w in week_lines(ln.hours):
                    print(f"  {w}")
                if ln.hours is not None:
                    print(f"  holidays: {', '.join(ln.hours.holidays) or 'none'}")
            if not cfg.line:
                print("no [[line]] in the config: every inbound number is a line, always open")
    finally:
        store.close()
    return 0


def cmd_pause(a) -> int:
    from .store.db import setting_since
    cfg = _config(a.config, required=True)
    store = _store(cfg)
    try:
        paused = a.cmd == "pause"
        was = setting_since(store, "paused")
        if (was is not None and was[0] == "1") == paused:     # nothing to change: say so
            since = f" since {datetime.fromtimestamp(was[1]).astimezone().isoformat(timespec='seconds')}" if was else ""
            print(f"already paused{since}: `pbx-textback resume` sends what waits" if paused
                  else "not paused: automated texting is on")
            return 0
        store.set_setting("paused", "1" if paused else "0", time.time())
    finally:
        store.close()
    logging.getLogger("pbx_textback").warning(
        "automated texting %s by `pbx-textback %s`", "PAUSED" if paused else "resumed", a.cmd)
    print("automated texting paused: due texts wait, nothing is lost; `pbx-textback resume` "
          "sends them" if paused else "automated texting resumed")
    return 0


def cmd_status(a) -> int:
    from . import status
    from .store.db import setting_since, waiting_texts
    cfg = _config(a.config, required=True)
    path = status.status_file()
    store = _store(cfg)
    try:
        paused = setting_since(store, "paused")
        waiting, oldest, unknown = waiting_texts(store)
    finally:
        store.close()
    from .store.spool import CallSpool
    refused = CallSpool.waiting_beside(cfg.store.path)
    text, code = status.render(status.read(path), path, paused=paused if paused and paused[0] == "1" else None,
                               waiting=waiting, oldest=oldest, unknown=unknown, now=time.time(), refused=refused)
    print(text)
    return code


def cmd_doctor(a) -> int:
    from .doctor import report, run_doctor
    cfg = _config(a.config, required=True, secrets=True)
    confs = [a.manager_conf] if a.manager_conf else None
    text, code = report(run_doctor(cfg, manager_confs=confs))
    print(text)
    return code


def cmd_send_test(a) -> int:
    """One text through the configured transport: the submit result, then the receipt.

    SMPP binds as a transmitter only: a gateway spreads replies and receipts over every
    receiving bind of the account, so a receiving bind here would take the running service's
    STOPs. The text is a row (kind test) in the service's store, so the service records its
    receipt; we read it from there."""
    from types import SimpleNamespace

    from . import senders
    from .core.numbers import to_e164
    from .store.db import DELIVERED, FAILED, SENDING, UNKNOWN
    cfg = _config(a.config, required=True, secrets=True)
    to = to_e164(a.to, cfg.business.country)
    if not to:
        raise CliError(f"--to {a.to}: not a phone number")
    line = a.line or (cfg.line[0].number if cfg.line else cfg.business.phone)
    kind = next((ln.transport for ln in cfg.line if ln.number == line and ln.transport), cfg.transport.type)
    if kind == "pbx":
        raise CliError("send-test does not drive the PBX's own messaging: use `run` and `explain`")
    store = _store(cfg)
    from .pipeline import person_text_refusals
    refused = person_text_refusals(cfg, store, to, line)
    if refused:
        store.close()
        raise CliError(f"not sending to {to}: " + "; ".join(f"{ch.name}: {ch.detail}" for ch in refused)
                       + " (the same checks as real texts)")
    now = time.time()
    with store.write():
        msg_id = store.add_message(direction="out", kind="test", line=line, peer=to, body=a.text,
                                   state=SENDING, due_at=now, attempts=0)

    async def main():
        if kind == "smpp":
            transport = senders.SmppSender(cfg.transport.smpp, send_only=True)
        else:
            from .pipeline import Pipeline       # replies that come in meanwhile go to the real store
            transport, _ = senders.build(cfg, store=store, pipeline=Pipeline(cfg, store))
            transport = transport.inner.transports[kind]
        await transport.start()
        try:
            if kind == "smpp":
                try:
                    await transport.t.wait_bound(a.wait)
                except asyncio.TimeoutError:
                    print(f"smpp: not bound to {cfg.transport.smpp.host}:{cfg.transport.smpp.port} "
                          f"after {a.wait:g} s (state {transport.t.state}): see the log above")
                    return 1
            row = SimpleNamespace(id=msg_id, peer=to, line=line, body=a.text, kind="test")
            # written_at as for every text: a crash before the write leaves no row that a
            # restarting service would take for its own and send to the person
            res = await transport.send(row, lambda: store.mark_written(msg_id, time.time()))
            print(f"{kind}: {res.status}" + (f" id {res.transport_id}" if res.transport_id else "")
                  + (f" - {res.error}" if res.error else ""))
            if res.status != "sent":
                # a test text is never retried by itself: unknown when written, else failed
                store.set_state(msg_id, UNKNOWN if res.status == "unknown" else FAILED,
                                now=time.time(), error=res.error or res.status)
                return 1
            store.mark_sent(msg_id, now=time.time(), transport=kind, transport_id=res.transport_id)
            if kind == "smpp" and cfg.transport.smpp.registered_delivery:
                # the receipt reaches the running service's receiving bind, which records it
                for _ in range(int(a.wait * 10)):
                    m = store.message(msg_id)
                    if m.state in (DELIVERED, FAILED):
                        print(f"receipt: {m.state}" + (f" ({m.error})" if m.error else "")
                              + f" for {res.transport_id}")
                        return 0 if m.state == DELIVERED else 1
                    await asyncio.sleep(0.1)
                print(f"receipt: none within {a.wait:g} s (the running service records it: "
                      f"`pbx-textback explain {to}`, message {msg_id})")
            return 0
        finally:
            await transport.stop()
    try:
        return asyncio.run(main())
    finally:
        store.close()


def cmd_check_reply(a) -> int:
    from .core.policy.replies import classify_reply
    cfg = _config(a.config) if a.config else None
    extra = dict(cfg.compliance.keywords) if cfg and cfg.compliance.keywords else None
    r = classify_reply(a.text, extra_keywords=extra)
    if a.json:
        print(json.dumps(r.to_dict(), ensure_ascii=False))
    else:
        print(f"{r.intent}" + (f" (matched {r.matched!r})" if r.matched else ""))
    return 0


def cmd_consent_change(a) -> int:
    """A person's decision: confirm a `review` reply as an opt-out, or record an opt-in."""
    from .core.policy import consent
    from .core.numbers import to_e164
    from .pipeline import Pipeline
    cfg = _config(a.config, required=True)
    peer = to_e164(a.number, cfg.business.country)
    if not peer:
        raise CliError(f"{a.number}: not a phone number")
    store = _store(cfg)
    now = time.time()
    kind = consent.OPT_OUT if a.cmd == "optout" else consent.OPT_IN
    try:
        with store.write():
            store.add_consent(consent.ConsentEvent(kind, peer, now, scope=cfg.compliance.opt_out_scope,
                                                   line=a.line or "", source=f"staff: {a.reason}"))
            if kind == consent.OPT_OUT:
                store.cancel_pending(peer, f"opted out by staff: {a.reason}", now)
            n = Pipeline(cfg, store).queue_confirmations(now, number=peer) if a.confirm else 0
    finally:
        store.close()
    logging.getLogger("pbx_textback.consent").info("%s recorded for %s by staff (%s)", kind, peer, a.reason)
    print(f"{peer}: {kind} recorded" + (f"; {n} confirmation text queued" if n else ""))
    return 0


def cmd_consent(a) -> int:
    import csv
    from .core.policy.consent import CSV_FIELDS, export_rows, standing
    from .core.numbers import to_e164
    cfg = _config(a.config, required=True)
    store = _store(cfg)
    try:
        number = to_e164(a.number, cfg.business.country) if a.number else None
        hist = store.consent_history(number)
    finally:
        store.close()
    if a.action == "export":
        w = csv.DictWriter(sys.stdout, CSV_FIELDS)
        w.writeheader()
        w.writerows(export_rows(hist, number))
        return 0
    for n in sorted({e.number for e in hist}):
        st = standing(hist, n)
        print(f"{n}: {st.status}" + (f" since {_iso(st.since, cfg.business.timezone)}"
                                     if st.since else "") + (f" ({st.source})" if st.source else ""))
    return 0


def cmd_purge(a) -> int:
    if a.older_than < 1:
        raise CliError(f"--older-than {a.older_than}: give a number of days, 1 or more "
                       "(0 or less would delete every record)")
    cfg = _config(a.config, required=True)
    store = _store(cfg)
    before = time.time() - a.older_than * 86400
    try:
        would = store.purge_count(before)
        what = (f"{would['calls']} calls, {would['decisions']} decisions, {would['messages']} messages "
                f"older than {a.older_than} days (before {_iso(before, cfg.business.timezone)})")
        if a.dry_run:
            print(f"would purge {what}; consent records are kept")
            return 0
        if not any(would.values()):
            print(f"nothing older than {a.older_than} days")
            return 0
        if not a.yes:
            if not sys.stdin.isatty():
                raise CliError(f"would purge {what}: add --yes to delete without asking")
            answer = input(f"purge {what}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        n = store.purge(before)
    finally:
        store.close()
    logging.getLogger("pbx_textback").info("purged records older than %d days: %s", a.older_than, n)
    print(f"purged {n['calls']} calls, {n['decisions']} decisions, {n['messages']} messages older than "
          f"{a.older_than} days (consent records are kept as proof)")
    return 0


def cmd_export(a) -> int:
    from .core.numbers import to_e164
    cfg = _config(a.config, required=True)
    peer = to_e164(a.number, cfg.business.country) or a.number
    store = _store(cfg)
    try:
        data = store.export_number(peer)
    finally:
        store.close()
    print(json.dumps(_iso_times(data, cfg.business.timezone), ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_run(a) -> int:
    from .service import Service
    from .status import publish_dir
    path = a.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    if path is None:
        raise CliError(f"no config: pass -c FILE (or create {DEFAULT_CONFIG})")
    cfg = load(path, for_service=True, strict=False)
    log = logging.getLogger("pbx_textback.config")
    for w in cfg.warnings:      # template lint, closed weekdays, texts going nowhere
        (log.error if w.startswith(SERVICE_ERROR) else log.warning)("config: %s", w)
    try:
        svc = Service(cfg, status_dir=publish_dir())
        return asyncio.run(svc.run())
    except StoreError as e:       # exit 2: the unit does not restart; the admin must act
        logging.getLogger("pbx_textback").error("%s", e)
        return 2


def cmd_user(a) -> int:
    """The inbox's accounts: add, list, passwd, disable."""
    import getpass
    from .store import web as sw
    from .web.passwords import hash_password
    cfg = _config(a.config, required=True)

    def password() -> str:
        if a.password_file:
            try:
                return Path(a.password_file).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as e:
                raise CliError(f"--password-file {a.password_file}: {getattr(e, 'strerror', None) or e}") from None
        first = getpass.getpass(f"password for {a.name}: ")
        if getpass.getpass("again: ") != first:
            raise CliError("the two passwords differ: nothing changed")
        return first

    if a.action != "list" and not a.name:
        raise CliError(f"user {a.action} needs NAME")
    if a.action == "add" and not a.role:
        raise CliError("user add needs --role admin|agent")
    if a.name and not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", a.name):
        raise CliError(f"user name {a.name!r}: letters, digits and . _ @ - only (at most 64)")
    if a.extension and not re.fullmatch(r"\d{2,10}", a.extension):
        raise CliError(f"--extension {a.extension!r}: the desk phone's extension, digits only")
    store = _store(cfg)
    try:
        if a.action == "list":
            for u in sw.users(store):
                print(f"{u.name}\t{u.role}\t{u.extension or '-'}\t{'disabled' if u.disabled else 'active'}")
            return 0
        try:
            if a.action == "add":
                sw.add_user(store, a.name, a.role, hash_password(password()), a.extension or "", time.time())
            elif a.action == "passwd":
                sw.set_password(store, a.name, hash_password(password()))
            else:
                sw.disable_user(store, a.name)
        except ValueError as e:
            raise CliError(str(e)) from None
    finally:
        store.close()
    print({"add": f"user {a.name} added ({a.role}); the service serves the inbox on {cfg.web.listen} "
                  "once restarted", "passwd": f"password of {a.name} changed; signed out everywhere",
           "disable": f"user {a.name} disabled; signed out everywhere"}[a.action])
    return 0


def cmd_settings(a) -> int:
    from pbx_textback.admin.cli import cmd_settings as body
    cfg = _config(a.config, required=True)
    try:
        return body(a, cfg, _store(cfg))
    except ValueError as e:
        raise CliError(str(e)) from None


def cmd_web(a) -> int:
    from pbx_textback.admin.cli import cmd_web as body
    cfg = _config(a.config, required=True)
    try:
        return body(cfg, _store(cfg))
    except ValueError as e:
        raise CliError(str(e)) from None


def cmd_report(a) -> int:
    from pbx_textback.reporting.report import run_cli
    cfg = _config(a.config, required=True)
    store = _store(cfg)
    try:
        return run_cli(a, cfg, store)
    finally:
        store.close()


def _store_command(module):
    """hooks, token: the body lives in its own module; run(a, cfg, store, fail)."""
    def fail(msg):
        raise CliError(msg)

    def command(a) -> int:
        if getattr(a, "action", "") == "secret":
            return module.run(a, None, None, fail)
        cfg = _config(a.config, required=True, secrets=False)
        store = _store(cfg)
        try:
            return module.run(a, cfg, store, fail)
        finally:
            store.close()
    return command


def cmd_demo(a) -> int:
    from .demo import DemoError, run_demo
    try:
        return asyncio.run(run_demo(a))
    except DemoError as e:
        raise CliError(str(e)) from None


def cmd_esl(a) -> int:
    from .esl.child import PASSWORD_ENV, main as esl_main
    if not os.environ.get(PASSWORD_ENV) and not {"-h", "--help"} & set(a.rest):
        raise CliError(f"esl: no event-socket password in ${PASSWORD_ENV}; this child is started "
                       "by `pbx-textback run` (use that)")
    return esl_main(a.rest) or 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pbx-textback", description="Missed-call text back for "
                                "self-hosted Asterisk/FreePBX and FreeSWITCH/FusionPBX.")
    p.add_argument("--version", action="version", version=f"pbx-textback {__version__}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def cmd(name, fn, help):
        s = sub.add_parser(name, help=help, description=help)
        s.set_defaults(fn=fn)
        return s

    s = cmd("run", cmd_run, "run the service against the PBX in the config")
    s.add_argument("-c", "--config")
    s = cmd("demo", cmd_demo, "run the service against a built-in demo PBX feed (recorded Asterisk calls)")
    s.add_argument("--pbx", default="asterisk", choices=["asterisk", "freeswitch"])
    s.add_argument("--once", action="store_true", help="play the calls once, then stop")
    s.add_argument("--pace", type=float, default=1.0, help="seconds between demo calls")
    s.add_argument("--store", help="SQLite file to keep (default: a temp dir)")
    s.add_argument("--no-browser", action="store_true",
                   help="only print the inbox's address (a desktop session opens it by default)")
    s = cmd("check-config", cmd_check_config, "validate a config file")
    s.add_argument("-c", "--config", required=True)
    s = cmd("replay", cmd_replay, "classify and decide every call of a recorded PBX event stream, then "
            "run the outbox on its clock: what each text would become (sent, cancelled, held...)")
    s.add_argument("file")
    s.add_argument("--pbx", default="asterisk", choices=["asterisk", "freeswitch"])
    s.add_argument("-c", "--config")
    s.add_argument("--at", help="the time of the calls (ISO-8601 with offset): for the hours check, and the "
                   "outbox's clock when the trace has no timestamps of its own")
    s.add_argument("--json", action="store_true")
    s = cmd("whatif", cmd_whatif, "the calls in the store decided again under another config (-c: the "
            "proposed one; its [store] is read): which texts would (not) go out, other wording, later "
            "or earlier; nothing is sent")
    s.add_argument("-c", "--config")
    s.add_argument("--since", default="7d", help="how far back: 7d, 36h, 2w or an ISO-8601 time")
    s.add_argument("--store", help="read this SQLite store instead of the config's")
    s.add_argument("--examples", type=int, default=3, help="example calls per change")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s = cmd("explain", cmd_explain, "why did this caller (not) get a text? (NUMBER or CALL_ID)")
    s.add_argument("key", metavar="NUMBER|CALL_ID")
    s.add_argument("-c", "--config")
    s.add_argument("--json", action="store_true", help="one JSON document (times ISO-8601)")
    s = cmd("resend", cmd_resend, "send a text again (unknown, failed, expired or no receipt): "
            "recorded as a resend of the original")
    s.add_argument("id", type=int, metavar="ID", help="the message id (`explain` shows it)")
    s.add_argument("-c", "--config")
    s = cmd("number", cmd_number, "what we know of a phone number")
    s.add_argument("raw", metavar="RAW")
    s.add_argument("--region")
    s.add_argument("-c", "--config")
    s.add_argument("--json", action="store_true")
    s = cmd("sms-info", cmd_sms_info, "encoding, length and parts of a text")
    s.add_argument("text", metavar="TEXT")
    s.add_argument("--json", action="store_true")
    s = cmd("hours", cmd_hours, "show business hours, or override them: hours set LINE open|closed|auto")
    s.add_argument("action", choices=["show", "set"])
    s.add_argument("line", nargs="?")
    s.add_argument("mode", nargs="?", choices=["open", "closed", "auto"])
    s.add_argument("--until", help="when the override ends (ISO-8601 with offset); default: the "
                   "line's next scheduled opening or closing")
    s.add_argument("-c", "--config")
    for name, what in (("pause", "stop all automated texting at once (held texts wait)"),
                       ("resume", "resume automated texting")):
        s = cmd(name, cmd_pause, what)
        s.add_argument("-c", "--config")
    s = cmd("check-reply", cmd_check_reply, "what a caller's reply means: stop, start, help, review or message")
    s.add_argument("text", metavar="TEXT")
    s.add_argument("-c", "--config")
    s.add_argument("--json", action="store_true")
    for name, what in (("optout", "record an opt-out a person confirmed (e.g. a reply flagged for review)"),
                       ("optin", "record an opt-in (written consent, or the caller asked)")):
        s = cmd(name, cmd_consent_change, what)
        s.add_argument("number", metavar="NUMBER")
        s.add_argument("--reason", required=True, help="why: it is kept in the consent record")
        s.add_argument("--line", help="the line, for line-scoped consent")
        s.add_argument("--no-confirm", dest="confirm", action="store_false",
                       help="do not text the caller a confirmation")
        s.add_argument("-c", "--config")
    s = cmd("consent", cmd_consent, "consent states (show) or every consent event as CSV (export)")
    s.add_argument("action", choices=["show", "export"])
    s.add_argument("--number")
    s.add_argument("-c", "--config")
    s = cmd("purge", cmd_purge, "delete calls and messages older than DAYS (consent records stay)")
    s.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    s.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    s.add_argument("--yes", action="store_true", help="do not ask before deleting")
    s.add_argument("-c", "--config")
    s = cmd("export", cmd_export, "everything held about one number, as JSON (a data-subject request)")
    s.add_argument("number", metavar="NUMBER")
    s.add_argument("-c", "--config")
    s = cmd("send-test", cmd_send_test, "send one text through the configured transport and report "
            "the submit result and the delivery receipt")
    s.add_argument("--to", required=True)
    s.add_argument("--text", required=True)
    s.add_argument("--line", help="the line to send from (default: the first)")
    s.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the bind and the receipt")
    s.add_argument("-c", "--config")
    s = cmd("status", cmd_status, "is the service running, connected to the PBX and the SMSC? paused? "
            "texts waiting, the last error (exit 1 when something is wrong)")
    s.add_argument("-c", "--config")
    s = cmd("doctor", cmd_doctor, "check the config, the PBX login and permissions, the store and the "
            "transport; print the fix for each failure")
    s.add_argument("-c", "--config")
    s.add_argument("--manager-conf", help="Asterisk manager.conf to read the user's classes from")
    s = cmd("user", cmd_user, "the front-desk inbox's accounts: add, list, passwd, disable")
    s.add_argument("action", choices=["add", "list", "passwd", "disable"])
    s.add_argument("name", nargs="?", metavar="NAME")
    s.add_argument("--role", choices=list(("admin", "agent")))
    s.add_argument("--extension", help="the user's desk-phone extension, e.g. 100")
    s.add_argument("--password-file", help="read the password from this file (else it is asked twice)")
    s.add_argument("-c", "--config")
    s = cmd("settings", cmd_settings, "what the admin page changed: export (as TOML for the config file) "
            "or history (who, when, old, new)")
    s.add_argument("action", choices=["export", "history"])
    s.add_argument("--full", action="store_true", help="export: the whole config file with the page's values written in")
    s.add_argument("--limit", type=int, default=200, help="history: at most this many changes")
    s.add_argument("--json", action="store_true")
    s.add_argument("-c", "--config")
    s = cmd("web", cmd_web, "serve the inbox alone (no PBX connection, no transport): replies are "
            "queued for the box that owns the line")
    s.add_argument("-c", "--config")
    s = cmd("report", cmd_report, "missed calls, texts, replies, response times, call backs, recovered callers, opt-outs")
    s.add_argument("--since", help="first day, YYYY-MM-DD in the business's time zone (default: last week, Monday to Sunday)")
    s.add_argument("--until", help="last day, YYYY-MM-DD, included (default: now)")
    s.add_argument("--by", default="line", choices=["line", "agent", "campaign", "day", "week"])
    s.add_argument("--json", action="store_true", help="the whole report as JSON")
    s.add_argument("--csv", action="store_true", help="the tables as CSV")
    s.add_argument("--table", choices=["calls", "texts", "rates", "response", "buckets"], help="with --csv: one table")
    s.add_argument("-c", "--config")
    from .hooks import cli as hooks_cli
    from .web import tokens as tokens_cli
    for mod in (hooks_cli, tokens_cli):
        mod.add_parser(lambda name, help, m=mod: cmd(name, _store_command(m), help))
    s = cmd("esl", cmd_esl, "the FreeSWITCH event-socket child (started by run)")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    _add_help_texts(sub)
    return p


# `pbx-textback COMMAND --help`: the config each command reads and one example (no man page:
# the unit's Documentation= points at the README, and every command explains itself)
EXAMPLES = {
    "run": "pbx-textback run -c /etc/pbx-textback/config.toml   (what the systemd unit runs)",
    "demo": "pbx-textback demo --once --pbx freeswitch",
    "check-config": "pbx-textback check-config -c /etc/pbx-textback/config.toml",
    "replay": "pbx-textback replay calls.ami --pbx asterisk --at 2026-11-26T17:30:00-06:00",
    "whatif": "pbx-textback whatif -c /etc/pbx-textback/new.toml --since 7d   (nothing is sent)",
    "explain": "pbx-textback explain +15125550188",
    "number": "pbx-textback number '(512) 555-0188' --region US",
    "sms-info": "pbx-textback sms-info 'Sorry we missed your call'",
    "hours": "pbx-textback hours show\n  pbx-textback hours set +15125550100 closed",
    "pause": "pbx-textback pause",
    "resume": "pbx-textback resume",
    "status": "pbx-textback status",
    "check-reply": "pbx-textback check-reply 'STOP please'",
    "optout": "pbx-textback optout +15125550188 --reason 'asked on the phone'",
    "optin": "pbx-textback optin +15125550188 --reason 'signed the consent form'",
    "consent": "pbx-textback consent export > consent.csv",
    "purge": "pbx-textback purge --older-than 365",
    "export": "pbx-textback export +15125550188 > caller.json",
    "resend": "pbx-textback resend 42   (the message id `explain` shows; recorded as a resend)",
    "send-test": "pbx-textback send-test --to +15125550188 --text 'test from pbx-textback'",
    "user": "pbx-textback user add maria --role agent --extension 101",
    "settings": "pbx-textback settings export >> page-settings.toml\n  pbx-textback settings history",
    "web": "pbx-textback web -c /etc/pbx-textback/config.toml   (a box that only serves the inbox)",
    "report": "pbx-textback report --since 2026-11-23 --until 2026-11-29 --by agent --csv > week.csv",
    "hooks": "pbx-textback hooks deliveries --endpoint crm\n  pbx-textback hooks resend 42",
    "token": "pbx-textback token add hubspot-relay --scope write",
    "doctor": "pbx-textback doctor   (as root on the PBX box, before `systemctl enable --now pbx-textback`)",
}


def _add_help_texts(sub) -> None:
    for name, parser in sub.choices.items():
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        if name in EXAMPLES:
            parser.epilog = "example:\n  " + EXAMPLES[name]
        for action in parser._actions:
            if "--config" in action.option_strings and not action.help:
                action.help = "the config file" + ("" if action.required else
                                                   f" (default: {DEFAULT_CONFIG} when it exists)")


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a, unknown = p.parse_known_args(argv)
    if unknown and a.cmd == "esl":     # the child's own options (--port …) pass through
        a.rest = unknown + a.rest
    elif unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    if a.cmd == "hours" and a.action == "set" and (not a.line or not a.mode):
        p.error("hours set needs LINE and open|closed|auto")
    setup_logging(a.log_level, a.log_format)
    try:
        return a.fn(a) or 0
    except ConfigError as e:
        print(f"config error:\n{e}", file=sys.stderr)
        return 2
    except CliError as e:
        print(f"pbx-textback: {e}", file=sys.stderr)
        return 2
    except StoreError as e:
        print(f"pbx-textback: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
