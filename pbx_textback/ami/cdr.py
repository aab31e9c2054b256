"""Reading the PBX's stored CDR (read-only) for the calls that began and ended while the
event socket was down: cdr_csv's Master.csv, cdr_sqlite3_custom's database, or FreePBX's
`asteriskcdrdb` in MariaDB (cdr_adaptive_odbc)."""
from __future__ import annotations

import csv
import logging
import sqlite3

from ..core.cdr import CsvConf, cdr_time_text, cdr_zone, csv_row, parse_cdr_conf

log = logging.getLogger("pbx_textback.cdr")


def load_csv_conf(path: str) -> CsvConf | None:
    """cdr.conf's [csv] options, or None where it cannot be read (not on the PBX box, or no
    permission: the zone then comes from pbx.cdr.timezone or the box's own)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return parse_cdr_conf(fh.read())
    except OSError:
        return None


def zone_of(cfg_cdr) -> tuple[str, CsvConf | None]:
    """(the zone the CDR's times are in, cdr.conf's [csv] options where readable)."""
    conf = load_csv_conf(getattr(cfg_cdr, "cdr_conf", "")) if cfg_cdr.source == "csv" else None
    return cdr_zone(getattr(cfg_cdr, "timezone", ""), cfg_cdr.source, conf), conf


def read_rows(cfg_cdr, since: float, tz: str, conf: CsvConf | None = None) -> list[dict]:
    """Rows whose start is at or after `since` (epoch seconds). The CDR's times are wall times
    in zone `tz` (see zone_of), compared as text, which their fixed format allows."""
    after = cdr_time_text(since, tz)
    if cfg_cdr.source == "csv":
        rows = []
        with open(cfg_cdr.path, newline="", encoding="utf-8", errors="replace") as fh:
            for rec in csv.reader(fh):
                row = csv_row(rec, conf)
                if row.get("start", "") >= after:
                    rows.append(row)
        return rows
    if cfg_cdr.source == "sqlite":
        uri = f"file:{cfg_cdr.path}?mode=ro"
        con = sqlite3.connect(uri, uri=True, timeout=5)
        con.row_factory = sqlite3.Row
        try:
            table = cfg_cdr.table.replace('"', "")
            cols = {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}
            start = "start" if "start" in cols else "calldate"
            cur = con.execute(f'SELECT * FROM "{table}" WHERE "{start}" >= ?', (after,))
            return [dict(r) for r in cur]
        finally:
            con.close()
    if cfg_cdr.source == "mysql":
        return _mysql_rows(cfg_cdr, after)
    return []


def _mysql_rows(cfg_cdr, after: str) -> list[dict]:
    from urllib.parse import unquote, urlparse
    try:
        import pymysql
        import pymysql.cursors
    except ImportError:
        raise OSError("reading FreePBX's CDR needs PyMySQL: pip install 'pbx-textback[freepbx]'") from None
    u = urlparse(cfg_cdr.dsn)
    try:
        con = pymysql.connect(host=u.hostname or "127.0.0.1", port=u.port or 3306,
                              user=unquote(u.username or ""), password=cfg_cdr.password or unquote(u.password or ""),
                              database=u.path.lstrip("/") or "asteriskcdrdb", charset="utf8mb4",
                              connect_timeout=5, read_timeout=20, cursorclass=pymysql.cursors.DictCursor)
    except pymysql.MySQLError as e:
        raise OSError(f"cannot connect to the CDR database {u.hostname}: {e}") from None
    try:
        with con.cursor() as cur:
            table = cfg_cdr.table.replace("`", "")
            cur.execute(f"SELECT * FROM `{table}` WHERE calldate >= %s ORDER BY calldate", (after,))
            return [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in cur.fetchall()]
    except pymysql.MySQLError as e:
        raise OSError(f"cannot read {cfg_cdr.table}: {e}") from None
    finally:
        con.close()
