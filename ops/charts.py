"""Server-rendered SVG charts: line, bar (grouped or stacked) and step histogram.

The dashboards have no front-end build and no network at run time, so every chart is an
inline ``<svg>`` made here. Each one carries a ``<title>`` and ``<desc>`` (screen readers
announce them; ``role="img"``), a legend, axes with rounded ticks, and a ``<title>`` on
every mark so hovering a point or bar shows its exact value. All text is escaped. The look
is ops/static/ops/charts.css, by class: a chart carries no ``style`` (a CSP refuses inline style).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
TARGET_COLOUR = "#B00020"

WIDTH, HEIGHT = 640, 280
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 44, 40
CHAR_W = 6.6  # average glyph width at 11px, for laying out legends and labels
ZERO_BAR = 2  # px: a measured zero is a thin bar, not nothing
MAX_LABEL = 32  # characters of a category label written upwards; the rest in its <title>
MAX_VERTICAL_LABELS = 16  # more categories than this are thinned out instead


@dataclass
class Series:
    name: str
    values: list  # line charts: [(x, y)]; bar charts and histograms: one y per category / bin
    colour: str | None = None
    links: list | None = None  # a drill-down URL per value (None: that mark links nowhere)

    def link(self, i: int) -> str | None:
        return self.links[i] if self.links and i < len(self.links) else None


@dataclass
class Target:
    """A horizontal reference line (a goal or a limit) drawn across the plot."""

    label: str
    value: float


@dataclass
class _Frame:
    title: str
    desc: str
    width: int = WIDTH
    height: int = HEIGHT
    pad_bottom: int = PAD_BOTTOM
    parts: list[str] = field(default_factory=list)
    linked: bool = False

    @property
    def x0(self) -> float:
        return PAD_LEFT

    @property
    def x1(self) -> float:
        return self.width - PAD_RIGHT

    @property
    def y0(self) -> float:  # bottom of the plot
        return self.height - self.pad_bottom

    @property
    def y1(self) -> float:  # top of the plot
        return PAD_TOP

    def add(self, svg: str) -> None:
        self.parts.append(svg)

    def mark(self, svg: str, href: str | None, label: str) -> None:
        """A mark, inside a link to the rows behind it when there is one. The links are a
        pointer's shortcut (out of the tab order: a day chart would hold hundreds); the pages'
        tables and the outputs page's filters reach the same lists by keyboard."""
        if not href:
            self.add(svg)
            return
        self.linked = True
        self.add(
            f'<a class="drill" href="{escape(href)}" tabindex="-1" aria-label="{escape(label)}">{svg}</a>'
        )

    def render(self, kind: str) -> SafeString:
        cid = f"c{uuid.uuid4().hex[:10]}"
        # role=img hides its children; a chart with links is a group so that they stay links.
        role = "group" if self.linked else "img"
        head = (
            f'<svg class="chart chart-{kind}" role="{role}" aria-labelledby="{cid}-t {cid}-d" '
            f'viewBox="0 0 {self.width} {self.height}" preserveAspectRatio="xMidYMid meet" '
            f'xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{cid}-t">{escape(self.title)}</title><desc id="{cid}-d">{escape(self.desc)}</desc>'
            f'<text class="chart-title" x="{PAD_LEFT}" y="16">{escape(self.title)}</text>'
        )
        return mark_safe(head + "".join(self.parts) + "</svg>")


def _fmt_number(v: float, step: float) -> str:
    if step >= 1 or v == 0:
        return f"{v:,.0f}"
    decimals = min(4, max(0, -math.floor(math.log10(step))))
    return f"{v:.{decimals}f}"


def fmt_percent(v: float, step: float) -> str:
    return f"{v * 100:.0f} %"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (the 1-2-5 rule)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v < hi + step * 0.999:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _legend(frame: _Frame, series: Sequence[Series], targets: Sequence[Target]) -> None:
    x, y = frame.x0, 32
    items = [(s.name, s.colour, False) for s in series] + [(t.label, TARGET_COLOUR, True) for t in targets]
    if len(items) == 1 and not targets:
        return  # one series: the title says what it is
    for name, colour, dashed in items:
        width = 22 + len(name) * CHAR_W
        if x + width > frame.x1:
            break  # the marks still carry their names in <title>
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        frame.add(
            f'<g class="legend-item"><line x1="{x}" y1="{y - 4}" x2="{x + 14}" y2="{y - 4}" stroke="{colour}" '
            f'stroke-width="3"{dash}/><text x="{x + 18}" y="{y}">{escape(name)}</text></g>'
        )
        x += width + 10


def _y_axis(frame: _Frame, ticks: list[float], label: str, fmt: Callable[[float, float], str]) -> Callable:
    lo, hi = ticks[0], ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1

    def scale(v: float) -> float:
        return frame.y0 - (v - lo) / (hi - lo or 1) * (frame.y0 - frame.y1)

    for t in ticks:
        y = scale(t)
        frame.add(f'<line class="grid" x1="{frame.x0}" y1="{y:.1f}" x2="{frame.x1}" y2="{y:.1f}"/>')
        frame.add(
            f'<text class="tick" x="{frame.x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(t, step))}</text>'
        )
    if label:
        mid = (frame.y0 + frame.y1) / 2
        frame.add(
            f'<text class="axis-label" transform="translate(12 {mid:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    frame.add(f'<line class="axis" x1="{frame.x0}" y1="{frame.y0}" x2="{frame.x1}" y2="{frame.y0}"/>')
    return scale


def _targets(frame: _Frame, targets: Sequence[Target], scale: Callable, fmt: Callable) -> None:
    for t in targets:
        y = scale(t.value)
        frame.add(
            f'<line class="target" x1="{frame.x0}" y1="{y:.1f}" x2="{frame.x1}" y2="{y:.1f}" stroke="{TARGET_COLOUR}" '
            f'stroke-dasharray="4 3"><title>{escape(t.label)}: {escape(fmt(t.value, 0.01))}</title></line>'
        )


def _empty(frame: _Frame, kind: str, message: str) -> SafeString:
    frame.add(
        f'<rect class="plot-bg" x="{frame.x0}" y="{frame.y1}" width="{frame.x1 - frame.x0}" '
        f'height="{frame.y0 - frame.y1}"/>'
    )
    frame.add(
        f'<text class="empty" x="{(frame.x0 + frame.x1) / 2}" y="{(frame.y0 + frame.y1) / 2}" '
        f'text-anchor="middle">{escape(message)}</text>'
    )
    return frame.render(kind)


def _as_number(x) -> float:
    if isinstance(x, datetime):
        return x.timestamp()
    if isinstance(x, date):
        return datetime(x.year, x.month, x.day, tzinfo=UTC).timestamp()
    return float(x)


def _time_ticks(lo: float, hi: float, max_ticks: int = 7) -> list[tuple[float, str]]:
    """Day-aligned ticks (every 1, 2, 7, 14 or 30 days) labelled like "Mar 04"."""
    day = 86400
    span_days = max(1, (hi - lo) / day)
    every = next((d for d in (1, 2, 7, 14, 30, 61, 91) if span_days / d <= max_ticks), 182)
    first = datetime.fromtimestamp(lo, UTC).date()
    ticks = []
    d = first
    while _as_number(d) <= hi + 1:
        if _as_number(d) >= lo - 1:
            ticks.append((_as_number(d), d.strftime("%b %d")))
        d += timedelta(days=every)
    return ticks


def line_chart(
    *,
    title: str,
    series: Sequence[Series],
    y_label: str = "",
    time_axis: bool = True,
    x_label: str = "",
    y_min: float | None = None,
    y_max: float | None = None,
    targets: Sequence[Target] = (),
    fmt: Callable[[float, float], str] = _fmt_number,
    x_range: tuple | None = None,
    empty: str = "No data in this period",
) -> SafeString:
    """Lines with a dot per point. ``values``: [(x, y)], x a date/datetime when ``time_axis``;
    ``x_range`` fixes the x axis (a dashboard's window) instead of fitting it to the data."""
    series = [
        Series(
            s.name,
            [(x, y) for x, y in s.values if y is not None],
            s.colour or PALETTE[i % len(PALETTE)],
            [s.link(j) for j, (_, y) in enumerate(s.values) if y is not None],
        )
        for i, s in enumerate(series)
    ]
    points = [p for s in series for p in s.values]
    desc = f"{len(series)} series, {len(points)} points" + (f"; {y_label}" if y_label else "")
    frame = _Frame(title, desc)
    if not points:
        return _empty(frame, "line", empty)
    xs = [_as_number(x) for x, _ in points]
    ys = [float(y) for _, y in points] + [t.value for t in targets]
    ticks = nice_ticks(min(ys) if y_min is None else y_min, max(ys) if y_max is None else y_max)
    x_lo, x_hi = (min(xs), max(xs)) if x_range is None else (_as_number(x_range[0]), _as_number(x_range[1]))
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - (43200 if time_axis else 0.5), x_hi + (43200 if time_axis else 0.5)

    def sx(x) -> float:
        return frame.x0 + 8 + (_as_number(x) - x_lo) / (x_hi - x_lo) * (frame.x1 - frame.x0 - 16)

    sy = _y_axis(frame, ticks, y_label, fmt)
    x_ticks = (
        _time_ticks(x_lo, x_hi)
        if time_axis
        else [(t, _fmt_number(t, 1)) for t in nice_ticks(x_lo, x_hi, 6) if x_lo <= t <= x_hi]
    )
    for xv, label in x_ticks:
        x = sx(xv)
        frame.add(
            f'<text class="tick" x="{x:.1f}" y="{frame.y0 + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    if x_label:
        frame.add(
            f'<text class="axis-label" x="{(frame.x0 + frame.x1) / 2}" y="{frame.height - 4}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
        )
    _targets(frame, targets, sy, fmt)
    _legend(frame, series, targets)
    for s in series:
        pts = sorted(((x, y, s.link(j)) for j, (x, y) in enumerate(s.values)), key=lambda p: _as_number(p[0]))
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(float(y)):.1f}" for i, (x, y, _) in enumerate(pts)
        )
        frame.add(
            f'<g class="series"><path class="line" d="{path}" stroke="{s.colour}"><title>{escape(s.name)}</title>'
            f"</path>"
        )
        if len(pts) <= 120:
            for x, y, href in pts:
                label = (
                    x.strftime("%Y-%m-%d")
                    if time_axis and hasattr(x, "strftime")
                    else _fmt_number(_as_number(x), 1)
                )
                title = f"{s.name} · {label}: {fmt(float(y), 0.001)}"
                frame.mark(
                    f'<circle class="point" cx="{sx(x):.1f}" cy="{sy(float(y)):.1f}" r="3" fill="{s.colour}">'
                    f"<title>{escape(title)}</title></circle>",
                    href,
                    f"{title}: list these outputs",
                )
        frame.add("</g>")
    return frame.render("line")


def bar_chart(
    *,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    y_label: str = "",
    stacked: bool = False,
    targets: Sequence[Target] = (),
    y_max: float | None = None,
    fmt: Callable[[float, float], str] = _fmt_number,
    category_colours: Sequence[str] | None = None,
    empty: str = "No data in this period",
) -> SafeString:
    """Vertical bars, one group (or stack) per category; ``values`` align with ``categories``;
    None is a missing value (no bar), 0 a measured zero (a thin bar and a "0" label).
    ``category_colours`` colours one series' bars by category (each a model version whose
    colour the rest of the page uses); the category labels under the bars name them."""
    series = [
        Series(s.name, list(s.values), s.colour or PALETTE[i % len(PALETTE)], s.links)
        for i, s in enumerate(series)
    ]
    frame = _Frame(
        title, f"{len(categories)} categories, {len(series)} series" + (f"; {y_label}" if y_label else "")
    )
    present = [v for s in series for v in s.values if v is not None]
    if not categories or not present:
        return _empty(frame, "bar", empty)
    band = (frame.x1 - frame.x0) / len(categories)
    label_every, vertical = _category_layout(categories, band)
    if vertical:  # long names (model versions): written upwards under their bar, all of them
        frame.pad_bottom = PAD_BOTTOM + int(min(max(map(len, categories)), MAX_LABEL) * CHAR_W)
        frame.height += frame.pad_bottom - PAD_BOTTOM
    if stacked:
        top = max(sum(s.values[i] or 0 for s in series) for i in range(len(categories)))
    else:
        top = max(present)
    hi = max([top, y_max or 0] + [t.value for t in targets])
    ticks = nice_ticks(min(0.0, min(present)), hi)
    sy = _y_axis(frame, ticks, y_label, fmt)
    inner = band * 0.78
    bar_w = inner if stacked else inner / len(series)
    for i, cat in enumerate(categories):
        cx = frame.x0 + band * i + band / 2
        if vertical:
            shown = cat if len(cat) <= MAX_LABEL else cat[: MAX_LABEL - 1] + "…"
            frame.add(
                f'<text class="tick x-tick" transform="translate({cx:.1f} {frame.y0 + 8}) rotate(-90)" '
                f'text-anchor="end" dominant-baseline="middle">{escape(shown)}<title>{escape(cat)}</title></text>'
            )
        elif i % label_every == 0:
            frame.add(
                f'<text class="tick x-tick" x="{cx:.1f}" y="{frame.y0 + 16}" text-anchor="middle">'
                f"{escape(cat)}</text>"
            )
        base = 0.0
        zero = None
        for j, s in enumerate(series):
            v = s.values[i]
            if v is None or (stacked and v == 0):
                zero = s if stacked and v == 0 and zero is None else zero
                continue
            colour = category_colours[i] if category_colours else s.colour
            lo, hi_v = (base, base + v) if stacked else (0.0, v)
            x = cx - inner / 2 + (0 if stacked else j * bar_w)
            y_top, y_bot = sy(max(lo, hi_v)), sy(min(lo, hi_v))
            title = f"{s.name} · {cat}: {fmt(v, 0.001 if v < 10 else 1)}"
            if v == 0:  # a measured zero stays visible: a thin bar on the axis and its value
                y_top = y_bot - ZERO_BAR
                frame.add(
                    f'<text class="zero-label" x="{x + bar_w / 2:.1f}" y="{y_top - 3:.1f}" '
                    f'text-anchor="middle">0</text>'
                )
            frame.mark(
                f'<rect class="bar{" zero" if v == 0 else ""}" x="{x:.1f}" y="{y_top:.1f}" '
                f'width="{max(bar_w - 1, 1):.1f}" height="{max(y_bot - y_top, 0.5):.1f}" fill="{colour}">'
                f"<title>{escape(title)}</title></rect>",
                s.link(i),
                f"{title}: list these outputs",
            )
            if stacked:
                base += v
        if stacked and base == 0 and zero is not None:  # a stack of zeros: one thin bar, labelled
            y_bot = sy(0.0)
            frame.add(
                f'<rect class="bar zero" x="{cx - inner / 2:.1f}" y="{y_bot - ZERO_BAR:.1f}" '
                f'width="{max(inner - 1, 1):.1f}" height="{ZERO_BAR}" fill="{zero.colour}">'
                f"<title>{escape(cat)}: 0</title></rect>"
                f'<text class="zero-label" x="{cx:.1f}" y="{y_bot - ZERO_BAR - 3:.1f}" text-anchor="middle">0</text>'
            )
    _targets(frame, targets, sy, fmt)
    # Bars coloured by category are named by their labels: a key for the series would mislead.
    _legend(frame, [] if category_colours else series, targets)
    return frame.render("bar")


def _category_layout(categories: Sequence[str], band: float) -> tuple[int, bool]:
    """(label every n-th category, write them upwards). Labels that fit their band are all
    written across; many short ones (days) are thinned out; a few long ones (version names)
    are all written upwards, so that no two overlap and none is left out."""
    widest = max(len(c) for c in categories) * CHAR_W + 8
    if widest <= band:
        return 1, False
    if len(categories) > MAX_VERTICAL_LABELS or band < 14:
        return math.ceil(widest / band), False
    return 1, True


def histogram(
    *,
    title: str,
    edges: Sequence[float],
    series: Sequence[Series],
    x_label: str = "",
    y_label: str = "share of outputs",
    fmt: Callable[[float, float], str] = fmt_percent,
    targets: Sequence[Target] = (),
    bin_links: Sequence[str | None] | None = None,
    empty: str = "No data in this period",
) -> SafeString:
    """Overlaid step outlines with a light fill, one per series, over shared bins.
    ``edges`` has one more entry than each series' ``values``; ``targets`` mark x positions
    (a threshold), not y values; ``bin_links`` a drill-down URL per bin."""
    series = [
        Series(s.name, list(s.values), s.colour or PALETTE[i % len(PALETTE)]) for i, s in enumerate(series)
    ]
    frame = _Frame(title, f"distribution over {len(edges) - 1} bins, {len(series)} series")
    present = [v for s in series for v in s.values if v]
    if not present:
        return _empty(frame, "histogram", empty)
    ticks = nice_ticks(0.0, max(present))
    sy = _y_axis(frame, ticks, y_label, fmt)
    lo, hi = edges[0], edges[-1]

    def sx(v: float) -> float:
        return frame.x0 + (v - lo) / (hi - lo) * (frame.x1 - frame.x0)

    for t in nice_ticks(lo, hi, 10):
        if lo <= t <= hi:
            frame.add(
                f'<text class="tick" x="{sx(t):.1f}" y="{frame.y0 + 16}" text-anchor="middle">{t:g}</text>'
            )
    if x_label:
        frame.add(
            f'<text class="axis-label" x="{(frame.x0 + frame.x1) / 2}" y="{frame.height - 4}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
        )
    for t in targets:
        frame.add(
            f'<line class="target" x1="{sx(t.value):.1f}" y1="{frame.y1}" x2="{sx(t.value):.1f}" '
            f'y2="{frame.y0}" stroke="{TARGET_COLOUR}" stroke-dasharray="4 3"><title>{escape(t.label)}: '
            f"{t.value:g}</title></line>"
        )
    _legend(frame, series, targets)
    for s in series:
        d = [f"M{sx(edges[0]):.1f},{sy(0):.1f}"]
        for i, v in enumerate(s.values):
            d.append(f"L{sx(edges[i]):.1f},{sy(v or 0):.1f} L{sx(edges[i + 1]):.1f},{sy(v or 0):.1f}")
        d.append(f"L{sx(edges[-1]):.1f},{sy(0):.1f} Z")
        frame.add(
            f'<g class="series"><path class="area" d="{" ".join(d)}" fill="{s.colour}" stroke="{s.colour}">'
            f"<title>{escape(s.name)}</title></path></g>"
        )
    for i in range(len(edges) - 1):  # an invisible hit box per bin: every series' value there
        band = f"{edges[i]:g}–{edges[i + 1]:g}"
        title = f"{band}: " + ", ".join(f"{s.name} {fmt(s.values[i] or 0, 0.001)}" for s in series)
        frame.mark(
            f'<rect class="hit" x="{sx(edges[i]):.1f}" y="{frame.y1}" width="{sx(edges[i + 1]) - sx(edges[i]):.1f}"'
            f' height="{frame.y0 - frame.y1}"><title>{escape(title)}</title></rect>',
            bin_links[i] if bin_links else None,
            f"scores {band}: list these outputs",
        )
    return frame.render("histogram")
