"""Admin pages (role admin only): users; per line the templates with a live preview, lint and
segment count, business hours, holidays and today's override; pause/resume; the settings'
history. What is saved here is a page setting (store/settings.py) over the TOML file; the
running service picks it up within a second (reload.py), no reload needed.
"""
from __future__ import annotations

import logging
import re
import secrets

from aiohttp import web

from ..config import ConfigError, loads
from ..core.model import MISSED_REASONS
from ..core.policy import hours as hours_mod
from ..core.policy.decide import find_line, template_vars
from ..core.text.lint import lint_template
from ..core.text.sms import sms_info
from ..core.text.templates import DEFAULT_TEMPLATE, FOLLOW_UP_TEMPLATE, TemplateError, render
from pbx_textback.admin.settings import DAYS, SettingRefused, check_value, file_value, line_key, parse_key
from ..store import settings as ss
from ..store import users as su
from ..store import web as sw
from .keys import USER
from .passwords import hash_password
from .timeline import clock

log = logging.getLogger("pbx_textback.web")
SAMPLE_CALLER, SAMPLE_NAME = "+15125550123", "Sam Sample"
DENIED = "Only an admin can open the admin pages. Ask your admin if you need a change here."


def routes(webapp) -> list[web.RouteDef]:
    a = Admin(webapp)
    guard = a.admin_only
    return [
        web.get("/admin", guard(a.home)),
        web.post("/admin/pause", guard(a.pause)),
        web.get("/admin/users", guard(a.users)),
        web.post("/admin/users", guard(a.add_user)),
        web.post("/admin/users/{name}", guard(a.change_user)),
        web.get("/admin/lines/{number}", guard(a.line)),
        web.post("/admin/lines/{number}", guard(a.save_line)),
        web.post("/admin/lines/{number}/override", guard(a.override)),
        web.get("/admin/preview", guard(a.preview)),
        web.get("/admin/settings", guard(a.settings)),
        web.post("/admin/settings", guard(a.save_settings)),
        web.get("/admin/rules", guard(a.rules)),
        web.post("/admin/rules", guard(a.save_rules)),
        web.get("/static/admin.js", webapp.static),
    ]


def _spans(text: str) -> list[str]:
    """'08:00-12:00, 13:00-17:00' -> ['08:00-12:00', '13:00-17:00'] (commas or spaces)."""
    return [s for s in re.split(r"[,\s]+", text.strip()) if s]


class Admin:
    def __init__(self, webapp):
        self.w = webapp
        self._cached = None
        self.clash = ""

    # ---- access --------------------------------------------------------------------------------
    def admin_only(self, handler):
        async def guarded(request):
            if request[USER].role != "admin":
                return self._page("admin_denied.html", request, status=403, message=DENIED)
            return await handler(request)
        guarded.__name__ = handler.__name__
        return guarded

    # ---- the config the page shows: the file + the page's values in the store ------------------
    def page_values(self) -> dict:
        return ss.overrides(self.w.store)

    def effective(self):
        """Built once per file text and settings version: the preview asks for it as you type."""
        cfg = self.w.cfg
        if not cfg.toml:
            return cfg
        key = (cfg.toml, cfg.source, ss.version(self.w.store))
        if self._cached is None or self._cached[0] != key:
            self.clash = ""
            try:
                built = loads(cfg.toml, cfg.source, for_service=True, strict=False, secrets=False,
                              page=self.page_values())
            except ConfigError as e:      # the file changed under the page's values: say so, show the file's
                self.clash = ("The page's settings clash with the config file and are not in force: "
                              + "; ".join(re.sub(r" \(line \d+\)", "", p) for p in e.problems)
                              + ". Change them here or take them back to the file's values.")
                built = loads(cfg.toml, cfg.source, for_service=True, strict=False, secrets=False)
            self._cached = (key, built)
        return self._cached[1]

    def _page(self, template, request, **ctx):
        return self.w._page(template, request, clash=self.clash, **ctx)

    def file_data(self) -> dict:
        import tomllib
        return tomllib.loads(self.w.cfg.toml) if self.w.cfg.toml else {}

    def origin(self, key: str, page: dict, data: dict) -> str:
        if key in page:
            return "page"
        return "file" if file_value(data, key) is not None else "default"

    def save(self, request, wanted: dict) -> str:
        """Page values to set (None: back to the file) -> '' or why nothing was saved. Checked as
        the service will check it (the whole config built with them); unchanged ones skipped."""
        if not self.w.cfg.toml:
            return "This service runs on built-in defaults (no config file): there is nothing to edit."
        data = self.file_data()
        page = self.page_values()
        new = dict(page)
        changes = []
        try:
            for key, value in wanted.items():
                value = check_value(key, value)
                if value is not None and value == file_value(data, key):
                    value = None                     # the file's own value: the file is in force
                if value is None and key not in page:
                    continue
                if value is not None and page.get(key) == value:
                    continue
                old = page.get(key, file_value(data, key))
                new.pop(key, None)
                if value is not None:
                    new[key] = value
                changes.append((key, old, value))
        except SettingRefused as e:
            return str(e)
        if not changes:
            return ""
        try:
            loads(self.w.cfg.toml, self.w.cfg.source, for_service=True, strict=False, secrets=False, page=new)
        except ConfigError as e:
            return "Not saved: " + "; ".join(re.sub(r" \(line \d+\)", "", p) for p in e.problems)
        me = request[USER].name
        ss.record(self.w.store, changes, me, self.w.clock())
        for key, _, value in changes:
            log.info("page setting %s %s by %s", key, "set" if value is not None else "back to the file", me)
        return ""

    # ---- pages ---------------------------------------------------------------------------------
    async def home(self, request):
        cfg = self.effective()
        paused = self.w.store.setting("paused") == "1"
        now = self.w.clock()
        lines = []
        for ln in cfg.line:
            view = find_line(cfg, ln.number)
            mode, until = self.w.store.hours_override_until(ln.number, now)
            state, why = hours_mod.state_at(view.hours, view.timezone, now, mode, until)
            lines.append({"number": ln.number, "name": ln.name, "state": state, "why": why})
        return self._page("admin.html", request, lines=lines, paused=paused, error="")

    async def pause(self, request):
        action = str((await request.post()).get("action", ""))
        if action not in ("pause", "resume"):
            raise web.HTTPBadRequest(text="action must be pause or resume")
        store = self.w.store
        was = store.setting("paused") == "1"
        if was != (action == "pause"):
            store.set_setting("paused", "1" if action == "pause" else "0", self.w.clock())
            ss.record(store, [("paused", was, action == "pause")], request[USER].name, self.w.clock())
            log.warning("automated texting %s by %s on the admin page",
                        "PAUSED" if action == "pause" else "resumed", request[USER].name)
        raise web.HTTPSeeOther("/admin")

    # users
    async def users(self, request, *, error: str = "", shown: str = "", status: int = 200):
        return self._page("admin_users.html", request, status=status, users=sw.users(self.w.store),
                            error=error, shown=shown, roles=sw.ROLES)

    async def add_user(self, request):
        form = await request.post()
        name, role = str(form.get("name", "")).strip(), str(form.get("role", ""))
        ext = str(form.get("extension", "")).strip()
        error = _user_problem(name, role, ext)
        if not error:
            password = _new_password()
            try:
                sw.add_user(self.w.store, name, role, hash_password(password), ext, self.w.clock())
            except ValueError as e:
                error = str(e)
            else:
                log.info("web user %s (%s) added by %s", name, role, request[USER].name)
                return await self.users(request, shown=f"{name}'s password (shown once): {password}")
        return await self.users(request, error=error, status=400)

    async def change_user(self, request):
        name = request.match_info["name"]
        form = await request.post()
        action = str(form.get("action", ""))
        me = request[USER].name
        shown = ""
        try:
            if sw.user(self.w.store, name) is None:
                raise ValueError(f"no user {name}")
            if action == "disable":
                if name == me:
                    raise ValueError("you cannot disable yourself")
                su.set_disabled(self.w.store, name, True)
            elif action == "enable":
                su.set_disabled(self.w.store, name, False)
            elif action == "reset":
                password = _new_password()
                sw.set_password(self.w.store, name, hash_password(password))
                shown = f"{name}'s new password (shown once; signed out everywhere): {password}"
            elif action == "save":
                role, ext = str(form.get("role", "")), str(form.get("extension", "")).strip()
                problem = _user_problem(name, role, ext)
                if problem:
                    raise ValueError(problem)
                su.set_extension(self.w.store, name, ext)
                su.set_role(self.w.store, name, role)
            else:
                raise ValueError("unknown action")
        except ValueError as e:
            return await self.users(request, error=str(e), status=400)
        log.info("web user %s: %s by %s", name, action, me)
        if name == me and action in ("save", "reset"):
            self_out = sw.user(self.w.store, name)
            if self_out is not None and (self_out.role != "admin" or action == "reset"):
                raise web.HTTPSeeOther("/login")
        return await self.users(request, shown=shown)

    # lines
    def _line(self, cfg, request):
        number = request.match_info["number"]
        ln = next((x for x in cfg.line if x.number == number), None)
        if ln is None:
            raise web.HTTPNotFound(text=f"{number} is not a line in the config file")
        return ln

    def _fields(self, number: str, cfg, page: dict, data: dict) -> list[dict]:
        ln = next(x for x in cfg.line if x.number == number)
        main = ln.template or DEFAULT_TEMPLATE
        out = [{"key": line_key(number, "template"), "label": "Missed-call text (every reason)",
                "value": ln.template, "default": DEFAULT_TEMPLATE, "reason": "no-answer", "first": True}]
        for r in MISSED_REASONS:      # empty: the text above is sent, and previewed
            out.append({"key": line_key(number, "templates", r), "label": f"… when the reason is {r}",
                        "value": ln.templates.get(r, ""), "default": main, "reason": r, "first": True})
        out.append({"key": line_key(number, "follow_up_template"), "label": "Follow-up text",
                    "value": ln.follow_up_template, "default": FOLLOW_UP_TEMPLATE, "reason": "no-answer",
                    "first": False})
        for f in out:
            f["origin"] = self.origin(f["key"], page, data)
            f["preview"] = self._preview(cfg, number, f["value"] or f["default"], f["reason"], SAMPLE_CALLER,
                                         SAMPLE_NAME, f["first"])
        return out

    def _preview(self, cfg, number, source, reason, caller, name, first=True) -> dict:
        line = find_line(cfg, number)
        now = self.w.clock()
        c = cfg.compliance

        def texts(src):
            return [render(src, template_vars(cfg, line, caller=caller, caller_name=name, reason=r, at=now,
                                              voicemail_left=r == "voicemail")) for r in MISSED_REASONS]
        try:
            text = render(source, template_vars(cfg, line, caller=caller, caller_name=name, reason=reason,
                                                at=now, voicemail_left=reason == "voicemail"))
            error = "" if text else "renders to an empty text"
        except TemplateError as e:
            text, error = "", str(e)
        issues = lint_template(source, first_contact=first and c.require_opt_out_text, hipaa=c.hipaa,
                               render=texts, business_name=cfg.business.name) if source.strip() else []
        info = sms_info(text)
        return {"text": text, "error": error, "lint": [i.to_dict() for i in issues],
                "sms": {**info.to_dict(), "encoding": "Unicode (UCS-2)" if info.encoding == "ucs2" else "GSM-7"}}

    async def line(self, request, *, error: str = "", status: int = 200):
        cfg = self.effective()
        ln = self._line(cfg, request)
        page, data = self.page_values(), self.file_data()
        view = find_line(cfg, ln.number)
        now = self.w.clock()
        mode, until = self.w.store.hours_override_until(ln.number, now)
        state, why = hours_mod.state_at(view.hours, view.timezone, now, mode, until)
        days = [{"day": d, "key": line_key(ln.number, "hours", d),
                 "value": ", ".join(getattr(ln.hours, d)) if ln.hours else "",
                 "origin": self.origin(line_key(ln.number, "hours", d), page, data)} for d in DAYS]
        hkey = line_key(ln.number, "hours", "holidays")
        basics = {k: self.origin(line_key(ln.number, k), page, data) for k in ("name", "enabled", "delay_seconds")}
        return self._page(
            "admin_line.html", request, status=status, line=ln, basics=basics, fields=self._fields(ln.number, cfg, page, data),
            days=days, always_open=ln.hours is None,
            holidays={"key": hkey, "value": ", ".join(ln.hours.holidays) if ln.hours else "",
                      "origin": self.origin(hkey, page, data)},
            state=state, why=why, mode=mode, until=clock(until, view.timezone) if until else "",
            tz=view.timezone, error=error, sample=SAMPLE_CALLER, sample_name=SAMPLE_NAME,
            history=[r for r in ss.history(self.w.store, limit=500)
                     if r["key"].startswith((f"line[{ln.number}]", f"hours-override[{ln.number}]"))
                     and not r.update(when=clock(r["at"], view.timezone))][:30],
            number=ln.number,
            warnings=[w for w in cfg.warnings if f"line[{cfg.line.index(ln)}]" in w])

    async def save_line(self, request):
        cfg = self.effective()
        ln = self._line(cfg, request)
        form = await request.post()
        wanted = {}
        revert = str(form.get("revert", ""))
        if revert:
            wanted[revert] = None
        elif form.get("part") == "templates":
            for f in self._fields(ln.number, cfg, {}, {}):
                if f["key"] in form:      # left empty: the file's value (or none) is in force
                    value = str(form[f["key"]]).replace("\r\n", "\n").strip()
                    wanted[f["key"]] = value or None
        elif form.get("part") == "hours":
            for d in DAYS:
                key = line_key(ln.number, "hours", d)
                wanted[key] = _spans(str(form.get(key, "")))
            key = line_key(ln.number, "hours", "holidays")
            wanted[key] = _spans(str(form.get(key, "")))
            if ln.hours is not None:      # only what changed: an unchanged day stays the file's
                wanted = {k: v for k, v in wanted.items() if v != list(getattr(ln.hours, k.rsplit(".", 1)[1]))}
        elif form.get("part") == "line":
            raw = str(form.get("delay_seconds", "0")).strip() or "0"
            try:
                delay = float(raw)
            except ValueError:
                return await self.line(request, error=f"Delay: '{raw}' is not a number of seconds.", status=400)
            wanted = {line_key(ln.number, "name"): str(form.get("name", "")).strip(),
                      line_key(ln.number, "enabled"): form.get("enabled") == "1",
                      line_key(ln.number, "delay_seconds"): delay}
            wanted = {k: v for k, v in wanted.items() if v != getattr(ln, k.rsplit(".", 1)[1])}
        else:
            raise web.HTTPBadRequest(text="nothing to save")
        error = self.save(request, wanted)
        if error:
            return await self.line(request, error=error, status=400)
        raise web.HTTPSeeOther(f"/admin/lines/{ln.number}")

    async def override(self, request):
        cfg = self.effective()
        ln = self._line(cfg, request)
        mode = str((await request.post()).get("mode", ""))
        if mode not in ("open", "closed", "auto"):
            raise web.HTTPBadRequest(text="mode must be open, closed or auto")
        view = find_line(cfg, ln.number)
        now = self.w.clock()
        until = hours_mod.override_end(view.hours, view.timezone, now) if mode != "auto" else None
        old = self.w.store.hours_override(ln.number, now)
        self.w.store.set_hours_override(ln.number, mode, now, until)
        ss.record(self.w.store, [(f"hours-override[{ln.number}]", old, mode)], request[USER].name, now)
        log.info("hours override for line %s set to %s by %s", ln.number, mode, request[USER].name)
        raise web.HTTPSeeOther(f"/admin/lines/{ln.number}")

    async def preview(self, request):
        """The live preview as you type: the text for a sample caller, lint, encoding, segments."""
        q = request.query
        cfg = self.effective()
        number = q.get("line", "")
        if not any(x.number == number for x in cfg.line):
            raise web.HTTPNotFound(text="no such line")
        reason = q.get("reason", "no-answer")
        if reason not in MISSED_REASONS:
            reason = "no-answer"
        source = q.get("template", "")[:2000]
        caller = q.get("caller", "")[:20] or SAMPLE_CALLER
        name = q.get("name", "")[:40] or SAMPLE_NAME
        return web.json_response(self._preview(cfg, number, source or DEFAULT_TEMPLATE, reason, caller, name,
                                               q.get("first", "1") == "1"))

    # business settings + history
    async def settings(self, request, *, error: str = "", status: int = 200):
        cfg = self.effective()
        page, data = self.page_values(), self.file_data()
        fields = [{"key": f"business.{k}", "label": label, "value": getattr(cfg.business, k),
                   "origin": self.origin(f"business.{k}", page, data)}
                  for k, label in (("name", "Business name (in every text)"), ("phone", "Business phone"))]
        rows = ss.history(self.w.store)
        tz = cfg.business.timezone
        for r in rows:
            r["when"] = clock(r["at"], tz)
        return self._page("admin_settings.html", request, status=status, fields=fields, history=rows,
                            error=error, source=cfg.source)

    async def save_settings(self, request):
        form = await request.post()
        revert = str(form.get("revert", ""))
        if revert:
            wanted = {revert: None}
        else:
            wanted = {k: str(form.get(k, "")).strip() for k in ("business.name", "business.phone") if k in form}
        for key in form:
            if key not in ("csrf", "revert") and key not in wanted:
                try:
                    parse_key(key)
                except SettingRefused as e:
                    return await self.settings(request, error=str(e), status=400)
        error = self.save(request, wanted)
        if error:
            return await self.settings(request, error=error, status=400)
        raise web.HTTPSeeOther("/admin/settings")

    # ownership rules: desk's model (core/policy/ownership.py, store/desk.py); the page's list
    # replaces the file's [[web.owner_rules]] as a whole
    async def rules(self, request, *, error: str = "", status: int = 200, rows=None):
        from ..store import desk as sd
        page = sd.owner_rules(self.w.store)
        rules = page if page is not None else list(self.w.cfg.web.owner_rules)
        if rows is None:
            rows = [{"by": r.by, "match": r.match, "agent": r.agent} for r in rules]
        rows = rows + [{"by": "", "match": "", "agent": ""}] * 2          # room for new ones
        return self._page("admin_rules.html", request, status=status, error=error, rows=rows,
                            origin="page" if page is not None else ("file" if rules else "default"),
                            by_choices=("line", "territory", "campaign", "queue", "sticky"),
                            agents=[u.name for u in sw.users(self.w.store) if not u.disabled])

    async def save_rules(self, request):
        from ..core.policy.ownership import OwnerRule
        from ..store import desk as sd
        form = await request.post()
        me, now = request[USER].name, self.w.clock()
        before = sd.owner_rules(self.w.store)
        old = [r.describe() for r in (before if before is not None else self.w.cfg.web.owner_rules)]
        if form.get("revert") == "1":
            sd.forget_owner_rules(self.w.store)
            ss.record(self.w.store, [("owner-rules", old, None)], me, now)
            raise web.HTTPSeeOther("/admin/rules")
        rows, rules = [], []
        for i in range(int(form.get("count", "0") or 0)):
            row = {k: str(form.get(f"{k}_{i}", "")).strip() for k in ("by", "match", "agent")}
            if not row["by"]:
                continue                      # an empty row, or one taken out
            rows.append(row)
            try:
                rules.append(OwnerRule(**row))
            except ValueError as e:
                return await self.rules(request, error=f"Rule {len(rows)}: {e}", status=400, rows=rows)
        sd.replace_owner_rules(self.w.store, rules, me, now)
        ss.record(self.w.store, [("owner-rules", old, [r.describe() for r in rules])], me, now)
        log.info("ownership rules set on the admin page by %s: %d rule(s)", me, len(rules))
        raise web.HTTPSeeOther("/admin/rules")


def _new_password() -> str:
    return secrets.token_urlsafe(12)


def _user_problem(name: str, role: str, ext: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", name):
        return "User name: letters, digits and . _ @ - only (at most 64)."
    if role not in sw.ROLES:
        return f"Role: one of {', '.join(sw.ROLES)}."
    if ext and not re.fullmatch(r"\d{2,10}", ext):
        return "Extension: the desk phone's extension, digits only (2 to 10)."
    return ""

