"""Vector–Jacobian products that survive float16 graphs."""

from __future__ import annotations

import torch
from torch import Tensor


def scaled_vjp(output: Tensor, inputs: Tensor, vectors: Tensor, batched: bool = False) -> Tensor:
    """``Jᵀ·v`` for each of the ``K`` vectors, ``J = ∂output/∂inputs`` (per-sample networks, batch first).

    vectors: ``(K, *output.shape)``. Returns ``(K, *inputs.shape)`` in ``inputs``' dtype: ``K``
    backward passes, or one batched (vmap) pass. When ``output`` is float16 (fp16 autocast), each
    vector is first divided by its largest entry per sample and the products multiplied back in
    float32 (``Jᵀ`` is linear): gradients below float16's range (~6e-8) would otherwise vanish.
    """
    count, batch = vectors.shape[:2]
    scale = None
    if output.dtype == torch.float16:
        scale = vectors.abs().reshape(count, batch, -1).amax(2).clamp_min(torch.finfo(torch.float32).tiny)
        vectors = vectors / scale.view(count, batch, *[1] * (vectors.ndim - 2))
    vectors = vectors.to(output.dtype)
    if batched:
        (products,) = torch.autograd.grad(output, inputs, vectors, is_grads_batched=True)
    else:
        products = torch.stack(
            [torch.autograd.grad(output, inputs, v, retain_graph=k < count - 1)[0] for k, v in enumerate(vectors)]
        )
    return products if scale is None else products * scale.view(count, batch, *[1] * (products.ndim - 2))
