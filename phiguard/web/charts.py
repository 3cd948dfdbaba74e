"""A small server-side SVG chart renderer: bar, line-with-baseline and horizontal-bar charts.

Written by hand rather than pulling in a JavaScript charting library because the console's
CSP allows no inline script and no CDN, and a chart drawn on the server is readable without
JavaScript, prints, and goes into a screenshot or a PDF as is. Every label is XML-escaped;
the output is marked safe for Jinja only after that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

PALETTE = ("#0b6e69", "#d9480f", "#4a7bd0", "#c08a00", "#7048e8", "#b3261e")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: str = PALETTE[0]
    dashed: bool = False


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:g}"


def _frame(width: int, height: int, title: str, body: list[str]) -> Markup:
    label = escape(title)
    svg = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label}" xmlns="http://www.w3.org/2000/svg"><title>{label}</title>'
        + "".join(body)
        + "</svg>"
    )
    return Markup(svg)  # noqa: S704 - every interpolated text above and below is escaped


def _y_axis(body: list[str], top: float, left: int, right: int, bottom: int, plot_h: int) -> None:
    for i in range(5):
        y = bottom - plot_h * i / 4
        body.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        body.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_fmt(top * i / 4))}</text>"
        )


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    width: int = 640,
    height: int = 220,
    color: str = PALETTE[0],
    highlight: Sequence[int] = (),
    label_every: int = 1,
) -> Markup:
    """Vertical bars, one per label; bars whose index is in ``highlight`` are drawn in red."""
    left, right, top_pad, bottom_pad = 44, width - 8, 12, 28
    plot_h = height - top_pad - bottom_pad
    bottom = height - bottom_pad
    top = _nice_max(max(values, default=0))
    body: list[str] = []
    _y_axis(body, top, left, right, bottom, plot_h)
    n = max(len(values), 1)
    slot = (right - left) / n
    bar_w = max(slot * 0.72, 1.0)
    for i, (lab, v) in enumerate(zip(labels, values, strict=False)):
        h = plot_h * (v / top) if top else 0
        x = left + i * slot + (slot - bar_w) / 2
        fill = PALETTE[5] if i in highlight else color
        body.append(
            f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{bar_w:.1f}" '
            f'height="{h:.1f}" fill="{fill}"><title>{escape(str(lab))}: '
            f"{escape(_fmt(v))}</title></rect>"
        )
        if i % label_every == 0:
            body.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{bottom + 16}" '
                f'text-anchor="middle">{escape(str(lab))}</text>'
            )
    body.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    return _frame(width, height, title, body)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 640,
    height: int = 220,
    label_every: int = 1,
    mark: int | None = None,
) -> Markup:
    """Lines over shared x labels, with a legend; ``mark`` draws a vertical rule at an index
    (e.g. the hour of the alert)."""
    left, right, top_pad, bottom_pad = 44, width - 8, 22, 28
    plot_h = height - top_pad - bottom_pad
    bottom = height - bottom_pad
    top = _nice_max(max((max(s.values, default=0) for s in series), default=0))
    body: list[str] = []
    _y_axis(body, top, left, right, bottom, plot_h)
    n = max(len(labels), 1)
    step = (right - left) / max(n - 1, 1)
    for i, lab in enumerate(labels):
        if i % label_every == 0:
            body.append(
                f'<text x="{left + i * step:.1f}" y="{bottom + 16}" '
                f'text-anchor="middle">{escape(str(lab))}</text>'
            )
    if mark is not None and 0 <= mark < n:
        x = left + mark * step
        body.append(
            f'<line x1="{x:.1f}" y1="{top_pad}" x2="{x:.1f}" y2="{bottom}" '
            f'stroke="{PALETTE[5]}" stroke-width="1.5" stroke-dasharray="3 3"/>'
        )
    for k, s in enumerate(series):
        pts = " ".join(
            f"{left + i * step:.1f},{bottom - plot_h * (v / top):.1f}"
            for i, v in enumerate(s.values)
        )
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        body.append(
            f'<polyline fill="none" stroke="{s.color}" stroke-width="2"{dash} points="{pts}"/>'
        )
        lx = left + 8 + k * 170
        body.append(
            f'<line x1="{lx}" y1="10" x2="{lx + 18}" y2="10" stroke="{s.color}" '
            f'stroke-width="2"{dash}/><text x="{lx + 24}" y="14">'
            f"{escape(s.name)}</text>"
        )
    body.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    return _frame(width, height, title, body)


def hbar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    width: int = 520,
    row: int = 24,
    colors: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars, for rankings (top-risk accounts and vendors)."""
    label_w, pad = 150, 8
    height = max(row * len(values) + 2 * pad, 40)
    top = max(values, default=0) or 1
    body: list[str] = []
    for i, (lab, v) in enumerate(zip(labels, values, strict=False)):
        y = pad + i * row
        w = (width - label_w - 60) * (v / top)
        fill = colors[i] if colors else PALETTE[0]
        body.append(
            f'<text x="{label_w - 6}" y="{y + row * 0.65:.1f}" text-anchor="end">'
            f"{escape(str(lab)[:24])}</text>"
        )
        body.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" '
            f'height="{row - 8}" fill="{fill}"/>'
        )
        body.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + row * 0.65:.1f}">'
            f"{escape(_fmt(v) if v >= 1 or v == 0 else f'{v:.2f}')}</text>"
        )
    return _frame(width, height, title, body)
