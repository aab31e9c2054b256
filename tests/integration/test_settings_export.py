"""`pbx-textback settings export` as the admin runs it: the page's changes as TOML shaped like the
config file, and `--full` the whole file with them written in, which loads as the very config
the service runs (the file + the page)."""
import re
from dataclasses import replace
import subprocess
import tomllib
from pathlib import Path

from pbx_textback.config import load, loads
from pbx_textback.store import settings as ss
from pbx_textback.store.db import open_store
from tests.harness import service_command

EXAMPLE = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
LINE = "+15125550100"
TPL = "{{ business.name }}: sorry we missed you. Reply \"STOP\" to opt out."


def cli(*args):
    return subprocess.run(service_command() + list(args), capture_output=True, text=True, timeout=60)


def test_export_prints_the_page_changes_and_full_loads_as_the_running_config(tmp_path):
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(re.sub(r'(?m)^path = .*$', f'path = "{tmp_path / "s.sqlite3"}"', EXAMPLE))
    empty = cli("settings", "export", "-c", str(cfg_path))
    assert empty.returncode == 0 and "settings (0)" in empty.stdout
    store = open_store(str(tmp_path / "s.sqlite3"))
    ss.record(store, [(f"line[{LINE}].template", None, TPL),
                      (f"line[{LINE}].hours.sat", [], ["09:00-12:00"]),
                      ("business.phone", "+15125550100", "+15125550199"),
                      ("paused", False, True)], "ada", 1.0)
    store.close()
    part = cli("settings", "export", "-c", str(cfg_path))
    assert part.returncode == 0, part.stderr
    assert tomllib.loads(part.stdout) == {"business": {"phone": "+15125550199"},
                                          "line": [{"number": LINE, "template": TPL,
                                                    "hours": {"sat": ["09:00-12:00"]}}]}
    full = cli("settings", "export", "--full", "-c", str(cfg_path))
    assert full.returncode == 0, full.stderr
    (tmp_path / "new.toml").write_text(full.stdout)
    page = {f"line[{LINE}].template": TPL, f"line[{LINE}].hours.sat": ["09:00-12:00"],
            "business.phone": "+15125550199"}
    running = loads(cfg_path.read_text(), str(cfg_path), secrets=False, page=page)
    exported = load(tmp_path / "new.toml", secrets=False)
    assert replace(exported, source=running.source) == running          # only the file's name differs
    hist = cli("settings", "history", "-c", str(cfg_path))
    assert hist.returncode == 0 and f"ada: line[{LINE}].template = " in hist.stdout
