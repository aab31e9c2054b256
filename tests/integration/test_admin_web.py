"""Admin pages over real HTTP (aiohttp's test server on a loopback port): only admins get in;
what the page saves is a page setting with its history, checked like the file; the preview;
users; pause; today's hours override."""
import re
import time
from pathlib import Path

from pbx_textback.config import loads
from pbx_textback.store import db as st
from pbx_textback.store import settings as ss
from pbx_textback.store import web as sw
from pbx_textback.web.app import Inbox
from pbx_textback.web.passwords import hash_password
from tests.web_client import run

import pytest

EXAMPLE = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
LINE = "+15125550100"
PW = "correct horse battery"
NEW_TPL = "{{ business.name }}: sorry we missed you, {{ caller.name }}! Reply STOP to opt out."


@pytest.fixture
def app(tmp_path):
    text = re.sub(r'(?m)^path = .*$', f'path = "{tmp_path / "s.sqlite3"}"', EXAMPLE)
    cfg = loads(text, str(tmp_path / "config.toml"), secrets=False)
    store = st.open_store(cfg.store.path)
    sw.add_user(store, "ada", "admin", hash_password(PW), "100", time.time())
    sw.add_user(store, "maria", "agent", hash_password(PW), "101", time.time())
    box = Inbox(cfg, store, send=lambda *a: 1)
    yield box
    store.close()


async def sign_in(client, name):
    r = await client.post("/login", data={"name": name, "password": PW}, allow_redirects=False)
    assert r.status == 303


async def csrf_of(client, path="/admin"):
    page = await (await client.get(path)).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def admin_routes(box):
    return [(r.method, r.resource.canonical) for r in box.app().router.routes()
            if r.method != "HEAD" and r.resource.canonical.startswith("/admin")]


def test_an_agent_gets_a_clear_403_on_every_admin_page_and_an_admin_gets_in(app):
    routes = admin_routes(app)
    assert len(routes) >= 10

    async def scenario(client):
        await sign_in(client, "maria")
        csrf = await csrf_of(client, "/")
        out = {}
        for method, path in routes:
            path = path.replace("{number}", LINE).replace("{name}", "maria").replace("{id}", "1")
            r = await client.request(method, path, data={"csrf": csrf} if method == "POST" else None,
                                     allow_redirects=False)
            out[(method, path)] = (r.status, await r.text())
        inbox = await (await client.get("/")).text()
        return out, inbox
    got, inbox = run(app, scenario)
    from pbx_textback.web import admin
    mine = {(r.method, r.path.replace("{number}", LINE).replace("{name}", "maria")) for r in admin.routes(app)}
    for route, (status, text) in got.items():
        assert status == 403, route                 # every /admin page, the webhooks' too
        if route in mine:
            assert "Only an admin can open the admin pages" in text, route
    assert 'href="/admin"' not in inbox                     # no admin link for an agent
    assert sw.user(app.store, "maria").role == "agent" and ss.history(app.store) == []

    async def as_admin(client):
        await sign_in(client, "ada")
        pages = {}
        for path in ("/admin", "/admin/users", f"/admin/lines/{LINE}", "/admin/settings", "/admin/rules"):
            r = await client.get(path)
            pages[path] = (r.status, await r.text())
        return pages
    for path, (status, text) in run(app, as_admin).items():
        assert status == 200, (path, text[:300])


def test_a_template_saved_on_the_page_overrides_the_file_with_history_and_is_checked(app):
    key = f"line[{LINE}].template"

    async def scenario(client):
        await sign_in(client, "ada")
        csrf = await csrf_of(client, f"/admin/lines/{LINE}")
        before = await (await client.get(f"/admin/lines/{LINE}")).text()
        bad = await client.post(f"/admin/lines/{LINE}", data={"csrf": csrf, "part": "templates",
                                                              key: "Call us back soon."})
        bad_text = await bad.text()
        ok = await client.post(f"/admin/lines/{LINE}", data={"csrf": csrf, "part": "templates", key: NEW_TPL},
                               allow_redirects=False)
        after = await (await client.get(f"/admin/lines/{LINE}")).text()
        infra = await client.post("/admin/settings", data={"csrf": csrf, "transport.type": "smpp"})
        revert = await client.post(f"/admin/lines/{LINE}", data={"csrf": csrf, "revert": key},
                                   allow_redirects=False)
        return before, bad.status, bad_text, ok.status, after, infra.status, await infra.text(), revert.status
    before, bad_status, bad_text, ok_status, after, infra_status, infra_text, revert_status = run(app, scenario)
    tpl_block = lambda page: page.split(f'data-key="{key}"')[1].split("</div>")[0]  # noqa: E731
    assert "from the file" in tpl_block(before)
    assert bad_status == 400 and "Not saved" in bad_text and "opt out" in bad_text
    assert ok_status == 303
    assert "from the page" in tpl_block(after) and "Sam Sample" in tpl_block(after)
    # a reason without its own text previews the text that is sent for it: the line's main one
    vm = after.split(f'data-key="line[{LINE}].templates.voicemail"')[1].split("</div>")[0]
    assert "Acme Dental: sorry we missed you, Sam Sample! Reply STOP to opt out.</p>" in vm
    assert "built-in default" in vm and "lint-error" not in vm
    assert infra_status == 400 and "stay in the TOML file" in infra_text
    assert revert_status == 303
    hist = ss.history(app.store)
    assert [(h["key"], h["new"], h["by"]) for h in hist] == [(key, None, "ada"), (key, NEW_TPL, "ada")]
    assert hist[1]["old"] == app.cfg.line[0].template                # the file's value, kept as "old"
    assert ss.overrides(app.store) == {}                             # back to the file


def test_the_preview_renders_for_the_sample_caller_with_lint_and_segments(app):
    async def scenario(client):
        await sign_in(client, "ada")
        q = {"line": LINE, "reason": "no-answer", "template": NEW_TPL, "caller": "+15125550999", "name": "Zoë"}
        good = await (await client.get("/admin/preview", params=q)).json()
        long = await (await client.get("/admin/preview", params={**q, "template": NEW_TPL + " " + "x" * 150})).json()
        lint = await (await client.get("/admin/preview", params={**q, "template": "Call us. 20% off today!"})).json()
        return good, long, lint
    good, long, lint = run(app, scenario)
    assert good["text"] == "Acme Dental: sorry we missed you, Zoë! Reply STOP to opt out."
    assert good["sms"]["segments"] == 1 and good["sms"]["encoding"] == "Unicode (UCS-2)"   # ë is not in GSM-7
    assert good["lint"] == []
    assert long["sms"]["segments"] >= 3
    codes = {i["code"] for i in lint["lint"]}
    assert {"business-name", "opt-out", "promotional"} <= codes


def test_users_added_reset_disabled_and_the_last_admin_is_kept(app):
    async def scenario(client):
        await sign_in(client, "ada")
        csrf = await csrf_of(client, "/admin/users")
        added = await (await client.post("/admin/users", data={"csrf": csrf, "name": "joe", "role": "agent",
                                                               "extension": "102"})).text()
        bad = await client.post("/admin/users", data={"csrf": csrf, "name": "x y", "role": "agent"})
        demote = await client.post("/admin/users/ada", data={"csrf": csrf, "action": "save", "role": "agent"})
        dis = await client.post("/admin/users/maria", data={"csrf": csrf, "action": "disable"})
        return added, bad.status, await bad.text(), demote.status, await demote.text(), dis.status
    added, bad_status, bad_text, demote_status, demote_text, dis_status = run(app, scenario)
    password = re.search(r"joe&#39;s password \(shown once\): (\S+)</p>", added).group(1)
    assert bad_status == 400 and "letters, digits" in bad_text
    assert demote_status == 400 and "only admin" in demote_text
    assert dis_status == 200 and sw.user(app.store, "maria").disabled
    assert sw.user(app.store, "joe").extension == "102"

    async def joe_signs_in(client):
        r = await client.post("/login", data={"name": "joe", "password": password}, allow_redirects=False)
        return r.status
    assert run(app, joe_signs_in) == 303


def test_pause_resume_and_todays_override_from_the_page(app):
    async def scenario(client):
        await sign_in(client, "ada")
        csrf = await csrf_of(client)
        await client.post("/admin/pause", data={"csrf": csrf, "action": "pause"})
        paused = app.store.setting("paused")
        home = await (await client.get("/admin")).text()
        await client.post("/admin/pause", data={"csrf": csrf, "action": "resume"})
        await client.post(f"/admin/lines/{LINE}/override", data={"csrf": csrf, "mode": "closed"})
        line = await (await client.get(f"/admin/lines/{LINE}")).text()
        return paused, home, line
    paused, home, line = run(app, scenario)
    assert paused == "1" and "PAUSED" in home
    assert app.store.setting("paused") == "0"
    assert app.store.hours_override(LINE) == "closed"
    assert "manual override: closed" in line
    assert [h["key"] for h in ss.history(app.store)] == [f"hours-override[{LINE}]", "paused", "paused"]


def test_line_basics_saved_on_the_page_and_a_bad_number_is_refused(app):
    async def scenario(client):
        await sign_in(client, "ada")
        csrf = await csrf_of(client, f"/admin/lines/{LINE}")
        bad = await client.post(f"/admin/lines/{LINE}", data={"csrf": csrf, "part": "line", "name": "Main line",
                                                              "enabled": "1", "delay_seconds": "soon"})
        big = await client.post(f"/admin/lines/{LINE}", data={"csrf": csrf, "part": "line", "name": "Main line",
                                                              "enabled": "1", "delay_seconds": "1e9"})
        ok = await client.post(f"/admin/lines/{LINE}", allow_redirects=False,
                               data={"csrf": csrf, "part": "line", "name": "Front desk", "delay_seconds": "20"})
        return bad.status, await bad.text(), big.status, await big.text(), ok.status
    bad_status, bad_text, big_status, big_text, ok_status = run(app, scenario)
    assert bad_status == 400 and "&#39;soon&#39; is not a number of seconds" in bad_text
    assert big_status == 400 and "out of range" in big_text
    assert ok_status == 303
    assert ss.overrides(app.store) == {f"line[{LINE}].name": "Front desk", f"line[{LINE}].enabled": False,
                                       f"line[{LINE}].delay_seconds": 20.0}


def test_ownership_rules_on_the_page_replace_the_files_and_are_checked(app):
    from pbx_textback.store import desk as sd

    async def scenario(client):
        await sign_in(client, "ada")
        csrf = await csrf_of(client, "/admin/rules")
        before = await (await client.get("/admin/rules")).text()
        bad = await client.post("/admin/rules", data={"csrf": csrf, "count": "2", "by_0": "territory",
                                                      "match_0": "512", "agent_0": ""})
        ok = await client.post("/admin/rules", allow_redirects=False, data={
            "csrf": csrf, "count": "3", "by_0": "sticky", "by_1": "territory", "match_1": "512, 737",
            "agent_1": "maria", "by_2": ""})
        after = await (await client.get("/admin/rules")).text()
        back = await client.post("/admin/rules", data={"csrf": csrf, "revert": "1"}, allow_redirects=False)
        return before, bad.status, await bad.text(), ok.status, after, back.status
    before, bad_status, bad_text, ok_status, after, back_status = run(app, scenario)
    assert "built-in default" in before
    assert bad_status == 400 and "Rule 1: owner rule by territory: agent is missing" in bad_text
    assert ok_status == 303 and "from the page" in after
    assert back_status == 303 and sd.owner_rules(app.store) is None
    hist = ss.history(app.store)
    assert [h["key"] for h in hist] == ["owner-rules", "owner-rules"]
    assert hist[1]["new"] == ["sticky: the caller's previous owner", "by territory 512, 737 -> maria"]
    assert hist[0]["new"] is None


def test_page_values_that_clash_with_a_changed_file_are_shown_not_a_crash(app):
    ss.record(app.store, [(f"line[{LINE}].template", None, "Acme Dental: hi. Reply STOP to opt out.")], "ada", 1.0)
    app.cfg = loads(app.cfg.toml.replace('name = "Acme Dental"', 'name = "Acme Dentistry"'), app.cfg.source,
                    secrets=False)         # as a reload of the edited file installs it

    async def scenario(client):
        await sign_in(client, "ada")
        r = await client.get(f"/admin/lines/{LINE}")
        return r.status, await r.text()
    status, text = run(app, scenario)
    assert status == 200
    assert "clash with the config file and are not in force" in text and "does not name the business" in text
