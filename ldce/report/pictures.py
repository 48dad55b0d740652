"""The report's own pictures, drawn with matplotlib: signed difference images on one shared colour scale
with its colour bar, and ``p(target | x̂0)`` over the guided steps of each input."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from ldce.images import read_image
from ldce.results import store

COLORMAP = "RdBu_r"
"""Diverging: red where the counterfactual is brighter than the original, blue where darker, white same."""
SCALES = (0.05, 0.1, 0.25, 0.5, 1.0)


def signed_difference(original: Path, counterfactual: Path) -> np.ndarray:
    """``Δ = x' − x`` of two 8-bit image files averaged over RGB: ``(H, W)`` in [−1, 1] (``ValueError``
    when their sizes differ)."""
    return (read_image(counterfactual).numpy() - read_image(original).numpy()).mean(axis=0)


def peak(difference: np.ndarray) -> float:
    """The 99th percentile of ``|Δ|``: the largest change of an image, but for a few outlying pixels."""
    return float(np.percentile(np.abs(difference), 99))


def shared_scale(peaks: Iterable[float]) -> float:
    """The smallest of :data:`SCALES` that holds every input's :func:`peak` (larger values saturate):
    one colour scale for all inputs, so that their colours compare."""
    largest = max(peaks, default=SCALES[-1])
    return next((scale for scale in SCALES if largest <= scale), SCALES[-1])


def save_difference(difference: np.ndarray, scale: float, path: Path) -> None:
    """``difference`` ``(H, W)`` coloured with :data:`COLORMAP` on ``[−scale, scale]``, as a PNG of the same size."""
    colours = matplotlib.colormaps[COLORMAP](Normalize(-scale, scale, clip=True)(difference))
    store.save_image(Image.fromarray((colours[..., :3] * 255).round().astype(np.uint8)), path)


def save_colour_bar(scale: float, path: Path) -> None:
    """The colour bar of :func:`save_difference` at ``scale`` (about 360 × 70 px)."""
    figure = Figure(figsize=(3.6, 0.7), dpi=100, layout="constrained")  # no pyplot: no global figure state
    bar = figure.colorbar(
        ScalarMappable(Normalize(-scale, scale), COLORMAP), cax=figure.add_subplot(), orientation="horizontal"
    )
    bar.set_label("Δ = counterfactual − original (mean of R, G, B)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    store.atomic_write(path, lambda handle: figure.savefig(handle, format="png"))


class ConfidencePlots:
    """Small line plots of ``p(target | x̂0)`` (in [0, 1]) over the guided steps, one PNG per input
    (160 × 80 px). The axes are drawn once; each input's line is drawn over a copy of them (matplotlib's
    blitting), a few milliseconds per input instead of a full figure."""

    def __init__(self) -> None:
        figure = Figure(figsize=(1.6, 0.8), dpi=100, layout="constrained")
        self.canvas, self.axes = FigureCanvasAgg(figure), figure.add_subplot()
        (self.line,) = self.axes.plot([], [], color="#1f77b4", linewidth=1.5, animated=True)
        self.axes.axhline(0.5, color="#999999", linewidth=0.6, linestyle="--")
        self.axes.set(xlim=(0, 100), ylim=(0, 1), yticks=[0, 0.5, 1], xticks=[0, 50, 100])
        self.axes.set_xlabel("% of guided steps", fontsize=7, labelpad=1)
        self.axes.set_ylabel("p(target)", fontsize=7, labelpad=1)
        self.axes.tick_params(labelsize=6, length=2, pad=1)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(figure.bbox)

    def save(self, confidence: Sequence[float], path: Path) -> None:
        """confidence: ``p(target | x̂0)`` at evenly spaced guided steps, the first and the last included."""
        steps = np.linspace(0, 100, len(confidence)) if len(confidence) > 1 else np.array([100.0])
        self.line.set_data(steps, np.asarray(confidence))
        self.canvas.restore_region(self.background)
        self.axes.draw_artist(self.line)
        store.save_image(Image.fromarray(np.asarray(self.canvas.buffer_rgba())).convert("RGB"), path)
