"""The admin page's settings: every change kept (who, when, old, new). The values in force are
the latest change of each key; a change to None hands the key back to the TOML file.

Shared by every process on the store (one service per PBX box, a web-only box): each picks up
a change by the latest change's id (version()).
"""
from __future__ import annotations

import peewee as pw

from pbx_textback.admin.settings import SettingRefused, decode, encode, parse_key, template_version
from .db import Base, Store
from . import fast


class SettingChange(Base):
    key = pw.CharField(index=True)           # settings.py key, e.g. line[+15125550100].template
    old = pw.TextField(null=True)            # JSON: the value in force before (file's or page's)
    new = pw.TextField(null=True)            # JSON; NULL: back to the file's value
    by = pw.CharField()                      # the web user (or `cli`)
    at = pw.DoubleField()

    class Meta:
        table_name = "setting_change"


def create_tables(db: pw.Database) -> None:
    db.create_tables([SettingChange], safe=True)


def record(store: Store, changes: list[tuple[str, object, object]], by: str, now: float) -> int:
    """(key, old, new) for each setting changed, in one transaction -> the last change's id."""
    last = 0
    with store.write():
        for key, old, new in changes:
            last = SettingChange.create(key=key, old=encode(old), new=encode(new), by=by, at=now).id
    return last


def overrides(store: Store) -> dict:
    """key -> value of every setting the page holds now."""
    latest: dict[str, str | None] = {}
    for key, new in SettingChange.select(SettingChange.key, SettingChange.new).order_by(SettingChange.id).tuples():
        latest[key] = new
    return {k: decode(v) for k, v in latest.items() if v is not None and is_config_key(k)}


def is_config_key(key: str) -> bool:
    """A config value (not an event kept in the same history: paused, an hours override)."""
    try:
        parse_key(key)
    except SettingRefused:
        return False
    return True


_VERSION = 'SELECT MAX(id) FROM "setting_change"'


def version(store: Store) -> int:
    """Grows with every change: what the running processes watch (each of them once a second,
    so one constant statement: the ORM's composing it was most of the idle service's CPU)."""
    return fast.one(store, _VERSION)[0] or 0


def history(store: Store, limit: int = 200, key: str | None = None) -> list[dict]:
    q = SettingChange.select().order_by(SettingChange.id.desc()).limit(limit)
    if key is not None:
        q = q.where(SettingChange.key == key)
    return [{"id": c.id, "key": c.key, "old": decode(c.old), "new": decode(c.new), "by": c.by, "at": c.at}
            for c in q]


def template_origin(store: Store, version_: str) -> dict | None:
    """The page change that set a template with this fingerprint (the latest such), else None."""
    for c in (SettingChange.select().where(SettingChange.new.is_null(False)
                                           & (SettingChange.key.contains("template")))
              .order_by(SettingChange.id.desc())):
        value = decode(c.new)
        if isinstance(value, str) and template_version(value) == version_:
            return {"id": c.id, "key": c.key, "by": c.by, "at": c.at}
    return None
