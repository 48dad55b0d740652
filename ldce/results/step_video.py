"""Step videos: every guided step's predicted clean image ``x̂0`` beside its consensus mask, labelled with the
step, its timestep and ``p(target | x̂0)``, over a curve of that probability. MP4 (H.264) where PyAV is
installed (torchvision 0.29 no longer writes video), an animated GIF otherwise.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image
from torch import Tensor

from ldce.images import to_uint8
from ldce.results import store
from ldce.results.captions import wrapped
from ldce.results.pictures import DPI, FONT, SHARE_CMAP, SMALL, consensus_map

VIDEO_TILE = 160
"""Frames show ``x̂0`` enlarged by the smallest whole factor that makes it at least this many pixels high."""
FRAME_MS = 120
"""Each frame's duration in milliseconds."""
MARGIN, GAP, HEADER, LEGEND, CURVE = 10, 8, 18, 18, 90
"""Pixels: frame margin, gap between the tiles, their headers, the legend under them, the curve below."""


def video_suffix() -> str:
    """``.mp4`` where PyAV is installed, else ``.gif``."""
    return ".mp4" if importlib.util.find_spec("av") is not None else ".gif"


@dataclass(frozen=True)
class Steps:
    """One input's guided steps (``n``, in denoising order).

    images: ``x̂0`` ``(n, 3, H, W)`` in [0, 1]; masks: bool ``(n, h, w)``, where the step was in consensus
    (``None``: no consensus term); probabilities: ``p(target | x̂0)`` ``(n,)`` in [0, 1] (``None``: no
    classifier term); timesteps: int64 ``(n,)``, each step's ``τ_i`` (``None``: not recorded);
    target: the target's name.
    """

    images: Tensor
    masks: Tensor | None
    probabilities: Tensor | None
    timesteps: Tensor | None
    target: str


def label(steps: Steps, k: int) -> list[str]:
    """``step 3/25 · t = 481`` / ``p(Coat) = 0.43``: what frame ``k`` (0-based) shows."""
    step = f"step {k + 1}/{len(steps.images)}"
    lines = [step if steps.timesteps is None else f"{step} · t = {int(steps.timesteps[k])}"]
    if steps.probabilities is not None:
        lines.append(f"p({steps.target}) = {float(steps.probabilities[k]):.2f}")
    return lines


def _even(pixels: float) -> int:
    """Video codecs want even sides."""
    return 2 * math.ceil(pixels / 2)


def frames(steps: Steps) -> np.ndarray:
    """One frame per step, ``(n, F_h, F_w, 3)`` uint8 (even sides): the label on top, ``x̂0`` | consensus
    mask, and ``p(target)`` over the steps with the current one marked."""
    canvas = _StepCanvas(steps)
    return np.stack([canvas.frame(k) for k in range(len(steps.images))])


class _StepCanvas:
    """One input's frame layout; the fixed parts are drawn once and each frame redraws only the tiles,
    the label and the marker (matplotlib blitting)."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        _, _, side, width = steps.images.shape
        self.factor = max(1, math.ceil(VIDEO_TILE / side))
        tile_h, tile_w = side * self.factor, width * self.factor
        columns = 1 if steps.masks is None else 2
        width = _even(2 * MARGIN + columns * tile_w + (columns - 1) * GAP)
        self.chars = int((width - 2 * MARGIN) / (FONT * DPI / 72 * 0.75))  # bold DejaVu Sans: < 0.75 em
        title_h = (len(wrapped(label(steps, 0), self.chars)) + 0.5) * FONT * DPI / 72 * 1.3
        top = MARGIN + title_h + HEADER
        size = (width, _even(top + tile_h + (LEGEND if steps.masks is not None else 0) + CURVE))
        self.figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)
        self.title = self.figure.text(
            MARGIN / size[0], 1 - MARGIN / size[1], "", va="top", fontsize=FONT, weight="bold"
        )
        for column, header in enumerate(["x̂0 (predicted clean image)", "consensus at this step"][:columns]):
            x = (MARGIN + column * (tile_w + GAP) + tile_w / 2) / size[0]
            self.figure.text(x, 1 - (top - 3) / size[1], header, ha="center", va="bottom", fontsize=SMALL)
        empty = np.zeros((tile_h, tile_w, 3))
        self.picture = self.figure.figimage(empty, xo=MARGIN, yo=size[1] - top - tile_h, origin="upper")
        if steps.masks is not None:
            anchor = ((MARGIN + tile_w + GAP + tile_w / 2) / size[0], 1 - (top + tile_h) / size[1])
            _legend(self.figure, anchor)
        self.marker = _curve(self.figure, steps, size)
        self.gap = np.full((tile_h, GAP, 3), 255, np.uint8)
        self.moving = [a for a in (self.picture, self.title, self.marker) if a is not None]
        for artist in self.moving:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def frame(self, k: int) -> np.ndarray:
        """Step ``k`` (0-based) as ``(F_h, F_w, 3)`` uint8."""
        image, masks = self.steps.images[k], self.steps.masks
        tiles = [_enlarged(to_uint8(image), self.factor)]
        if masks is not None:
            tiles += [self.gap, _enlarged(to_uint8(consensus_map(masks[k], image)), self.factor)]
        self.picture.set_data(np.concatenate(tiles, axis=1))
        self.title.set_text("\n".join(wrapped(label(self.steps, k), self.chars)))
        if self.marker is not None:
            self.marker.set_data([k + 1], [float(self.steps.probabilities[k])])
        self.canvas.restore_region(self.background)
        for artist in self.moving:
            (artist.axes or self.figure).draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def _legend(figure: Figure, anchor: tuple[float, float]) -> None:
    """What the mask's two colours mean, centred under it at ``anchor`` (figure fraction)."""
    cmap = colormaps[SHARE_CMAP]
    patches = [Patch(color=cmap(1.0), label="in consensus"), Patch(color=cmap(0.0), label="not")]
    figure.legend(handles=patches, loc="upper center", bbox_to_anchor=anchor, ncol=2, fontsize=SMALL - 1, frameon=False)


def _enlarged(tile: np.ndarray, factor: int) -> np.ndarray:
    return np.kron(tile, np.ones((factor, factor, 1), np.uint8))


def _curve(figure: Figure, steps: Steps, size: tuple[int, int]):
    """``p(target)`` over the steps under the tiles; returns the marker of the current step (``None``:
    no probabilities)."""
    if steps.probabilities is None:
        return None
    left, bottom = 44 / size[0], (MARGIN + 26) / size[1]
    axes = figure.add_axes((left, bottom, 1 - left - MARGIN / size[0], (CURVE - 50) / size[1]))
    x = np.arange(1, len(steps.probabilities) + 1)
    axes.plot(x, steps.probabilities.float().numpy(), color="tab:blue", linewidth=1.2)
    axes.set(ylim=(0, 1), xlim=(0.5, len(x) + 0.5))
    axes.set_xlabel("guided step", fontsize=SMALL - 1, labelpad=1)
    axes.set_ylabel("p(target)", fontsize=SMALL - 1, labelpad=1)
    axes.tick_params(labelsize=SMALL - 1.5, length=2, pad=1)
    axes.grid(alpha=0.3)
    (marker,) = axes.plot([], [], "o", color="tab:red", markersize=4)
    return marker


def write_video(video: np.ndarray, path: Path) -> None:
    """Frames ``(n, H, W, 3)`` uint8 (even sides) as ``path``: ``.mp4`` (H.264 through PyAV), else a looping GIF."""
    if path.suffix == ".mp4":
        store.atomic_write(path, lambda handle: _encode_mp4(video, handle))
        return
    first, *rest = (Image.fromarray(frame) for frame in video)
    store.save_image(first, path, save_all=True, append_images=rest, duration=FRAME_MS, loop=0)


def _encode_mp4(video: np.ndarray, handle) -> None:
    import av

    with av.open(handle, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(1000, FRAME_MS))
        stream.height, stream.width, stream.pix_fmt = video.shape[1], video.shape[2], "yuv420p"
        for frame in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder
