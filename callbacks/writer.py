"""``CounterfactualWriter``: every rank writes its counterfactuals, records and optional step videos."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from ldce.callbacks import store
from ldce.targets import class_name
from ldce.visualize import consensus_map, grid, panel, read_image, to_uint8

log = logging.getLogger(__name__)


class CounterfactualWriter(BasePredictionWriter):
    """Write ``original/``, ``counterfactual/``, ``records/`` (and ``steps/``) under ``output_dir``.

    Resume: at setup, keys whose outputs are complete are handed to the datamodule's
    ``skip_keys`` so that they are not explained again, unless ``overwrite`` is set.
    ``save_steps`` writes a GIF per input of every step's predicted clean image next to its
    consensus mask (the model must run with ``record_steps``). At the end, rank 0 merges all
    records into ``records.jsonl`` and draws ``grid.png``: the first ``grid_rows`` inputs (by key)
    as original | counterfactual | |difference| | consensus map, captioned source → target.
    """

    def __init__(self, output_dir: str = "outputs", overwrite: bool = False, save_steps: bool = False, grid_rows: int = 16, grid_scale: int = 4) -> None:
        super().__init__(write_interval="batch")
        if grid_rows < 0 or grid_scale < 1:
            raise ValueError(f"grid_rows must be ≥ 0 and grid_scale ≥ 1, got {grid_rows} and {grid_scale}")
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.save_steps = save_steps
        self.grid_rows, self.grid_scale = grid_rows, grid_scale

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        datamodule = trainer.datamodule
        if self.overwrite or not hasattr(datamodule, "skip_keys"):
            return
        done = store.done_keys(self.output_dir)
        if done:
            datamodule.skip_keys = done
            log.info("resuming: %d inputs in %s are already done and will be skipped", len(done), self.output_dir)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        records = [self._failure(f) for f in prediction["failed"]]
        for i, key in enumerate(prediction["key"]):
            files = self._write_images(key, i, prediction)
            records.append(self._record(key, i, prediction, files, pl_module))
        store.write_records(self.output_dir, trainer.global_rank, records)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.strategy.barrier("ldce-records")
        if trainer.is_global_zero:
            records = store.merge_records(self.output_dir)
            done = [r for r in records if r["status"] == store.DONE][: self.grid_rows]
            if done:
                store.save_image(grid_picture(self.output_dir, done, self.grid_scale), self.output_dir / "grid.png")

    def _write_images(self, key: str, i: int, prediction: dict[str, Any]) -> dict[str, str]:
        stem = store.file_stem(key)
        files = {"original": f"original/{stem}.png", "counterfactual": f"counterfactual/{stem}.png"}
        for name, rel in files.items():
            store.save_image(Image.fromarray(to_uint8(prediction[name][i])), self.output_dir / rel)
        if prediction["consensus"] is not None:
            files["consensus"] = f"consensus/{stem}.png"
            share = (prediction["consensus"][i] * 255).round().to(torch.uint8).numpy()
            store.save_image(Image.fromarray(share, "L"), self.output_dir / files["consensus"])
        if self.save_steps and "step_images" in prediction:
            files["steps"] = f"steps/{stem}.gif"
            masks = prediction["step_masks"]
            self._write_steps(prediction["step_images"][i], None if masks is None else masks[i], self.output_dir / files["steps"])
        return files

    @staticmethod
    def _write_steps(images: torch.Tensor, masks: torch.Tensor | None, path: Path) -> None:
        """images: ``(n, 3, H, W)``; masks: ``(n, h, w)`` bool. One frame per step."""
        frames = []
        for step, image in enumerate(images):
            tiles = [to_uint8(image)]
            if masks is not None:
                tiles.append(to_uint8(consensus_map(masks[step], tuple(image.shape[-2:]))))
            frames.append(Image.fromarray(np.concatenate(tiles, axis=1)))
        store.save_image(frames[0], path, save_all=True, append_images=frames[1:], duration=80, loop=0)

    def _record(self, key: str, i: int, p: dict[str, Any], files: dict[str, str], pl_module) -> dict[str, Any]:
        label, target = int(p["label"][i]), int(p["target"][i])
        names = getattr(pl_module, "class_names", None)
        record = {
            "key": key, "status": store.DONE, "source": label, "target": target,
            "source_name": class_name(names, label), "target_name": class_name(names, target),
            "flipped": int(p["prediction"][i]) == target, "seed": p["seed"], "files": files, "meta": p["meta"][i],
            "written_at": time.time(),
        }  # fmt: skip
        for name in ("source_prediction", "prediction"):
            record[name] = int(p[name][i])
        for name in ("source_confidence", "confidence", "target_confidence", "l1", "l2"):
            record[name] = float(p[name][i])
        if p["consensus"] is not None:
            record["consensus_share"] = float(p["consensus"][i].mean())
        return record

    @staticmethod
    def _failure(failure: dict[str, str]) -> dict[str, Any]:
        return {"key": failure["key"], "status": store.FAILED, "reason": failure["reason"], "files": {}, "written_at": time.time()}


def grid_picture(output_dir: Path, records: list[dict[str, Any]], scale: int) -> Image.Image:
    """original | counterfactual | |difference| | consensus per record, captioned source → target."""
    rows, captions = [], []
    for r in records:
        files = r["files"]
        consensus = None
        if "consensus" in files:
            consensus = torch.from_numpy(np.asarray(Image.open(output_dir / files["consensus"])).copy()).float() / 255
        rows.append(panel(read_image(output_dir / files["original"]), read_image(output_dir / files["counterfactual"]), consensus))
        source, target = r["source_name"] or r["source"], r["target_name"] or r["target"]
        captions.append(f"{source} -> {target}: p(target) {r['target_confidence']:.2f}")
    return grid(rows, captions, scale=scale)
