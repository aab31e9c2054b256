"""Reading the PBX's stored CDR (read-only) for the calls that began and ended while the
event socket was down: cdr_csv's Master.csv, cdr_sqlite3_custom's database, or FreePBX's
`asteriskcdrdb` in MariaDB (cdr_adaptive_odbc)."""
from __future__ import annotations

import csv
import logging
import sqlite3

from ..core.pbx.cdr import CsvConf, cdr_time_text, cdr_zone, csv_row, parse_cdr_conf

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
            for rec in _csv_records(fh, cfg_cdr.path):
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
    con = _mysql_connect(cfg_cdr)       # OSError when PyMySQL is missing
    import pymysql
    try:
        with con.cursor() as cur:
            table = cfg_cdr.table.replace("`", "")
            cur.execute(f"SELECT * FROM `{table}` WHERE calldate >= %s ORDER BY calldate", (after,))
            return [{k: ("" if v is None else str(v)) for k, v in row.items()} for row in cur.fetchall()]
    except pymysql.MySQLError as e:
        raise OSError(f"cannot read {cfg_cdr.table}: {e}") from None
    finally:
        con.close()


def _mysql_connect(cfg_cdr):
    from urllib.parse import unquote, urlparse
    try:
        import pymysql
        import pymysql.cursors
    except ImportError:
        raise OSError("reading FreePBX's CDR needs PyMySQL: pip install '/opt/pbx-textback-src[freepbx]'") from None
    u = urlparse(cfg_cdr.dsn)
    try:
        return pymysql.connect(host=u.hostname or "127.0.0.1", port=u.port or 3306,
                               user=unquote(u.username or ""), password=cfg_cdr.password or unquote(u.password or ""),
                               database=u.path.lstrip("/") or "asteriskcdrdb", charset="utf8mb4",
                               connect_timeout=5, read_timeout=20, cursorclass=pymysql.cursors.DictCursor)
    except pymysql.MySQLError as e:
        raise OSError(f"cannot connect to the CDR database {u.hostname}: {e}") from None


def columns(cfg_cdr) -> list[str]:
    """The CDR's column names as read_rows would see them (for `doctor`). Master.csv has no
    header: its columns are read from its last row's width, as read_rows reads it."""
    if cfg_cdr.source == "csv":
        with open(cfg_cdr.path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 65536))
            tail = fh.read().decode("utf-8", "replace").splitlines()
        last = next((ln for ln in reversed(tail) if ln.strip()), None)
        if last is None:
            return []
        return list(csv_row(next(csv.reader([last])), zone_of(cfg_cdr)[1]))
    if cfg_cdr.source == "sqlite":
        con = sqlite3.connect(f"file:{cfg_cdr.path}?mode=ro", uri=True, timeout=5)
        try:
            cols = [r[1] for r in con.execute(f'PRAGMA table_info("{cfg_cdr.table.replace(chr(34), "")}")')]
            if not cols:
                raise OSError(f"no table {cfg_cdr.table} in {cfg_cdr.path}")
            return cols
        except sqlite3.Error as e:
            raise OSError(str(e)) from None
        finally:
            con.close()
    con = _mysql_connect(cfg_cdr)
    import pymysql
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT * FROM `{cfg_cdr.table.replace('`', '')}` LIMIT 0")
            return [d[0] for d in cur.description]
    except pymysql.MySQLError as e:
        raise OSError(f"cannot read {cfg_cdr.table}: {e}") from None
    finally:
        con.close()
