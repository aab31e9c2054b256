"""CDR recovery starts where this box's service last ran. On a shared store, another box's
service running says nothing about the gap of ours (it used to be one record for all boxes,
so box A down for an hour while B ran recovered nothing)."""
from pbx_textback.config import loads
from pbx_textback.service import Service


def service(tmp_path, box, clock):
    cfg = loads(f'[pbx]\nid = "{box}"\n[pbx.ami]\nsecret = "s"\n[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    return Service(cfg, clock=clock)


def test_another_box_running_does_not_hide_our_gap(tmp_path):
    a = service(tmp_path, "pbx-a", lambda: 1000.0)
    a._mark_alive()                         # A runs, then goes down at 1000
    a.store.close()
    b = service(tmp_path, "pbx-b", lambda: 4600.0)
    b._mark_alive()                         # B still runs an hour later
    b.store.close()
    a2 = service(tmp_path, "pbx-a", lambda: 4700.0)
    assert a2._last_alive == 1000.0         # A's gap starts where A stopped, not where B was
    a2.store.close()
    c = service(tmp_path, "pbx-c", lambda: 4800.0)
    assert c._last_alive is None            # a new box saw nothing before it: no recovery
    c.store.close()
