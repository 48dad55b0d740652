"""The original implementation's step structure, re-created to time against ldce's on the same model.

The original runs the noise model once on ``[z; z]`` (2B) with an autograd graph over both halves,
decodes, and takes one backward pass per loss with the graph kept (``retain_graph``). ldce builds
the graph over the unconditional half only. Both compute the same step; the guidance arithmetic is
ldce's own terms, so only the structure differs.
"""

from __future__ import annotations

import functools
import operator

import torch
from torch import Tensor, nn

from ldce.backbones.base import Backbone
from ldce.classifiers.logits import target_log_likelihood
from ldce.method.config import LDCEConfig
from ldce.method.guided import ldce_terms, predicted_clean_latent
from ldce.method.sampler import ddim_update
from ldce.method.schedule import DDIMGrid
from ldce.method.terms import StepInputs, Task
from ldce.method.terms.distance import distance_loss


def reference_step(
    backbone: Backbone, classifier: nn.Module, z: Tensor, index: int, grid: DDIMGrid, task: Task, config: LDCEConfig
) -> Tensor:
    """One projected-guidance step in the original's structure: ``z (B, C, h, w) → z_prev``."""
    alpha, t = grid.alphas[index], grid.timesteps[index].expand(2 * z.shape[0])
    z = z.detach().requires_grad_(True)
    e_u, e_c = backbone.eps(torch.cat([z, z]), t, torch.cat([task.null, task.cond])).float().chunk(2)
    clean = predicted_clean_latent(z, e_u, alpha)
    image = backbone.decode(clean)
    distance = distance_loss(image.float(), task.images, config.lp_custom).sum()
    (g_d,) = torch.autograd.grad(distance, z, retain_graph=True)
    (g_c,) = torch.autograd.grad(target_log_likelihood(classifier(image).float(), task.targets).sum(), z)
    e_u = e_u.detach()
    inputs = StepInputs(index, alpha, z.detach(), e_u, e_c.detach() - e_u, clean.detach(), image.detach().float(), task)
    classifier_term, distance_term = ldce_terms(config, classifier)
    scores = [classifier_term.score(inputs, g_c).score, distance_term.score(inputs, g_d).score]
    eps = e_u + config.scale * functools.reduce(operator.add, scores)
    return ddim_update(z.detach(), eps, alpha, grid.alphas_prev[index], grid.sigmas[index], None)
