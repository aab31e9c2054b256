"""E-mail to staff through the local MTA: a mail when a caller's reply has waited N minutes
with nobody answering, and a daily summary with the day's numbers (README "E-mail to staff").

What was mailed is kept in the store's settings (the last reply id looked at, the day of the
last summary): a restart neither repeats a mail nor skips one.
"""
from __future__ import annotations

import asyncio
import logging
import smtplib
from datetime import datetime, time as dtime, timezone
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from pbx_textback.core.report.tables import show, tables
from pbx_textback.store import staffmail as sql

log = logging.getLogger("pbx_textback.reporting.staffmail")
SEEN_KEY, SUMMARY_KEY = "staffmail:last_reply_id", "staffmail:summary_day"
TICK_S = 30.0


def send(cfg, subject: str, body: str) -> None:
    from pbx_textback.config import web_listen
    host, port = web_listen(cfg.mail.mta)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = cfg.mail.sender, ", ".join(cfg.mail.to), subject
    msg.set_content(body)
    with smtplib.SMTP(host, port, timeout=30) as s:
        s.send_message(msg)


def unseen_mail(cfg, store, now: float) -> tuple[str, str] | None:
    """(subject, body) for replies nobody answered for unseen_reply_minutes (None: nothing
    new); marks them looked at."""
    minutes = cfg.mail.unseen_reply_minutes
    if not minutes:
        return None
    cutoff = now - minutes * 60
    mark = store.setting(SEEN_KEY, "")
    if not mark:            # the first look on this store: only what comes from now on
        store.set_setting(SEEN_KEY, str(sql.last_reply_id(store, cutoff)), now)
        return None
    after = int(mark)
    waiting = sql.unanswered_replies(store, after, cutoff, now)
    last = sql.last_reply_id(store, cutoff)
    if last > after:
        store.set_setting(SEEN_KEY, str(last), now)
    if not waiting:
        return None
    tz = cfg.business.timezone
    lines = [f"{len(waiting)} caller repl{'y' if len(waiting) == 1 else 'ies'} waiting over {minutes:g} minutes "
             "with nobody answering:", ""]
    for _, peer, line, at in waiting:
        lines.append(f"  {peer} to line {line or '-'} at {_local(at, tz)}")
    lines += ["", "Open the inbox to answer them."]
    return f"{cfg.business.name or 'pbx-textback'}: {len(waiting)} unanswered repl" \
           f"{'y' if len(waiting) == 1 else 'ies'}", "\n".join(lines)


def summary_mail(cfg, store, now: float) -> tuple[str, str] | None:
    """The day's numbers once a day at daily_summary_at (local), from midnight until now."""
    at = cfg.mail.daily_summary_at
    if not at:
        return None
    zone = ZoneInfo(cfg.business.timezone)
    local = datetime.fromtimestamp(now, timezone.utc).astimezone(zone)
    if local.time() < dtime.fromisoformat(at) or store.setting(SUMMARY_KEY) == local.date().isoformat():
        return None
    from pbx_textback.reporting.report import report
    midnight = datetime.combine(local.date(), dtime(0, 0), zone).timestamp()
    rep = report(store, midnight, now, "line", cfg)
    store.set_setting(SUMMARY_KEY, local.date().isoformat(), now)
    t = rep["total"]
    head = [f"{cfg.business.name or 'pbx-textback'}, {local.date().isoformat()} until {local.strftime('%H:%M')}:", "",
            f"Missed calls: {t['calls']['missed']} of {t['calls']['inbound']} inbound, "
            f"{t['calls']['missed_callers']} callers",
            f"Automated texts sent: {t['texts']['sent']} (delivered {t['texts']['delivered']}, failed {t['texts']['failed']})",
            f"Reply rate: {show(t['replies']['rate'], 'rate')}",
            f"Time to first human response: median {show(t['response']['median_s'], 's')}, "
            f"p90 {show(t['response']['p90_s'], 's')}; still waiting {t['response']['waiting']}",
            f"Call-back rate within 1 h: {show(t['callbacks']['rate_1h'], 'rate')}",
            f"Recovered callers: {t['recovered']['recovered']} ({show(t['recovered']['rate'], 'rate')})",
            f"Opt-out rate: {show(t['opt_outs']['rate'], 'rate')}", ""]
    calls = tables(rep)[0]
    head += ["Per line (missed calls):"] + [f"  {row[0]}: {row[2]}" for row in calls.rows[:-1]]
    return f"{cfg.business.name or 'pbx-textback'}: the day's numbers ({local.date().isoformat()})", "\n".join(head)


def due(cfg, store, now: float) -> list[tuple[str, str]]:
    """One look at the store: the mails due now (and marked as done)."""
    return [m for m in (unseen_mail(cfg, store, now), summary_mail(cfg, store, now)) if m is not None]


async def run(cfg, store, clock) -> None:
    """Every TICK_S: the store read in the loop like every store call, the SMTP talk in a
    thread. An MTA that refuses is logged; the mail is not repeated (the inbox still shows
    the replies, and the next day has its own summary)."""
    while True:
        try:
            for subject, body in due(cfg, store, clock()):
                await asyncio.to_thread(send, cfg, subject, body)
                log.info("mail to staff sent: %s", subject)
        except (OSError, smtplib.SMTPException) as e:
            log.warning("mail to staff not sent: the MTA at %s: %s", cfg.mail.mta, e)
        await asyncio.sleep(TICK_S)


def _local(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(ZoneInfo(tz)).strftime("%a %H:%M")
