"""Pictures of counterfactuals: one row per input (original | counterfactual | |difference| | consensus | region),
each under its caption, with column headers and colour bars (``grid.png`` and the W&B panels).

The tiles are enlarged by a whole factor (nearest neighbour, so pixels stay sharp) and placed 1:1 on a
matplotlib figure, which draws the text and the colour bars.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import IdentityTransform
from PIL import Image
from torch import Tensor
from torch.nn import functional as F

from ldce.images import read_image, to_uint8
from ldce.results.captions import ALREADY_TARGET, NOT_FLIPPED, STATUS_COLOURS, Outcome, wrapped
from ldce.results.record import Record

log = logging.getLogger(__name__)

DPI = 100
FONT, SMALL = 9.0, 7.5
"""Caption and header / colour-bar font sizes in points (at ``DPI``, 1 pt = DPI/72 px)."""
MARGIN, GAP, ROW_GAP, BAR = 10, 6, 14, 10
"""Pixels: figure margin, gap between tiles, gap between rows, colour-bar thickness."""
MIN_TILE = 128
"""Tiles are enlarged by the smallest whole factor that makes them at least this many pixels high."""
DIFFERENCE_CMAP, SHARE_CMAP = "magma", "viridis"


def coloured(values: Tensor, cmap: str) -> Tensor:
    """``(H, W)`` in [0, 1] → ``(3, H, W)`` in [0, 1] through a matplotlib colour map."""
    rgb = colormaps[cmap](values.float().clamp(0, 1).numpy())[..., :3]
    return torch.from_numpy(rgb).permute(2, 0, 1).float()


def difference_map(original: Tensor, counterfactual: Tensor) -> Tensor:
    """``|x_cf − x|`` averaged over RGB, ``(H, W)`` in [0, 1], on a fixed scale (1 = black ↔ white)."""
    return (counterfactual - original).abs().mean(0)


def over_faint(colour: Tensor, image: Tensor) -> Tensor:
    """A colour map ``(3, H, W)`` laid over the faint grey of ``image`` ``(3, H, W)``, so that it shows where."""
    return 0.75 * colour + 0.25 * image.mean(0, keepdim=True)


def consensus_map(consensus: Tensor, original: Tensor) -> Tensor:
    """Share of steps in consensus ``(h, w)`` in [0, 1] at latent resolution, upsampled (nearest) to the
    image and coloured over it: ``(3, H, W)``."""
    share = F.interpolate(consensus[None, None].float(), size=tuple(original.shape[-2:]), mode="nearest")[0, 0]
    return over_faint(coloured(share, SHARE_CMAP), original)


def region_view(original: Tensor, region: Tensor) -> Tensor:
    """The pixel region ``(H, W)`` in [0, 1] (1: may change) coloured over the faint original ``(3, H, W)``."""
    return over_faint(coloured(region, SHARE_CMAP), original)


@dataclass(frozen=True)
class ColourScale:
    """A colour bar above column ``column``: colour map ``cmap`` over [vmin, vmax], named ``label``."""

    column: int
    cmap: str
    label: str
    vmin: float = 0.0
    vmax: float = 1.0


@dataclass(frozen=True)
class GridRow:
    """One row: tiles ``(H, W, 3)`` uint8 (equal sizes), caption lines, and a status of
    :mod:`ldce.results.captions` that colours the first line and frames the row (``None``: plain)."""

    tiles: list[np.ndarray]
    lines: list[str]
    status: str | None = None


@dataclass(frozen=True)
class Columns:
    """Column headers and colour bars of a grid."""

    headers: list[str]
    scales: list[ColourScale] = field(default_factory=list)


COUNTERFACTUAL_COLUMNS = Columns(
    ["original", "counterfactual", "|difference|", "consensus", "region"],
    [
        ColourScale(2, DIFFERENCE_CMAP, "|x_cf − x|, mean over RGB (pixels in 0–1)"),
        ColourScale(3, SHARE_CMAP, "share of guided steps in consensus"),
        ColourScale(4, SHARE_CMAP, "region: 1 = may change"),
    ],
)


def counterfactual_row(
    original: Tensor, counterfactual: Tensor, outcome: Outcome, consensus: Tensor | None, region: Tensor | None
) -> GridRow:
    """original, counterfactual ``(3, H, W)`` in [0, 1]; consensus ``(h, w)`` share of steps; region
    ``(H, W)`` in [0, 1]. Tiles: original | counterfactual | |difference| | consensus | region (those given;
    an absent consensus before a region is a grey tile)."""
    tiles = [original, counterfactual, coloured(difference_map(original, counterfactual), DIFFERENCE_CMAP)]
    if consensus is not None or region is not None:
        tiles.append(torch.full_like(original, 0.5) if consensus is None else consensus_map(consensus, original))
    if region is not None:
        tiles.append(region_view(original, region))
    return GridRow([to_uint8(t) for t in tiles], outcome.lines(), outcome.status)


def enlargement(side: int, scale: int | None = None) -> int:
    """``scale``, or the smallest whole factor that makes a ``side``-pixel tile at least :data:`MIN_TILE`."""
    return scale or max(1, math.ceil(MIN_TILE / side))


def _chars(width_px: float, points: float, bold: bool = False) -> int:
    """How many characters fit in ``width_px`` at ``points``, at 0.68 em each (0.75 bold). Measured: DejaVu
    Sans lower-case letters are 0.6–0.62 em wide (bold 0.66–0.7), all but ``m`` and ``w``."""
    return int(width_px / (points * DPI / 72 * (0.75 if bold else 0.68)))


def _line_px(points: float) -> float:
    return points * DPI / 72 * 1.3


class _Layout:
    """Pixel positions of a grid, top to bottom — its title, column headers, colour bars and rows — for
    rows of ``columns`` tiles of ``tile`` pixels."""

    def __init__(self, rows: Sequence[GridRow], columns: Columns, tile: tuple[int, int], title: str | None) -> None:
        self.tile_h, self.tile_w = tile
        self.count = max(len(r.tiles) for r in rows)
        self.width = 2 * MARGIN + self.count * self.tile_w + (self.count - 1) * GAP
        bold_chars, chars = _chars(self.width - 2 * MARGIN, FONT, bold=True), _chars(self.width - 2 * MARGIN, FONT)
        self.small_chars = _chars(self.tile_w, SMALL)
        self.title = wrapped([title], chars) if title else []
        self.title_h = len(self.title) * _line_px(FONT) + (6 if title else 0)
        self.headers = [wrapped([h], self.small_chars) for h in columns.headers[: self.count]]
        self.scales = [s for s in columns.scales if s.column < self.count]
        self.header_h = max(len(h) for h in self.headers) * _line_px(SMALL) + 4
        labels = [len(wrapped([s.label], self.small_chars)) for s in self.scales]
        self.scale_h = (BAR + _line_px(SMALL) * (1 + max(labels)) + 6) if self.scales else 0
        self.captions = [(wrapped(r.lines[:1], bold_chars), wrapped(r.lines[1:], chars)) for r in rows]
        top = MARGIN + self.title_h + self.header_h + self.scale_h
        self.tops = []
        for head, rest in self.captions:
            self.tops.append(top)
            top += (len(head) + len(rest)) * _line_px(FONT) + 4 + self.tile_h + ROW_GAP
        self.height = int(math.ceil(top - ROW_GAP + MARGIN))

    def x(self, column: int) -> int:
        return MARGIN + column * (self.tile_w + GAP)


def grid(rows: Sequence[GridRow], columns: Columns, scale: int | None = None, title: str | None = None) -> Image.Image:
    """The rows under a title line (if any), their column headers and colour bars, tiles ``(H, W, 3)``
    enlarged by ``enlargement(H, scale)``; an RGB picture as many tiles wide as the widest row (the
    first headers)."""
    factor = enlargement(rows[0].tiles[0].shape[0], scale)
    tile = (rows[0].tiles[0].shape[0] * factor, rows[0].tiles[0].shape[1] * factor)
    layout = _Layout(rows, columns, tile, title)
    figure = Figure(figsize=(layout.width / DPI, layout.height / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(figure)
    _draw_columns(figure, layout)
    for row, caption, top in zip(rows, layout.captions, layout.tops, strict=True):
        _draw_row(figure, layout, row, caption, top, factor)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def _text(figure: Figure, layout: _Layout, x: float, y: float, text: str, **style) -> None:
    """``text`` with its top at pixel ``(x, y)`` from the top left."""
    figure.text(x / layout.width, 1 - y / layout.height, text, va="top", **style)


def _draw_columns(figure: Figure, layout: _Layout) -> None:
    if layout.title:
        _text(figure, layout, MARGIN, MARGIN, "\n".join(layout.title), fontsize=FONT, style="italic")
    headers_top = MARGIN + layout.title_h
    for column, header in enumerate(layout.headers):
        centre = layout.x(column) + layout.tile_w / 2
        _text(figure, layout, centre, headers_top, "\n".join(header), ha="center", fontsize=SMALL, weight="bold")
    bar_top = headers_top + layout.header_h
    for s in layout.scales:
        left, bottom = layout.x(s.column) / layout.width, 1 - (bar_top + BAR) / layout.height
        axes = figure.add_axes((left, bottom, layout.tile_w / layout.width, BAR / layout.height))
        bar = figure.colorbar(ScalarMappable(Normalize(s.vmin, s.vmax), s.cmap), cax=axes, orientation="horizontal")
        ticks = [s.vmin, (s.vmin + s.vmax) / 2, s.vmax]
        bar.set_ticks(ticks, labels=[f"{v:g}" for v in ticks])
        axes.tick_params(labelsize=SMALL - 1, length=2, pad=1)
        for label, align in zip(axes.get_xticklabels(), ("left", "center", "right"), strict=True):
            label.set_horizontalalignment(align)  # the end labels stay above their own tile
        label_top = bar_top + BAR + _line_px(SMALL)
        label = "\n".join(wrapped([s.label], layout.small_chars))
        _text(figure, layout, layout.x(s.column), label_top, label, fontsize=SMALL - 0.5, color="dimgray")


def _draw_row(figure: Figure, layout: _Layout, row: GridRow, caption: tuple, top: float, factor: int) -> None:
    """One row: its caption (the first line bold, in the status colour), its tiles and, for a status
    that needs attention, a frame."""
    colour, (head, rest) = STATUS_COLOURS.get(row.status, "black"), caption
    _text(figure, layout, MARGIN, top, "\n".join(head), fontsize=FONT, color=colour, weight="bold")
    if rest:
        below = top + len(head) * _line_px(FONT)
        _text(figure, layout, MARGIN, below, "\n".join(rest), fontsize=FONT, linespacing=1.05)
    tiles_top = top + (len(head) + len(rest)) * _line_px(FONT) + 4
    for column, tile in enumerate(row.tiles):
        big = np.kron(tile, np.ones((factor, factor, 1), np.uint8))
        figure.figimage(big, xo=layout.x(column), yo=layout.height - tiles_top - layout.tile_h, origin="upper")
    if row.status in (NOT_FLIPPED, ALREADY_TARGET):  # framed, in the status colour
        height = tiles_top + layout.tile_h - top + 6
        corner = (MARGIN / 2, layout.height - top - height + 3)
        frame = Rectangle(corner, layout.width - MARGIN, height, transform=IdentityTransform(), fill=False)
        figure.add_artist(frame).set(edgecolor=colour, linewidth=2.5)


def grid_picture(
    output_dir: Path, records: Sequence[Record], scale: int | None = None, title: str | None = None
) -> Image.Image | None:
    """The grid of ``records`` (images read from ``output_dir``) under ``title``, each row captioned with
    its key and :class:`Outcome`; a record whose images cannot be read is left out with a warning
    (``None`` when none can)."""
    rows = []
    for r in records:
        try:
            consensus, region = (
                None if path is None else read_image(output_dir / path)[0]
                for path in (r.files.consensus, r.files.region)
            )
            original, counterfactual = (
                read_image(output_dir / path) for path in (r.files.original, r.files.counterfactual)
            )
        except (OSError, ValueError) as error:
            log.warning("grid.png leaves out %s: its images cannot be read (%s)", r.key, error)
            continue
        rows.append(counterfactual_row(original, counterfactual, Outcome.of_record(r), consensus, region))
    return grid(rows, COUNTERFACTUAL_COLUMNS, scale, title) if rows else None
