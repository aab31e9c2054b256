"""Reading the PBX's stored CDR (read-only) for the calls that began and ended while the
event socket was down: cdr_csv's Master.csv, cdr_sqlite3_custom's database, or FreePBX's
`asteriskcdrdb` in MariaDB (cdr_adaptive_odbc)."""
from __future__ import annotations

import csv
import logging
import sqlite3
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from ..core.cdr import CSV_COLUMNS

log = logging.getLogger("pbx_textback.cdr")


def _since_text(since: float, tz: str) -> str:
    return datetime.fromtimestamp(since, timezone.utc).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def read_rows(cfg_cdr, since: float, tz: str) -> list[dict]:
    """Rows whose start is at or after `since` (epoch seconds). The CDR's times are the PBX's
    local wall time, compared as text, which their fixed format allows."""
    after = _since_text(since, tz)
    if cfg_cdr.source == "csv":
        rows = []
        with open(cfg_cdr.path, newline="", encoding="utf-8", errors="replace") as fh:
            for rec in _csv_records(fh, cfg_cdr.path):
                row = dict(zip(CSV_COLUMNS, rec))
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


def _csv_records(fh, path: str):
    """Master.csv records; one the csv module refuses (a field over its 128 KiB limit: a corrupt
    or hostile line) is skipped, so it cannot hide the other calls of the gap. The reader
    starts afresh at each record, so reading goes on after it."""
    reader, bad = csv.reader(fh), 0
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error:
            bad += 1
            continue
        yield rec
    if bad:
        log.warning("CDR %s: %d unreadable line(s) skipped", path, bad)


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
