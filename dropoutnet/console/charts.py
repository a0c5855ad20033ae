"""Line charts drawn as SVG on the server: no chart library, nothing loaded from elsewhere.

A chart is a few series over the same x labels (bizdates, epochs); a series may carry a band
(its confidence interval, drawn as a shaded area) and links (a point opens its version).  A
missing value (None) breaks the line.  Text goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

PALETTE = {"model": "#1f6feb", "baseline": "#9a6700", "oracle": "#8250df",
           "threshold": "#cf222e", "loss": "#1f6feb"}


@dataclass
class Series:
    """One line: its name, a value per x label (None: no point), an optional band of
    ``(low, high)`` per label, a colour, dashes, and an optional link per point."""

    name: str
    values: list[float | None]
    color: str = PALETTE["model"]
    band: list[tuple[float, float] | None] | None = None
    dashed: bool = False
    links: list[str | None] = field(default_factory=list)
    titles: list[str | None] = field(default_factory=list)


def _fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def line_chart(labels: list[str], series: list[Series], *, title: str, y_label: str = "",
               width: int = 860, height: int = 300, zero_based: bool = True) -> str:
    """The SVG of ``series`` over ``labels`` (an empty chart says so)."""
    left, right, top, bottom = 56, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    found = [v for s in series for v in s.values if v is not None]
    found += [b for s in series for pair in (s.band or []) if pair for b in pair]
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="100%" aria-label="{esc(title)}">',
             f'<text x="{left}" y="16" class="chart-title">{esc(title)}</text>']
    if not labels or not found:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
                     'class="chart-empty">no data yet</text></svg>')
        return "".join(parts)
    lo = 0.0 if zero_based else min(found)
    hi = max(found)
    if hi - lo < 1e-9:
        hi = lo + (abs(lo) or 1.0) * 0.1
    hi += (hi - lo) * 0.08

    def x(i: int) -> float:
        return left + (plot_w / 2 if len(labels) == 1 else plot_w * i / (len(labels) - 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    for t in range(5):  # the y grid
        v = lo + (hi - lo) * t / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     f'class="grid"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                     f'text-anchor="end" class="tick">{_fmt(v)}</text>')
    step = max(1, len(labels) // 10)
    for i, label in enumerate(labels):
        if i % step == 0 or i == len(labels) - 1:
            anchor = ("start" if i == 0 and len(labels) > 1 else
                      "end" if i == len(labels) - 1 and len(labels) > 1 else "middle")
            parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="{anchor}" class="tick">{esc(label)}</text>')
    if y_label:
        parts.append(f'<text x="14" y="{top + plot_h / 2}" class="tick" transform="rotate(-90 '
                     f'14 {top + plot_h / 2})" text-anchor="middle">{esc(y_label)}</text>')
    for s in series:
        if s.band:
            upper = [(x(i), y(b[1])) for i, b in enumerate(s.band) if b]
            lower = [(x(i), y(b[0])) for i, b in enumerate(s.band) if b]
            if upper:
                points = " ".join(f"{px:.1f},{py:.1f}" for px, py in upper + lower[::-1])
                parts.append(f'<polygon points="{points}" fill="{s.color}" opacity="0.15"/>')
        segment: list[str] = []
        segments = []
        for i, v in enumerate(s.values):
            if v is None:
                if segment:
                    segments.append(segment)
                segment = []
            else:
                segment.append(f"{x(i):.1f},{y(v):.1f}")
        if segment:
            segments.append(segment)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for seg in segments:
            parts.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{s.color}" '
                         f'stroke-width="2"{dash}/>')
        for i, v in enumerate(s.values):
            if v is None:
                continue
            tip = (s.titles[i] if i < len(s.titles) and s.titles[i] else
                   f"{s.name} {labels[i]}: {_fmt(v)}")
            dot = (f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="{s.color}" '
                   f'class="point" data-series="{esc(s.name)}" data-label="{esc(labels[i])}">'
                   f'<title>{esc(tip)}</title></circle>')
            link = s.links[i] if i < len(s.links) else None
            parts.append(f'<a href="{esc(link)}">{dot}</a>' if link else dot)
    for n, s in enumerate(series):  # the legend
        lx = left + n * 190
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{height - 10}" y2="{height - 10}" '
                     f'stroke="{s.color}" stroke-width="2"{dash}/>'
                     f'<text x="{lx + 24}" y="{height - 6}" class="tick">{esc(s.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
