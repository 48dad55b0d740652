"""Vector–Jacobian products that survive float16 graphs."""

from __future__ import annotations

import torch
from torch import Tensor


def scaled_vjp(
    output: Tensor, inputs: Tensor, vectors: Tensor, batched: bool = False, rescale: bool | None = None
) -> Tensor:
    """``Jᵀ·v`` for each of the ``K`` vectors, ``J = ∂output/∂inputs`` (per-sample networks, batch first).

    vectors: ``(K, *output.shape)``. Returns ``(K, *inputs.shape)`` in ``inputs``' dtype: ``K``
    backward passes, or one batched (vmap) pass. When ``output`` is float16 (fp16 autocast), each
    vector is first divided by its largest entry per sample and the products multiplied back in
    float32 (``Jᵀ`` is linear): gradients below float16's range (~6e-8) would otherwise vanish.
    ``rescale`` forces that scaling on (a float32 ``output`` computed from float16 ``inputs``' network) or off.
    """
    count, batch = vectors.shape[:2]
    scale = None
    rescale = output.dtype == torch.float16 if rescale is None else rescale
    if rescale:
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


def cut_vjp(
    image: Tensor, clean_leaf: Tensor, clean_latents: Tensor, z: Tensor, vectors: Tensor, batched: bool
) -> Tensor:
    """``Jᵀ·v`` for ``K`` vectors through a graph cut at the clean latent ``ẑ0``: ``K`` products from ``image``
    ``(B, 3, H, W)`` back to ``clean_leaf`` ``(B, C, h, w)`` (a detached copy of ``clean_latents``' first ``B``
    rows, the decoder's input), then one product from ``clean_latents`` ``(K·B, C, h, w)`` back to ``z``
    ``(K·B, C, h, w)`` (``K`` stacked copies of the latents) with the stacked cotangents ``[c_1; …; c_K]``.

    vectors: ``(K, B, 3, H, W)``. Returns ``(K, B, C, h, w)``, as :func:`scaled_vjp` through the whole graph
    up to round-off; both stages rescale under float16 (the second's ``output`` is float32 computed by a
    float16 network, so it always rescales).
    """
    cotangents = scaled_vjp(image, clean_leaf, vectors, batched)  # (K, B, C, h, w)
    products = scaled_vjp(clean_latents, z, cotangents.flatten(0, 1)[None], rescale=True)[0]  # (K·B, C, h, w)
    return products.unflatten(0, cotangents.shape[:2])
