"""The Python API and the command line compute the same thing: ``explain()`` with the run's settings gives
bitwise the PNGs that ``ldce predict`` writes, whatever batches the run used."""

from __future__ import annotations

import numpy as np
import torch
from cli_helpers import ldce_here, records, tiny_config, uneven_shards
from PIL import Image

from ldce.classifiers import classifier
from ldce.datamodules.webdataset import WebDatasetDataModule
from ldce.images import to_uint8
from ldce.method import LDCEConfig, explain
from ldce.testing.models import tiny_class_conditional_ldm


def test_explain_gives_the_counterfactual_pngs_of_ldce_predict(tmp_path):
    urls = uneven_shards(tmp_path / "data", (3, 3))
    config = tiny_config(tmp_path, urls, batch_size=3)  # the run: batches of 3 in groups of micro_batch_size 4
    out = tmp_path / "out"
    ldce_here("predict", "--config", str(config), "--output_dir", str(out))
    written = {r["key"]: np.asarray(Image.open(out / r["files"]["counterfactual"])) for r in records(out)}

    batch = next(iter(WebDatasetDataModule(urls, batch_size=6, image_size=32).predict_dataloader()))
    toy = classifier(class_path="toy.ToyClassifier", checkpoint=str(tmp_path / "classifier.safetensors"))
    method = LDCEConfig(ddim_steps=10, strength=0.5)
    result = explain(
        batch.images,
        batch.targets,
        tiny_class_conditional_ldm(),
        toy,
        method,
        seed=0,
        keys=batch.keys,
        micro_batch_size=4,
    )
    assert sorted(batch.keys) == sorted(written)
    for key, image in zip(batch.keys, result.images, strict=True):
        assert np.array_equal(to_uint8(image), written[key]), key
    assert torch.equal(batch.targets, (batch.labels + 1) % 10)
