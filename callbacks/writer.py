"""``CounterfactualWriter``: every rank writes its counterfactuals, records and optional step videos."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from torch import Tensor

from ldce.checks import validated
from ldce.datamodules.batch import Failure, SkipsKeys
from ldce.images import to_uint8
from ldce.results import store
from ldce.results.pictures import grid_picture
from ldce.results.record import DONE, FAILED, Record, RecordFiles, thinned
from ldce.results.step_video import Steps, frames, video_suffix, write_video
from ldce.runner import Prediction

log = logging.getLogger(__name__)

GRID = "grid.png"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler ending the job) arrived: the run stops after writing the batch in hand, as
    after Ctrl-C."""


class CounterfactualWriter(BasePredictionWriter):
    """Write ``original/``, ``counterfactual/``, ``consensus/``, ``records/`` (and ``steps/``) under ``output_dir``.

    Resume: at setup, the inputs whose outputs are complete are handed to the datamodule (``SkipsKeys``)
    so that they are not explained again (an input whose label or target changed since is). With
    ``overwrite``, the folder's earlier results are removed first, so that a later resume never mixes
    two runs' settings. At the end, rank 0 merges all records into ``records.jsonl`` and draws ``grid.png``.

    Args:
        output_dir: the results folder.
        overwrite: remove the results already in ``output_dir`` (records, pictures, summary; not the W&B
            files) and explain every input again.
        save_steps: write a video per input (``steps/<name>.mp4`` with PyAV installed, else ``.gif``) of
            every step's predicted clean image next to its consensus mask, labelled with the step, its
            timestep and ``p(target)`` (the model must run with ``record_steps``).
        grid_rows: inputs shown in ``grid.png`` (the first by key; 0: no grid).
        grid_scale: whole enlargement of the images in ``grid.png`` (default: the smallest that makes
            them at least 128 pixels high).
    """

    @validated
    def __init__(
        self,
        output_dir: str = "outputs",
        overwrite: bool = False,
        save_steps: bool = False,
        grid_rows: NonNegativeInt = 16,
        grid_scale: PositiveInt | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overwrite, self.save_steps = overwrite, save_steps
        self.grid_rows, self.grid_scale = grid_rows, grid_scale

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.run_started, self.resumed = time.time(), 0
        if self.overwrite:
            if trainer.is_global_zero and (removed := store.clear_results(self.output_dir)):
                log.info("overwrite: removed the earlier results in %s (%s)", self.output_dir, ", ".join(removed))
            trainer.strategy.barrier("ldce-overwrite")
            return
        if not isinstance(trainer.datamodule, SkipsKeys):
            return
        done = {record.key: record.input_classes() for record in store.done_records(self.output_dir)}
        if done:
            trainer.datamodule.skip(done)
            self.resumed = len(done)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """An interrupted run (Ctrl-C, or SIGTERM after the batch in hand) says how to go on."""
        if isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero:
            cause = "stopped by SIGTERM" if isinstance(exception, Terminated) else "interrupted"
            log.warning("%s: the same command resumes, skipping the inputs done in %s", cause, self.output_dir)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Say that the run resumes once every check (the settings' too) has passed."""
        if self.resumed and trainer.is_global_zero:
            log.info("resuming: %d inputs in %s are already done and will be skipped", self.resumed, self.output_dir)

    def write_on_batch_end(
        self, trainer, pl_module, prediction: Prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        records = [_failure(f) for f in prediction.failures]
        records += [self._written(prediction, i) for i in range(len(prediction.keys))]
        store.write_records(self.output_dir, trainer.global_rank, records)
        if trainer.received_sigterm:  # Lightning notes SIGTERM but its predict loop does not stop for it
            raise Terminated

    def _written(self, prediction: Prediction, i: int) -> Record:
        """Input ``i``'s files and done record, or — when its files cannot be written — its failure record."""
        try:
            return self._done(prediction, i, self._write_files(prediction, i))
        except OSError as error:
            log.error("could not write the files of %r: %s", prediction.keys[i], error)
            reason = f"could not write its files: {type(error).__name__}: {error}"
            return _failure(Failure(prediction.keys[i], reason, prediction.shards[i]))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.strategy.barrier("ldce-records")
        if trainer.is_global_zero:
            done = [r for r in store.merge_records(self.output_dir, self.run_started) if r.done]
            shown, title = done[: self.grid_rows], grid_title(min(self.grid_rows, len(done)), len(done))
            picture = grid_picture(self.output_dir, shown, self.grid_scale, title) if shown else None
            if picture is not None:
                store.save_image(picture, self.output_dir / GRID)
                log.info("%s shows %s", GRID, title or f"all {len(done)} done inputs")

    def _write_files(self, prediction: Prediction, i: int) -> RecordFiles:
        """Write input ``i``'s images (and step video); returns their paths relative to ``output_dir``."""
        result, stem = prediction.result, store.file_stem(prediction.keys[i])
        files = RecordFiles(original=f"original/{stem}.png", counterfactual=f"counterfactual/{stem}.png")
        for path, image in ((files.original, prediction.originals[i]), (files.counterfactual, result.images[i])):
            store.save_image(Image.fromarray(to_uint8(image)), self.output_dir / path)
        if result.consensus is not None:
            files = replace(files, consensus=f"consensus/{stem}.png")
            store.save_image(Image.fromarray(to_uint8(result.consensus[i]), "L"), self.output_dir / files.consensus)
        if result.region is not None:
            files = replace(files, region=f"region/{stem}.png")
            store.save_image(Image.fromarray(to_uint8(result.region[i, 0]), "L"), self.output_dir / files.region)
        if self.save_steps and result.trace.clean_images is not None:
            files = replace(files, steps=f"steps/{stem}{video_suffix()}")
            write_video(frames(_steps(prediction, i)), self.output_dir / files.steps)
        return files

    @staticmethod
    def _done(p: Prediction, i: int, files: RecordFiles) -> Record:
        r = p.result
        label, target = int(p.labels[i]), int(p.targets[i])
        return Record(
            key=p.keys[i],
            status=DONE,
            written_at=time.time(),
            files=files,
            shard=p.shards[i],
            original_key=p.original_keys[i],
            source=label,
            source_predicted=bool(p.source_predicted[i]),
            target=target,
            already_target=bool(p.already_target[i]),
            input_label=int(p.input_labels[i]),
            input_target=int(p.input_targets[i]),
            source_name=p.name(label),
            target_name=p.name(target),
            flipped=int(r.prediction[i]) == target,
            seed=p.seed,
            meta=p.meta[i],
            source_prediction=int(r.source_prediction[i]),
            prediction=int(r.prediction[i]),
            source_prediction_name=p.name(int(r.source_prediction[i])),
            prediction_name=p.name(int(r.prediction[i])),
            source_confidence=float(r.source_confidence[i]),
            confidence=float(r.confidence[i]),
            target_confidence=float(r.target_confidence[i]),
            l1=float(r.l1[i]),
            l2=float(r.l2[i]),
            consensus_share=None if r.consensus is None else float(r.consensus[i].mean()),
            region_share=None if r.region is None else float(r.region[i].mean()),
            region_growth=None if r.region_growth is None else int(r.region_growth[i]),
            region_confident=None if r.region_confident is None else bool(r.region_confident[i]),
            guidance_stopped_at=None if r.guidance_stopped_at is None else int(r.guidance_stopped_at[i]),
            confidence_steps=_confidence_steps(r.trace.target_probability, i),
        )


def grid_title(shown: int, done: int) -> str | None:
    """The line above a grid of the first ``shown`` of ``done`` inputs (``None``: it shows them all)."""
    if shown >= done:
        return None
    return f"the first {shown} of {done} done inputs, by key (writer.grid_rows); every input: report.html"


def _confidence_steps(probabilities: Tensor | None, i: int) -> list[float] | None:
    """Input ``i``'s ``p(target | x̂0)`` per step ``(B, n)``, thinned for its record (``None``: not computed)."""
    return None if probabilities is None else thinned([round(float(p), 4) for p in probabilities[i]])


def _failure(failure: Failure) -> Record:
    damaged = failure.damaged_shard or None
    return Record(failure.key, FAILED, time.time(), reason=failure.reason, shard=failure.shard, damaged_shard=damaged)


def _steps(p: Prediction, i: int) -> Steps:
    """Input ``i``'s recorded steps (the prediction must hold its clean images)."""
    trace = p.result.trace
    at = [None if values is None else values[i] for values in (trace.consensus_masks, trace.target_probability)]
    timesteps = None if trace.timesteps is None else trace.timesteps[i]
    return Steps(trace.clean_images[i], *at, timesteps, p.label(int(p.targets[i])))
