"""Page settings in the store (SQLite and a real PostgreSQL): the values in force are each key's
latest change, a change to None hands the key back to the file, pause and override events sit
in the same history without becoming config, and a store from before migration 17 gets the
table and the decision's template column."""
from pbx_textback.admin.settings import template_version
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


def test_the_box_of_a_line_is_the_box_that_took_its_latest_call(store_factory):
    from pbx_textback.store import db as st
    from pbx_textback.store.boxes import box_of_line, queue_for_line_box
    import pytest
    store = store_factory()
    assert box_of_line(store, "+15125550100") == ""
    with pytest.raises(ValueError, match="no PBX box has taken a call on line"):
        queue_for_line_box(store, peer="+15125550177", line="+15125550100", body="hi", kind="agent",
                           note="", now=1.0)
    with store.write():
        for i, box in enumerate(("pbx-a", "pbx-b")):
            st.Call.create(box=box, call_id="1700000000.1", pbx="asterisk", caller="+15125550177",
                           caller_raw="+15125550177", called="+15125550100", line="+15125550100",
                           direction="inbound", missed=True, reason="no-answer", record="{}", created_at=10.0 + i)
        store.add_message(box="pbx-c", direction="out", kind="missed-call", line="+15125550200",
                          peer="+15125550177", body="x", state="sent", due_at=1.0)
    assert box_of_line(store, "+15125550100") == "pbx-b"       # the latest call's box
    assert box_of_line(store, "+15125550200") == "pbx-c"       # no call: the box that sent from it
    mid, box = queue_for_line_box(store, peer="+15125550177", line="+15125550100", body="hi", kind="agent",
                                  note="by maria", now=20.0)
    assert box == "pbx-b" and st.Message.get_by_id(mid).box == "pbx-b"


def test_migration_17_may_run_again_on_a_store_that_has_it(store_factory):
    from pbx_textback.store.db import MIGRATIONS
    store = store_factory()
    dict(MIGRATIONS)[17](store.db)          # e.g. a store whose recorded version is older than its tables
    assert "template" in [c.name for c in store.db.get_columns("decision")]
