"""One TOML file -> frozen dataclasses. Every error names the key and its line.

The schema is the dataclasses below: their fields, types and defaults are the reference
(README's configuration section mirrors them). Secrets may come from `<key>_file` or
`<key>_env` instead of the value itself.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
import typing
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from .core.model import MISSED_REASONS, Marker   # [[pbx.after_hours_markers]] are core Markers
from .core.policy.ownership import OwnerRule     # [[web.owner_rules]] are core OwnerRules
from .sip.message import SipSettings
from .smpp.transport import SmppSettings


class ConfigError(Exception):
    """A config problem, with the key and line it is about."""

    def __init__(self, problems: list[str], path: str = ""):
        self.problems = problems
        where = f"{path}: " if path else ""
        super().__init__("\n".join(f"{where}{p}" for p in problems))


@dataclass(frozen=True)
class Business:
    name: str = "Our office"
    phone: str = ""                 # shown in texts and HELP replies
    country: str = "US"             # region for numbers without a + prefix
    timezone: str = "America/Chicago"


@dataclass(frozen=True)
class Ami:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "textback"
    secret: str = ""
    trunk_contexts: tuple[str, ...] = ()     # added to the FreePBX/plain defaults
    trunk_endpoints: tuple[str, ...] = ()
    ping_interval: float = 20.0


@dataclass(frozen=True)
class Esl:
    host: str = "127.0.0.1"
    port: int = 8021
    password: str = ""
    inbound_contexts: tuple[str, ...] = ("public",)


@dataclass(frozen=True)
class Cdr:
    """Where the PBX stores its CDR, read (read-only) after a gap in the event stream."""
    source: str = ""                 # "" (off) | csv | sqlite | mysql (FreePBX's asteriskcdrdb)
    path: str = "/var/log/asterisk/cdr-csv/Master.csv"   # csv: cdr_csv; sqlite: cdr_sqlite3_custom's db
    table: str = "cdr"
    dsn: str = "mysql://freepbxuser@127.0.0.1:3306/asteriskcdrdb"   # mysql: a read-only user is enough
    password: str = ""               # mysql (password_file / password_env)
    timezone: str = ""               # the zone the PBX writes CDR times in ("": cdr_csv's usegmtime -> UTC, else this box's zone)
    settle_seconds: float = 3.0      # wait after reconnect: the last calls' CDR may still be written
    cdr_conf: str = "/etc/asterisk/cdr.conf"   # read for [csv] usegmtime / loguniqueid where readable


@dataclass(frozen=True)
class Pbx:
    type: str = "asterisk"           # asterisk | freeswitch | mail (no event socket: voicemail mails only)
    ami: Ami = field(default_factory=Ami)
    esl: Esl = field(default_factory=Esl)
    after_hours_markers: tuple[Marker, ...] = ()   # added to the built-in ones
    cdr: Cdr = field(default_factory=Cdr)
    freepbx_timeconditions: bool = True
    # this box's name on a shared store (one service per PBX box); "" = the host name
    id: str = ""


def box_id(cfg) -> str:
    """The PBX box this service speaks for: [pbx] id, else the host name."""
    from .store.db import default_box
    return cfg.pbx.id or default_box()


@dataclass(frozen=True)
class Store:
    path: str = "/var/lib/pbx-textback/textback.sqlite3"
    dsn: str = ""                    # postgresql://… for several PBX boxes sharing one inbox


@dataclass(frozen=True)
class Policy:
    dedupe_hours: float = 24.0
    min_talk_seconds: float = 0.0
    allowed_countries: tuple[str, ...] = ()   # default: the business's own country
    text_withheld: bool = False               # never: kept as a visible, fixed rule
    text_recovered: str = "unambiguous"       # unambiguous | never | all (calls rebuilt from the CDR)
    internal_max_digits: int = 6
    max_age_minutes: float = 120.0            # a text not sent by then expires, visibly


@dataclass(frozen=True)
class Smtp:
    """The voicemail e-mail listener (smtp/README.md)."""
    enabled: bool = False
    listen_host: str = "127.0.0.1"
    listen_port: int = 8025
    relay_host: str = "127.0.0.1"       # where staff mail goes on: the local MTA or a smarthost
    relay_port: int = 25
    relay_security: str = "none"        # none | starttls | tls
    relay_username: str = ""
    password: str = ""                  # the smarthost's (password_file / password_env)
    mailbox_lines: dict[str, str] = field(default_factory=dict)   # voicemail box -> line DID
    match_minutes: float = 30.0         # a mail belongs to a call from the same caller this recent


@dataclass(frozen=True)
class Features:
    """Desk-phone feature codes (*88 call back, *89 text again) through FastAGI."""
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 4573
    callback_window_hours: float = 24.0


@dataclass(frozen=True)
class Compliance:
    """Texting real people lawfully; the defaults are the lawful ones."""
    opt_out_scope: str = "business"          # business (every line) | line
    quiet_hours: str = "08:00-20:00"         # allowed window in the RECIPIENT's local time; "" = off
    preset: str = ""                         # "" | ftsa (08:00-20:00 and at most 3 per 24 h)
    max_hold_hours: float = 12.0             # a text held by quiet hours longer than this is dropped
    cross_line_cap: int = 3                  # automated texts per caller per 24 h, all lines together
    global_hourly_cap: int = 200             # SMS-pumping guard for the whole service
    denylist: tuple[str, ...] = ()           # E.164 numbers or prefixes with a trailing *
    allowlist: tuple[str, ...] = ()          # always textable (internal test phones, …)
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)   # more languages: stop/start/help
    hipaa: bool = False                      # refuse template variables that may carry health data
    require_opt_out_text: bool = True        # templates must say how to opt out
    retention_days: int = 0                  # 0: keep; else purge calls and messages older than this


@dataclass(frozen=True)
class PbxMessage:
    """Texts sent through the PBX, which already holds the trunk's registration."""
    endpoint_template: str = ""      # Asterisk MessageSend, e.g. "pjsip:itsp/sip:{peer}@sip.provider.example"
    from_template: str = "sip:{line}@127.0.0.1"
    to_template: str = ""            # FreeSWITCH chat, e.g. "external/sip:{peer}@sip.provider.example"


@dataclass(frozen=True)
class Transport:
    type: str = "log"                # log | smpp | sip | pbx: the default for every line
    smpp: SmppSettings | None = None     # [transport.smpp]: smpp/README.md
    sip: SipSettings | None = None       # [transport.sip]: direct SIP MESSAGE to the trunk
    pbx: PbxMessage | None = None        # [transport.pbx]
    alert_email: str = ""                # when texting fails, mail the admin through the local MTA
    alert_mta: str = "127.0.0.1:25"
    alert_after_minutes: float = 5.0     # the SMSC down this long is worth a mail


@dataclass(frozen=True)
class Hours:
    mon: tuple[str, ...] = ()
    tue: tuple[str, ...] = ()
    wed: tuple[str, ...] = ()
    thu: tuple[str, ...] = ()
    fri: tuple[str, ...] = ()
    sat: tuple[str, ...] = ()
    sun: tuple[str, ...] = ()
    holidays: tuple[str, ...] = ()




@dataclass(frozen=True)
class Line:
    number: str                      # the DID callers dial, E.164 or as the PBX shows it
    name: str = ""
    enabled: bool = True
    reasons: tuple[str, ...] = MISSED_REASONS
    timezone: str = ""               # default: business.timezone
    template: str = ""               # default: the built-in one
    templates: dict[str, str] = field(default_factory=dict)   # per reason
    hours: Hours | None = None       # None: always open
    delay_seconds: float = 0.0       # wait before texting: a caller who redials and gets through is not texted
    delays: dict[str, float] = field(default_factory=dict)   # per reason, overrides delay_seconds
    follow_up_after_hours: float = 0.0   # 0: no follow-up
    follow_up_template: str = ""
    quiet_hours: str = ""            # overrides compliance.quiet_hours for this line
    transport: str = ""              # overrides transport.type for this line


@dataclass(frozen=True)
class Web:
    """The front-desk inbox (README "Front desk inbox"). Served only once a user exists
    (`pbx-textback user add`): a box nobody set up opens no port."""
    enabled: bool = True
    listen: str = "127.0.0.1:8080"       # HOST:PORT; put nginx/Apache with TLS in front
    # the front desk (README "Front desk: ownership, locks, notifications")
    reply_lock_minutes: float = 30.0     # an agent's "is replying" lock lapses after this idle time
    owner_rules: tuple[OwnerRule, ...] = ()   # first rule naming a signed-in agent owns a new conversation

    def __post_init__(self):
        if not (0 < self.reply_lock_minutes <= 24 * 60):
            raise ValueError(f"reply_lock_minutes must be between 0 and 1440, not {self.reply_lock_minutes}")



# ---- webhooks and the REST API (README "Webhooks", "REST API") ----------------------------
HOOK_EVENTS = ("call.missed", "call.answered", "message.sent", "message.delivered", "message.failed",
               "message.received", "conversation.assigned", "conversation.closed", "contact.opted_out",
               "contact.opted_in", "callback.completed")


@dataclass(frozen=True)
class HookEndpoint:
    """One receiver. `secret` (secret_file / secret_env) holds one or more whsec_ secrets,
    whitespace apart: each signs, so a receiver can move to a new one (secret rotation)."""
    name: str
    url: str
    secret: str = ""
    events: tuple[str, ...] = HOOK_EVENTS


@dataclass(frozen=True)
class Hooks:
    endpoint: tuple[HookEndpoint, ...] = ()


@dataclass(frozen=True)
class Api:
    rate_per_minute: int = 120           # requests per token per minute (429 beyond)


def _hooks_problems(cfg, lines) -> list[str]:
    import base64
    import binascii
    out, names = [], set()
    for i, ep in enumerate(cfg.hooks.endpoint):
        k = f"hooks.endpoint[{i}]"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", ep.name):
            out.append(f"'{k}.name'{_where(k + '.name', lines)}: '{ep.name}' must be letters, digits, "
                       "'.', '_' or '-', e.g. \"crm\"")
        elif ep.name in names:
            out.append(f"'{k}.name'{_where(k + '.name', lines)}: endpoint '{ep.name}' is named twice")
        names.add(ep.name)
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", ep.url):
            out.append(f"'{k}.url'{_where(k + '.url', lines)}: '{ep.url}' is not an http(s) URL")
        for ev in ep.events:
            if ev not in HOOK_EVENTS:
                out.append(f"'{k}.events'{_where(k + '.events', lines)}: '{ev}' is not one of "
                           f"{', '.join(HOOK_EVENTS)}")
        if not ep.secret:
            if _SECRETS_NEEDED.get():
                out.append(f"'{k}.secret'{_where(k, lines)}: missing; give secret_file = \"…\" holding "
                           "a whsec_… secret (one per line; two during a rotation)")
            continue
        for sec in ep.secret.split():
            try:
                ok = sec.startswith("whsec_") and len(base64.b64decode(sec[6:] + "==", validate=False)) >= 16
            except (binascii.Error, ValueError):
                ok = False
            if not ok:
                out.append(f"'{k}.secret'{_where(k, lines)}: not a whsec_ secret (whsec_ then base64 of "
                           "at least 16 bytes; `pbx-textback hooks secret` makes one)")
    return out


@dataclass(frozen=True)
class Metrics:
    """`/metrics` for Prometheus (README "Metrics"): off by default, and only ever on the
    loopback address (a remote Prometheus scrapes through the box's reverse proxy or SSH)."""
    enabled: bool = False
    listen: str = "127.0.0.1:9464"

    def __post_init__(self):
        host = self.listen.rpartition(":")[0].strip("[]")
        if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
            raise ValueError(f"listen = {self.listen!r}: metrics are served on the loopback address "
                             "only (127.0.0.1:PORT or [::1]:PORT); they carry no sign-in")


@dataclass(frozen=True)
class Mail:
    """E-mail to staff through the local MTA (README "E-mail to staff"): off when `to` is empty."""
    to: tuple[str, ...] = ()               # staff addresses
    sender: str = "pbx-textback@localhost"
    mta: str = "127.0.0.1:25"              # HOST:PORT of the local MTA (plain SMTP, no auth)
    unseen_reply_minutes: float = 15.0     # a reply nobody answered for this long: one mail; 0: never
    daily_summary_at: str = "18:00"        # local time of the day's summary; "": none

    def __post_init__(self):
        if web_listen(self.mta) is None:
            raise ValueError(f"mta = {self.mta!r}: give HOST:PORT, e.g. 127.0.0.1:25")
        if self.daily_summary_at and not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", self.daily_summary_at):
            raise ValueError(f"daily_summary_at = {self.daily_summary_at!r}: give HH:MM (24 h) or \"\" for none")
        if not 0 <= self.unseen_reply_minutes <= 10080:
            raise ValueError(f"unseen_reply_minutes = {self.unseen_reply_minutes:g}: give 0..10080 minutes (0: never)")
        bad = [a for a in self.to if "@" not in a or any(c in a for c in " ,;<>")]
        if bad:
            raise ValueError(f"to: {bad[0]!r} is not an e-mail address")


@dataclass(frozen=True)
class DeskPhones:
    """Call back from the inbox (the agent's desk phone rings first) and callers' replies
    pushed to desk phones as SIP MESSAGE, both through the PBX connection (README "Desk
    phones"). Empty strings take the PBX type's default, shown after each key."""
    channel: str = ""            # the agent's phone; {ext} = the user's --extension. PJSIP/{ext} | user/{ext}
    context: str = ""            # the phone's own dialplan context (its outbound route dials the caller). from-internal | default
    ring_seconds: int = 20       # how long the desk phone rings before the call back gives up
    push_replies: bool = True    # a caller's reply goes to the owner's desk phone (all agents' while unassigned)
    message_to: str = ""         # where a pushed reply goes. pjsip:{ext} | {ext}@<FreeSWITCH domain> (required there)
    message_from: str = ""       # its From; "" = the PBX's default (Asterisk) | textback@<domain of message_to>


@dataclass(frozen=True)
class Config:
    business: Business = field(default_factory=Business)
    pbx: Pbx = field(default_factory=Pbx)
    store: Store = field(default_factory=Store)
    policy: Policy = field(default_factory=Policy)
    transport: Transport = field(default_factory=Transport)
    smtp: Smtp = field(default_factory=Smtp)
    compliance: Compliance = field(default_factory=Compliance)
    features: Features = field(default_factory=Features)
    web: Web = field(default_factory=Web)
    hooks: Hooks = field(default_factory=Hooks)
    api: Api = field(default_factory=Api)
    deskphones: DeskPhones = field(default_factory=DeskPhones)
    metrics: Metrics = field(default_factory=Metrics)
    mail: Mail = field(default_factory=Mail)
    line: tuple[Line, ...] = ()
    every_inbound_number: bool = False   # no lines: treat every inbound DID as a line
    source: str = ""
    warnings: tuple[str, ...] = ()       # template lint warnings: shown, not fatal
    # the file's text and the admin page's values merged on top (settings.py): kept so a
    # reload or a page edit can rebuild the config; not part of what a config *is*
    toml: str = field(default="", compare=False, repr=False)
    page: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def allowed_countries(self) -> frozenset[str]:
        return frozenset(self.policy.allowed_countries or (self.business.country,))


SECRET_KEYS = {"secret", "password"}
_CHOICES = {
    "pbx.type": ("asterisk", "freeswitch", "mail"),
    "pbx.cdr.source": ("", "csv", "sqlite", "mysql"),
    "smtp.relay_security": ("none", "starttls", "tls"),
    "compliance.opt_out_scope": ("business", "line"),
    "compliance.preset": ("", "ftsa"),
    "transport.type": ("log", "smpp", "sip", "pbx"),
    "policy.text_recovered": ("unambiguous", "never", "all"),
}
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PHONE = re.compile(r"^\+?\d{3,15}$")


def _is_date(s: str) -> bool:
    from datetime import date
    try:
        return bool(_DATE.match(s)) and bool(date.fromisoformat(s))
    except ValueError:
        return False


# Sane ranges (field name -> (low, high, unit)): a number outside them is a typo, and inf, nan
# or 1e300 seconds make every call on the line fail when the due time is computed.
_RANGES = {
    "delay_seconds": (0, 86400, "seconds"), "delays": (0, 86400, "seconds"),
    "follow_up_after_hours": (0, 720, "hours"), "dedupe_hours": (0, 8784, "hours"),
    "min_talk_seconds": (0, 3600, "seconds"), "max_age_minutes": (1, 10080, "minutes"),
    "max_hold_hours": (0, 168, "hours"), "callback_window_hours": (0, 720, "hours"),
    "match_minutes": (0, 1440, "minutes"), "settle_seconds": (0, 300, "seconds"),
    "ping_interval": (0.1, 3600, "seconds"), "alert_after_minutes": (0, 10080, "minutes"),
    "internal_max_digits": (1, 15, "digits"), "cross_line_cap": (0, 100000, "texts"),
    "global_hourly_cap": (0, 1000000, "texts"), "retention_days": (0, 36600, "days"),
    "rate_per_minute": (1, 100000, "requests"), "port": (0, 65535, ""), "listen_port": (0, 65535, ""), "relay_port": (0, 65535, ""),   # 0: any free port
}


def _numbers(obj, prefix: str):
    """(dotted key, field name, value) for every number in the built config."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            yield key, f.name, v
        elif isinstance(v, dict):
            yield from ((f"{key}.{k}", f.name, x) for k, x in v.items()
                        if isinstance(x, (int, float)) and not isinstance(x, bool))
        elif dataclasses.is_dataclass(v):
            yield from _numbers(v, key)
        elif isinstance(v, tuple):
            for i, item in enumerate(v):
                if dataclasses.is_dataclass(item):
                    yield from _numbers(item, f"{key}[{i}]")


def _range_problems(cfg, lines) -> list[str]:
    out = []
    for key, name, v in _numbers(cfg, ""):
        lo, hi, unit = _RANGES.get(name, (-10 ** 9, 10 ** 9, ""))
        if not (lo <= v <= hi):
            shown = f"{v:g}" if isinstance(v, float) else (str(v) if abs(v) < 10 ** 15 else "a huge integer")
            out.append(f"'{key}'{_where(key, lines)}: {shown} is out of range; give {lo}..{hi}"
                       + (f" {unit}" if unit else ""))
    return out


def default_config() -> Config:
    """No file: country US, every inbound number a line, always open, all reasons."""
    return Config(every_inbound_number=True, source="(built-in defaults)")


SERVICE_ERROR = "check-config refuses this: "   # a warning `run` logs as an error


# Commands that never connect (replay, explain, hours…) do not need the secrets: a file they
# cannot read (not root, not on the PBX box) is no reason to refuse them
_SECRETS_NEEDED: ContextVar[bool] = ContextVar("secrets_needed", default=True)


def load(path: str | os.PathLike, *, for_service: bool = False, strict: bool = True,
         secrets: bool = True) -> Config:
    """for_service: also check what only matters when texting for real: no business name, no
    PBX secret. strict (check-config) refuses them; not strict (`run`, which must not stop a
    service that ran yesterday) turns them into warnings starting with SERVICE_ERROR.
    secrets=False: a secret file that cannot be read leaves that secret empty (commands that
    connect to nothing)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"cannot read config: {e.strerror}"], str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError(["config is not UTF-8"], str(p)) from None
    return loads(text, str(p), for_service=for_service, strict=strict, secrets=secrets)


def loads(text: str, path: str = "<config>", *, for_service: bool = False, strict: bool = True,
          secrets: bool = True, page: dict | None = None) -> Config:
    """page: the admin page's values (settings.py keys), merged over the file's before checking."""
    token = _SECRETS_NEEDED.set(secrets)
    try:
        cfg = _loads(text, path, for_service=for_service, strict=strict, page=page or {})
        return dataclasses.replace(cfg, toml=text, page=dict(page or {}))
    finally:
        _SECRETS_NEEDED.reset(token)


def _loads(text: str, path: str, *, for_service: bool, strict: bool, page: dict) -> Config:
    from pbx_textback.admin.settings import merge
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"TOML syntax error: {e}"], path) from None
    except RecursionError:
        raise ConfigError(["TOML nested too deeply: a config needs a few levels"], path) from None
    except ValueError as e:        # e.g. an integer of thousands of digits
        raise ConfigError([f"TOML value refused: {e}"], path) from None
    lines = _key_lines(text)
    data, unmatched = merge(data, page) if page else (data, [])
    problems: list[str] = _removed_keys(data, lines)
    try:
        cfg = _build(Config, data, "", lines, problems)
    except RecursionError:
        raise ConfigError(["TOML nested too deeply: a config needs a few levels"], path) from None
    service_errors: list[str] = []
    if not problems:
        problems += _validate(cfg, lines)
        if for_service:
            service_errors = _service_problems(cfg, data, lines)
            if strict:
                problems += service_errors
                service_errors = []
    if problems:
        raise ConfigError(problems, path)
    warnings = tuple(SERVICE_ERROR + e for e in service_errors) + tuple(_lint(cfg, lines, problems))
    if problems:
        raise ConfigError(problems, path)
    warnings += tuple(_week_warnings(cfg, lines))
    if for_service:
        warnings += tuple(_service_warnings(cfg, lines))
    warnings += tuple(f"page setting {k}: the file has no such line; ignored" for k in unmatched)
    return dataclasses.replace(cfg, source=path, every_inbound_number=not cfg.line, warnings=warnings)


# ---- removed keys ---------------------------------------------------------------------------
_REMOVED = {
    ("transport", "smpp", "retry_unknown"): (
        "removed: resubmitting a text whose fate is unknown sent duplicates recorded as plain "
        "deliveries. An unknown text settles when its receipt arrives; to send one again "
        "anyway, run `pbx-textback resend ID` (recorded as a resend)"),
}


def _removed_keys(data: dict, lines) -> list[str]:
    """Keys that once existed: a clear word instead of 'unknown key' (and taken out of data)."""
    out = []
    for path, why in _REMOVED.items():
        table = data
        for part in path[:-1]:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict) and path[-1] in table:
            del table[path[-1]]
            key = ".".join(path)
            out.append(f"'{key}'{_where(key, lines)}: {why}")
    return out


# ---- building ------------------------------------------------------------------------------
def _where(key: str, lines: dict[str, int]) -> str:
    k = key
    while k:
        if k in lines:
            return f" (line {lines[k]})"
        k = k.rpartition(".")[0]
    return ""


def _build(cls, data, prefix: str, lines, problems):
    if not isinstance(data, dict):
        problems.append(f"{prefix or 'top level'}{_where(prefix, lines)}: expected a table")
        return None
    hints = typing.get_type_hints(cls)
    internal = ("source", "warnings", "every_inbound_number", "toml", "page") if cls is Config else ()
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in internal}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        base = key
        for suffix in ("_file", "_env"):
            if key.endswith(suffix) and key[: -len(suffix)] in SECRET_KEYS & fields.keys():
                base = key[: -len(suffix)]
        if base not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"unknown key '{full}'{_where(full, lines)}{hint}")
            continue
        if base != key:
            secret = _read_secret(key, value, full, lines, problems)
            if secret is not None:
                kwargs[base] = secret
            continue
        kwargs[key] = _convert(hints[key], value, full, lines, problems)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"'{prefix + '.' if prefix else ''}{name}' is missing{_where(prefix, lines)}")
    if any(v is _BAD for v in kwargs.values()) or problems:
        return None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:     # the settings' own checks (e.g. SmppSettings)
        problems.append(f"'{prefix}'{_where(prefix, lines)}: {e}")
        return None


_BAD = object()


def _convert(tp, value, key, lines, problems):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        inner = [a for a in args if a is not type(None)][0]
        return _convert(inner, value, key, lines, problems)
    if dataclasses.is_dataclass(tp):
        built = _build(tp, value, key, lines, problems)
        return _BAD if built is None else built
    if origin is tuple:
        if not isinstance(value, list):
            return _type_error(key, "an array", value, lines, problems)
        item = args[0]
        out = []
        for i, v in enumerate(value):
            out.append(_convert(item, v, f"{key}[{i}]", lines, problems))
        return _BAD if _BAD in out else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            return _type_error(key, "a table", value, lines, problems)
        out = {}
        for k, v in value.items():
            out[k] = _convert(args[1], v, f"{key}.{k}", lines, problems)
        return out
    if tp is bool:
        return value if isinstance(value, bool) else _type_error(key, "true or false", value, lines, problems)
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value if ok else _type_error(key, "an integer", value, lines, problems)
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        # an integer too large for a float would raise OverflowError in float() and isfinite()
        if ok and not (abs(value) < 1e300 if isinstance(value, int) else math.isfinite(value)):
            shown = "a number that large" if isinstance(value, int) else str(value)
            problems.append(f"'{key}'{_where(key, lines)}: {shown} is not a usable number (give a finite one)")
            return _BAD
        return float(value) if ok else _type_error(key, "a number", value, lines, problems)
    if tp is str:
        return value if isinstance(value, str) else _type_error(key, "a string", value, lines, problems)
    return value


def _type_error(key, want, value, lines, problems):
    got = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
           list: "an array", dict: "a table"}.get(type(value), type(value).__name__)
    problems.append(f"'{key}'{_where(key, lines)}: expected {want}, got {got}")
    return _BAD


def _read_secret(key, value, full, lines, problems):
    if not isinstance(value, str):
        _type_error(full, "a string", value, lines, problems)
        return None
    if key.endswith("_file"):
        value = secret_path(value)
        try:
            secret = Path(value).read_text(encoding="utf-8").strip()
        except OSError as e:
            if _SECRETS_NEEDED.get():
                problems.append(f"'{full}'{_where(full, lines)}: cannot read {value}: {e.strerror}"
                                + _secret_hint(value))
            return None
        if not secret:
            problems.append(f"'{full}'{_where(full, lines)}: {value} is empty; put the secret in it (one line)")
            return None
        return secret
    # secret_env: the value of that environment variable (secret_file is what the unit uses)
    env = os.environ.get(value)
    if env is None:
        problems.append(f"'{full}'{_where(full, lines)}: environment variable {value} is not set")
    return env


def secret_path(value: str) -> str:
    """Where a `*_file` secret is read from. One spelling serves the service and a root shell:
    the config names the file itself (/etc/pbx-textback/ami-secret, root-only); the unit hands
    it to the service as the credential named after the file (LoadCredential=ami-secret:…),
    so under systemd $CREDENTIALS_DIRECTORY/ami-secret is read, and from a shell the file."""
    value = os.path.expandvars(value)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and "$" not in value:
        cred = Path(creds) / Path(value).name
        if cred.is_file():
            return str(cred)
    return value


def _secret_hint(path: str) -> str:
    if "${CREDENTIALS_DIRECTORY}" in path or "$CREDENTIALS_DIRECTORY" in path:
        return ("; name the file itself, e.g. /etc/pbx-textback/ami-secret: the unit passes it to "
                "the service (LoadCredential=) and commands run as root read it directly")
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        name = Path(path).name
        return (f"; the unit passes no credential '{name}': add `LoadCredential={name}:{path}` "
                "with `systemctl edit pbx-textback`, or use one of the names the unit lists")
    return ""


# ---- validating ----------------------------------------------------------------------------
def web_listen(value: str) -> tuple[str, int] | None:
    """'127.0.0.1:8080' / '[::1]:8080' -> (host, port); None when it is not HOST:PORT."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:   # 0: any free port
        return None
    return host, int(port)


def _deskphone_problems(d: DeskPhones, lines) -> list[str]:
    out = []
    for key in ("channel", "message_to"):
        v = getattr(d, key)
        if v and "{ext}" not in v:
            out.append(f"'deskphones.{key}'{_where('deskphones.' + key, lines)}: '{v}' names no phone: "
                       "put {ext} where the agent's extension goes (e.g. \"PJSIP/{ext}\")")
    if not 5 <= d.ring_seconds <= 120:
        out.append(f"'deskphones.ring_seconds'{_where('deskphones.ring_seconds', lines)}: "
                   f"{d.ring_seconds} is not within 5..120")
    for key in ("channel", "context", "message_to", "message_from"):
        if re.search(r"[\s\r\n|]", getattr(d, key)):
            out.append(f"'deskphones.{key}'{_where('deskphones.' + key, lines)}: no blanks or '|' allowed")
    return out


def _validate(cfg: Config, lines) -> list[str]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    from .core.text.templates import TemplateError, check_template
    problems = []
    for key, allowed in _CHOICES.items():
        obj = cfg
        for part in key.split("."):
            obj = getattr(obj, part)
        if obj not in allowed:
            problems.append(f"'{key}'{_where(key, lines)}: '{obj}' is not one of {', '.join(allowed)}")
    problems += _range_problems(cfg, lines)
    problems += _hooks_problems(cfg, lines)
    problems += _deskphone_problems(cfg.deskphones, lines)
    if web_listen(cfg.web.listen) is None:
        problems.append(f"'web.listen'{_where('web.listen', lines)}: '{cfg.web.listen}' is not HOST:PORT "
                        "(e.g. 127.0.0.1:8080)")

    def zone(key, name):
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"'{key}'{_where(key, lines)}: unknown time zone '{name}'")
    zone("business.timezone", cfg.business.timezone)
    if cfg.pbx.id and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", cfg.pbx.id):
        problems.append(f"'pbx.id'{_where('pbx.id', lines)}: '{cfg.pbx.id}' must be letters, digits, "
                        "'.', '_' or '-' (at most 64), e.g. \"pbx-a\"")
    if cfg.pbx.cdr.timezone and cfg.pbx.cdr.timezone != "local":
        zone("pbx.cdr.timezone", cfg.pbx.cdr.timezone)
    for i, ln in enumerate(cfg.line):
        if ln.transport and ln.transport not in _CHOICES["transport.type"]:
            problems.append(f"'line[{i}].transport'{_where(f'line[{i}].transport', lines)}: "
                            f"'{ln.transport}' is not one of {', '.join(_CHOICES['transport.type'])}")
    used = {cfg.transport.type} | {ln.transport for ln in cfg.line if ln.transport}
    for kind in (used - {"log"}) & set(_CHOICES["transport.type"]):   # an unknown one is refused elsewhere
        if getattr(cfg.transport, kind) is None:
            problems.append(f"'transport.{kind}'{_where('transport', lines)}: transport {kind} is used "
                            f"but [transport.{kind}] is missing")
    seen = {}
    for i, ln in enumerate(cfg.line):
        k = f"line[{i}]"
        if ln.number in seen:
            problems.append(f"'{k}.number'{_where(k + '.number', lines)}: {ln.number} is already line[{seen[ln.number]}]")
        seen[ln.number] = i
        if not _PHONE.match(re.sub(r"[\s().\-]", "", ln.number)):
            problems.append(f"'{k}.number'{_where(k + '.number', lines)}: '{ln.number}' is not a phone number; "
                            "give the DID callers dial, e.g. \"+15125550100\" (the name goes in name = …)")
        if ln.timezone:
            zone(f"{k}.timezone", ln.timezone)
        for r in ln.reasons:
            if r not in MISSED_REASONS:
                problems.append(f"'{k}.reasons'{_where(k + '.reasons', lines)}: '{r}' is not one of {', '.join(MISSED_REASONS)}")
        for r in ln.templates:
            if r not in MISSED_REASONS:
                problems.append(f"'{k}.templates.{r}'{_where(k + '.templates.' + r, lines)}: not a missed-call reason")
        if ln.hours is not None:
            for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
                for span in getattr(ln.hours, day):
                    key = f"{k}.hours.{day}"
                    if not _TIME.match(span):
                        problems.append(f"'{key}'{_where(key, lines)}: '{span}' is not HH:MM-HH:MM")
                    elif span[6:].replace("24:00", "99:99") <= span[:5]:
                        problems.append(
                            f"'{key}'{_where(key, lines)}: '{span}' ends before it starts. Spans run "
                            f"within one day; for overnight hours write the evening on this day and "
                            f"the morning on the next, e.g. {day} = [\"{span[:5]}-24:00\"] and "
                            f"\"00:00-{span[6:]}\" on the following day")
            for d in ln.hours.holidays:
                if not _is_date(d):
                    problems.append(f"'{k}.hours.holidays'{_where(k + '.hours.holidays', lines)}: '{d}' is not "
                                    "YYYY-MM-DD (a real date, e.g. \"2026-12-25\")")
        for r, d in ln.delays.items():
            if r not in MISSED_REASONS:
                problems.append(f"'{k}.delays.{r}'{_where(k + '.delays.' + r, lines)}: not a missed-call reason")
        for name, val in [("delay_seconds", ln.delay_seconds), ("follow_up_after_hours", ln.follow_up_after_hours)] + \
                [(f"delays.{r}", d) for r, d in ln.delays.items()]:
            if val < 0:
                problems.append(f"'{k}.{name}'{_where(k + '.' + name, lines)}: must not be negative")
        for name, tpl in [("template", ln.template), ("follow_up_template", ln.follow_up_template)] + \
                [(f"templates.{r}", t) for r, t in ln.templates.items()]:
            if not tpl:
                continue
            try:
                check_template(tpl)
            except TemplateError as e:
                problems.append(f"'{k}.{name}'{_where(k + '.' + name, lines)}: {e}")
    for i, m in enumerate(cfg.pbx.after_hours_markers):
        kinds = ("variable", "context", "userevent", "destination", "playback")
        if m.kind not in kinds:
            key = f"pbx.after_hours_markers[{i}].kind"
            problems.append(f"'{key}'{_where(key, lines)}: '{m.kind}' is not one of {', '.join(kinds)}")
    return problems


def _lint(cfg: Config, lines, problems: list[str]) -> list[str]:
    """Template lint: errors refuse the config, warnings are shown (check-config, the log)."""
    from .core.text.lint import lint_template
    from .core.text.templates import DEFAULT_TEMPLATE, render, sample_vars
    c = cfg.compliance

    def texts(src):
        biz = {"name": cfg.business.name, "phone": cfg.business.phone or "+15125550100"}
        return [render(src, {**sample_vars(r), "business": biz}) for r in MISSED_REASONS]
    warnings = []
    for i, ln in enumerate(cfg.line):
        k = f"line[{i}]"
        for name, tpl in [("template", ln.template or DEFAULT_TEMPLATE)] + \
                [(f"templates.{r}", t) for r, t in ln.templates.items()]:
            where = f"'{k}.{name}'{_where(k + '.' + name, lines)}"
            for issue in lint_template(tpl, first_contact=c.require_opt_out_text, hipaa=c.hipaa,
                                       render=texts, business_name=cfg.business.name):
                if issue.level == "error":
                    problems.append(f"{where}: {issue.message}")
                else:
                    warnings.append(f"{where}: {issue.message}")
            warnings += [f"{where}: {w}" for w in _segment_warnings(texts(tpl))]
        if ln.follow_up_template:
            where = f"'{k}.follow_up_template'{_where(k + '.follow_up_template', lines)}"
            warnings += [f"{where}: {w}" for w in _segment_warnings(texts(ln.follow_up_template))]
    if not cfg.line:
        warnings += [f"the built-in template: {w}" for w in _segment_warnings(texts(DEFAULT_TEMPLATE))]
    for key, spans in [("compliance.quiet_hours", c.quiet_hours)] + \
            [(f"line[{i}].quiet_hours", ln.quiet_hours) for i, ln in enumerate(cfg.line)]:
        if spans and (not _TIME.match(spans) or spans[6:].replace("24:00", "99:99") <= spans[:5]):
            problems.append(f"'{key}'{_where(key, lines)}: '{spans}' is not HH:MM-HH:MM, start before end "
                            "(a daytime window; \"00:00-24:00\" allows any time, \"\" turns quiet hours off)")
    for intent in c.keywords:
        if intent not in ("stop", "start", "help"):
            problems.append(f"'compliance.keywords.{intent}'{_where('compliance.keywords', lines)}: "
                            "only stop, start and help take extra keywords")
    return warnings


def _segment_warnings(texts: list[str]) -> list[str]:
    """A text longer than one SMS segment costs double and may arrive split: say where."""
    from .core.text.sms import sms_info, split_text
    worst = max(texts, key=lambda t: (sms_info(t).segments, len(t)))
    info = sms_info(worst)
    if info.segments <= 1:
        return []
    _, parts = split_text(worst)
    cut = len(parts[0])
    return [f"needs {info.segments} SMS segments ({info.units} {info.encoding.upper()} characters with "
            f"sample values); it splits after \"…{worst[max(0, cut - 20):cut]}\" | \"{worst[cut:cut + 20]}…\". "
            f"Shorten it to fit one ({160 if info.encoding == 'gsm7' else 70} characters)"]


def _service_problems(cfg: Config, data: dict, lines) -> list[str]:
    """What texting for real needs on top of a valid config (check-config, run)."""
    out = []
    name = data.get("business", {}).get("name") if isinstance(data.get("business"), dict) else None
    if not (isinstance(name, str) and name.strip()):
        out.append(f"'business.name'{_where('business.name', lines) or _where('business', lines)}: missing or "
                   "empty; texts would read \"Hi, this is Our office\". Set it under [business]: "
                   "name = \"Acme Dental\"")
    if cfg.pbx.type == "asterisk" and not cfg.pbx.ami.secret:
        out.append(f"'pbx.ami.secret'{_where('pbx.ami', lines)}: missing; the AMI login needs it. Add "
                   "secret_file = \"…\" (a file holding the manager.conf secret), secret_env or secret "
                   "under [pbx.ami]")
    if cfg.pbx.type == "freeswitch" and not cfg.pbx.esl.password:
        out.append(f"'pbx.esl.password'{_where('pbx.esl', lines)}: missing; the event socket needs it. Add "
                   "password_file = \"…\" (event_socket.conf.xml's password), password_env or password "
                   "under [pbx.esl]")
    return out


def _service_warnings(cfg: Config, lines) -> list[str]:
    out = []
    if not cfg.line:
        out.append("no [[line]]: every inbound number counts as a line, texted with the built-in "
                   "template at any hour; add a [[line]] per DID to choose")
    if cfg.transport.type == "log" and not any(ln.transport not in ("", "log") for ln in cfg.line):
        out.append(f"'transport.type'{_where('transport.type', lines)}: \"log\" writes texts to the log "
                   "only; nobody receives them. Set smpp, sip or pbx to text callers")
    return out


def _week_warnings(cfg: Config, lines) -> list[str]:
    """A line closed on whole weekdays is usually an unfinished [line.hours] table."""
    from .core.policy.hours import DAYS
    out = []
    for i, ln in enumerate(cfg.line):
        if ln.hours is None:
            continue
        # a day written as `sun = []` is closed on purpose; a day left out is worth a word
        closed = [d.capitalize() for d in DAYS if not getattr(ln.hours, d) and f"line[{i}].hours.{d}" not in lines]
        if closed:
            key = f"line[{i}].hours"
            out.append(f"'{key}'{_where(key, lines)}: line {ln.number}{' (' + ln.name + ')' if ln.name else ''} "
                       f"is closed all day on {', '.join(closed)}: calls then are after-hours. List the "
                       f"day's spans if the office is open (e.g. {closed[0].lower()} = [\"08:00-17:00\"]), "
                       f"or write {closed[0].lower()} = [] to say it is closed")
    return out


_HDR = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]")
_TBL = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"']+)\s*=")


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key -> line number, with [[array]] tables numbered: line[0].hours.mon."""
    out: dict[str, int] = {}
    counts: dict[str, int] = {}
    table = ""
    for n, raw in enumerate(text.splitlines(), 1):
        m = _HDR.match(raw)
        if m:
            name = m.group(1).replace('"', "")
            idx = counts.get(name, -1) + 1
            counts[name] = idx
            table = f"{name}[{idx}]"
            out.setdefault(table, n)
            continue
        m = _TBL.match(raw)
        if m:
            name = m.group(1).replace('"', "")
            head, _, rest = name.partition(".")
            if head in counts:   # a sub-table of the last [[head]] element
                name = f"{head}[{counts[head]}]" + (f".{rest}" if rest else "")
            table = name
            out.setdefault(table, n)
            continue
        m = _KEY.match(raw)
        if m:
            key = m.group(1).replace('"', "").replace("'", "")
            out.setdefault(f"{table}.{key}" if table else key, n)
    return out
