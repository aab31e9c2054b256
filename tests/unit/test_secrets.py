"""Issue 11 finding 1: one spelling of a secret file serves the service under systemd
(LoadCredential=, $CREDENTIALS_DIRECTORY) and the admin's commands from a root shell; the
example config, the unit and the README agree."""
import re
import tomllib
from pathlib import Path

import pytest

from pbx_textback.config import ConfigError, loads

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "pbx-textback.service"


def cfg_text(path):
    return f'[pbx.ami]\nsecret_file = "{path}"\n'


def test_under_the_unit_the_secret_comes_from_the_credential_named_after_the_file(tmp_path, monkeypatch):
    etc = tmp_path / "etc"            # the service cannot read (here: does not even see) the file
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "ami-secret").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = loads(cfg_text(etc / "ami-secret"))
    assert cfg.pbx.ami.secret == "from-systemd"


def test_from_a_root_shell_the_same_config_reads_the_file_itself(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "ami-secret").write_text("from-file\n")
    assert loads(cfg_text(tmp_path / "ami-secret")).pbx.ami.secret == "from-file"


def test_the_old_credentials_spelling_from_a_shell_says_what_to_write(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as e:
        loads(cfg_text("${CREDENTIALS_DIRECTORY}/ami-secret"))
    assert "name the file itself, e.g. /etc/pbx-textback/ami-secret" in str(e.value)


def test_a_file_the_unit_does_not_pass_says_how_to_add_it(tmp_path, monkeypatch):
    creds = tmp_path / "credentials"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    with pytest.raises(ConfigError) as e:
        loads(cfg_text(tmp_path / "etc" / "textback.secret"))
    assert f"LoadCredential=textback.secret:{tmp_path / 'etc' / 'textback.secret'}" in str(e.value)


def unit_credentials() -> dict[str, str]:
    return dict(re.findall(r"^LoadCredential=([^:\s]+):(\S+)$", UNIT.read_text(), re.M))


def test_every_secret_file_of_the_example_config_is_passed_by_the_unit_under_its_own_name():
    text = (ROOT / "config.example.toml").read_text()
    # the commented-out tables count too: the admin uncomments them
    paths = re.findall(r'^#?\s*\w+_file\s*=\s*"([^"]+)"', text, re.M)
    assert len(paths) >= 3
    tomllib.loads(text)                                  # and it still parses
    creds = unit_credentials()
    for p in paths:
        assert creds.get(Path(p).name) == p, f"{p}: no LoadCredential={Path(p).name}:{p} in the unit"


def test_the_readme_install_block_creates_every_file_the_unit_loads():
    readme = (ROOT / "README.md").read_text()
    assert "${CREDENTIALS_DIRECTORY}" not in readme
    block = readme.split("## Install on the PBX box", 1)[1].split("\n###", 1)[0]
    touch = re.search(r"cd /etc/pbx-textback && touch ([^)]+)\)", block)
    assert touch, "the install block must create the secret files"
    made = {f"/etc/pbx-textback/{n}" for n in touch.group(1).split()}
    assert set(unit_credentials().values()) <= made


def test_commands_that_connect_to_nothing_work_without_reading_the_secret(tmp_path, monkeypatch):
    """`replay`, `explain`, `hours`… from a shell that cannot read the secret (not root, or a
    copy of the config off the PBX box) still work; `doctor` and `send-test`, which connect,
    say what is wrong."""
    import subprocess
    import sys
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = tmp_path / "config.toml"
    cfg.write_text(cfg_text(tmp_path / "no-such-secret") + f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    trace = ROOT / "tests" / "fixtures" / "asterisk" / "02-no-answer.ami"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pbx_textback.cli", *args, "-c", str(cfg)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    replay = cli("replay", str(trace), "--pbx", "asterisk")
    assert replay.returncode == 0 and "no-answer" in replay.stdout, replay.stderr
    assert cli("hours", "show").returncode == 0
    doctor = cli("doctor")
    assert doctor.returncode == 2 and "cannot read" in doctor.stderr + doctor.stdout
