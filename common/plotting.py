"""Plots saved to a file: the line plots of tools/plot_log.py's training curves and benchmark.py's speedups,
and the heat map of score.py's confusion matrix. Uses a bare matplotlib Figure (Agg for PNG), so no display or pyplot state is involved."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


@dataclass
class Series:
    """One line: `x` and `y` of equal length; `color` None takes the next default colour."""
    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str | None = None
    linestyle: str = "-"
    marker: str = "o"


@dataclass
class Panel:
    """One set of axes. `integer_x` puts ticks on whole numbers only (epochs, GPU counts); `y_from_zero`
    starts the y axis at 0, so that lines compare as ratios (speeds, speedups)."""
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    integer_x: bool = False
    y_from_zero: bool = False


def save_line_plots(panels: Sequence[Panel], path: str, title: str | None = None,
                    panel_size: tuple[float, float] = (5.0, 4.0), dpi: int = 100) -> None:
    """Draw `panels` side by side, each with its legend, and save to `path` (format from the extension).
    The image is exactly `len(panels) * panel_size[0] * dpi` by `panel_size[1] * dpi` pixels."""
    figure = Figure(figsize=(panel_size[0] * len(panels), panel_size[1]), dpi=dpi, layout="constrained")
    for axes, panel in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        axes.set_title(panel.title)
        axes.set_xlabel(panel.xlabel)
        axes.set_ylabel(panel.ylabel)
        axes.grid(True, alpha=0.3)
        if panel.integer_x:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        drawn = [s for s in panel.series if len(s.x)]
        for s in drawn:
            axes.plot(s.x, s.y, label=s.label, color=s.color, linestyle=s.linestyle, marker=s.marker,
                      markersize=4)
        if panel.y_from_zero:
            axes.set_ylim(bottom=0)
        if drawn:
            axes.legend()
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="gray")
    if title:
        figure.suptitle(title)
    figure.savefig(path)


def save_heat_map(values: np.ndarray, names: Sequence[str], path: str, title: str, xlabel: str, ylabel: str,
                  name_length: int = 24) -> None:
    """Draw a square matrix of values in [0, 1] (rows and columns both named by `names`, cut to
    `name_length` characters) as a heat map with its colour bar, each cell of 0.01 or more written as a
    percentage, and save it to `path`. Readable up to about 50 names (score.py shows no more)."""
    n = len(names)
    side = min(24.0, max(6.0, 0.35 * n + 3))
    figure = Figure(figsize=(side + 1.5, side), dpi=100, layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the row")
    labels = [name if len(name) <= name_length else name[:name_length - 1] + "…" for name in names]
    axes.set_xticks(range(n), labels, rotation=90, fontsize=8)
    axes.set_yticks(range(n), labels, fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    for (row, column), value in np.ndenumerate(values):
        if value >= 0.01:
            axes.text(column, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.5 else "black")
    figure.savefig(path, bbox_inches="tight")  # long class names would otherwise push the colour bar out
