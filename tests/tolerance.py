"""Float comparisons that hold on any CPU: tolerances relative to the scale of the expected tensor.

CPUs differ (AVX2, AVX-512) and so does the order of float sums with the thread count; results then
differ in the last bits. An element may differ by ``rel`` times the largest magnitude of the expected
tensor plus ``rtol`` times its own magnitude. Discrete decisions (masks, indices) are compared exactly
elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5, rtol: float = 1e-4) -> None:
    """``|actual − expected| ≤ rel · max|expected| + rtol · |expected|`` elementwise."""
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rel * max(scale, 1e-12))


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads, then restore the previous number."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
