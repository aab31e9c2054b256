"""`pbx-textback settings export|history` and `pbx-textback web` (bodies; cli.py registers them)."""
from __future__ import annotations

import asyncio
import json
import tomllib
from datetime import datetime

from pbx_textback.admin.settings import dump_toml, merge, overrides_as_toml
from pbx_textback.store import settings as ss


def cmd_settings(a, cfg, store) -> int:
    """export: the page's values as TOML (--full: the whole file with them written in);
    history: every change, newest first."""
    try:
        page = ss.overrides(store)
        if a.action == "export":
            if a.full:
                if not cfg.toml:
                    raise ValueError("no config file to write the page's values into")
                merged, unmatched = merge(tomllib.loads(cfg.toml), page)
                print(f"# {cfg.source} with the admin page's {len(page)} setting(s) written in "
                      f"(comments are not kept)\n" + dump_toml(merged), end="")
                return 0
            print(f"# the admin page's settings ({len(page)}), shaped like {cfg.source or 'the config file'}: "
                  "lines are matched by number\n" + overrides_as_toml(page), end="")
            return 0
        rows = ss.history(store, limit=a.limit)
        if a.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return 0
        for r in rows:
            when = datetime.fromtimestamp(r["at"]).astimezone().isoformat(timespec="seconds")
            new = "(back to the file)" if r["new"] is None else json.dumps(r["new"], ensure_ascii=False)
            print(f"#{r['id']} {when} {r['by']}: {r['key']} = {new}  (was {json.dumps(r['old'], ensure_ascii=False)})")
        if not rows:
            print("no setting changed on the admin page yet: the file's values are in force")
        return 0
    finally:
        store.close()


def cmd_web(cfg, store) -> int:
    from pbx_textback.store.web import has_users
    from pbx_textback.webonly import serve
    if not has_users(store):
        store.close()
        raise ValueError("no user yet: `pbx-textback user add NAME --role admin` first")
    return asyncio.run(serve(cfg, store))


def name_templates(store, cfg, calls: list[dict]) -> None:
    """explain: each call's `template_from` says where the text's template came from."""
    from pbx_textback.core.text.templates import DEFAULT_TEMPLATE
    from pbx_textback.admin.settings import template_version
    file_versions = set()
    if cfg.toml:
        data = tomllib.loads(cfg.toml)
        for ln in data.get("line", []) if isinstance(data.get("line"), list) else []:
            for t in [ln.get("template"), ln.get("follow_up_template"), *(ln.get("templates") or {}).values()]:
                if isinstance(t, str) and t:
                    file_versions.add(template_version(t))
    for c in calls:
        v = c.get("template") or ""
        if not v:
            continue
        page = ss.template_origin(store, v)
        if page is not None:
            when = datetime.fromtimestamp(page["at"]).astimezone().isoformat(timespec="seconds")
            c["template_from"] = f"set on the admin page by {page['by']} at {when} (change #{page['id']}, {page['key']})"
        elif v == template_version(DEFAULT_TEMPLATE):
            c["template_from"] = "the built-in template"
        elif v in file_versions:
            c["template_from"] = "the config file"
        else:
            c["template_from"] = "a template no longer in the file or on the page"
