"""Region-constrained LDCE: the original kept outside a region in the latent trajectory and in the final
pixels, the composite's growth and fallback, regions per sample, and every source end to end."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile

import pytest
import torch
from cli_helpers import good_sample, ldce_here, ldce_in_process, png, records, summary, tiny_config, write_shard
from PIL import Image
from toy import ToyBackbone, toy_classifier, toy_images

from ldce.images import region_mask
from ldce.method import LDCEConfig, explain
from ldce.method.region import UNCOMPOSITED, RegionConfig, RegionInputs
from ldce.method.region.composite import composite, ladder
from ldce.results.record import Record, RecordFiles, run_means
from ldce.testing.models import save_tiny_clipseg

CONFIG = LDCEConfig(ddim_steps=10, strength=0.6, scale=3.0)
TARGETS = torch.tensor([1, 2, 3, 4])


def _explain(region: RegionInputs | None, images=None, targets=TARGETS, keys=None, micro_batch_size=None):
    images = toy_images(len(targets)) if images is None else images
    return explain(
        images,
        targets,
        ToyBackbone(),
        toy_classifier(),
        CONFIG,
        0,
        keys,
        micro_batch_size=micro_batch_size,
        region=region,
    )


def test_region_none_is_ldce_as_published_bit_for_bit():
    plain, none = _explain(None), _explain(RegionInputs(RegionConfig()))
    assert torch.equal(plain.images, none.images) and torch.equal(plain.latents, none.latents)
    assert none.region is None and none.region_growth is None


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (4, 1, 8, 4), (4, 1, 16, 16)])
def test_given_masks_of_another_count_or_size_than_the_images_are_refused(shape):
    with pytest.raises(ValueError, match="need a region mask"):
        _explain(RegionInputs(RegionConfig(source="given"), torch.ones(shape)), toy_images(4))


def test_a_region_that_neither_blends_nor_composites_is_refused_as_it_would_constrain_nothing():
    with pytest.raises(ValueError, match="region.blend and region.composite are both false"):
        RegionConfig(source="consensus", blend=False, composite=False)
    assert not RegionConfig(source="none", blend=False, composite=False).active


def test_outside_a_given_region_the_final_latent_is_the_originals_and_composite_pixels_are_exact():
    images = toy_images(4)
    masks = torch.zeros(4, 1, 8, 8)
    masks[:, :, :, :4] = 1  # the left half may change
    config = RegionConfig(source="given", dilation=0, warmup=0, feather=0, confidence=0.0)
    result = _explain(RegionInputs(config, masks), images)
    z0 = ToyBackbone().encode(images)
    assert torch.equal(result.latents[..., 2:], z0[..., 2:]), "latent columns 2-3 lie outside the region"
    assert not torch.equal(result.latents[..., :2], z0[..., :2])
    assert (result.region_growth >= 0).all(), "a given region is never left for the uncomposited counterfactual"
    assert (result.region[..., 4:] == 0).all()
    assert torch.equal(result.images[..., 4:], images[..., 4:])


class _Threshold(torch.nn.Module):
    """Class 1 when the mean pixel exceeds ``level``, else class 0 (two logits)."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level

    def forward(self, images):
        score = 50 * (images.mean((1, 2, 3)) - self.level)
        return torch.stack([-score, score], 1)


class _Unsure(_Threshold):
    """:class:`_Threshold` whose logit gap is capped: ``p(class 1) ≤ σ(2)`` ≈ 0.88, however bright."""

    def forward(self, images):
        return super().forward(images).clamp(-1, 1)


def _composite(level: float, growth: int = 4, limit=None, confidence: float = 0.5, classifier=None):
    images, counterfactuals = torch.zeros(1, 3, 10, 10), torch.ones(1, 3, 10, 10)
    score = torch.linspace(1, 0.01, 100).view(1, 1, 10, 10)  # every pixel changed, ranked row by row
    classifier = _Threshold(level) if classifier is None else classifier
    targets = torch.tensor([1])
    return composite(images, counterfactuals, score, targets, classifier, 0, 0.1, growth, confidence, limit)


def test_the_composite_grows_along_its_ladder_until_the_classifier_says_the_target():
    assert ladder(0.1, 4) == pytest.approx([0.1, 0.1**0.75, 0.1**0.5, 0.1**0.25, 1.0])
    small, larger = _composite(0.05), _composite(0.4)
    assert small.growth.tolist() == [0] and small.masks.mean().item() == pytest.approx(0.1)
    assert larger.growth.tolist() == [3] and larger.masks.mean().item() == pytest.approx(0.57)
    assert small.confident.tolist() == larger.confident.tolist() == [True]
    assert torch.equal(larger.images, larger.masks.expand(1, 3, 10, 10))


def test_a_composite_that_never_convinces_keeps_the_uncomposited_counterfactual():
    kept = _composite(0.999, growth=0)  # only the whole image is bright enough; the ladder stops at 10 %
    assert kept.growth.tolist() == [UNCOMPOSITED] and torch.equal(kept.images, torch.ones(1, 3, 10, 10))
    assert (kept.masks == 1).all() and kept.confident.tolist() == [False]
    assert _composite(1.5).growth.tolist() == [UNCOMPOSITED]  # not even the counterfactual flips


class _Window(torch.nn.Module):
    """Class 1 while the mean pixel is inside (0.15, 0.9), with ``p(class 1) ≤ σ(2.4)`` ≈ 0.92: the
    ladder's rungs 1–3 (shares 0.18, 0.32, 0.56) flip with p ≈ 0.64, 0.92, 0.92; the whole image does not."""

    def forward(self, images):
        mean = images.mean((1, 2, 3))
        score = (10 * torch.minimum(mean - 0.15, 0.9 - mean)).clamp(-1.2, 1.2)
        return torch.stack([-score, score], 1)


def test_a_confidence_never_reached_takes_the_largest_rung_that_flips_so_more_confidence_never_changes_less():
    unsure = _Unsure(0.05)  # called the target from the first rung on, never with p ≥ 0.9
    assert _composite(0.05, confidence=0.8, classifier=unsure).growth.tolist() == [0]
    unreached = _composite(0.05, confidence=0.9, classifier=unsure)
    assert unreached.growth.tolist() == [4] and (unreached.masks == 1).all()
    assert unreached.confident.tolist() == [False], "the largest flipping rung is a fallback, not confident"
    window = [_composite(0, confidence=c, classifier=_Window()) for c in (0.5, 0.9, 0.95)]
    assert [w.growth.item() for w in window] == [1, 2, 3]  # 0.95: never reached, and the whole image fails
    sizes = [_composite(0.3, confidence=c).masks.sum().item() for c in (0.5, 0.9, 0.99, 0.999999)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_a_hard_limit_is_never_crossed_the_whole_region_is_the_last_resort():
    limit = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
    limit[..., :5] = True  # the left half
    unconvinced = _composite(0.999, limit=limit)
    assert unconvinced.growth.tolist() == [4] and torch.equal(unconvinced.masks, limit.float())
    assert unconvinced.confident.tolist() == [False]
    single = _composite(0.999, growth=0, limit=limit)  # one rung (10 %): the last resort is still the whole region
    assert single.growth.tolist() == [0] and torch.equal(single.masks, limit.float())
    assert single.confident.tolist() == [False]
    convinced_whole = _composite(0.4, growth=0, limit=limit)  # the 10 % rung fails, the whole half convinces
    assert torch.equal(convinced_whole.masks, limit.float()) and convinced_whole.confident.tolist() == [True]
    assert (unconvinced.images[..., 5:] == 0).all()
    convinced = _composite(0.05, limit=limit)
    assert convinced.growth.tolist() == [1] and (convinced.masks[..., 5:] == 0).all()  # 9 of 18 pixels inside


@pytest.mark.parametrize("source", ["consensus", "gradient"])
def test_regions_are_per_sample_and_independent_of_the_batch(source):
    images, keys = toy_images(4), ["a", "b", "c", "d"]
    config = RegionConfig(source=source, threshold=0.05, share=0.3, dilation=0, warmup=2, composite=False)
    together = _explain(RegionInputs(config), images, keys=keys, micro_batch_size=2)
    order = [3, 1, 2, 0]
    apart = _explain(RegionInputs(config), images[order], TARGETS[order], [keys[i] for i in order], micro_batch_size=2)
    for field in ("images", "region", "region_growth", "latents"):
        assert torch.equal(getattr(together, field)[order], getattr(apart, field)), field
    assert len({tuple(region.flatten().tolist()) for region in together.region}) > 1, "each sample has its own"


def test_a_source_that_needs_what_is_missing_says_so():
    with pytest.raises(ValueError, match="'given' needs a mask"):
        RegionInputs(RegionConfig(source="given"))
    with pytest.raises(ValueError, match="needs consensus guidance"):
        explain(
            toy_images(1),
            TARGETS[:1],
            ToyBackbone(),
            toy_classifier(),
            dataclasses.replace(CONFIG, guidance="unprojected"),
            region=RegionInputs(RegionConfig(source="consensus")),
        )


def _photos(tmp_path, count: int = 2):
    """A folder of ``count`` random 32-pixel PNGs ``p0.png``, ``p1.png`` …"""
    images = tmp_path / "photos"
    images.mkdir()
    for i in range(count):
        (images / f"p{i}.png").write_bytes(png(i))
    return images


def _half_mask() -> Image.Image:
    """A 32-pixel region mask whose left half may change."""
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 32))
    return mask


def _explain_folder(images, config, target: str, out, *options: str) -> None:
    ldce_here(
        "explain",
        str(images),
        "--config",
        str(config),
        "--target",
        target,
        "--output_dir",
        str(out),
        *options,
        "--wandb.mode",
        "disabled",
    )


def test_segmentation_runs_end_to_end_with_a_random_clipseg_and_writes_the_region(tmp_path):
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    images = _photos(tmp_path)
    segmenter = {
        "class_path": "ldce.segmenters.clipseg",
        "init_args": {"path": save_tiny_clipseg(str(tmp_path / "clipseg")), "class_names": names},
    }
    config = tiny_config(tmp_path, "unused.tar", class_names=names, region={"source": "segmentation", "threshold": 0.3})
    out = tmp_path / "out"
    _explain_folder(images, config, "Coat", out, "--model.segmenter", str(segmenter).replace("'", '"'))
    done = records(out)
    assert len(done) == 2 and all(0 < r["region_share"] <= 1 for r in done)
    for record in done:
        region = Image.open(out / record["files"]["region"])
        assert region.mode == "L" and region.size == (32, 32)
    metrics = summary(out)["metrics"]
    assert metrics["region_share"] == pytest.approx(sum(r["region_share"] for r in done) / 2)
    counted = [r["region_confident"] for r in done if not r["already_target"]]
    assert metrics["region_confident"] == sum(counted) / len(counted), "as the flip rate: not already at target"
    width = Image.open(out / "grid.png").width
    assert 5 * 128 < width < 6 * 128, "five enlarged tiles: original | cf | |diff| | consensus | region"


def test_given_masks_come_beside_the_files_and_an_input_without_one_an_empty_one_or_another_size_fails_by_name(
    tmp_path,
):
    images = _photos(tmp_path, count=5)
    _half_mask().save(images / "p0.mask.png")
    _half_mask().save(images / "p4.Mask.Png")
    Image.new("L", (32, 32), 0).save(images / "p2.mask.png")
    _half_mask().resize((64, 32)).save(images / "p3.mask.png")
    config = tiny_config(tmp_path, "unused.tar", region={"source": "given", "feather": 0, "confidence": 0.0})
    out = tmp_path / "out"
    _explain_folder(images, config, "4", out)
    by_key = {r["key"]: r for r in records(out)}
    assert set(by_key) == {"p0", "p1", "p2", "p3", "p4"}, "the masks are no inputs of their own"
    assert by_key["p4"]["status"] == "done" and by_key["p4"]["region_share"] <= 0.5, "a mask's name in any case"
    assert by_key["p1"]["status"] == "failed" and "no region mask" in by_key["p1"]["reason"]
    assert by_key["p2"]["status"] == "failed" and "lets nothing change" in by_key["p2"]["reason"]
    assert by_key["p3"]["status"] == "failed" and "64×32 pixels but its image is 32×32" in by_key["p3"]["reason"]
    done = by_key["p0"]
    assert done["status"] == "done"
    assert done["region_share"] == 1.0 if done["region_growth"] == UNCOMPOSITED else done["region_share"] <= 0.5


def _region_record(key: str, already_target: bool, confident: bool | None) -> Record:
    facts = {"source": 0, "target": 1, "flipped": True, "target_confidence": 0.9, "l1": 1.0, "l2": 1.0}
    files = RecordFiles("o.png", "c.png")
    return Record(key, "done", 0.0, files, already_target=already_target, region_confident=confident, **facts)


def test_the_summarys_region_confident_leaves_out_inputs_already_at_their_target_as_the_flip_rate_does():
    records = [_region_record("a", True, True), _region_record("b", False, False), _region_record("c", False, True)]
    assert run_means(records)["region_confident"] == 0.5
    assert "region_confident" not in run_means([_region_record("d", False, None)]), "no composite: no share"


def test_transparent_pixels_of_a_mask_keep_the_original_whatever_colour_they_hide():
    mask = Image.new("RGBA", (32, 32), (255, 255, 255, 0))  # transparent white: as a mask editor saves it
    mask.paste((255, 255, 255, 255), (0, 0, 8, 32))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    decoded = region_mask(buffer.getvalue(), None, png(0), 32, "center_crop")
    assert decoded.shape == (1, 32, 32) and (decoded[..., :8] == 1).all() and (decoded[..., 8:] == 0).all()


def test_a_shard_sample_brings_its_mask_or_a_box_and_ldce_shards_packs_masks(tmp_path, capsys):
    half = _half_mask()
    buffer = io.BytesIO()
    half.save(buffer, format="PNG")
    with_mask, with_box, bare = good_sample(0), good_sample(1), good_sample(2)
    with_mask["mask.png"] = buffer.getvalue()
    with_box["json"] = json.dumps({"box": [0, 0, 8, 32]}).encode()
    write_shard(tmp_path / "a.tar", [with_mask, with_box, bare])
    config = tiny_config(tmp_path, str(tmp_path / "a.tar"), region={"source": "given", "feather": 0})
    out = str(tmp_path / "out")
    ldce_here("predict", "--config", str(config), "--output_dir", out)
    by_key = {r["key"]: r for r in records(tmp_path / "out")}
    assert [by_key[k]["status"] for k in ("s000", "s001", "s002")] == ["done", "done", "failed"]
    for key, largest in (("s000", 0.5), ("s001", 0.25)):
        assert by_key[key]["region_share"] <= largest, "a given region is a hard limit"
    changed = ("--model.region.threshold", "0.5")
    status, stderr = ldce_in_process(capsys, "-q", "predict", "--config", str(config), "--output_dir", out, *changed)
    assert status == 2 and "model.region.threshold: 0.1 → 0.5" in stderr, "resuming with other region settings"

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "p.png").write_bytes(png(3))
    half.save(folder / "p.mask.png")
    ldce_here("shards", "--input", str(folder), "--output", str(tmp_path / "packed-%d.tar"))
    with tarfile.open(tmp_path / "packed-0.tar") as tar:
        assert sorted(m.name for m in tar) == ["p.json", "p.mask.png", "p.png"]
