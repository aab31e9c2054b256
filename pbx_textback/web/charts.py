"""Bar charts as SVG written by hand on the server: no chart library, no script. Each bar
carries the same text its table cell shows (data-row, data-series, the value label), so a
reader (and the browser test) can hold the chart against the table."""
from __future__ import annotations

from html import escape

ROW_H, BAR_H, GAP = 8, 16, 4
LABEL_W, PLOT_W, VALUE_W = 190, 360, 80
COLORS = ("#2f6fb0", "#d9822b", "#3a9a5b", "#b03a3a", "#7a5bb0")


def hbars(title: str, rows: list[tuple[str, list[tuple[float | None, str]]]], series: list[str],
          *, top: float | None = None, name: str = "") -> str:
    """rows: (row label, [(value, shown text) per series]). top: the value of a full bar
    (rates: 1.0); default: the largest value."""
    values = [v for _, vals in rows for v, _ in vals if v is not None]
    top = top or max(values, default=0) or 1
    width = LABEL_W + PLOT_W + VALUE_W
    legend, x, ly = [], LABEL_W, 0            # legend entries, wrapped to the chart's width
    for i, s in enumerate(series if len(series) > 1 else []):
        w = 22 + round(7 * len(s))
        if x + w > width and x > LABEL_W:
            x, ly = LABEL_W, ly + 18
        legend.append((x, ly, i, s))
        x += w
    legend_h = ly + 22 if legend else 0
    block = len(series) * (BAR_H + GAP) + ROW_H
    height = 30 + legend_h + max(1, len(rows)) * block
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(name)}" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}">',
           f'<title>{escape(title)}</title>',
           f'<text x="0" y="16" class="chart-title">{escape(title)}</text>']
    y = 30
    for x, ly, i, s in legend:
        out.append(f'<rect x="{x}" y="{y + ly}" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>'
                   f'<text x="{x + 16}" y="{y + ly + 11}" class="legend">{escape(s)}</text>')
    y += legend_h
    if not rows:
        out.append(f'<text x="{LABEL_W}" y="{y + 14}">nothing in this period</text>')
    for label, vals in rows:
        out.append(f'<text x="{LABEL_W - 8}" y="{y + BAR_H - 3}" text-anchor="end" class="row-label">'
                   f'{escape(_clip(label))}</text>')
        for i, (v, shown) in enumerate(vals):
            w = 0 if v is None else max(1 if v else 0, round(PLOT_W * min(v / top, 1.0)))
            out.append(f'<g class="bar" data-row="{escape(label)}" data-series="{escape(series[i])}">'
                       f'<rect x="{LABEL_W}" y="{y}" width="{w}" height="{BAR_H}" fill="{COLORS[i % len(COLORS)]}">'
                       f'<title>{escape(label)}, {escape(series[i])}: {escape(shown)}</title></rect>'
                       f'<text x="{LABEL_W + w + 6}" y="{y + BAR_H - 3}" class="value">{escape(shown)}</text></g>')
            y += BAR_H + GAP
        y += ROW_H
    out.append("</svg>")
    return "".join(out)


def _clip(s: str, n: int = 28) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
