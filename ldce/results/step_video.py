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
    """One frame per step, ``(n, F_h, F_w, 3)`` uint8: the label on top, ``x̂0`` | consensus mask, and
    ``p(target)`` over the steps with the current one marked."""
    n, _, side, width = steps.images.shape
    factor = max(1, math.ceil(VIDEO_TILE / side))
    tile_h, tile_w = side * factor, width * factor
    columns = 1 if steps.masks is None else 2
    width = _even(2 * MARGIN + columns * tile_w + (columns - 1) * GAP)
    chars = int((width - 2 * MARGIN) / (FONT * DPI / 72 * 0.7))  # bold DejaVu Sans: ≤ 0.7 em a character
    title_h = (len(wrapped(label(steps, 0), chars)) + 0.5) * FONT * DPI / 72 * 1.3
    top = MARGIN + title_h + HEADER
    size = (width, _even(top + tile_h + (LEGEND if steps.masks is not None else 0) + CURVE))
    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(figure)
    title = figure.text(MARGIN / size[0], 1 - MARGIN / size[1], "", va="top", fontsize=FONT, weight="bold")
    for column, header in enumerate(["x̂0 (predicted clean image)", "consensus at this step"][:columns]):
        x = (MARGIN + column * (tile_w + GAP) + tile_w / 2) / size[0]
        figure.text(x, 1 - (top - 3) / size[1], header, ha="center", va="bottom", fontsize=SMALL)
    picture = figure.figimage(np.zeros((tile_h, tile_w, 3)), xo=MARGIN, yo=size[1] - top - tile_h, origin="upper")
    if steps.masks is not None:
        cmap = colormaps[SHARE_CMAP]
        patches = [Patch(color=cmap(1.0), label="in consensus"), Patch(color=cmap(0.0), label="not")]
        anchor = ((MARGIN + tile_w + GAP + tile_w / 2) / size[0], 1 - (top + tile_h) / size[1])
        figure.legend(
            handles=patches, loc="upper center", bbox_to_anchor=anchor, ncol=2, fontsize=SMALL - 1, frameon=False
        )
    marker = _curve(figure, steps, size)
    gap = np.full((tile_h, GAP, 3), 255, np.uint8)
    out = []
    for k in range(n):
        tiles = [steps.images[k]] + ([] if steps.masks is None else [consensus_map(steps.masks[k], steps.images[k])])
        big = [_enlarged(to_uint8(t), factor) for t in tiles]
        picture.set_data(np.concatenate(big if len(big) == 1 else [big[0], gap, big[1]], axis=1))
        title.set_text("\n".join(wrapped(label(steps, k), chars)))
        if marker is not None:
            marker.set_data([k + 1], [float(steps.probabilities[k])])
        canvas.draw()
        out.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return np.stack(out)


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
