"""Small SVG charts for the workbench: drawn on the server, no script, nothing fetched from elsewhere."""

from __future__ import annotations

from html import escape

COLOURS = {
    "shown": "#57606a",
    "accepted": "#1a7f37",
    "overridden": "#d1242f",
    "agree": "#1a7f37",
    "disagree": "#d1242f",
}
_DEFAULT = "#0b6efd"


def _figure(title: str, inner: str, caption_extra: str = "") -> str:
    return f'<figure class="chart"><figcaption>{escape(title)} {caption_extra}</figcaption>{inner}</figure>'


def _svg(title: str, width: int, height: int, parts: list[str]) -> str:
    label = escape(title, quote=True)
    return f'<svg role="img" aria-label="{label}" width="{width}" height="{height}">{"".join(parts)}</svg>'


def bars(title: str, groups: list[tuple[str, dict[str, int]]], series: list[str], width: int = 640) -> str:
    """Grouped horizontal bars: one group per label (a rule version), one bar per series (shown, accepted...)."""
    if not groups:
        return _figure(title, '<p class="empty">No data yet.</p>')
    peak = max([1, *(v for _, values in groups for v in values.values())])
    bar, gap, label_w = 14, 10, 230
    height = len(groups) * (len(series) * bar + gap) + 30
    parts, y = [], 10
    for label, values in groups:
        parts.append(f'<text x="0" y="{y + bar}" class="label">{escape(label)}</text>')
        for name in series:
            value = values.get(name, 0)
            w = (width - label_w - 60) * value / peak
            colour = COLOURS.get(name, _DEFAULT)
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar - 2}" fill="{colour}">'
                f"<title>{escape(name)}: {value}</title></rect>"
            )
            parts.append(
                f'<text x="{label_w + w + 4:.1f}" y="{y + bar - 3}" class="value">{value} {escape(name)}</text>'
            )
            y += bar
        y += gap
    return _figure(title, _svg(title, width, height, parts))


def timeline(title: str, days: list[str], lines: dict[str, list[int]], width: int = 640, height: int = 180) -> str:
    """One polyline per series over the days, with a dot on each day (so a single day shows)."""
    if not days:
        return _figure(title, '<p class="empty">No data yet.</p>')
    peak = max([1, *(v for values in lines.values() for v in values)])
    left, bottom = 40, height - 30
    step = (width - left - 20) / max(1, len(days) - 1)
    parts = [f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#d0d7de"/>']
    for name, values in lines.items():
        points = " ".join(
            f"{left + i * step:.1f},{bottom - (bottom - 10) * v / peak:.1f}" for i, v in enumerate(values)
        )
        colour = COLOURS.get(name, _DEFAULT)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">')
        parts.append(f"<title>{escape(name)}</title></polyline>")
        for i, v in enumerate(values):  # a dot per day: one day of data is a point a line cannot draw
            x, y = left + i * step, bottom - (bottom - 10) * v / peak
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">')
            parts.append(f"<title>{escape(name)} {escape(days[i])}: {v}</title></circle>")
    parts.append(f'<text x="{left}" y="{height - 8}" class="label">{escape(days[0])}</text>')
    if len(days) > 1:
        parts.append(f'<text x="{width - 10}" y="{height - 8}" class="label" text-anchor="end">')
        parts.append(f"{escape(days[-1])}</text>")
    legend = " ".join(f'<span style="color:{COLOURS.get(n, _DEFAULT)}">&#9632; {escape(n)}</span>' for n in lines)
    return _figure(title, _svg(title, width, height, parts), legend)
