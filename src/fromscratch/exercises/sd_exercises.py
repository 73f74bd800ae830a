"""The Stable Diffusion lessons' exercises (18 to 21): test inputs and recognized mistakes."""

import math
from dataclasses import dataclass

import torch

from fromscratch.exercises import sd_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


# ---------------------------------------------------------------------------------------------
# 18 UNet: the sinusoidal time embedding
# ---------------------------------------------------------------------------------------------
def _embedding_cases(gen: torch.Generator) -> list[Case]:
    random_t = torch.randint(0, 1000, (5,), generator=gen)
    return [Case((random_t, 16), f"t = {random_t.tolist()}, dim 16"),
            Case((torch.tensor([0, 1, 999]), 8), "t = 0, 1, 999, dim 8"),
            Case((torch.tensor([500]), 320), "t = 500, dim 320 (Stable Diffusion's width)")]


def _omega(dim, denominator):
    half = dim // 2
    return torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / denominator)


def _sin_first(t, dim):
    return solutions.timestep_embedding(t, dim).roll(dim // 2, dims=-1)


def _over_dim(t, dim):
    angles = t.float()[:, None] * _omega(dim, dim)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def _interleaved(t, dim):
    emb = solutions.timestep_embedding(t, dim)
    half = dim // 2
    return torch.stack([emb[:, :half], emb[:, half:]], dim=-1).flatten(1)


register(
    Exercise(
        name="timestep_embedding",
        lesson="18_unet",
        prompt=(
            "timestep_embedding(t, dim) -> (B, dim)\n"
            "t: integer timesteps (B,); dim even. With half = dim/2 and frequencies\n"
            "ω_k = 10000^(−k/half), k = 0..half−1, return [cos(ω t) ..., sin(ω t) ...]\n"
            "(all the cosines, then all the sines)."
        ),
        reference=solutions.timestep_embedding,
        make_cases=_embedding_cases,
        mistakes=(
            Mistake("sin_first", "Stable Diffusion puts the cosines first (flip_sin_to_cos): "
                    "concatenate [cos, sin].", _sin_first),
            Mistake("over_dim", "the exponent is k / half (half = dim / 2), not k / dim: the "
                    "slowest frequency must reach 10000^(−(half−1)/half).", _over_dim),
            Mistake("interleaved", "concatenate the blocks, [cos_0..cos_{h−1}, sin_0..sin_{h−1}], "
                    "do not interleave cos and sin.", _interleaved),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 19 cross-attention and guidance: classifier-free guidance's combination
# ---------------------------------------------------------------------------------------------
def _cfg_cases(gen: torch.Generator) -> list[Case]:
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    return [Case((randn(2, 4, 8, 8), randn(2, 4, 8, 8), 7.5), "latents (2, 4, 8, 8), w = 7.5"),
            Case((randn(3, 5), randn(3, 5), 0.0), "w = 0: the unconditional model"),
            Case((randn(3, 5), randn(3, 5), 1.0), "w = 1: the conditional model"),
            Case((randn(3, 5), randn(3, 5), 2.5), "w = 2.5")]


def _swapped(eps_uncond, eps_cond, w):
    return eps_cond + w * (eps_uncond - eps_cond)


def _ho_salimans(eps_uncond, eps_cond, w):
    return (1 + w) * eps_cond - w * eps_uncond


def _average(eps_uncond, eps_cond, w):
    return (1 - w) * eps_cond + w * eps_uncond


register(
    Exercise(
        name="cfg_combine",
        lesson="19_cross_attention",
        prompt=(
            "cfg_combine(eps_uncond, eps_cond, w) -> eps\n"
            "Classifier-free guidance: start from the unconditional prediction and move w times\n"
            "along (eps_cond − eps_uncond). w = 0 gives eps_uncond, w = 1 gives eps_cond."
        ),
        reference=solutions.cfg_combine,
        make_cases=_cfg_cases,
        mistakes=(
            Mistake("swapped", "start from ε_u and move toward ε_c: ε_u + w (ε_c − ε_u); yours "
                    "moves away from the prompt.", _swapped),
            Mistake("ho_salimans", "that is Ho & Salimans' convention (1 + w) ε_c − w ε_u, where "
                    "their w is ours minus 1; here w = 1 must give ε_c.", _ho_salimans),
            Mistake("average", "with w = 1 the result must be ε_c: ε_u + w (ε_c − ε_u).",
                    _average),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 20 latent space: the KL term of the VAE and the reparameterised sample
# ---------------------------------------------------------------------------------------------
def _gaussian_cases(gen: torch.Generator) -> list[Case]:
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    return [Case((randn(2, 4, 7, 7), randn(2, 4, 7, 7)), "latents (2, 4, 7, 7)"),
            Case((randn(3, 10), 0.5 * randn(3, 10) - 1.0), "vectors (3, 10), small σ"),
            Case((torch.zeros(2, 5), torch.zeros(2, 5)), "μ = 0, log σ² = 0: q is N(0, I)"),
            Case((randn(1, 4, 8, 8), torch.full((1, 4, 8, 8), -3.0)),
                 "one latent (1, 4, 8, 8), σ² = e⁻³")]


def _kl_terms(mean, logvar):
    return mean**2 + logvar.exp() - 1.0 - logvar


register(
    Exercise(
        name="gaussian_kl",
        lesson="20_latent_space",
        prompt=(
            "gaussian_kl(mean, logvar) -> (B,)\n"
            "KL(N(μ, diag σ²) ‖ N(0, I)) for each example of the batch, where logvar = log σ²,\n"
            "summed over every axis but the first: ½ Σ (μ² + σ² − 1 − log σ²)."
        ),
        reference=solutions.gaussian_kl,
        make_cases=_gaussian_cases,
        mistakes=(
            Mistake("no_half", "the KL of two Gaussians has a factor ½ in front of the sum.",
                    lambda m, lv: _kl_terms(m, lv).flatten(1).sum(1)),
            Mistake("std_not_logvar", "logvar is log σ², not log σ: σ² = exp(logvar), and the log "
                    "term is logvar itself.",
                    lambda m, lv: 0.5 * (m**2 + (2 * lv).exp() - 1 - 2 * lv).flatten(1).sum(1)),
            Mistake("mean_not_sum", "sum over the latent's elements (the KL of independent "
                    "coordinates adds up), do not average them.",
                    lambda m, lv: 0.5 * _kl_terms(m, lv).flatten(1).mean(1)),
            Mistake("no_minus_one", "with μ = 0 and σ = 1 the KL must be 0: you are missing the "
                    "− 1 in μ² + σ² − 1 − log σ².",
                    lambda m, lv: 0.5 * (m**2 + lv.exp() - lv).flatten(1).sum(1)),
            Mistake("log_sign", "the log term enters with a minus sign: − log σ² (a small σ costs "
                    "a lot).", lambda m, lv: 0.5 * (m**2 + lv.exp() - 1 + lv).flatten(1).sum(1)),
        ),
    )
)

register(
    Exercise(
        name="reparameterize",
        lesson="20_latent_space",
        prompt=(
            "reparameterize(mean, logvar, eps) -> z\n"
            "A draw from N(μ, diag σ²), logvar = log σ², written as a differentiable function\n"
            "of μ and logvar and the given standard normal noise eps (same shape)."
        ),
        reference=solutions.reparameterize,
        make_cases=lambda gen: [Case((*case.args, torch.randn(*case.args[0].shape, generator=gen)),
                                     case.label) for case in _gaussian_cases(gen)],
        mistakes=(
            Mistake("variance", "scale the noise by the standard deviation σ = exp(½ logvar), "
                    "not by the variance exp(logvar).", lambda m, lv, e: m + lv.exp() * e),
            Mistake("logvar_as_scale", "logvar is log σ²: σ = exp(½ logvar) multiplies the noise.",
                    lambda m, lv, e: m + lv * e),
            Mistake("inverted", "multiply the noise by σ = exp(+½ logvar), do not divide by it.",
                    lambda m, lv, e: m + torch.exp(-0.5 * lv) * e),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 21 guidance: the guided prediction from one batched forward pass
# ---------------------------------------------------------------------------------------------
ONE_FORWARD = "call the model once"


@dataclass(frozen=True)
class TwoHalvesModel:
    """A stand-in for the UNet, ε(x, t, c) = tanh(x + mean(c) + t/1000), that accepts only the
    doubled batch of 2B rows (x, t and the context alike): guidance runs one forward pass."""

    batch: int

    def __call__(self, x, t, context):
        rows = {"x": x.shape[0], "t": t.shape[0], "context": context.shape[0]}
        if any(n != 2 * self.batch for n in rows.values()):
            raise ValueError(f"{ONE_FORWARD}, on 2B = {2 * self.batch} rows; got {rows}")
        shape = (-1,) + (1,) * (x.dim() - 1)
        return torch.tanh(x + context.mean(dim=(1, 2)).view(shape) + t.view(shape) / 1000)


def _guided_cases(gen: torch.Generator) -> list[Case]:
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    def case(batch, image, tokens, w, label):
        t = torch.randint(0, 1000, (batch,), generator=gen)
        return Case((TwoHalvesModel(batch), randn(batch, *image), t, randn(batch, tokens, 8),
                     randn(batch, tokens, 8), w), label)

    return [case(2, (4, 8, 8), 5, 7.5, "latents (2, 4, 8, 8), 5 tokens, w = 7.5"),
            case(3, (2,), 3, 2.0, "points (3, 2), w = 2"),
            case(1, (4, 4, 4), 7, 0.0, "one latent, w = 0"),
            case(2, (2,), 2, 1.0, "w = 1")]


def _guided_parts(model, x, t, cond, uncond):
    return model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([uncond, cond])).chunk(2)


def _guided_swapped(model, x, t, cond, uncond, w):
    eps_uncond, eps_cond = _guided_parts(model, x, t, cond, uncond)
    return eps_cond + w * (eps_uncond - eps_cond)


def _guided_ho_salimans(model, x, t, cond, uncond, w):
    eps_uncond, eps_cond = _guided_parts(model, x, t, cond, uncond)
    return (1 + w) * eps_cond - w * eps_uncond


register(
    Exercise(
        name="guided_eps",
        lesson="21_guidance",
        prompt=(
            "guided_eps(model, x, t, cond, uncond, w) -> eps\n"
            "model(x, t, context) predicts ε. Call it ONCE, on the doubled batch: x, t and the\n"
            "contexts concatenated as [unconditional; conditional] along dim 0; split its output\n"
            "into ε_u and ε_c and return ε_u + w (ε_c − ε_u)."
        ),
        reference=solutions.guided_eps,
        make_cases=_guided_cases,
        mistakes=(
            Mistake("swapped", "the first half of the output belongs to the first half of the "
                    "batch: with [uncond; cond] in, ε_u comes first; yours moves away from the "
                    "prompt.", _guided_swapped),
            Mistake("ho_salimans", "that is Ho & Salimans' (1 + w) ε_c − w ε_u, where their w is "
                    "ours minus 1: here w = 1 must give ε_c.", _guided_ho_salimans),
        ),
        error_hints=((ONE_FORWARD, "concatenate x with x, t with t and uncond with cond along "
                      "dim 0, and make a single model call on those 2B rows."),),
    )
)
