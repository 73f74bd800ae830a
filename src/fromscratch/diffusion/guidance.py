"""Classifier-free guidance (Ho & Salimans 2022): steer a conditional diffusion model toward its
condition c by extrapolating away from its unconditional prediction.

One network learns both ε(x_t, c) and ε(x_t) = ε(x_t, ∅) by seeing the empty prompt ∅ for a
fraction of training examples. Since ε ∝ −σ ∇log p_t (targets.py), Bayes' rule
p_t(c | x) ∝ p_t(x | c) / p_t(x) gives an implicit classifier's gradient

    ∇log p_t(c | x) = ∇log p_t(x | c) − ∇log p_t(x) = −(ε_c − ε_u) / σ.

Sampling from p_t(x) p_t(c | x)^w, a distribution sharpened toward images that are typical of c,
needs the score ∇log p_t(x) + w ∇log p_t(c | x); in ε-terms

    ε̃ = ε_u + w (ε_c − ε_u)                                      (notebooks/21, guidance)

Our scale w:  w = 0 the unconditional model, w = 1 the conditional model (no guidance),
w > 1 guidance (Stable Diffusion's usual 7.5). Other conventions, to map between them:
  - diffusers' `guidance_scale` g uses the same formula, but turns guidance off for g ≤ 1 and then
    runs the conditional model alone: g > 1 ↦ w = g,  g ≤ 1 ↦ w = 1 (`from_diffusers_scale`).
  - Ho & Salimans write ε̃ = (1 + w') ε_c − w' ε_u, so w' = w − 1 (their w' = 0 is no guidance).
The same combination applies to x0-, v- or score-predictions: all are affine in ε at fixed x_t.
"""

from collections.abc import Callable

import torch


def cfg_combine(pred_uncond: torch.Tensor, pred_cond: torch.Tensor, scale: float
                ) -> torch.Tensor:
    """ε̃ = ε_u + w (ε_c − ε_u): w = 0 unconditional, 1 conditional, > 1 guided."""
    return pred_uncond + scale * (pred_cond - pred_uncond)


def from_diffusers_scale(guidance_scale: float) -> float:
    """Our w for diffusers' guidance_scale g: g when g > 1, else 1 (diffusers' "guidance off")."""
    return guidance_scale if guidance_scale > 1.0 else 1.0


def guided(model: Callable, cond, uncond, scale: float) -> Callable:
    """The guided model x_t, t ↦ ε̃ as one callable, for any sampler in samplers.py.

    model(x, t, context) is the conditional network; `cond` and `uncond` are the contexts (any
    tensor, or tuple of tensors stacked along the batch, e.g. (embeddings, mask)) for the prompt
    and the empty prompt, batch B each. Both predictions come from ONE forward pass on a batch of
    2B: [unconditional; conditional], the order diffusers uses, so a GPU does the work at once.
    w = 1 and w = 0 need only one of them, and run only that half.
    """
    if scale == 1.0:
        return lambda x, t: model(x, t, cond)
    if scale == 0.0:
        return lambda x, t: model(x, t, uncond)
    both = _stack(uncond, cond)

    def guided_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        pred = model(torch.cat([x, x]), torch.cat([t, t]), both)  # (2B, ...)
        pred_uncond, pred_cond = pred.chunk(2)
        return cfg_combine(pred_uncond, pred_cond, scale)

    return guided_model


def _stack(first, second):
    if isinstance(first, tuple):
        return tuple(_stack(a, b) for a, b in zip(first, second, strict=True))
    return None if first is None else torch.cat([first, second])
