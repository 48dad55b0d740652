"""Pictures of counterfactuals: panels (original | counterfactual | |difference| | consensus) and grids."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.nn import functional as F

from ldce.images import read_image, to_uint8
from ldce.results.record import Record

log = logging.getLogger(__name__)


def heat(values: Tensor) -> Tensor:
    """``(H, W)`` in [0, 1] → ``(3, H, W)``: a dark-blue → yellow ramp, easy to read on any image."""
    v = values.float().clamp(0, 1)
    return torch.stack([v, 0.2 + 0.7 * v, 0.6 * (1 - v)])


def consensus_map(consensus: Tensor, size: tuple[int, int]) -> Tensor:
    """A latent-resolution map ``(h, w)`` in [0, 1], upsampled (nearest) to ``size`` and coloured: ``(3, H, W)``."""
    return heat(F.interpolate(consensus[None, None].float(), size=size, mode="nearest")[0, 0])


def region_view(original: Tensor, region: Tensor) -> Tensor:
    """The pixel region ``(H, W)`` in [0, 1] coloured (as the consensus map) over the faint original ``(3, H, W)``."""
    return 0.7 * heat(region.float()) + 0.3 * original


def panel(
    original: Tensor, counterfactual: Tensor, consensus: Tensor | None = None, region: Tensor | None = None
) -> np.ndarray:
    """One row: original | counterfactual | |difference| (normalised) | consensus map | region (those given).

    original, counterfactual: ``(3, H, W)`` in [0, 1]; consensus: ``(h, w)`` share of steps in
    consensus, upsampled to ``(H, W)``; region: ``(H, W)`` in [0, 1], where the image may differ,
    coloured over the faint original. Returns ``(H, k·W, 3)`` uint8.
    """
    diff = (counterfactual - original).abs().sum(0)
    tiles = [original, counterfactual, heat(diff / diff.max().clamp_min(1e-8))]
    if consensus is not None:
        tiles.append(consensus_map(consensus, tuple(original.shape[-2:])))
    if region is not None:
        tiles.append(region_view(original, region))
    return np.concatenate([to_uint8(t) for t in tiles], axis=1)


PANEL_TITLE = "original | counterfactual | |difference| | consensus"
REGION_TITLE = PANEL_TITLE + " | region"


def grid(
    rows: Sequence[np.ndarray],
    captions: Sequence[str],
    scale: int = 1,
    caption_height: int = 14,
    title: str = PANEL_TITLE,
) -> Image.Image:
    """Stack panels vertically under a title, each under its caption; ``scale`` enlarges (nearest)."""
    width = max(r.shape[1] for r in rows) * scale
    height = caption_height + sum(r.shape[0] * scale + caption_height for r in rows)
    canvas = Image.new("RGB", (width, height), "white")
    draw, y = ImageDraw.Draw(canvas), caption_height
    draw.text((2, 1), title, fill="dimgray")
    for row, caption in zip(rows, captions, strict=True):
        draw.text((2, y + 1), caption, fill="black")
        tile = Image.fromarray(row)
        canvas.paste(tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST), (0, y + caption_height))
        y += row.shape[0] * scale + caption_height
    return canvas


def caption(record: Record) -> str:
    """``Coat -> Pullover: p(target) 0.86, flipped, region 25%``: the pair, the target's probability on the
    counterfactual, and whether the classifier now says the target (``NOT flipped (says Shirt)``)."""
    source, target = record.source_name or record.source, record.target_name or record.target
    if record.already_target:
        outcome = "already the target"
    elif record.flipped:
        outcome = "flipped"
    else:
        outcome = f"NOT flipped (says {record.prediction})"
    share = "" if record.region_share is None else f", region {record.region_share:.0%}"
    return f"{source} -> {target}: p(target) {record.target_confidence:.2f}, {outcome}{share}"


def grid_picture(output_dir: Path, records: Sequence[Record], scale: int) -> Image.Image | None:
    """original | counterfactual | |difference| | consensus per record (files in ``output_dir``),
    captioned source → target; a record whose images cannot be read is left out with a warning
    (``None`` when none can)."""
    rows, captions = [], []
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
        rows.append(panel(original, counterfactual, consensus, region))
        captions.append(caption(r))
    title = REGION_TITLE if any(r.files.region for r in records) else PANEL_TITLE
    return grid(rows, captions, scale=scale, title=title) if rows else None
