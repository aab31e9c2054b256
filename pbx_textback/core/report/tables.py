"""A report (core/report.build) as the tables people read: the same rows for the terminal,
the CSV export and the web page, so the three never disagree. Pure."""
from __future__ import annotations

from dataclasses import dataclass

from pbx_textback.core.report.compute import BUCKETS, NOT_SENT, REASONS, fmt_duration, fmt_rate


@dataclass(frozen=True)
class Column:
    title: str
    kind: str = "n"            # n: a count | rate: 0..1 | s: seconds | text


@dataclass(frozen=True)
class Table:
    name: str                  # calls | texts | rates | response | buckets (CSV ?table=)
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple, ...]    # raw values, the group first; the last row is the total


def show(value, kind: str) -> str:
    if kind == "rate":
        return fmt_rate(value)
    if kind == "s":
        return fmt_duration(value)
    return "–" if value is None else str(value)


def tables(rep: dict) -> list[Table]:
    total = rep["total"]
    groups = [(g["label"], g) for g in rep["groups"]] + [("Total", total)]
    reasons = [r for r in REASONS if r in total["calls"]["by_reason"]] + sorted(
        r for r in total["calls"]["by_reason"] if r not in REASONS)
    not_sent = [w for w in NOT_SENT if w in total["texts"]["not_sent"]]
    head = Column(_group_title(rep["by"]), "text")

    def t(name, title, cols, row):
        return Table(name, title, (head,) + tuple(Column(*c) for c in cols),
                     tuple((label,) + tuple(row(m)) for label, m in groups))

    return [
        t("calls", "Missed calls", [("Inbound calls",), ("Missed calls",), ("Missed share", "rate"),
                                    ("Missed callers",)] + [(r,) for r in reasons],
          lambda m: [m["calls"]["inbound"], m["calls"]["missed"], m["calls"]["missed_rate"],
                     m["calls"]["missed_callers"]] + [m["calls"]["by_reason"].get(r, 0) for r in reasons]),
        t("texts", "Automated texts", [("Automated",), ("Sent",), ("Delivered",), ("Failed",), ("Unknown",),
                                       ("Waiting",), ("Held (quiet hours)",)]
          + [(f"Not sent: {w}",) for w in not_sent],
          lambda m: [m["texts"][k] for k in ("automated", "sent", "delivered", "failed", "unknown", "waiting", "held")]
          + [m["texts"]["not_sent"].get(w, 0) for w in not_sent]),
        t("rates", "Replies, call backs, recovered callers, opt-outs",
          [("Callers texted",), ("Replied",), ("Reply rate", "rate"), ("Reached ≤ 1 h",), ("Call-back rate 1 h", "rate"),
           ("Reached ≤ 24 h",), ("Call-back rate 24 h", "rate"), ("Recovered callers",), ("Recovered rate", "rate"),
           ("Opted out",), ("Opt-out rate", "rate")],
          lambda m: [m["replies"]["callers_texted"], m["replies"]["replied"], m["replies"]["rate"],
                     m["callbacks"]["within_1h"], m["callbacks"]["rate_1h"], m["callbacks"]["within_24h"],
                     m["callbacks"]["rate_24h"], m["recovered"]["recovered"], m["recovered"]["rate"],
                     m["opt_outs"]["opted_out"], m["opt_outs"]["rate"]]),
        t("response", "Time to first human response",
          [("Responses",), ("Still waiting",), ("Median", "s"), ("p90", "s"),
           ("Median, business hours", "s"), ("p90, business hours", "s")],
          lambda m: [m["response"]["count"], m["response"]["waiting"], m["response"]["median_s"],
                     m["response"]["p90_s"], m["response"]["business_median_s"], m["response"]["business_p90_s"]]),
        t("buckets", "Time to first human response, distribution",
          [(name,) for name, _ in BUCKETS] + [(f"{name} (business hours)",) for name, _ in BUCKETS],
          lambda m: [m["response"]["buckets"][n] for n, _ in BUCKETS]
          + [m["response"]["business_buckets"][n] for n, _ in BUCKETS]),
    ]


def _group_title(by: str) -> str:
    return {"line": "Line", "agent": "Agent", "campaign": "Campaign", "day": "Day", "week": "Week"}[by]


def csv_rows(table: Table) -> list[list]:
    """Header, then raw values (seconds and 0..1 rates unrounded by display): for spreadsheets."""
    head = [c.title + (" (s)" if c.kind == "s" else "") for c in table.columns]
    return [head] + [["" if v is None else v for v in row] for row in table.rows]


def text(rep: dict) -> str:
    """The report for a terminal: each table with aligned columns."""
    out = []
    for tb in tables(rep):
        cells = [[c.title for c in tb.columns]] + [[show(v, c.kind) for v, c in zip(row, tb.columns)]
                                                  for row in tb.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(tb.columns))]
        out.append(tb.title)
        for r in cells:
            out.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
        out.append("")
    return "\n".join(out)
