"""Page settings in the store (SQLite and a real PostgreSQL): the values in force are each key's
latest change, a change to None hands the key back to the file, pause and override events sit
in the same history without becoming config, and a store from before migration 17 gets the
table and the decision's template column."""
from pbx_textback.settings import template_version
from pbx_textback.store import settings as ss

KEY = "line[+15125550100].template"
TPL = "{{ business.name }}: we missed you. Reply STOP to opt out."


def test_latest_change_wins_and_none_hands_back_to_the_file(store_factory):
    store = store_factory()
    ss.record(store, [(KEY, "file text", TPL), ("paused", False, True)], "ada", 100.0)
    assert ss.overrides(store) == {KEY: TPL}
    v = ss.version(store)
    ss.record(store, [(KEY, TPL, None)], "joe", 200.0)
    assert ss.overrides(store) == {} and ss.version(store) > v
    hist = ss.history(store)
    assert [(h["key"], h["old"], h["new"], h["by"]) for h in hist] == [
        (KEY, TPL, None, "joe"), ("paused", False, True, "ada"), (KEY, "file text", TPL, "ada")]
    origin = ss.template_origin(store, template_version(TPL))
    assert origin["by"] == "ada" and origin["key"] == KEY
    assert ss.template_origin(store, template_version("something else")) is None


def test_a_store_from_before_migration_17_gets_the_settings_table_and_template_column(store_factory):
    store = store_factory()
    db = store.db
    db.execute_sql('DROP TABLE setting_change')
    db.execute_sql('ALTER TABLE decision DROP COLUMN template')
    # the step itself (run by migrate on a store below 17; other features' steps sit around it)
    from pbx_textback.store.db import MIGRATIONS
    dict(MIGRATIONS)[17](db)
    cols = [c.name for c in store.db.get_columns("decision")]
    assert "template" in cols and store.db.table_exists("setting_change")
    ss.record(store, [(KEY, None, TPL)], "ada", 1.0)
    assert ss.overrides(store) == {KEY: TPL}
