"""Server-side SVG line charts: the page ships the drawing, no chart library and no script. The
geometry is computed here and drawn by templates/inventory/_chart.html, which also prints the
same numbers as a <table> for screen readers (and for anyone who wants the figures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

WIDTH = 720
HEIGHT = 240
PAD_LEFT = 56
PAD_RIGHT = 12
PAD_TOP = 12
PAD_BOTTOM = 28


@dataclass
class Point:
    x: float
    y: float
    value: Decimal | int
    label: str


@dataclass
class Series:
    name: str
    css: str  # a class from app.css: series-0, series-1, ...
    points: list[Point] = field(default_factory=list)

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass
class Chart:
    title: str
    labels: list[str]
    series: list[Series]
    y_ticks: list[tuple[float, Decimal | int]]
    x_ticks: list[tuple[float, str]]
    zero_y: float | None
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def rows(self) -> list[tuple[str, list]]:
        """The table fallback: one row per label, one cell per series."""
        return [
            (label, [s.points[i].value for s in self.series]) for i, label in enumerate(self.labels)
        ]

    @property
    def empty(self) -> bool:
        return not self.labels


def line_chart(
    title: str,
    labels: list[str],
    named_values: list[tuple[str, list]],
    tick_labels: list[str] | None = None,
) -> Chart:
    """`named_values`: (series name, one value per label). The y axis spans every value and 0."""
    values = [v for _, vs in named_values for v in vs]
    low = min([0, *values])
    high = max([0, *values])
    if high == low:
        high = low + 1
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    n = len(labels)

    def x_at(i: int) -> float:
        return PAD_LEFT + (inner_w * i / (n - 1) if n > 1 else inner_w / 2)

    def y_at(v) -> float:
        return PAD_TOP + inner_h * float(
            (Decimal(high) - Decimal(v)) / (Decimal(high) - Decimal(low))
        )

    series = [
        Series(
            name=name,
            css=f"series-{k}",
            points=[Point(x_at(i), y_at(v), v, labels[i]) for i, v in enumerate(vs)],
        )
        for k, (name, vs) in enumerate(named_values)
    ]
    y_ticks = [(y_at(v), v) for v in sorted({low, high, 0})]
    step = max(1, n // 6)
    ticks = tick_labels or labels  # shorter text under the axis, the full labels in the table
    x_ticks = [(x_at(i), ticks[i]) for i in range(0, n, step)] if n else []
    return Chart(
        title=title,
        labels=labels,
        series=series,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        zero_y=y_at(0) if low < 0 else None,
    )
