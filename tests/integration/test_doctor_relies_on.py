"""Issue 11: `doctor` also checks what the config relies on — the AMI class CoreShowChannels
needs (reporting), and the CDR `[pbx.cdr]` recovers calls from: readable by the service's user,
with the columns recovery reads (cdr_csv's Master.csv, an SQLite CDR, FreePBX's MariaDB)."""
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pbx_textback import doctor
from pbx_textback.config import loads
from pbx_textback.core.pbx.cdr import CSV_COLUMNS
from tests.ami_thread import ThreadedAmi

ROOT = Path(__file__).resolve().parents[2]


def run_doctor(cfg_text, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(cfg_text + f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n')
    return subprocess.run([sys.executable, "-m", "pbx_textback.cli", "doctor", "-c", str(cfg)], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("classes,ok", [(("originate", "message", "reporting"), True),
                                        (("originate", "message"), False)])
def test_the_reporting_class_coreshowchannels_needs(tmp_path, classes, ok):
    with ThreadedAmi([], username="textback", secret="s", write_classes=classes) as ami:
        p = run_doctor(f'[pbx.ami]\nport = {ami.port}\nsecret = "s"\n', tmp_path)
    if ok:
        assert "[ok  ] ami write reporting: CoreShowChannels: allowed" in p.stdout, p.stdout
    else:
        assert "[FAIL] ami write reporting: CoreShowChannels: not allowed" in p.stdout, p.stdout
        assert "fix: add 'reporting' to `write =` of [textback]" in p.stdout
        assert p.returncode == 1


def master_csv_line(values) -> str:
    """As cdr_csv writes a row: every value quoted, quotes doubled."""
    return ",".join('"' + v.replace('"', '""') + '"' for v in values) + "\n"


def cdr_cfg(**kw):
    body = "".join(f'{k} = "{v}"\n' for k, v in kw.items())
    return loads(f"[pbx.cdr]\n{body}")


ROW = ["", "+15125550188", "+15125550110", "from-trunk", '"Caller" <+15125550188>', "PJSIP/itsp-0001",
       "PJSIP/101-0002", "Dial", "PJSIP/101,20", "2026-11-26 17:00:00", "", "2026-11-26 17:00:20",
       "20", "0", "NO ANSWER", "DOCUMENTATION", "1795800000.1", ""]


def test_master_csv_without_the_uniqueid_column_says_to_turn_it_on(tmp_path):
    csv = tmp_path / "Master.csv"
    csv.write_text(",".join(f'"{v}"' for v in ROW[:16]) + "\n")         # loguniqueid = no
    r = doctor.check_cdr(cdr_cfg(source="csv", path=csv))
    assert not r.ok and "uniqueid" in r.detail and "loguniqueid = yes" in r.fix[0]
    csv.write_text(master_csv_line(ROW))
    r = doctor.check_cdr(cdr_cfg(source="csv", path=csv))
    assert r.ok and not r.warn, r.detail
    assert len(ROW) == len(CSV_COLUMNS)


def test_a_missing_cdr_file_is_a_failure_with_the_fix(tmp_path):
    r = doctor.check_cdr(cdr_cfg(source="csv", path=tmp_path / "nope.csv"))
    assert not r.ok and "No such file" in r.detail and "cdr_csv" in r.fix[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="judging another user's access needs root")
def test_a_cdr_the_services_user_cannot_read(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "SERVICE_USER", "nobody")
    for p in (tmp_path, *tmp_path.parents):
        os.chmod(p, os.stat(p).st_mode | 0o005) if p != Path("/") else None
    csv = tmp_path / "Master.csv"
    csv.write_text(master_csv_line(ROW))
    os.chmod(csv, 0o600)                            # asterisk's own, like /var/log/asterisk
    r = doctor.check_cdr(cdr_cfg(source="csv", path=csv))
    assert not r.ok and "closed to the nobody user" in r.detail, r.detail
    assert r.fix[0].startswith("`usermod -aG root nobody`")
    os.chmod(csv, 0o644)
    assert doctor.check_cdr(cdr_cfg(source="csv", path=csv)).ok


def test_an_sqlite_cdr_table_and_its_columns(tmp_path):
    db = tmp_path / "master.db"
    con = sqlite3.connect(db)
    con.execute("create table cdr (calldate, src, dst, channel, dstchannel, lastapp, disposition)")
    con.commit()
    r = doctor.check_cdr(cdr_cfg(source="sqlite", path=db))
    assert not r.ok and "uniqueid" in r.detail
    con.execute("alter table cdr add column uniqueid")
    con.commit()
    con.close()
    assert doctor.check_cdr(cdr_cfg(source="sqlite", path=db)).ok
    r = doctor.check_cdr(cdr_cfg(source="sqlite", path=db, table="cdr_custom"))
    assert not r.ok and "no table cdr_custom" in r.detail


FREEPBX_CDR = """CREATE TABLE cdr (calldate datetime, clid varchar(80), src varchar(80), dst varchar(80),
 dcontext varchar(80), channel varchar(80), dstchannel varchar(80), lastapp varchar(80),
 lastdata varchar(80), duration int, billsec int, disposition varchar(45), amaflags int,
 accountcode varchar(20), uniqueid varchar(32), userfield varchar(255), did varchar(50),
 linkedid varchar(32))"""


def test_freepbx_cdr_in_mariadb(mariadb, tmp_path):
    port, admin = mariadb
    con = admin()
    with con.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS asteriskcdrdb")
        cur.execute("DROP TABLE IF EXISTS asteriskcdrdb.cdr")
        cur.execute(FREEPBX_CDR.replace("CREATE TABLE cdr", "CREATE TABLE asteriskcdrdb.cdr"))
        cur.execute("CREATE USER IF NOT EXISTS 'cdrreader'@'127.0.0.1' IDENTIFIED BY 'pw'")
        cur.execute("GRANT SELECT ON asteriskcdrdb.cdr TO 'cdrreader'@'127.0.0.1'")
    con.close()
    dsn = f"mysql://cdrreader@127.0.0.1:{port}/asteriskcdrdb"
    r = doctor.check_cdr(cdr_cfg(source="mysql", dsn=dsn, password="pw"))
    assert r.ok, r.detail
    r = doctor.check_cdr(cdr_cfg(source="mysql", dsn=dsn, password="wrong"))
    assert not r.ok and "GRANT SELECT" in r.fix[0]
