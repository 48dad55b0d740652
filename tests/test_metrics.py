"""Each metric of ``ldce.metrics`` against values computed by hand on tiny tensors."""

from __future__ import annotations

import hashlib
import math
import statistics

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from ldce.metrics import CD, COUT, FID, MNAC, Closeness, CosineSimilarity, FlipRate, SplitFID
from ldce.metrics.attributes import read_attribute_labels, train_correlations
from ldce.metrics.cout import reveal_counts, reveal_ranks
from ldce.metrics.frechet import fid_of, key_hash, split_halves


def test_flip_rate_counts_argmax_or_thresholded_logit_equal_to_target():
    metric = FlipRate()
    originals = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # neither already at its target
    metric.update(originals, torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]), torch.tensor([0, 2]))  # 1 of 2
    assert metric.compute().item() == pytest.approx(0.5)
    binary = FlipRate()
    before = torch.tensor([-1.0, -1.0, 1.0])
    binary.update(before, torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 1, 0]))  # logit > 0 ↔ class 1: 1 of 3
    assert binary.compute().item() == pytest.approx(1 / 3)


def test_inputs_already_at_their_target_do_not_count_in_the_flip_rate():
    metric = FlipRate()
    before = torch.tensor([[3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])  # the third is class 1 already
    after = torch.tensor([[0.0, 3.0], [3.0, 0.0], [0.0, 3.0]])
    metric.update(before, after, torch.tensor([1, 1, 1]))  # of the two open pairs one flips
    assert metric.compute().item() == pytest.approx(0.5)


def test_closeness_per_image_and_per_pixel():
    original = torch.zeros(2, 1, 2, 2)
    counterfactual = torch.tensor([[0.5, 0.0, 0.0, 0.0], [0.3, 0.4, 0.0, 0.0]]).view(2, 1, 2, 2)
    expected = {
        (1, "image"): (0.5 + 0.7) / 2,
        (2, "image"): (0.5 + 0.5) / 2,
        (1, "pixel"): (0.5 / 4 + 0.7 / 4) / 2,
        (2, "pixel"): (0.5 / 2 + 0.5 / 2) / 2,
    }
    for (norm, per), value in expected.items():
        metric = Closeness(norm, per)
        metric.update(original, counterfactual)
        assert metric.compute().item() == pytest.approx(value), (norm, per)


def test_fid_of_identical_feature_sets_is_zero():
    features = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    metric = FID(5)
    metric.update(features[:40], features[:40])
    metric.update(features[40:], features[40:])
    assert abs(metric.compute().item()) < 1e-9


def _cross(mean: list[float], scale: list[float]) -> Tensor:
    """2D points μ ± s_k e_k: sample mean μ, unbiased covariance diag(2 s_k² / (2D − 1)) exactly."""
    rows = [
        torch.tensor(mean, dtype=torch.float64) + sign * s * torch.eye(len(mean), dtype=torch.float64)[k]
        for k, s in enumerate(scale)
        for sign in (1, -1)
    ]
    return torch.stack(rows)


def test_fid_of_gaussians_is_mean_distance_plus_std_distance():
    """Diagonal covariances: FID = ‖μ₁ − μ₂‖² + Σ_k (σ₁ₖ − σ₂ₖ)²."""
    real, fake = _cross([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]), _cross([1.0, 1.0, 0.0], [2.0, 2.0, 1.0])
    var = lambda s: 2 * s**2 / 5  # noqa: E731
    expected = (1 + 0 + 4) + sum((math.sqrt(var(a)) - math.sqrt(var(b))) ** 2 for a, b in [(1, 2), (2, 2), (3, 1)])
    metric = FID(3)
    metric.update(real, fake)
    assert metric.compute().item() == pytest.approx(expected, rel=1e-9)
    assert fid_of(real, fake).item() == pytest.approx(expected, rel=1e-9)


def test_sfid_split_alternates_pairs_sorted_by_class_then_key_hash():
    keys = [f"k{i}" for i in range(7)]
    classes = torch.tensor([1, 0, 1, 0, 1, 1, 0])
    half_a = split_halves(classes, key_hash(keys))
    digest = lambda key: hashlib.sha256(key.encode()).digest()  # noqa: E731
    order = sorted(range(7), key=lambda i: (int(classes[i]), digest(keys[i])))
    assert [i for i in range(7) if half_a[i]] == sorted(order[0::2])
    permutation = torch.tensor([3, 6, 0, 5, 1, 4, 2])
    assert torch.equal(
        split_halves(classes[permutation], key_hash([keys[i] for i in permutation])), half_a[permutation]
    ), "depends on keys only"
    for c in (0, 1):
        n = int((classes == c).sum())
        assert int(half_a[classes == c].sum()) in (n // 2, n - n // 2), "each class split in halves"


def test_sfid_is_the_mean_of_the_two_cross_fids():
    """1-D features: FID = (μ₁ − μ₂)² + (σ₁ − σ₂)²; the halves from the split above."""
    keys, classes = [f"p{i}" for i in range(8)], torch.tensor([0, 1] * 4)
    real = torch.tensor([0.0, 1.0, 3.0, 2.0, 5.0, 4.0, 1.5, 0.5])[:, None]
    fake = torch.tensor([2.0, 2.5, 7.0, 1.0, 4.0, 6.0, 3.0, 2.0])[:, None]
    a = split_halves(classes, key_hash(keys)).tolist()

    def one_d(x, y):
        return (statistics.mean(x) - statistics.mean(y)) ** 2 + (statistics.stdev(x) - statistics.stdev(y)) ** 2

    def side(values, in_a):
        return [float(v) for v, s in zip(values, a, strict=True) if s == in_a]

    expected = (one_d(side(real, True), side(fake, False)) + one_d(side(real, False), side(fake, True))) / 2
    metric = SplitFID(1)
    metric.update(real[:5], fake[:5], classes[:5], keys[:5])
    metric.update(real[5:], fake[5:], classes[5:], keys[5:])
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)


class RevealedShare(nn.Module):
    """Two classes; p(target) = share f of the left half's pixels that show the counterfactual's 1s."""

    def __init__(self, binary: bool = False, instant: bool = False) -> None:
        super().__init__()
        self.binary, self.instant = binary, instant

    def forward(self, images: Tensor) -> Tensor:
        share = images[:, 0, :, :5].mean((1, 2))
        share = (share > 0).double() if self.instant else share.double()
        if self.binary:
            return share.log() - (1 - share).log()
        return torch.stack([(1 - share).log(), share.log()], 1)


def _left_half_pairs(batch: int = 2) -> tuple[Tensor, Tensor]:
    """10 × 10 images: the counterfactual is 1 on the left half and equals the original (0.5) elsewhere."""
    original = torch.full((batch, 3, 10, 10), 0.5, dtype=torch.float64)
    original[..., :5] = 0
    counterfactual = original.clone()
    counterfactual[..., :5] = 1
    return original, counterfactual


@pytest.mark.parametrize(
    ("classifier", "expected"),
    [(RevealedShare(), 0.5), (RevealedShare(binary=True), 0.5), (RevealedShare(instant=True), 1 - 2 / 100)],
    ids=["linear", "linear-binary", "instant"],
)
def test_cout_of_a_classifier_that_sees_only_the_revealed_region(classifier, expected):
    """Left half (50 of 100 pixels) revealed first, 2 pixels per step. Linear: p_t rises from 0 to 1
    over [0, ½] and stays 1, p_s = 1 − p_t: AUC(p_t) − AUC(p_s) = ¾ − ¼. Instant: p_t = 1 from the
    first step on: 1 − step/HW."""
    original, counterfactual = _left_half_pairs()
    metric = COUT(classifier)
    metric.update(original, counterfactual, torch.tensor([0, 0]), torch.tensor([1, 1]))
    assert metric.compute().item() == pytest.approx(expected, abs=1e-12)
    swapped = COUT(classifier)
    swapped.update(original, counterfactual, torch.tensor([1, 1]), torch.tensor([0, 0]))
    if not classifier.binary:
        assert swapped.compute().item() == pytest.approx(-expected, abs=1e-12), "source and target swapped"


def test_cout_reveals_max_1_hw_over_50_pixels_per_step_up_to_all():
    assert reveal_counts(100) == list(range(0, 101, 2))
    assert reveal_counts(30) == list(range(31))
    assert reveal_counts(1030)[-2:] == [1020, 1030]


def test_fva_counts_cosines_above_one_half_and_fs_averages_them():
    original = torch.tensor([[1.0, 0.0]] * 4)
    counterfactual = torch.tensor([[2.0, 0.0], [0.6, 0.8], [0.28, 0.96], [-0.5, 0.0]])  # cos 1, 0.6, 0.28, −1
    fva, fs = CosineSimilarity(threshold=0.5), CosineSimilarity()
    fva.update(original, counterfactual)
    fs.update(original, counterfactual)
    assert fva.compute().item() == pytest.approx(2 / 4)
    assert fs.compute().item() == pytest.approx((1 + 0.6 + 0.28 - 1) / 4)


def test_mnac_counts_flipped_attribute_decisions_except_the_queried_one():
    original = torch.tensor([[1.0, -1.0, 2.0, -3.0], [1.0, 1.0, 1.0, 1.0]])
    counterfactual = torch.tensor([[1.0, 2.0, -2.0, 3.0], [-1.0, -1.0, 1.0, 1.0]])  # flips: {1, 2, 3}, {0, 1}
    with_query, every = MNAC(query=1), MNAC()
    for metric in (with_query, every):
        metric.update(original, counterfactual)
    assert with_query.compute().item() == pytest.approx((2 + 1) / 2)
    assert every.compute().item() == pytest.approx((3 + 2) / 2)


def test_cd_sums_absolute_differences_of_label_and_change_correlations():
    """Reference: ACE's compute_CD.py, np.corrcoef of the decision changes (0 where undefined)."""
    before = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
    after = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 1], [1, 1, 0]])
    train = torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64)
    deltas = after - before
    ours = [0.0 if np.isnan(c := np.corrcoef(deltas[:, i], deltas[:, 0])[0, 1]) else c for i in range(3)]
    expected = float(np.abs(train.numpy() - np.array(ours)).sum())
    metric = CD(0, train)
    logits = lambda decisions: torch.tensor(decisions * 2.0 - 1)  # noqa: E731
    metric.update(logits(before[:2]), logits(after[:2]))
    metric.update(logits(before[2:]), logits(after[2:]))
    assert metric.compute().item() == pytest.approx(expected, rel=1e-9)


def test_training_correlations_come_from_a_celeba_attribute_file(tmp_path):
    path = tmp_path / "list_attr_celeba.txt"
    rows = [[1, -1, 1], [-1, -1, 1], [1, 1, -1], [1, -1, -1], [-1, 1, 1]]
    path.write_text(
        "5\nSmiling Young Male\n" + "".join(f"{i:06d}.jpg " + " ".join(map(str, r)) + "\n" for i, r in enumerate(rows))
    )
    labels = read_attribute_labels(path)
    assert labels.tolist() == rows
    expected = [np.corrcoef(np.array(rows)[:, i], np.array(rows)[:, 0])[0, 1] for i in range(3)]
    assert train_correlations(labels, 0).tolist() == pytest.approx(expected)


def test_cout_reveals_equal_8bit_changes_in_raster_order():
    """Every pixel changes by 5/255 in each channel: a tie. Their float32 differences differ in the last
    bits (the precondition checked first); the reveal order must not: it is the raster order."""
    levels = torch.tensor([200.0, 3.0, 90.0, 17.0])
    original = (levels / 255).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    counterfactual = ((levels + 5) / 255).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    float_mask = (counterfactual - original).abs().sum(1).flatten(1)
    assert len(set(float_mask[0].tolist())) > 1, "the float differences are not all equal"
    assert reveal_ranks(original, counterfactual).tolist() == [[0, 1, 2, 3]]
